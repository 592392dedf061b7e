"""Argument checks shared by the simulated network's public entry points.

Each raises a ``SockfakeTypeError`` or ``SockfakeValueError`` whose message names the
argument, so a bad value fails where it is given instead of deep in a thread later.
"""

from __future__ import annotations

import math
from typing import Any

from sockfake.errors import SockfakeTypeError, SockfakeValueError


def number(name: str, value: Any, *, positive: bool = False) -> float:
    """A finite real number, non-negative (or positive); bools are not numbers here."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SockfakeTypeError(f"{name} must be a number, not {value!r}")
    if math.isnan(value) or math.isinf(value):
        raise SockfakeValueError(f"{name} must be a finite number, not {value!r}")
    if positive and not value > 0:
        raise SockfakeValueError(f"{name} must be positive, not {value!r}")
    if value < 0:
        raise SockfakeValueError(f"{name} must be non-negative, not {value!r}")
    return float(value)


def integer(name: str, value: Any, *, minimum: int = 0) -> int:
    """An int of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise SockfakeTypeError(f"{name} must be an int, not {value!r}")
    if value < minimum:
        raise SockfakeValueError(f"{name} must be at least {minimum}, not {value!r}")
    return value


def payload(name: str, value: Any) -> bytes:
    """Bytes to send: a bytes-like object, not text."""
    if isinstance(value, str) or not isinstance(value, (bytes, bytearray, memoryview)):
        raise SockfakeTypeError(f"{name} must be bytes, not {type(value).__name__}")
    return bytes(value)

"""Server settings, checked at construction.

A bad setting (a negative timeout, a worker count of "4") used to be accepted and fail
later, on the first connection, inside serve_forever(). Every setting is checked when
the server is built, with an error that names it.
"""

from __future__ import annotations

import math

from sockfake.errors import SockfakeTypeError, SockfakeValueError


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_seconds(owner: object, name: str, *, optional: bool) -> None:
    """``name`` must be a positive, finite number of seconds (or None if ``optional``)."""
    value = getattr(owner, name)
    if value is None and optional:
        return
    expected = "a positive number of seconds" + (" or None" if optional else "")
    if not _is_number(value):
        raise SockfakeTypeError(f"{name} must be {expected}, not {type(value).__name__} {value!r}")
    if not (value > 0 and math.isfinite(value)):
        raise SockfakeValueError(f"{name} must be {expected}, not {value!r}")


def _check_count(owner: object, name: str, minimum: int = 1) -> None:
    """``name`` must be an int of at least ``minimum``."""
    value = getattr(owner, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SockfakeTypeError(
            f"{name} must be an int of at least {minimum}, not {type(value).__name__} "
            f"{value!r}"
        )
    if value < minimum:
        raise SockfakeValueError(f"{name} must be at least {minimum}, not {value!r}")


def _check_poll_timeout(owner: object, name: str) -> None:
    """``name`` (``handle_request()``'s timeout) must be None or finite seconds >= 0."""
    value = getattr(owner, name)
    if value is None:
        return
    expected = "a number of seconds (0 or more) or None"
    if not _is_number(value):
        raise SockfakeTypeError(f"{name} must be {expected}, not {type(value).__name__} {value!r}")
    if not (value >= 0 and math.isfinite(value)):
        raise SockfakeValueError(f"{name} must be {expected}, not {value!r}")

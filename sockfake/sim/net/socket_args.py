"""CPython's argument conversion for the simulated socket surface.

A simulated socket must refuse a bad argument exactly as ``socket.socket`` does: the
same exception class, the same message, in the same order as CPython's argument
parsing (``recv(1.5)`` is a TypeError, not a wait). Sizes and flags reach the socket
typed ``object`` and are converted here: in the compiled build mypyc would otherwise
refuse a non-int with its own words before the method runs. Flags are a C int, sizes
a Py_ssize_t, as CPython parses them.

These are the general versions. The hottest methods (``send``, ``sendall``, ``recv``,
``recvfrom``) first test ``type(x) is int`` and the range inline and call in here
only when that fails; ``tests/sim/net/test_socket_args.py`` holds each inlined copy to
its general version.
"""

from __future__ import annotations

import math
import operator
import socket
from typing import Any, Final

__all__ = [
    "INT_MAX",
    "INT_MIN",
    "SSIZE_MAX",
    "SSIZE_MIN",
    "byte_view",
    "c_flags",
    "c_int",
    "index_or_none",
    "ssize",
    "timeout_value",
    "writable_view",
]

INT_MAX: Final = 2**31 - 1
INT_MIN: Final = -INT_MAX - 1
SSIZE_MAX: Final = 2**63 - 1
SSIZE_MIN: Final = -SSIZE_MAX - 1


def c_int(value: Any, *, parse_arg: bool = False, c_type: bool = True) -> int:
    """An int as CPython converts one to a C int (its errors and messages); with
    ``c_type=False`` only the conversion, no range."""
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(
            f"'{type(value).__name__}' object cannot be interpreted as an integer"
        ) from None
    if c_type and not INT_MIN <= number <= INT_MAX:
        if not parse_arg:
            raise OverflowError("Python int too large to convert to C int")
        if not SSIZE_MIN <= number <= SSIZE_MAX:
            raise OverflowError("Python int too large to convert to C long")
        side = "greater than maximum" if number > 0 else "less than minimum"
        raise OverflowError(f"signed integer is {side}")
    return number


def c_flags(value: object) -> int:
    """Message flags as CPython parses them: a C int."""
    if type(value) is int and INT_MIN <= value <= INT_MAX:
        return value
    return c_int(value, parse_arg=True)


def ssize(value: object) -> int:
    """A size as CPython converts one to a Py_ssize_t (recv's bufsize, nbytes)."""
    number = value if type(value) is int else c_int(value, c_type=False)
    if not SSIZE_MIN <= number <= SSIZE_MAX:
        raise OverflowError("Python int too large to convert to C ssize_t")
    return number


def index_or_none(value: object) -> int | None:
    """``operator.index(value)``, or None where that is a TypeError."""
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        return None


def writable_view(buffer: Any, call: str) -> memoryview:
    """The bytes of a read-write buffer (``recv_into``'s), or CPython's TypeError."""
    try:
        view = memoryview(buffer)
    except TypeError:
        view = None
    if view is None or view.readonly:
        raise TypeError(f"{call}() argument 1 must be read-write bytes-like object, "
                        f"not {type(buffer).__name__}")
    return view.cast("B")


def byte_view(data: Any) -> memoryview:
    """``memoryview(data)`` with the socket module's message for a non-buffer."""
    try:
        return memoryview(data).cast("B")
    except TypeError:
        raise TypeError(
            f"a bytes-like object is required, not '{type(data).__name__}'"
        ) from None


def timeout_value(value: Any) -> float | None:
    """Check a timeout as ``socket.settimeout`` does (same errors, same messages)."""
    if value is None:
        return None
    seconds: float | int  # an int stays exact: 2**70 is out of range, not rounded
    if isinstance(value, float):
        if math.isnan(value):
            raise ValueError("Invalid value NaN (not a number)")
        seconds = value
    else:
        try:
            seconds = operator.index(value)
        except TypeError:
            raise TypeError(
                f"'{type(value).__name__}' object cannot be interpreted as an integer"
            ) from None
    # CPython converts first (OverflowError either way), then refuses a negative.
    if abs(seconds) * 1e9 >= 2**63:
        # Out of CPython's range: let CPython say so, in its own words for this version
        # (3.10 and 3.11+ word it differently). The real default is put back at once.
        previous = socket.getdefaulttimeout()
        try:
            _real_setdefaulttimeout(value)
        finally:
            _real_setdefaulttimeout(previous)
    if seconds < 0:
        raise ValueError("Timeout value out of range")
    return float(seconds)


_real_setdefaulttimeout = socket.setdefaulttimeout

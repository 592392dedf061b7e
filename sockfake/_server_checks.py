"""Server settings, checked at construction.

A bad setting (a negative timeout, a worker count of "4") used to be accepted and fail
later, on the first connection, inside serve_forever(). Every setting is checked when
the server is built, with an error that names it.
"""

from __future__ import annotations

import logging
import math

from sockfake.errors import SockfakeTypeError, SockfakeValueError

# The upper bounds (documented in docs/how-to/hardening.md). Each is far above any
# sensible setting and far below where the value breaks something later (a socket
# timeout past about 9.2e9 s overflows the OS's time_t at the first connection; a
# datagram buffer of 10**12 bytes fails at the first datagram).
MAX_TIMEOUT = 30 * 86400.0  # request_timeout, request_deadline, timeout: 30 days; None: none
MAX_INTERVAL = 60.0  # back-offs and polling intervals, slow_request_after
MAX_THREADS = 4096  # max_workers, max_slow_requests, max_children
MAX_QUEUED = 65536  # max_queued_requests (each an accepted connection: a descriptor)
MAX_BACKLOG = 65535  # request_queue_size (Linux caps it at net.core.somaxconn anyway)
MAX_PACKET = 1 << 20  # max_packet_size: 1 MiB (an IP datagram is at most 65,535 bytes)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_seconds(
    owner: object, name: str, *, optional: bool, maximum: float = MAX_TIMEOUT
) -> None:
    """``name`` must be positive seconds up to ``maximum`` (or None if ``optional``)."""
    value = getattr(owner, name)
    if value is None and optional:
        return
    expected = f"a positive number of seconds up to {maximum:g}" + (
        " (None: no limit)" if optional else ""
    )
    if not _is_number(value):
        raise SockfakeTypeError(f"{name} must be {expected}, not {type(value).__name__} {value!r}")
    if not (value > 0 and math.isfinite(value) and value <= maximum):
        raise SockfakeValueError(f"{name} must be {expected}, not {value!r}")


def _check_count(owner: object, name: str, minimum: int = 1, maximum: int = MAX_THREADS) -> None:
    """``name`` must be an int from ``minimum`` to ``maximum``."""
    value = getattr(owner, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SockfakeTypeError(
            f"{name} must be an int from {minimum} to {maximum}, not {type(value).__name__} "
            f"{value!r}"
        )
    if not minimum <= value <= maximum:
        raise SockfakeValueError(f"{name} must be from {minimum} to {maximum}, not {value!r}")


def _check_poll_timeout(owner: object, name: str) -> None:
    """``name`` (``handle_request()``'s timeout) must be None or seconds from 0 to the maximum."""
    value = getattr(owner, name)
    if value is None:
        return
    expected = f"a number of seconds from 0 to {MAX_TIMEOUT:g}, or None"
    if not _is_number(value):
        raise SockfakeTypeError(f"{name} must be {expected}, not {type(value).__name__} {value!r}")
    if not (value >= 0 and math.isfinite(value) and value <= MAX_TIMEOUT):
        raise SockfakeValueError(f"{name} must be {expected}, not {value!r}")


def _check_logger(owner: object, name: str) -> None:
    """``name`` must be None, a ``logging.Logger`` or a ``logging.LoggerAdapter``.

    Anything else used to pass, then fail at its first message: in the pool's watchdog,
    which died and left deadlines and slow-request defences silently off.
    """
    value = getattr(owner, name)
    if value is None or isinstance(value, (logging.Logger, logging.LoggerAdapter)):
        return
    raise SockfakeTypeError(
        f"{name} must be a logging.Logger (or LoggerAdapter) or None, not "
        f"{type(value).__name__} {value!r}"
    )

"""Errors exactly as the operating system raises them: the real class and errno."""

from __future__ import annotations

import errno
import os

__all__ = ["ERRNO_CLASSES", "blocking_error", "os_error", "raise_errno"]

ERRNO_CLASSES: dict[int, type[OSError]] = {
    errno.ECONNREFUSED: ConnectionRefusedError,
    errno.ECONNRESET: ConnectionResetError,
    errno.ECONNABORTED: ConnectionAbortedError,
    errno.EPIPE: BrokenPipeError,
    errno.ETIMEDOUT: TimeoutError,
    errno.ENOENT: FileNotFoundError,
}


def os_error(code: int, cls: type[OSError] | None = None) -> OSError:
    """An OSError of the class the OS would raise for ``code`` (or ``cls``)."""
    if cls is None:
        cls = ERRNO_CLASSES.get(code, OSError)
    return cls(code, os.strerror(code))


def raise_errno(code: int) -> None:
    """Raise the error for ``code``, unless it is 0."""
    if code:
        raise os_error(code)


def blocking_error() -> BlockingIOError:
    return BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")

"""File objects over a simulated descriptor: ``open(fd)``, ``io.open(fd)``, ``os.fdopen``.

A simulated socket's descriptor (2**20 and up, ``os.pipe()``'s two ends in a simulated
thread among them) names no OS file, so the built-in ``FileIO`` fails on it with a bare
``EBADF``. Code that wraps a pipe end in a file object (asyncio's
``connect_read_pipe(proto, io.open(rfd, 'rb', 0))``, subprocess-style readers, a
``os.fdopen(w, 'w')`` trigger) gets, under interception and in a thread of the
descriptor's network, the same layers ``io.open`` builds (buffered reader or writer,
text wrapper, line buffering) over a raw stream whose reads and writes are the
simulated ``os.read``/``os.write`` (``fdcalls``): blocking as the descriptor is, ready
for ``select``, closed through ``os.close`` (unless ``closefd=False``).

Every other argument, and every thread outside a simulation, gets the real ``open``
after one comparison.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import Any

from sockfake.sim.intercept.dispatch import _internal, caller_network
from sockfake.sim.net.descriptors import FIRST_FD

__all__ = ["SimDescriptorIO", "open_call"]


class SimDescriptorIO(io.RawIOBase):
    """A raw, unseekable stream over a simulated descriptor (``io.FileIO``'s part)."""

    def __init__(self, fd: int, readable: bool, writable: bool, closefd: bool) -> None:
        super().__init__()
        self._fd = fd
        self._readable = readable
        self._writable = writable
        self._closefd = closefd
        self.name = fd  # as FileIO's
        self.mode = "rb+" if readable and writable else "rb" if readable else "wb"

    def fileno(self) -> int:
        self._checkClosed()
        return self._fd

    def readable(self) -> bool:
        self._checkClosed()
        return self._readable

    def writable(self) -> bool:
        self._checkClosed()
        return self._writable

    def seekable(self) -> bool:
        return False

    def isatty(self) -> bool:
        self._checkClosed()
        return False

    def readinto(self, buffer: Any) -> int | None:
        if not self._readable:
            raise io.UnsupportedOperation("File not open for reading")
        view = memoryview(buffer).cast("B")
        try:
            data = os.read(self._fd, len(view))  # the simulated os.read
        except BlockingIOError:
            return None  # non-blocking and nothing there, as FileIO answers
        view[: len(data)] = data
        return len(data)

    def write(self, data: Any) -> int | None:
        if not self._writable:
            raise io.UnsupportedOperation("File not open for writing")
        try:
            return os.write(self._fd, data)  # the simulated os.write
        except BlockingIOError:
            return None

    def close(self) -> None:
        if self.closed:
            return
        try:
            super().close()
        finally:
            if self._closefd:
                os.close(self._fd)  # the simulated os.close

    def __repr__(self) -> str:
        return f"<sockfake SimDescriptorIO fd={self._fd} mode={self.mode!r}>"


def _modes(mode: str) -> tuple[bool, bool, bool]:
    """(readable, writable, text) of an ``open`` mode, checked as ``io.open`` does."""
    if not isinstance(mode, str):
        raise TypeError(f"open() argument 'mode' must be str, not {type(mode).__name__}")
    kinds = set(mode)
    if kinds - set("rwaxbt+") or len(mode) != len(kinds):
        raise ValueError(f"invalid mode: {mode!r}")
    creating = sum(kind in kinds for kind in "rwax")
    if creating != 1:
        raise ValueError("must have exactly one of create/read/write/append mode")
    if "b" in kinds and "t" in kinds:
        raise ValueError("can't have text and binary mode at once")
    plus = "+" in kinds
    return "r" in kinds or plus, bool(kinds & set("wax")) or plus, "b" not in kinds


def _open_simulated(
    fd: int, mode: str = "r", buffering: int = -1, encoding: str | None = None,
    errors: str | None = None, newline: str | None = None, closefd: bool = True,
    opener: Any = None,
) -> Any:
    readable, writable, text = _modes(mode)
    if opener is not None:
        raise ValueError("open() of a simulated descriptor takes no opener")
    if not text and (encoding is not None or errors is not None or newline is not None):
        raise ValueError("binary mode doesn't take an encoding, errors or newline argument")
    os.fstat(fd)  # as FileIO: an unknown or closed descriptor is EBADF (the simulated fstat)
    raw = SimDescriptorIO(fd, readable, writable, closefd)
    try:
        return _layers(raw, mode, buffering, encoding, errors, newline, readable, writable, text)
    except BaseException:
        raw.close()  # as io.open: the raw file it made is closed, and its descriptor
        raise


def _layers(
    raw: SimDescriptorIO, mode: str, buffering: int, encoding: str | None,
    errors: str | None, newline: str | None, readable: bool, writable: bool, text: bool,
) -> Any:
    """What ``io.open`` builds over its raw file."""
    line_buffering = buffering == 1 and text
    if buffering == 0:
        if text:
            raise ValueError("can't have unbuffered text I/O")
        return raw
    size = io.DEFAULT_BUFFER_SIZE if buffering in (-1, 1) else buffering
    if size < 0:
        raise ValueError("invalid buffering size")
    buffer: Any
    if readable and writable:
        buffer = io.BufferedRWPair(raw, raw, size)
    elif readable:
        buffer = io.BufferedReader(raw, size)
    else:
        buffer = io.BufferedWriter(raw, size)
    if not text:
        return buffer
    wrapper = io.TextIOWrapper(
        buffer, encoding, errors, newline, line_buffering
    )
    wrapper.mode = mode  # type: ignore[misc]  # as io.open sets it
    return wrapper


def open_call(original: Callable[..., Any]) -> Callable[..., Any]:
    """``open``/``io.open`` with a simulated descriptor handled (see the docstring)."""

    def open(file: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: A001 - open's name
        if file.__class__ is not int or file < FIRST_FD:
            return original(file, *args, **kwargs)
        if caller_network() is None or _internal(1):
            return original(file, *args, **kwargs)  # the real EBADF
        return _open_simulated(file, *args, **kwargs)

    open.__name__ = open.__qualname__ = "open"
    open.__doc__ = original.__doc__
    return open

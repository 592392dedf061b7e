"""The real network: the operating system's sockets, threads, clock and processes.

``RealNetwork`` hands back the stdlib's own objects (``socket.socket``,
``threading.Thread``, ``queue.Queue``...), so production code pays no wrapper cost on
the hot path. The one object of its own is the wake-up pipe ``serve_forever()`` uses
to stop at once, and the Unix socket-file housekeeping servers ask for.
"""

from __future__ import annotations

import contextlib
import os
import queue
import selectors
import socket
import stat
import threading
import time
from collections.abc import Callable
from socket import socket as _OSSocket
from typing import Any, NoReturn

__all__ = ["REAL_NETWORK", "RealNetwork"]


class _PipeWaker:
    """A self-pipe: ``set()`` makes the read end readable until ``clear()``.

    Writing at most one pending byte keeps ``set()`` from ever blocking, however
    often it is called.
    """

    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._pending = False
        self._lock = threading.Lock()

    def fileno(self) -> int:
        return self._read_fd

    def set(self) -> None:
        with self._lock:
            if self._pending or self._write_fd < 0:
                return
            self._pending = True
            with contextlib.suppress(BlockingIOError):
                os.write(self._write_fd, b"\0")

    def clear(self) -> None:
        with self._lock:
            if not self._pending or self._read_fd < 0:
                return
            self._pending = False
            with contextlib.suppress(BlockingIOError):
                os.read(self._read_fd, 64)

    def close(self) -> None:
        with self._lock:
            for fd in (self._read_fd, self._write_fd):
                if fd >= 0:
                    os.close(fd)
            self._read_fd = self._write_fd = -1


if hasattr(selectors, "PollSelector"):
    _ServerSelector: type[selectors.BaseSelector] = selectors.PollSelector
else:  # pragma: no cover - Windows
    _ServerSelector = selectors.SelectSelector


class RealNetwork:
    """The operating system's network, threads, clock and processes."""

    name = "real"

    def socket(
        self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0
    ) -> _OSSocket:
        return socket.socket(family, type, proto)

    def create_connection(
        self, address: tuple[str, int], timeout: float | None = None
    ) -> _OSSocket:
        if timeout is None:
            return socket.create_connection(address)
        return socket.create_connection(address, timeout)

    def selector(self) -> selectors.BaseSelector:
        return _ServerSelector()

    def waker(self) -> _PipeWaker:
        return _PipeWaker()

    def time(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def thread(
        self,
        target: Callable[..., object],
        args: tuple[Any, ...] = (),
        name: str | None = None,
        daemon: bool | None = None,
    ) -> threading.Thread:
        return threading.Thread(target=target, args=args, name=name, daemon=daemon)

    def event(self) -> threading.Event:
        return threading.Event()

    def lock(self) -> Any:
        return threading.Lock()

    def queue(self, maxsize: int = 0) -> Any:
        return queue.Queue(maxsize)

    def fork(self) -> int:
        return os.fork()

    def waitpid(self, pid: int, options: int) -> tuple[int, int]:
        return os.waitpid(pid, options)

    def exit_child(self, status: int) -> NoReturn:
        os._exit(status)

    def check_fork(self) -> None:
        """Processes are real here: nothing to refuse."""

    def unix_file_identity(self, path: Any) -> tuple[int, int] | None:
        if not _is_filesystem_path(path):
            return None  # autobind ("") and abstract names ("\0...") have no file
        try:
            info = os.stat(path)
        except OSError:
            return None
        return (info.st_dev, info.st_ino)

    def remove_stale_unix_socket(self, path: Any, socket_type: int) -> None:
        """Unlink ``path`` if it is a socket file that nothing is bound to.

        Never blocks and never hands a live server a connection: on Linux the kernel's
        table of Unix sockets (``/proc/net/unix``) says whether any socket is bound to
        the path, listening or not (a server between bind() and listen() keeps its
        file). Only a path absent from the table, or a system without the table, is
        probed with a non-blocking connect(): refused means stale; accepted, or EAGAIN
        (a live server's full backlog), means alive; anything else keeps the file.
        (A server in another network namespace is not in this namespace's table: the
        probe is what finds it, at the cost of one connection it sees closed at once.)
        """
        if not _is_filesystem_path(path):
            return
        try:
            if not stat.S_ISSOCK(os.stat(path).st_mode):
                return
        except OSError:
            return
        bound = _bound_unix_paths()
        if bound is not None and _named_in(path, bound):
            return
        if _probe_refused(path, socket_type):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def chmod_unix_socket(self, path: Any, mode: int) -> None:
        if _is_filesystem_path(path):
            os.chmod(path, mode)

    def remove_unix_socket(self, path: Any, identity: object) -> None:
        # Unlink only the file the server created, not one that replaced it since.
        if identity is None or self.unix_file_identity(path) != identity:
            return
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    def __repr__(self) -> str:
        return "RealNetwork()"


def _is_filesystem_path(address: Any) -> bool:
    """A Unix address naming a file: not empty (autobind), not abstract (leading NUL)."""
    if isinstance(address, str):
        return bool(address) and not address.startswith("\0")
    if isinstance(address, bytes):
        return bool(address) and not address.startswith(b"\0")
    return isinstance(address, os.PathLike)


_PROC_NET_UNIX = "/proc/net/unix"


def _bound_unix_paths(table: str | None = None) -> set[str] | None:
    """Paths of every Unix socket bound in this network namespace (None: no table).

    Each line of ``/proc/net/unix`` is ``Num RefCount Protocol Flags Type St Inode
    [Path]``; the path is as given to bind(), so it may be relative to the binder's
    directory (see ``_named_in``).
    """
    try:
        with open(table or _PROC_NET_UNIX, encoding="utf-8", errors="surrogateescape") as lines:
            next(lines, None)  # the header
            paths = set()
            for line in lines:
                fields = line.rstrip("\n").split(None, 7)
                if len(fields) == 8 and not fields[7].startswith("@"):  # @: abstract
                    paths.add(fields[7])
            return paths
    except OSError:
        return None


def _named_in(path: Any, bound: set[str]) -> bool:
    """Is ``path`` (possibly) one of the bound paths? When in doubt, yes: a relative
    path bound elsewhere with the same file name counts, so a live file is kept."""
    text = os.fsdecode(os.fspath(path))
    absolute = os.path.abspath(text)
    name = os.path.basename(absolute)
    for entry in bound:
        if entry in (text, absolute):
            return True
        if os.path.isabs(entry):
            if os.path.normpath(entry) == absolute:
                return True
        elif os.path.basename(entry) == name:
            return True
    return False


def _probe_refused(path: Any, socket_type: int) -> bool:
    """Non-blocking connect to ``path``: True only if it is refused (nobody bound)."""
    probe = socket.socket(socket.AF_UNIX, socket_type)
    try:
        probe.setblocking(False)
        # A stream connect completes at once or fails with EAGAIN (full backlog): it
        # never waits. A datagram connect only records the peer.
        probe.connect(path)
    except ConnectionRefusedError:
        return True
    except OSError:
        return False  # EAGAIN (alive, backlog full), EPROTOTYPE, EACCES...: keep
    finally:
        probe.close()
    return False


REAL_NETWORK = RealNetwork()

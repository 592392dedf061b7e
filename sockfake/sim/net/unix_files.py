"""The socket files of simulated Unix sockets bound to filesystem paths.

Linux makes a file for a Unix socket bound to a path (a socket inode, ``S_ISSOCK``);
connect() and sendto() find the socket through that file, so removing it makes the
socket unreachable (``ENOENT``) and the file outlives the socket (connecting then is
``ECONNREFUSED``, binding again ``EADDRINUSE``). The simulation keeps those files here,
in memory, one table per network: never on the real filesystem, so a network's
paths collide with no other process, no other network (seeds, explorations) and no
file a crashed run left behind, and they are gone when the network is.

The real filesystem is read, never written: binding in a directory that does not
exist is ``ENOENT`` (``ENOTDIR`` under a file), and a path where a real file exists
is ``EADDRINUSE``, as Linux says. Under interception ``os.stat``, ``os.lstat``,
``os.unlink``, ``os.remove``, ``os.rename`` and ``os.replace`` (and what calls them:
``os.path.exists``, ``pathlib``) in a simulated thread see these files
(``sockfake.sim.intercept.unix_files``); directory listings and C code do not.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from typing import Any

from sockfake.sim.net.endpoint import Endpoint
from sockfake.sim.net.oserror import os_error

__all__ = ["UnixFile", "UnixFiles", "is_filesystem_path"]

# The real calls, taken before any interception replaces the module's names.
_real_stat = os.stat
_real_lstat = os.lstat
# Inode numbers of simulated socket files: far above what a test directory's real
# files have, so an identity check (asyncio's cleanup compares st_ino) never mixes
# a simulated file with a real one.
_FIRST_INODE = 1 << 40
_SOCKET_MODE = stat.S_IFSOCK | 0o755  # srwxr-xr-x: Linux's 0777 under the usual umask


def is_filesystem_path(path: str) -> bool:
    """A name with a file: not autobind ("") nor an abstract name (leading NUL)."""
    return bool(path) and not path.startswith("\0")


@dataclass
class UnixFile:
    """One socket file: the socket bound there (which may have closed since)."""

    endpoint: Endpoint
    inode: int
    device: int
    made_at: float


class UnixFiles:
    """A network's socket files, by absolute path."""

    def __init__(self) -> None:
        self._files: dict[str, UnixFile] = {}
        self._inodes = _FIRST_INODE

    def __bool__(self) -> bool:
        return bool(self._files)

    @staticmethod
    def key(path: Any) -> str:
        """The absolute path (not resolving symbolic links) a file is kept under."""
        name: str = os.fsdecode(os.fspath(path))
        return os.path.abspath(name)

    def make(self, path: str, endpoint: Endpoint, now: float) -> None:
        """bind(): make the socket file, or fail as Linux's mknod does."""
        key = self.key(path)
        device = self.check_free(key)
        self._inodes += 1
        self._files[key] = UnixFile(endpoint, self._inodes, device, now)

    def check_free(self, path: str) -> int:
        """The errors binding ``path`` meets (``ENOENT``, ``ENOTDIR``, ``EADDRINUSE``);
        the directory's device if it is free."""
        key = self.key(path)
        directory = os.path.dirname(key)
        try:
            info = _real_stat(directory)
        except OSError as exc:
            raise os_error(exc.errno or errno.ENOENT) from None
        if not stat.S_ISDIR(info.st_mode):
            raise os_error(errno.ENOTDIR)
        if key in self._files or _real_exists(key):
            raise os_error(errno.EADDRINUSE)
        return info.st_dev

    def find(self, path: str) -> UnixFile:
        """connect()/sendto(): the file at ``path``, or Linux's error: ``ENOENT`` where
        nothing is (or the directory is missing), ``ECONNREFUSED`` for a real file
        (a socket outside the simulation, never reached, or not a socket at all)."""
        key = self.key(path)
        found = self._files.get(key)
        if found is not None:
            return found
        try:
            _real_stat(key)
        except OSError as exc:
            raise os_error(exc.errno or errno.ENOENT) from None
        raise os_error(errno.ECONNREFUSED)

    def get(self, path: Any) -> UnixFile | None:
        return self._files.get(self.key(path)) if self._files else None

    def stat(self, path: Any) -> os.stat_result | None:
        """``os.stat`` of a simulated socket file (None: not one of ours)."""
        found = self.get(path)
        if found is None:
            return None
        made = found.made_at
        return os.stat_result((_SOCKET_MODE, found.inode, found.device, 1, os.getuid(),
                               os.getgid(), 0, made, made, made))

    def unlink(self, path: Any) -> bool:
        """``os.unlink``: the file goes (the socket stays, unreachable by name)."""
        if self.get(path) is None:
            return False
        del self._files[self.key(path)]
        return True

    def rename(self, source: Any, target: Any) -> bool:
        """``os.rename``/``os.replace`` of a socket file: the socket is found at its new
        name (Linux finds it by inode); whatever was at the new name is replaced."""
        found = self.get(source)
        if found is None:
            return False
        key = self.key(target)
        directory = os.path.dirname(key)
        try:
            _real_stat(directory)
        except OSError as exc:
            raise os_error(exc.errno or errno.ENOENT) from None
        del self._files[self.key(source)]
        self._files[key] = found
        return True

    def identity(self, path: Any) -> tuple[int, int] | None:
        found = self.get(path)
        return None if found is None else (found.device, found.inode)

    def clear(self) -> None:
        """The network closed: its files go with it."""
        self._files.clear()


def _real_exists(path: str) -> bool:
    try:
        _real_lstat(path)
    except OSError:
        return False
    return True

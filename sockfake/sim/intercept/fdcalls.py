"""Descriptor calls on a simulated socket: ``fcntl`` and the ``os`` functions on a number.

A simulated socket's descriptor (2**20 and up) names no OS file, so the real calls
fail with a bare ``EBADF``. Under interception, in a thread of its network:

* ``fcntl.fcntl``: ``F_GETFD``/``F_SETFD`` keep ``FD_CLOEXEC`` (set on a new socket,
  as CPython makes them non-inheritable; ``get_inheritable`` reads the same flag);
  ``F_GETFL`` reports ``O_RDWR`` and ``O_NONBLOCK`` as Linux does (a socket with a
  timeout is non-blocking underneath), ``F_SETFL`` turns ``O_NONBLOCK`` on
  (``setblocking(False)``) or off (a non-blocking socket becomes blocking; one with a
  timeout keeps it).
* ``os.read``/``os.write`` are ``recv``/``send`` (``EAGAIN`` at once on a socket that
  is non-blocking or has a timeout, as on ``O_NONBLOCK``), ``os.sendfile`` from a real
  file sends as ``os.write`` does (asyncio's ``loop.sendfile`` and
  ``sock_sendfile`` use it), ``os.fstat`` reports a
  socket (``S_IFSOCK``), ``os.get_blocking``/``set_blocking`` and
  ``os.get_inheritable``/``set_inheritable`` the flags above, ``os.isatty`` False,
  ``os.dup`` one more handle on the socket under the same number (as ``socket.dup``:
  simulated descriptors are not duplicated), ``os.close`` lets go of one handle and
  closes the simulated socket with the last.
* ``os.pipe()`` in a simulated thread is a simulated socket pair's two descriptors
  (read end, write end): host-local, instant, and waited on by the simulated
  ``select``/``poll``/selectors, so a wake-up pipe (waitress's trigger) works. ``os.fstat``
  shows a socket, not a FIFO, and both ends can read and write.
* ``open(fd)``, ``io.open(fd)`` and ``os.fdopen(fd)`` are file objects over the
  descriptor (``fdfiles``).
* Every other ``fcntl`` command, ``fcntl.ioctl``/``flock``/``lockf``, and
  ``os.dup2``, ``os.lseek`` ... on a simulated
  descriptor raise ``OSError(EBADF)`` (what the code saw before, so its error handling
  is unchanged) whose message names sockfake, the call, and what to do instead.

A simulated descriptor used from a thread outside its simulation, or one that is
closed, raises ``OSError(EBADF)`` saying so. Real descriptors (below 2**20) always get
the real call, from every thread.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

# A module reference, read at call time: sockets imports this module too.
from sockfake.sim.intercept import sockets as _sockets
from sockfake.sim.intercept.dispatch import _internal, caller_network
from sockfake.sim.net.descriptors import FIRST_FD

if TYPE_CHECKING:
    from sockfake.sim.net.sockets import SimSocket
    from sockfake.sim.network import SimNetwork

try:
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - not POSIX
    _fcntl = None  # type: ignore[assignment]

__all__ = [
    "FCNTL_CALLS", "FCNTL_MODULE", "OS_CALLS", "fcntl_call", "is_inheritable", "os_call",
    "pipe_call", "set_inheritable",
]  # fmt: skip

FCNTL_MODULE: Any = _fcntl  # None where there is no fcntl

_FD_CLOEXEC = getattr(_fcntl, "FD_CLOEXEC", 1)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0o4000)

# Per network, per simulated descriptor: FD_CLOEXEC unless made inheritable.
_cloexec_off: weakref.WeakKeyDictionary[Any, set[int]] = weakref.WeakKeyDictionary()


def _number(fd: object) -> int | None:
    """The descriptor a call names, if it is a simulated one (an int, or an object
    with ``fileno()`` as ``fcntl`` takes); None: the real call decides."""
    if fd.__class__ is not int:
        if isinstance(fd, bool) or not isinstance(fd, int):
            fileno = getattr(fd, "fileno", None)
            if fileno is None:
                return None
            try:
                fd = fileno()
            except Exception:  # noqa: BLE001 - the real call raises its own error
                return None
            if not isinstance(fd, int):
                return None
    number = int(fd)
    return number if number >= FIRST_FD else None


def _error(call: str, fd: int, why: str) -> OSError:
    return OSError(errno.EBADF, f"{call} on simulated descriptor {fd} (sockfake): {why}")


def _socket_of(call: str, fd: int) -> tuple[SimNetwork, SimSocket]:
    net = caller_network()
    if net is None:
        raise _error(call, fd, "a simulated socket's descriptor can be used only from a "
                               "thread of its network, under net.intercept()")
    for sock in net.open_sockets():
        if sock.fileno() == fd:
            return net, sock
    raise _error(call, fd, f"no open simulated socket of {net!r} has this descriptor "
                           "(closed, or another network's)")


def is_inheritable(net: SimNetwork, fd: int) -> bool:
    return fd in _cloexec_off.get(net, ())


def set_inheritable(net: SimNetwork, fd: int, inheritable: bool) -> None:
    off = _cloexec_off.setdefault(net, set())
    if inheritable:
        off.add(fd)
    else:
        off.discard(fd)


def _flags(sock: SimSocket) -> int:
    return os.O_RDWR | (_O_NONBLOCK if sock.gettimeout() is not None else 0)


def _set_nonblocking(sock: SimSocket, nonblocking: bool) -> None:
    if nonblocking:
        if sock.gettimeout() is None:
            sock.setblocking(False)
    elif sock.gettimeout() == 0.0:
        sock.setblocking(True)


# -- fcntl ------------------------------------------------------------------------------

_FCNTL_HINT = (
    "sockfake simulates F_GETFD/F_SETFD (FD_CLOEXEC) and F_GETFL/F_SETFL (O_NONBLOCK) on "
    "a simulated socket; for anything else use the socket object's own methods, or run "
    "this code outside the simulation"
)


def _fcntl_sim(original: Callable[..., Any], fd: object, cmd: int, arg: Any = 0) -> Any:
    number = _number(fd)
    if number is None or _fcntl is None:
        return original(fd, cmd, arg)
    net, sock = _socket_of(f"fcntl.fcntl(fd, {cmd})", number)
    if cmd == _fcntl.F_GETFD:
        return 0 if is_inheritable(net, number) else _FD_CLOEXEC
    if cmd == _fcntl.F_SETFD and isinstance(arg, int):
        set_inheritable(net, number, not arg & _FD_CLOEXEC)
        return 0
    if cmd == _fcntl.F_GETFL:
        return _flags(sock)
    if cmd == _fcntl.F_SETFL and isinstance(arg, int):
        _set_nonblocking(sock, bool(arg & _O_NONBLOCK))
        return 0
    raise _error(f"fcntl.fcntl(fd, {cmd}, ...)", number, _FCNTL_HINT)


def fcntl_call(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """``fcntl.<name>`` with a simulated descriptor handled (see the module docstring)."""
    if name == "fcntl":

        def call(fd: Any, *args: Any, **kwargs: Any) -> Any:
            return _fcntl_sim(original, fd, *args, **kwargs)

    else:

        def call(fd: Any, *args: Any, **kwargs: Any) -> Any:
            number = _number(fd)
            if number is None:
                return original(fd, *args, **kwargs)
            _socket_of(f"fcntl.{name}()", number)
            raise _error(f"fcntl.{name}()", number, _FCNTL_HINT)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = original.__doc__
    return call


# The fcntl module's functions that take a descriptor (those this platform has).
FCNTL_CALLS = ("fcntl", "ioctl", "flock", "lockf")


# -- os ---------------------------------------------------------------------------------


def _without_waiting(sock: SimSocket, call: Callable[[], Any]) -> Any:
    """``call`` as on an O_NONBLOCK descriptor: EAGAIN at once (a socket with a timeout
    is one underneath: ``os.read`` does not wait out the timeout)."""
    timeout = sock.gettimeout()
    if timeout is None:
        return call()
    sock.settimeout(0.0)
    try:
        return call()
    finally:
        sock.settimeout(timeout)


def _read(sock: SimSocket, fd: int, length: int) -> bytes:
    return bytes(_without_waiting(sock, lambda: sock.recv(length)))


def _write(sock: SimSocket, fd: int, data: Any) -> int:
    return int(_without_waiting(sock, lambda: sock.send(data)))


def _sendfile(sock: SimSocket, fd: int, in_fd: int, offset: int | None, count: int) -> int:
    """``os.sendfile`` from a real file to a simulated socket, as Linux does it: the
    bytes at ``offset`` (the file's position if None, which then moves by what was
    sent), sent as ``os.write`` sends them (``EAGAIN`` at once on a full socket); 0 at
    the end of the file."""
    if _number(in_fd) is not None:
        raise _error("os.sendfile()", in_fd, "sockfake sends from a real file only; use "
                                             "the socket object's sendfile() instead")
    data = os.read(in_fd, count) if offset is None else os.pread(in_fd, count, offset)
    if not data:
        return 0
    sent = 0
    try:
        sent = _write(sock, fd, data)
    finally:
        if offset is None and sent < len(data):
            os.lseek(in_fd, sent - len(data), os.SEEK_CUR)  # what was not sent is unread
    return sent


def _fstat(sock: SimSocket, fd: int) -> os.stat_result:
    return os.stat_result((stat.S_IFSOCK | 0o777, fd, 0, 1, os.getuid(), os.getgid(), 0,
                           0, 0, 0))


def _get_blocking(sock: SimSocket, fd: int) -> bool:
    return sock.gettimeout() is None


def _set_blocking(sock: SimSocket, fd: int, blocking: bool) -> None:
    _set_nonblocking(sock, not blocking)


def _isatty(sock: SimSocket, fd: int) -> bool:
    return False


def _dup(sock: SimSocket, fd: int) -> int:
    sock._sf_handles += 1
    return fd


def _close(sock: SimSocket, fd: int) -> None:
    handles = sock._sf_handles - 1
    sock._sf_handles = handles
    if handles <= 0:
        sock.close()


_SIMULATED: dict[str, Callable[..., Any]] = {
    "read": _read, "write": _write, "fstat": _fstat, "get_blocking": _get_blocking,
    "set_blocking": _set_blocking, "isatty": _isatty, "dup": _dup, "close": _close,
    "sendfile": _sendfile,
}  # fmt: skip

_OS_HINTS = {
    "dup2": "use the socket object's dup() instead",
    "readv": "use the socket object's recvmsg_into() instead",
    "writev": "use the socket object's sendmsg() instead",
}
# The os functions that take a descriptor first, refused on a simulated one unless above.
_OS_REFUSED = (
    "dup2", "lseek", "fsync", "fdatasync", "ftruncate", "fchmod",
    "fchown", "fstatvfs", "fchdir", "readv", "writev", "pread", "pwrite", "ttyname",
    "fpathconf", "device_encoding", "posix_fadvise", "posix_fallocate", "lockf",
)  # fmt: skip
# Every os function patched, each present on this platform or skipped.
OS_CALLS = (*_SIMULATED, "get_inheritable", "set_inheritable", *_OS_REFUSED)


def os_call(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """``os.<name>`` with a simulated descriptor handled (see the module docstring). A
    real descriptor costs one comparison: ``os.read`` and ``os.write`` are on the
    kernel's hand-off path."""
    simulated = _SIMULATED.get(name)

    if name in ("get_inheritable", "set_inheritable"):
        getting = name == "get_inheritable"

        def call(fd: Any, *args: Any, **kwargs: Any) -> Any:
            if fd.__class__ is not int or fd < FIRST_FD:
                return original(fd, *args, **kwargs)
            net, _ = _socket_of(f"os.{name}()", fd)
            if getting:
                return is_inheritable(net, fd)
            set_inheritable(net, fd, bool(*args))
            return None

    elif simulated is not None:

        def call(fd: Any, *args: Any, **kwargs: Any) -> Any:
            if fd.__class__ is not int or fd < FIRST_FD:
                return original(fd, *args, **kwargs)
            _, sock = _socket_of(f"os.{name}()", fd)
            return simulated(sock, fd, *args, **kwargs)

    else:
        hint = _OS_HINTS.get(name, "use the socket object's methods instead, or run this "
                                   "code outside the simulation")

        def call(fd: Any, *args: Any, **kwargs: Any) -> Any:
            if fd.__class__ is not int or fd < FIRST_FD:
                return original(fd, *args, **kwargs)
            _socket_of(f"os.{name}()", fd)
            raise _error(f"os.{name}()", fd, f"sockfake does not simulate os.{name} on a "
                                              f"simulated socket; {hint}")

    call.__name__ = call.__qualname__ = name
    call.__doc__ = original.__doc__
    return call


def pipe_call(original: Callable[[], tuple[int, int]]) -> Callable[[], tuple[int, int]]:
    """``os.pipe()``: in a simulated thread, a simulated socket pair's descriptors."""

    def pipe() -> tuple[int, int]:
        net = caller_network()
        if net is None or _internal(1):  # the kernel's own turn pipes stay real
            return original()
        family = getattr(socket, "AF_UNIX", socket.AF_INET)
        read_end, write_end = _sockets.sim_socketpair(net, family, socket.SOCK_STREAM)
        # The descriptors own the simulated sockets now (one handle each, for os.close).
        return read_end.detach(), write_end.detach()

    pipe.__name__ = pipe.__qualname__ = "pipe"
    pipe.__doc__ = original.__doc__
    return pipe

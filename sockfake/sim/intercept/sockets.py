"""The ``socket.socket`` that ``net.intercept()`` installs: one class, two faces.

``InterceptSocket`` subclasses the real ``socket.socket``, so ``isinstance(s,
socket.socket)`` holds and code can subclass it. Made in a simulated thread, an
instance never opens an OS descriptor: ``_socket.socket.__new__`` leaves the C
object's descriptor at -1, ``__init__`` does not call the C initialiser, and every
socket method is delegated to a ``SimSocket`` of that thread's network. Made in any
other thread, it is a plain real socket (the real ``__init__`` and methods).

While interception is active the real class is guarded too (``guard_real_class``):
its ``__init__`` and its network methods refuse to run in a simulated thread, so a
real socket made before interception, or through a reference captured at import
time (``from socket import socket``), cannot reach the real network from inside the
simulation. A socket made with ``_socket.socket`` directly (``socket.SocketType``), and
the C base's methods called on a real socket, have no Python layer to guard: the audit
hook (``sockfake.sim.intercept.audit``) refuses those in the C functions.
"""

from __future__ import annotations

import errno
import io
import os
import socket as _socket_module
import threading
import warnings
import weakref
from collections.abc import Callable
from typing import Any, cast

from sockfake.network import SockfakeRuntimeError
from sockfake.sim.intercept import fdcalls
from sockfake.sim.intercept.dispatch import caller_host, caller_network
from sockfake.sim.net.sockets import SimSocket

__all__ = ["InterceptSocket", "RealSocket", "guard_real_class", "unguard_real_class", "wrap"]

RealSocket = _socket_module.socket
_CSocket: Any = RealSocket.__mro__[1]  # _socket.socket
_AnyReal: Any = RealSocket
_AnySocketModule: Any = _socket_module

_GUARDED = (
    "__init__", "accept", "bind", "connect", "connect_ex", "listen", "recv", "recv_into",
    "recvfrom", "recvfrom_into", "recvmsg", "recvmsg_into", "send", "sendall", "sendto",
    "sendmsg", "sendfile", "shutdown", "dup",
)  # fmt: skip
_saved_real: dict[str, Any] = {}


def refuse_real(what: str) -> SockfakeRuntimeError:
    return SockfakeRuntimeError(
        f"{what} on a real socket from simulated thread "
        f"{threading.current_thread().name!r}: a simulated thread never touches the real "
        "network. Create the socket inside the simulation (under net.intercept(), "
        "socket.socket() and socket.create_connection() make simulated sockets) or use "
        "net.socket(); a socket made before the simulation belongs to the real world."
    )


def _guarded(name: str, original: Any) -> Any:
    label = "socket.socket()" if name == "__init__" else f"socket.socket.{name}()"

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        if caller_network() is not None:
            raise refuse_real(label)
        return original(self, *args, **kwargs)

    method.__name__ = name
    method.__qualname__ = f"socket.{name}"
    method.__doc__ = getattr(original, "__doc__", None)
    setattr(method, "_sockfake_guard", True)  # noqa: B010 (a mark for readers of a stack)
    return method


def guard_real_class() -> None:
    """Make the real ``socket.socket``'s entry points refuse to run in simulated threads."""
    for name in _GUARDED:
        if name in _saved_real:
            continue
        own = RealSocket.__dict__.get(name)
        original = getattr(RealSocket, name, None)
        if original is None:
            continue
        _saved_real[name] = own  # None: inherited from _socket.socket, delete on exit
        setattr(RealSocket, name, _guarded(name, original))


def unguard_real_class() -> None:
    for name, own in list(_saved_real.items()):
        if own is None:
            delattr(RealSocket, name)
        else:
            setattr(RealSocket, name, own)
        del _saved_real[name]


_real_dup: Callable[[int], int] = _socket_module.dup


def sim_dup(fd: int) -> int:
    """``socket.dup()`` (which ``socket.fromfd`` calls): on a simulated descriptor, one
    more handle on its socket, under the same number (simulated descriptors are not
    duplicated); any other descriptor is the OS's."""
    net = caller_network()
    if net is not None:
        for sim in net.open_sockets():
            if sim.fileno() == fd:
                sim._sf_handles += 1
                return fd
    return _real_dup(fd)


def _blank(cls: type[InterceptSocket]) -> InterceptSocket:
    obj: InterceptSocket = _CSocket.__new__(cls)  # descriptor -1: nothing real is opened
    obj._io_refs = 0
    obj._closed = False
    return obj


def wrap(sim: SimSocket) -> InterceptSocket:
    """A ``socket.socket`` instance delegating to ``sim``."""
    obj = _blank(InterceptSocket)
    obj._sf_sim = sim
    return obj


def _sim_method(name: str) -> Any:
    def method(self: InterceptSocket, *args: Any, **kwargs: Any) -> Any:
        sim = self._sf_sim
        if sim is None:
            return getattr(super(InterceptSocket, self), name)(*args, **kwargs)
        return getattr(sim, name)(*args, **kwargs)

    method.__name__ = name
    method.__qualname__ = f"socket.{name}"
    method.__doc__ = getattr(getattr(RealSocket, name, None), "__doc__", None)
    return method


class InterceptSocket(RealSocket):
    """``socket.socket`` under interception (see the module docstring)."""

    # No __slots__: instances get a __dict__ for the delegate.
    _sf_sim: SimSocket | None = None  # None: a real socket

    def __init__(
        self, family: int = -1, type: int = -1, proto: int = -1, fileno: int | None = None
    ) -> None:
        net = caller_network()
        if net is None:
            RealSocket.__init__(self, family, type, proto, fileno)
            return
        self._io_refs = 0
        self._closed = False
        if fileno is not None:
            # Another object on a simulated descriptor shares its simulated socket, as
            # two socket objects on one descriptor share the kernel's socket.
            shared = [s for s in net.open_sockets() if s.fileno() == fileno]
            if not shared:
                raise SockfakeRuntimeError(
                    f"socket.socket(fileno={fileno!r}) in a simulated thread: it is not a "
                    "simulated socket's descriptor, and a simulated thread never touches "
                    "the real network"
                )
            self._sf_sim = shared[0]
            return
        family = _socket_module.AF_INET if family == -1 else family
        type = _socket_module.SOCK_STREAM if type == -1 else type
        proto = 0 if proto == -1 else proto
        self._sf_sim = net.socket_on(caller_host(net), family, type, proto)

    # -- identity -------------------------------------------------------------------

    @property
    def family(self) -> _socket_module.AddressFamily:
        sim = self._sf_sim
        if sim is None:
            return cast(_socket_module.AddressFamily, vars(RealSocket)["family"].fget(self))
        return sim.family

    @property
    def type(self) -> _socket_module.SocketKind:
        sim = self._sf_sim
        if sim is None:
            return cast(_socket_module.SocketKind, vars(RealSocket)["type"].fget(self))
        return sim.type

    @property
    def proto(self) -> int:
        sim = self._sf_sim
        if sim is None:
            return int(_CSocket.proto.__get__(self))
        return sim.proto

    @property
    def timeout(self) -> float | None:
        sim = self._sf_sim
        if sim is None:
            value: float | None = _CSocket.timeout.__get__(self)
            return value
        return sim.gettimeout()

    def fileno(self) -> int:
        sim = self._sf_sim
        if sim is None:
            return int(super().fileno())
        return sim.fileno()

    bind = _sim_method("bind")
    listen = _sim_method("listen")
    connect = _sim_method("connect")
    connect_ex = _sim_method("connect_ex")
    recv = _sim_method("recv")
    recv_into = _sim_method("recv_into")
    recvfrom = _sim_method("recvfrom")
    recvfrom_into = _sim_method("recvfrom_into")
    send = _sim_method("send")
    sendall = _sim_method("sendall")
    sendto = _sim_method("sendto")
    shutdown = _sim_method("shutdown")
    settimeout = _sim_method("settimeout")
    gettimeout = _sim_method("gettimeout")
    setblocking = _sim_method("setblocking")
    getblocking = _sim_method("getblocking")
    getsockname = _sim_method("getsockname")
    getpeername = _sim_method("getpeername")
    setsockopt = _sim_method("setsockopt")
    getsockopt = _sim_method("getsockopt")
    sendmsg = _sim_method("sendmsg")
    recvmsg = _sim_method("recvmsg")
    recvmsg_into = _sim_method("recvmsg_into")

    def accept(self) -> tuple[Any, Any]:
        sim = self._sf_sim
        if sim is None:
            return cast("tuple[Any, Any]", super().accept())
        conn, address = sim.accept()
        return wrap(conn), address

    def _real_close(self, _ss: Any = None) -> None:
        sim = self._sf_sim
        if sim is None:
            _AnyReal._real_close(self)
            return
        if isinstance(sim, _Released):
            return
        # Another object from dup() may still hold the simulated socket: this one lets
        # go of it (its calls then fail with EBADF), the last one closes it.
        self._sf_sim = cast(SimSocket, _Released(sim))
        handles = sim._sf_handles - 1
        sim._sf_handles = handles
        if handles <= 0:
            sim.close()

    def __del__(self) -> None:
        # The real socket warns in its finalizer when collected unclosed; the C object
        # here has no descriptor, so this one does, and releases the simulated socket.
        sim = self._sf_sim
        if sim is None or isinstance(sim, _Released) or getattr(self, "_closed", True):
            return
        warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=2, source=self)
        self._closed = True
        handles = sim._sf_handles - 1
        sim._sf_handles = handles
        if handles <= 0 and not sim._kernel.closed and not sim.ep.closed:
            try:
                sim.ep.closed = True
                sim._real_close()  # no preemption point: a finalizer must not switch
            except Exception:  # noqa: BLE001, S110 - finalizers cannot raise
                pass

    def detach(self) -> int:
        """Give up the simulated socket without closing it; return its descriptor (which
        ``socket.socket(fileno=...)`` in the same simulation takes up again)."""
        sim = self._sf_sim
        if sim is None:
            return int(super().detach())
        if isinstance(sim, _Released):
            return -1
        self._sf_sim = cast(SimSocket, _Released(sim))  # its calls now fail with EBADF
        self._closed = True
        return sim.fileno()

    def dup(self) -> InterceptSocket:
        """A second object on the same simulated socket, which stays open until both
        are closed (as two descriptors of one OS socket). It reports the same
        descriptor number: simulated descriptors are not duplicated."""
        sim = self._sf_sim
        if sim is None:
            return super().dup()
        sim.getsockopt(_socket_module.SOL_SOCKET, _socket_module.SO_TYPE)  # EBADF if closed
        sim._sf_handles += 1
        copy = wrap(sim)
        copy.settimeout(sim.gettimeout())
        return copy

    def get_inheritable(self) -> bool:
        if self._sf_sim is None:
            return bool(super().get_inheritable())
        self._sf_sim.getsockopt(_socket_module.SOL_SOCKET, _socket_module.SO_TYPE)
        net = caller_network()
        if net is not None:  # the flag fcntl(F_GETFD) and os.get_inheritable() read
            return fdcalls.is_inheritable(net, self._sf_sim.fileno())
        return bool(self.__dict__.get("_sf_inheritable", False))

    def set_inheritable(self, inheritable: bool) -> None:
        if self._sf_sim is None:
            super().set_inheritable(inheritable)
            return
        self._sf_sim.getsockopt(_socket_module.SOL_SOCKET, _socket_module.SO_TYPE)
        net = caller_network()
        if net is not None:
            fdcalls.set_inheritable(net, self._sf_sim.fileno(), bool(inheritable))
        self._sf_inheritable = bool(inheritable)

    def _sendfile_use_sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        if self._sf_sim is None:
            return int(_AnyReal._sendfile_use_sendfile(self, file, offset, count))
        # The stdlib's checks, in its order; then the simulation's send() for os.sendfile.
        _AnyReal._check_sendfile_params(self, file, offset, count)
        try:
            fileno = file.fileno()
        except (AttributeError, io.UnsupportedOperation) as err:
            raise _AnySocketModule._GiveupOnSendfile(err) from None  # not a regular file
        try:
            size = os.fstat(fileno).st_size
        except OSError as err:
            raise _AnySocketModule._GiveupOnSendfile(err) from None
        if not size:
            return 0
        if self._sf_sim.gettimeout() == 0:
            raise ValueError("non-blocking sockets are not supported")
        return self._sf_sim.sendfile(file, offset, count)

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        if self._sf_sim is None:
            return super().sendfile(file, offset, count)
        try:
            return self._sendfile_use_sendfile(file, offset, count)
        except _AnySocketModule._GiveupOnSendfile:
            return int(_AnyReal._sendfile_use_send(self, file, offset, count))

    def __repr__(self) -> str:
        sim = self._sf_sim
        if sim is None:
            return super().__repr__()
        closed = " [closed]" if getattr(self, "_closed", False) else ""
        text = (
            f"<socket.socket{closed} [simulated] fd={sim.fileno()}, family={sim.family!s}, "
            f"type={sim.type!s}, proto={sim.proto}"
        )
        if not closed:
            # From a thread outside the simulation these raise (not an OSError): skip.
            for label, name in (("laddr", "getsockname"), ("raddr", "getpeername")):
                try:
                    address = getattr(sim, name)()
                except Exception:
                    continue
                if address:
                    text += f", {label}={address}"
        return text + ">"

    def __getstate__(self) -> Any:
        raise TypeError(f"cannot pickle {self.__class__.__name__!r} object")


class _Released:
    """What a closed ``InterceptSocket`` holds when a ``dup()`` of it keeps the
    simulated socket open: its calls fail as on a closed descriptor."""

    def __init__(self, sim: SimSocket) -> None:
        self.family, self.type, self.proto = sim.family, sim.type, sim.proto
        self._kernel = sim._kernel

    def fileno(self) -> int:
        return -1

    def gettimeout(self) -> float | None:
        return None

    def close(self) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        def closed(*args: Any, **kwargs: Any) -> Any:
            raise OSError(errno.EBADF, "Bad file descriptor")

        return closed


InterceptSocket.__name__ = "socket"
InterceptSocket.__qualname__ = "socket"
InterceptSocket.__module__ = "socket"


def sim_socketpair(net: Any, family: Any = None, type: int = -1, proto: int = 0) -> tuple[
    InterceptSocket, InterceptSocket
]:
    """``socket.socketpair()`` inside the simulation: two connected simulated sockets."""
    af_unix = getattr(_socket_module, "AF_UNIX", None)
    if family is None:
        family = af_unix if af_unix is not None else _socket_module.AF_INET
    if type == -1:
        type = _socket_module.SOCK_STREAM
    if type == _socket_module.SOCK_DGRAM and family == af_unix:
        # Two datagram sockets on autobound (abstract) names, connected to each other.
        first, second = net.socket(family, type, proto), net.socket(family, type, proto)
        for sock in (first, second):
            sock.bind("")
        first.connect(second.getsockname())
        second.connect(first.getsockname())
        return wrap(first), wrap(second)
    if type != _socket_module.SOCK_STREAM:
        raise NotImplementedError("socket.socketpair() of these sockets is not simulated")
    if family == af_unix:
        count = _pair_counts.get(net, 0) + 1
        _pair_counts[net] = count
        address: Any = f"\0sockfake-socketpair-{count}"
    elif family == _socket_module.AF_INET:
        address = ("127.0.0.1", 0)
    elif family == _socket_module.AF_INET6:
        address = ("::1", 0)
    else:
        raise OSError(errno.EAFNOSUPPORT, "Address family not supported by protocol")
    listener = net.socket(family, type, proto)
    try:
        listener.bind(address)
        listener.listen(1)
        a = net.socket(family, type, proto)
        try:
            a.connect(listener.getsockname())
            b, _ = listener.accept()
        except BaseException:
            a.close()
            raise
    finally:
        listener.close()
    return wrap(a), wrap(b)


# Per network, so the paths (which the trace shows) do not depend on other runs.
_pair_counts: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()

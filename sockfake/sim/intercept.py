"""``net.intercept()``: the simulation is the operating system of its own threads.

While an interception is active, the stdlib's own entry points dispatch per call:

* ``socket``: ``socket.socket`` (a real subclass of the real class, see
  ``sockfake.sim._patched_socket``), ``create_connection``, ``create_server``,
  ``socketpair``, ``getaddrinfo``, ``gethostbyname(_ex)``, ``gethostbyaddr``,
  ``getfqdn``, ``gethostname`` resolve and connect on the simulated network
  (127.0.0.1, ``localhost``, ::1, and the names given to ``net.add_host``).
* ``select.select``, ``select.poll``, ``select.epoll`` and every ``selectors`` class
  (``DefaultSelector`` included) wait in virtual time on simulated sockets.
* ``time.sleep``, ``monotonic``, ``time``, ``perf_counter`` (and the ``_ns`` variants)
  are virtual: ``time.time()`` is a fixed epoch (``EPOCH``) plus the virtual clock.
* ``threading.Lock``, ``RLock``, ``Condition``, ``Event``, ``Semaphore``,
  ``BoundedSemaphore``, ``Barrier``, ``Timer`` and ``queue.SimpleQueue`` made by a
  simulated thread wait in virtual time (``sockfake.sim._sim_threading``).
  ``queue.Queue``, ``LifoQueue``, ``PriorityQueue``, ``concurrent.futures.Future`` and
  ``ThreadPoolExecutor`` build on those names looked up at call time, so they follow.
* ``os.fork``, ``os.forkpty``, ``os.system``, ``os.posix_spawn(p)`` and
  ``subprocess.Popen`` are refused in a simulated thread (``NotImplementedError``):
  a process would escape the simulation and its clock.
* ``ssl.SSLContext.wrap_socket`` on a simulated stream socket runs real TLS (OpenSSL
  over ``MemoryBIO``, see ``sockfake.sim._sim_tls``); on a datagram socket (DTLS) it
  is refused with ``NotImplementedError``. TLS draws on OpenSSL's own randomness, so a
  run with TLS repeats its schedule but not its ciphertext (nor its digest).
* Servers built without ``network=`` (``xmlrpc.server.SimpleXMLRPCServer`` on
  sockfake) get the simulated network in a simulated thread: the default network is
  a dispatcher for the duration.

"A simulated thread" is one that takes part in the intercepted network's kernel
(``current_kernel()`` is that kernel and the thread is registered in it): the
network's main thread and every thread started from it. Every other thread of the
process keeps the real OS, during the interception too. Objects that the
``threading`` module, ``logging``, ``functools`` or module-level (import-time) code
makes stay real, so the stdlib's own machinery (``Thread.start``'s ``_started``
event, logging's handler locks) keeps working from any thread; so do the calls the
simulation kernel itself makes (its real clock, its real ``select`` on the turn pipe).

Nothing escapes: a real socket (made before the interception, through a reference
captured at import time such as ``from socket import socket``, or in another thread)
refuses to be created or used from a simulated thread with a
``SockfakeRuntimeError`` naming the call; a real descriptor handed to the patched
``select``/``poll``/selectors in a simulated thread is refused the same way. Simulated
descriptors start at 2**20, above any real one: the patched ``select``/``poll`` in a
thread outside the simulation refuse one by name, and the real ``select.select``
(captured before) fails at once (``ValueError: filedescriptor out of range``). A real
``poll`` object captured before the interception cannot be guarded: it reports a
simulated descriptor as ``POLLNVAL``.

What cannot be patched, and why: a name bound at import time is a reference to the
original object, and rebinding the module attribute does not change it. Code that
did ``from select import select``, ``from time import monotonic``, ``from socket
import create_connection`` or ``_sleep = time.sleep`` before ``intercept()`` keeps
the real function and blocks for real (a stall, reported by the kernel's watchdog),
unless it was imported while an interception was active: the objects installed here
stay valid after exit and dispatch per call (so a module imported inside
``intercept()`` keeps simulated behaviour in later interceptions). The stdlib's own
``threading`` captured ``time.monotonic`` and ``queue`` captured it as ``queue.time``;
the latter is rebound here because ``Queue.get(timeout=)`` computes its deadline with
it. Other uncovered paths: a ``_socket.socket`` made directly (a C object with no
Python layer to guard), a real lock or event made before the interception and waited
on in a simulated thread (it blocks for real: a stall), ``time.localtime()`` and
friends without an argument (C calls on the wall clock), ``os.read``/``os.write`` on
real descriptors, ``subclass(threading.Event)`` and the like (a subclass defined by
user code is a real primitive).

Exit restores every attribute exactly (the identity of ``socket.socket``,
``time.sleep`` ... after exit is the one before). Interceptions of different
networks may be active together (each network's threads get their own network); the
same network cannot be intercepted twice at once (a clear error).
"""

from __future__ import annotations

import _thread
import ipaddress
import itertools
import os
import queue
import select
import selectors
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, cast

import sockfake.network as _sockfake_network
import sockfake.sim.network as _sim_network_module
from sockfake.network import REAL_NETWORK, SockfakeRuntimeError, use_network
from sockfake.sim import _patched_socket
from sockfake.sim._patched_socket import InterceptSocket, sim_socketpair
from sockfake.sim._sim_threading import (
    SimBoundedSemaphore,
    SimCondition,
    SimRLock,
    SimSemaphore,
    SimSimpleQueue,
    SimThreadingLock,
    sim_barrier_class,
)
from sockfake.sim._sim_tls import wrap_simulated
from sockfake.sim.kernel import Kernel, current_kernel
from sockfake.sim.sockets import SimSocket
from sockfake.sim.sync import SimEvent

if TYPE_CHECKING:
    from sockfake.sim.network import SimNetwork

__all__ = ["intercept", "Interception", "EPOCH", "is_intercepted"]

# time.time() in a simulated thread: this fixed epoch (2030-01-01T00:00:00Z) plus the
# virtual clock, so a run's timestamps (HTTP Date headers, log records) are the same
# every time. Recent enough that clients checking for a sane clock (urllib3) are happy.
EPOCH = 1_893_456_000.0
# time.monotonic() and perf_counter(): a fixed base plus the virtual clock.
MONOTONIC_BASE = 1_000.0

_MISSING = object()
_install_lock = _thread.allocate_lock()
_active: dict[Kernel, SimNetwork] = {}
_saved: list[tuple[Any, str, Any]] = []

# The originals, taken when this module is first imported (before any patch).
_real: dict[str, Any] = {
    "sleep": time.sleep,
    "monotonic": time.monotonic,
    "monotonic_ns": time.monotonic_ns,
    "time": time.time,
    "time_ns": time.time_ns,
    "perf_counter": time.perf_counter,
    "perf_counter_ns": time.perf_counter_ns,
    "select": select.select,
    "poll": getattr(select, "poll", None),
    "epoll": getattr(select, "epoll", None),
    "socket": socket.socket,
    "create_connection": socket.create_connection,
    "create_server": getattr(socket, "create_server", None),
    "socketpair": getattr(socket, "socketpair", None),
    "getaddrinfo": socket.getaddrinfo,
    "gethostbyname": socket.gethostbyname,
    "gethostbyname_ex": socket.gethostbyname_ex,
    "gethostbyaddr": socket.gethostbyaddr,
    "getfqdn": socket.getfqdn,
    "gethostname": socket.gethostname,
    "Lock": threading.Lock,
    "RLock": threading.RLock,
    "Condition": threading.Condition,
    "Event": threading.Event,
    "Semaphore": threading.Semaphore,
    "BoundedSemaphore": threading.BoundedSemaphore,
    "Barrier": threading.Barrier,
    "Timer": threading.Timer,
    "enumerate": threading.enumerate,
    "active_count": threading.active_count,
    "_count": _thread._count,
    "SimpleQueue": queue.SimpleQueue,
    "Popen.__init__": subprocess.Popen.__init__,
}

# -- who is asking ---------------------------------------------------------------------


def caller_network() -> SimNetwork | None:
    """The intercepted network of the calling thread, or None (the real OS)."""
    if not _active:
        return None
    kernel = current_kernel()
    if kernel is None:
        return None
    net = _active.get(kernel)
    if net is None:
        return None
    # A thread still on the kernel's stack while it exits is no longer one of its
    # threads (the attribute is private; without it current_kernel() decides alone).
    by_ident = getattr(kernel, "_by_ident", None)
    if by_ident is not None and _thread.get_ident() not in by_ident:
        return None
    return net


def is_intercepted() -> bool:
    """Is the calling thread a thread of an intercepted simulation?"""
    return caller_network() is not None


_patched_socket.sim_network_of_caller = caller_network


# Test machinery that measures real time even when it runs in a simulated thread
# (durations in reports, Hypothesis deadlines, pytest-timeout).
_REAL_TIME_PACKAGES = frozenset(
    {"_pytest", "pytest", "pluggy", "hypothesis", "pytest_timeout", "xdist", "execnet",
     "coverage"}
)  # fmt: skip


def _internal(depth: int) -> bool:
    """Is the caller (``depth`` frames up from the patched function) the simulation itself,
    or test machinery that must keep real time?

    The kernel keeps real time and waits on a real pipe for the turn; those calls
    must reach the OS even from a simulated thread.
    """
    name: str = sys._getframe(depth + 1).f_globals.get("__name__", "")
    return name.startswith("sockfake.sim.") or name.partition(".")[0] in _REAL_TIME_PACKAGES


_REAL_MAKERS = ("threading", "functools", "logging")
_IMPORT_DEPTH = 6


def _makes_real(depth: int) -> bool:
    """Should the primitive being made stay real? (stdlib internals, import-time code)."""
    frame = sys._getframe(depth + 1)
    name: str = frame.f_globals.get("__name__", "")
    if name.startswith("sockfake.sim.") or name.partition(".")[0] in _REAL_MAKERS:
        return True
    # An import running in a simulated thread makes module-level objects that outlive
    # the simulation and are shared with every thread: a primitive made by module code,
    # or a few calls below it (`_cache = Registry()` whose __init__ makes a Lock), stays
    # real. A script's own top-level code (__main__) is not an import.
    caller: Any = frame
    for _ in range(_IMPORT_DEPTH):
        if caller is None:
            break
        if caller.f_code.co_name == "<module>" and caller.f_globals.get("__name__") != "__main__":
            return True
        caller = caller.f_back
    return False


def _sim_kernel_for_new(depth: int) -> Kernel | None:
    net = caller_network()
    if net is None or _makes_real(depth + 1):
        return None
    return net.kernel


# -- time ------------------------------------------------------------------------------


def _sleep(seconds: float) -> None:
    net = caller_network()
    if net is None or _internal(1):
        _real["sleep"](seconds)
        return
    if not isinstance(seconds, (int, float)):
        raise TypeError(f"'{type(seconds).__name__}' object cannot be interpreted as an integer")
    if seconds != seconds:
        raise ValueError("Invalid value NaN (not a number)")
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    net.kernel.sleep(float(seconds))


def _clock(name: str, offset: float) -> Callable[[], float]:
    original = _real[name]

    def clock() -> float:
        net = caller_network()
        if net is None or _internal(1):
            return float(original())
        return offset + net.kernel.now

    clock.__name__ = clock.__qualname__ = name
    clock.__doc__ = original.__doc__
    return clock


def _clock_ns(name: str, offset: float) -> Callable[[], int]:
    original = _real[name]

    def clock_ns() -> int:
        net = caller_network()
        if net is None or _internal(1):
            return int(original())
        return round((offset + net.kernel.now) * 1e9)

    clock_ns.__name__ = clock_ns.__qualname__ = name
    clock_ns.__doc__ = original.__doc__
    return clock_ns


_monotonic = _clock("monotonic", MONOTONIC_BASE)
_monotonic_ns = _clock_ns("monotonic_ns", MONOTONIC_BASE)
_time = _clock("time", EPOCH)
_time_ns = _clock_ns("time_ns", EPOCH)
_perf_counter = _clock("perf_counter", MONOTONIC_BASE)
_perf_counter_ns = _clock_ns("perf_counter_ns", MONOTONIC_BASE)

# -- select, poll, epoll, selectors ---------------------------------------------------


def _fd_of(obj: Any) -> int:
    if isinstance(obj, int):
        fd = obj
    else:
        try:
            fd = int(obj.fileno())
        except AttributeError:
            raise TypeError(
                "argument must be an int, or have a fileno() method."
            ) from None
    if fd < 0:
        raise ValueError(f"file descriptor cannot be a negative integer ({fd})")
    return fd


def _refuse_real_fd(what: str, obj: Any, fd: int) -> SockfakeRuntimeError:
    return SockfakeRuntimeError(
        f"{what} on {obj!r} (descriptor {fd}) in simulated thread "
        f"{threading.current_thread().name!r}: it is not a simulated socket of this "
        "network. A simulated thread only waits on simulated sockets; a real descriptor "
        "would block outside virtual time (and reach the real world)."
    )


def _register(what: str, sel: selectors.BaseSelector, obj: Any, fd: int, events: int) -> None:
    try:
        sel.register(fd, events)
    except ValueError:
        raise _refuse_real_fd(what, obj, fd) from None


def _sim_select(
    net: SimNetwork, rlist: Any, wlist: Any, xlist: Any, timeout: float | None
) -> tuple[list[Any], list[Any], list[Any]]:
    if timeout is not None:
        if not isinstance(timeout, (int, float)):
            raise TypeError("timeout must be a float or None")
        if timeout < 0:
            raise ValueError("timeout must be non-negative")
    rlist, wlist, xlist = list(rlist), list(wlist), list(xlist)
    wanted: dict[int, int] = {}
    objects: dict[int, Any] = {}
    for objs, event in ((rlist, selectors.EVENT_READ), (wlist, selectors.EVENT_WRITE)):
        for obj in objs:
            fd = _fd_of(obj)
            wanted[fd] = wanted.get(fd, 0) | event
            objects.setdefault(fd, obj)
    for obj in xlist:
        fd = _fd_of(obj)
        objects.setdefault(fd, obj)
        wanted.setdefault(fd, 0)
    sel = net.selector()
    try:
        for fd, events in wanted.items():
            # Exceptional conditions (out-of-band data) never happen on the simulation;
            # an fd watched only for them must still be a simulated one.
            _register("select.select()", sel, objects[fd], fd, events or selectors.EVENT_READ)
        if not any(wanted.values()):
            if timeout is None:
                net.kernel.wait((), None, "select() on nothing")
            else:
                net.kernel.sleep(float(timeout))
            return [], [], []
        for fd, events in wanted.items():
            if not events:
                sel.unregister(fd)
        ready = {key.fd: mask for key, mask in sel.select(timeout)}
    finally:
        sel.close()
    readable = [o for o in rlist if ready.get(_fd_of(o), 0) & selectors.EVENT_READ]
    writable = [o for o in wlist if ready.get(_fd_of(o), 0) & selectors.EVENT_WRITE]
    return readable, writable, []


# Simulated descriptors start here (sockfake.sim.network allocates them), above any
# real one: a real select/poll that is handed one is refused by name.
SIM_FD_BASE: int = getattr(_sim_network_module, "_FIRST_FD", 1 << 20)


def _refuse_sim_fds(what: str, objects: Any) -> None:
    """In a thread outside the simulation: a real wait cannot watch a simulated socket."""
    for obj in objects:
        try:
            fd = obj if isinstance(obj, int) else int(obj.fileno())
        except Exception:
            continue  # the real call reports it
        if fd >= SIM_FD_BASE:
            raise SockfakeRuntimeError(
                f"{what} on {obj!r} in thread {threading.current_thread().name!r}: "
                f"descriptor {fd} is a simulated socket's (simulated descriptors start at "
                f"{SIM_FD_BASE}), and a real {what} cannot wait on it. Wait on it from a "
                "thread of its simulation, under net.intercept()."
            )


def _select(rlist: Any, wlist: Any, xlist: Any, timeout: float | None = None) -> Any:
    net = caller_network()
    if net is None or _internal(1):
        if net is None and _active:
            rlist, wlist, xlist = list(rlist), list(wlist), list(xlist)
            _refuse_sim_fds("select.select()", rlist + wlist + xlist)
        return _real["select"](rlist, wlist, xlist, timeout)
    return _sim_select(net, rlist, wlist, xlist, timeout)


_select.__doc__ = select.select.__doc__

_POLL_READ = select.POLLIN | select.POLLPRI | getattr(select, "POLLRDNORM", 0)
_POLL_WRITE = select.POLLOUT | getattr(select, "POLLWRNORM", 0)


class SimPoll:
    """``select.poll()`` on simulated sockets; ``poll(ms)`` waits in virtual time."""

    _what = "select.poll()"

    def __init__(self, net: SimNetwork) -> None:
        self._net = net
        self._masks: dict[int, int] = {}

    def _check(self, fd: int, obj: Any) -> None:
        probe = self._net.selector()
        try:
            _register(f"{self._what}.register()", probe, obj, fd, selectors.EVENT_READ)
        finally:
            probe.close()

    def register(self, fd: Any, eventmask: int = _POLL_READ | select.POLLOUT) -> None:
        number = _fd_of(fd)
        self._check(number, fd)
        self._masks[number] = eventmask

    def modify(self, fd: Any, eventmask: int) -> None:
        number = _fd_of(fd)
        if number not in self._masks:
            raise FileNotFoundError(2, "No such file or directory")
        self._masks[number] = eventmask

    def unregister(self, fd: Any) -> None:
        number = _fd_of(fd)
        if number not in self._masks:
            raise KeyError(number)
        del self._masks[number]

    def _wait(self, timeout: float | None) -> list[tuple[int, int]]:
        sel = self._net.selector()
        gone: list[tuple[int, int]] = []
        try:
            for fd, mask in self._masks.items():
                events = (selectors.EVENT_READ if mask & _POLL_READ else 0) | (
                    selectors.EVENT_WRITE if mask & _POLL_WRITE else 0
                )
                try:
                    sel.register(fd, events or selectors.EVENT_READ)
                except ValueError:
                    gone.append((fd, select.POLLNVAL))  # closed since it was registered
                    continue
                if not events:
                    sel.unregister(fd)
            if gone:
                return gone
            if not sel.get_map():
                if timeout is None:
                    self._net.kernel.wait((), None, f"{self._what} on nothing")
                else:
                    self._net.kernel.sleep(timeout)
                return []
            result = []
            for key, ready in sel.select(timeout):
                mask = self._masks[key.fd]
                revents = (mask & _POLL_READ & (select.POLLIN | getattr(select, "POLLRDNORM", 0))
                           if ready & selectors.EVENT_READ else 0)
                if ready & selectors.EVENT_WRITE:
                    revents |= mask & _POLL_WRITE
                if revents:
                    result.append((key.fd, revents))
            return result
        finally:
            sel.close()

    def poll(self, timeout: float | None = None) -> list[tuple[int, int]]:
        if timeout is not None and timeout >= 0:
            return self._wait(timeout / 1000.0)
        return self._wait(None)


class _GuardedPoll:
    """A real ``select.poll()`` object (outside the simulation) that refuses simulated
    descriptors: the real one would report them as ``POLLNVAL`` and spin."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def register(self, fd: Any, *args: Any) -> None:
        _refuse_sim_fds("select.poll()", (fd,))
        self._real.register(fd, *args)

    def modify(self, fd: Any, *args: Any) -> None:
        _refuse_sim_fds("select.poll()", (fd,))
        self._real.modify(fd, *args)

    def unregister(self, fd: Any) -> None:
        self._real.unregister(fd)

    def poll(self, *args: Any) -> Any:
        return self._real.poll(*args)


def _poll() -> Any:
    net = caller_network()
    if net is None or _internal(1):
        if net is None and _active:
            return _GuardedPoll(_real["poll"]())
        return _real["poll"]()
    return SimPoll(net)


class SimEpoll(SimPoll):
    """``select.epoll()`` on simulated sockets; ``poll(seconds)`` waits in virtual time."""

    _what = "select.epoll()"

    def __init__(self, net: SimNetwork) -> None:
        super().__init__(net)
        self.closed = False

    def register(self, fd: Any, eventmask: int = _POLL_READ | select.POLLOUT) -> None:
        if _fd_of(fd) in self._masks:
            raise FileExistsError(17, "File exists")
        super().register(fd, eventmask)

    def unregister(self, fd: Any) -> None:
        if _fd_of(fd) not in self._masks:
            raise FileNotFoundError(2, "No such file or directory")
        super().unregister(fd)

    def poll(self, timeout: float | None = None, maxevents: int = -1) -> list[tuple[int, int]]:
        if self.closed:
            raise ValueError("I/O operation on closed epoll object")
        events = self._wait(None if timeout is None or timeout < 0 else float(timeout))
        return events if maxevents < 0 else events[:maxevents]

    def fileno(self) -> int:
        raise NotImplementedError("select.epoll().fileno() on the simulation: no OS descriptor")

    def close(self) -> None:
        self.closed = True
        self._masks.clear()

    def __enter__(self) -> SimEpoll:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()


class _EpollDispatch:
    """Stands in for ``select.epoll`` (a type that cannot be subclassed)."""

    def __new__(cls, sizehint: int = -1, flags: int = 0) -> Any:
        net = caller_network()
        if net is None or _internal(1):
            return _real["epoll"](sizehint, flags)
        return SimEpoll(net)

    @staticmethod
    def fromfd(fd: int) -> Any:
        if caller_network() is not None:
            raise _refuse_real_fd("select.epoll.fromfd()", fd, fd)
        return _real["epoll"].fromfd(fd)


_EpollDispatch.__name__ = _EpollDispatch.__qualname__ = "epoll"
_EpollDispatch.__module__ = "select"

_SELECTOR_NAMES = (
    "SelectSelector", "PollSelector", "EpollSelector", "DevpollSelector", "KqueueSelector",
)  # fmt: skip


def _selector_class(real_cls: type[selectors.BaseSelector]) -> type[selectors.BaseSelector]:
    def __new__(cls: type[Any], *args: Any, **kwargs: Any) -> Any:
        net = caller_network()
        if cls is patched and net is not None and not _internal(1):
            return net.selector()  # a SimSelector: waits in virtual time
        return object.__new__(cls)

    patched: type[selectors.BaseSelector] = type(
        real_cls.__name__,
        (real_cls,),
        {"__new__": __new__, "__module__": real_cls.__module__, "__doc__": real_cls.__doc__},
    )
    patched.__qualname__ = real_cls.__qualname__
    return patched


# -- the resolver ----------------------------------------------------------------------

_LOCALHOST_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


def _gai_error(code_name: str, message: str) -> socket.gaierror:
    code = getattr(socket, code_name, socket.EAI_NONAME)
    return socket.gaierror(code, message)


def _host_addresses(net: SimNetwork, host: Any, flags: int) -> list[tuple[Any, str]]:
    if host is None:
        if flags & socket.AI_PASSIVE:
            return [(socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")]
        return [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
    if isinstance(host, (bytes, bytearray)):
        host = bytes(host).decode("idna")
    if not isinstance(host, str):
        raise TypeError("getaddrinfo() argument 1 must be string or None")
    try:
        parsed = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        pass
    else:
        return [(socket.AF_INET if parsed.version == 4 else socket.AF_INET6, host)]
    if flags & socket.AI_NUMERICHOST:
        raise _gai_error("EAI_NONAME", "Name or service not known")
    name = host.lower().rstrip(".")
    if name in _LOCALHOST_NAMES:
        return [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
    for candidate in net.hosts:
        if candidate.name == host or candidate.name.lower() == name:
            return [(socket.AF_INET, ip) for ip in candidate.ipv4] + [
                (socket.AF_INET6, ip) for ip in candidate.ipv6
            ]
    raise _gai_error("EAI_NONAME", "Name or service not known")


def _port_number(port: Any, flags: int) -> int:
    if port is None:
        return 0
    if isinstance(port, int):
        return port
    if isinstance(port, (bytes, bytearray)):
        port = bytes(port).decode()
    if not isinstance(port, str):
        raise OSError("Int or String expected")
    if port.isdigit():
        return int(port)
    if flags & getattr(socket, "AI_NUMERICSERV", 0):
        raise _gai_error("EAI_NONAME", "Name or service not known")
    try:
        return socket.getservbyname(port)  # /etc/services: a local file, not the network
    except OSError:
        raise _gai_error("EAI_SERVICE", "Servname not supported for ai_socktype") from None


def sim_getaddrinfo(
    net: SimNetwork, host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0,
    flags: int = 0,
) -> list[tuple[Any, Any, int, str, Any]]:
    """``socket.getaddrinfo`` against the simulated hosts."""
    number = _port_number(port, flags)
    addresses = _host_addresses(net, host, flags)
    if family not in (0, socket.AF_INET, socket.AF_INET6):
        raise _gai_error("EAI_FAMILY", "ai_family not supported")
    chosen = [(af, ip) for af, ip in addresses if family in (0, af)]
    if not chosen:
        raise _gai_error("EAI_ADDRFAMILY", "Address family for hostname not supported")
    if type == 0:
        kinds = [(socket.SOCK_STREAM, socket.IPPROTO_TCP), (socket.SOCK_DGRAM, socket.IPPROTO_UDP)]
    elif type == socket.SOCK_STREAM:
        kinds = [(socket.SOCK_STREAM, proto or socket.IPPROTO_TCP)]
    elif type == socket.SOCK_DGRAM:
        kinds = [(socket.SOCK_DGRAM, proto or socket.IPPROTO_UDP)]
    else:
        raise _gai_error("EAI_SOCKTYPE", "ai_socktype not supported")
    canonical = host if isinstance(host, str) and flags & socket.AI_CANONNAME else ""
    result: list[tuple[Any, Any, int, str, Any]] = []
    for af, ip in chosen:
        address: Any = (ip, number) if af == socket.AF_INET else (ip, number, 0, 0)
        for kind, number_proto in kinds:
            result.append(
                (socket.AddressFamily(af), socket.SocketKind(kind), number_proto,
                 canonical if not result else "", address)
            )
    return result


def _getaddrinfo(
    host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
) -> Any:
    net = caller_network()
    if net is None:
        return _real["getaddrinfo"](host, port, family, type, proto, flags)
    return sim_getaddrinfo(net, host, port, family, type, proto, flags)


def _gethostbyname(hostname: str) -> str:
    net = caller_network()
    if net is None:
        return str(_real["gethostbyname"](hostname))
    return str(sim_getaddrinfo(net, hostname, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0])


def _gethostbyname_ex(hostname: str) -> tuple[str, list[str], list[str]]:
    net = caller_network()
    if net is None:
        return cast("tuple[str, list[str], list[str]]", _real["gethostbyname_ex"](hostname))
    infos = sim_getaddrinfo(net, hostname, None, socket.AF_INET, socket.SOCK_STREAM)
    return hostname, [], [info[4][0] for info in infos]


def _sim_gethostbyaddr(net: SimNetwork, ip_or_name: str) -> tuple[str, list[str], list[str]]:
    infos = sim_getaddrinfo(net, ip_or_name, None, 0, socket.SOCK_STREAM)
    ip = infos[0][4][0]
    parsed = ipaddress.ip_address(ip.split("%")[0])
    if parsed.is_loopback:
        return "localhost", [], [ip]
    for host in net.hosts:
        if ip in host.ipv4 or ip in host.ipv6:
            return host.name, [], [ip]
    raise socket.herror(1, "Unknown host")


def _gethostbyaddr(ip_address: str) -> tuple[str, list[str], list[str]]:
    net = caller_network()
    if net is None:
        return cast("tuple[str, list[str], list[str]]", _real["gethostbyaddr"](ip_address))
    return _sim_gethostbyaddr(net, ip_address)


def _gethostname() -> str:
    net = caller_network()
    if net is None:
        return str(_real["gethostname"]())
    default = getattr(net, "default_host", None)
    return str(default.name if default is not None else net.hosts[0].name)


def _getfqdn(name: str = "") -> str:
    # The stdlib's own logic, on the (patched) gethostname/gethostbyaddr it looks up.
    return str(_real["getfqdn"](name))


_DEFAULT_TIMEOUT: Any = vars(socket)["_GLOBAL_DEFAULT_TIMEOUT"]

if sys.version_info >= (3, 11):

    def _create_connection(
        address: tuple[str, int],
        timeout: Any = _DEFAULT_TIMEOUT,
        source_address: Any = None,
        *,
        all_errors: bool = False,
    ) -> Any:
        # The stdlib's own code: it finds getaddrinfo() and socket() on the module, at
        # call time, so in a simulated thread it resolves and connects simulated.
        return _real["create_connection"](
            address, timeout, source_address, all_errors=all_errors
        )

else:  # pragma: no cover - 3.10

    def _create_connection(
        address: tuple[str, int],
        timeout: Any = _DEFAULT_TIMEOUT,
        source_address: Any = None,
    ) -> Any:
        return _real["create_connection"](address, timeout, source_address)


_create_connection.__doc__ = socket.create_connection.__doc__


def _create_server(address: Any, **kwargs: Any) -> Any:
    return _real["create_server"](address, **kwargs)


_create_server.__doc__ = getattr(socket, "create_server", _create_server).__doc__


def _socketpair(family: Any = None, type: int = socket.SOCK_STREAM, proto: int = 0) -> Any:
    net = caller_network()
    if net is None:
        if family is None:
            return _real["socketpair"](type=type, proto=proto)
        return _real["socketpair"](family, type, proto)
    return sim_socketpair(net, family, type, proto)


# -- threading and queue ---------------------------------------------------------------


def _lock() -> Any:
    kernel = _sim_kernel_for_new(1)
    if kernel is None:
        return _real["Lock"]()
    return SimThreadingLock(kernel)


def _rlock(*args: Any, **kwargs: Any) -> Any:
    kernel = _sim_kernel_for_new(1)
    if kernel is None:
        return _real["RLock"](*args, **kwargs)
    return SimRLock(kernel)


def _dispatch_class(real_cls: type, make_sim: Callable[..., Any]) -> type:
    """A subclass of ``real_cls`` whose construction, in a simulated thread, makes a sim object.

    User subclasses of the patched class get the real behaviour (documented limit).
    """

    def __new__(cls: type[Any], *args: Any, **kwargs: Any) -> Any:
        if cls is patched:
            kernel = _sim_kernel_for_new(1)
            if kernel is not None:
                return make_sim(kernel, *args, **kwargs)
        return object.__new__(cls)

    patched = type(
        real_cls.__name__,
        (real_cls,),
        {"__new__": __new__, "__module__": real_cls.__module__, "__doc__": real_cls.__doc__},
    )
    patched.__qualname__ = real_cls.__qualname__
    return patched


_SimBarrier: Any = sim_barrier_class()


def _make_barrier(kernel: Kernel, parties: int, action: Any = None, timeout: Any = None) -> Any:
    return _SimBarrier(parties, action, timeout, _kernel=kernel)


def _timer_class() -> type:
    real_timer: Any = _real["Timer"]

    class Timer(real_timer):  # type: ignore[misc]
        """``threading.Timer``: in a simulated thread its interval is virtual."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            net = caller_network()
            if net is not None:
                self.finished = SimEvent(net.kernel)

    Timer.__module__ = "threading"
    return Timer


class _SimpleQueueDispatch:
    """Stands in for ``queue.SimpleQueue`` (C): simulated when a simulated thread makes one."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        kernel = _sim_kernel_for_new(1)
        if kernel is None:
            return _real["SimpleQueue"]()
        return SimSimpleQueue(kernel)

    __class_getitem__ = classmethod(lambda cls, item: cls)


_SimpleQueueDispatch.__name__ = _SimpleQueueDispatch.__qualname__ = "SimpleQueue"
_SimpleQueueDispatch.__module__ = "queue"

_pool_numbers: weakref.WeakKeyDictionary[Any, Iterator[int]] = weakref.WeakKeyDictionary()


def _pool_counter(original: Callable[[], int]) -> Any:
    """``ThreadPoolExecutor``'s name counter, per network: worker names (which the trace
    shows) must not depend on how many pools the process made before."""

    def counter() -> int:
        net = caller_network()
        if net is None:
            return original()
        numbers = _pool_numbers.get(net)
        if numbers is None:
            numbers = _pool_numbers[net] = itertools.count()
        return next(numbers)

    return staticmethod(counter)


def _start_yields(start: Callable[[threading.Thread], None]) -> Any:
    """``Thread.start`` as a scheduling point: the new thread runs first.

    On the real OS a started thread runs at once, in parallel (the stdlib's own
    ``start()`` even waits for it to signal that it runs); under FIFO scheduling it
    would wait until its creator blocks, and a creator that never blocks (a server
    handling requests that need no reply) would pile up threads that a real run
    would long have finished (CPython's ``test_threads_reaped``).
    """

    def start_and_yield(self: threading.Thread) -> None:
        start(self)
        net = caller_network()
        if net is not None and getattr(self, "_sockfake_thread", None) is not None:
            net.kernel.yield_turn("thread start")

    start_and_yield.__doc__ = start.__doc__
    return start_and_yield


# -- threads the test should not see ---------------------------------------------------

_HIDDEN_NAMES = ("sockfake-watchdog",)


def _hidden(thread: threading.Thread) -> bool:
    return thread.daemon and thread.name in _HIDDEN_NAMES


def _finished_in_simulation(thread: threading.Thread) -> bool:
    # The kernel keeps its record (and so the Thread object) of every thread it ran.
    record = getattr(thread, "_sockfake_thread", None)
    return record is not None and record.state == "finished"


def _hide_dangling() -> None:
    """Forget helper threads, and simulated threads that have ended, in
    ``threading._dangling`` (test.support's ``reap_threads`` compares it)."""
    dangling = getattr(threading, "_dangling", None)
    if dangling is not None:
        for thread in list(dangling):
            if _hidden(thread) or _finished_in_simulation(thread):
                dangling.discard(thread)


def _enumerate() -> list[threading.Thread]:
    threads = _real["enumerate"]()
    _hide_dangling()
    return [t for t in threads if not _hidden(t)]


def _active_count() -> int:
    return len(_enumerate())


def _thread_count() -> int:
    hidden = [t for t in _real["enumerate"]() if _hidden(t)]
    _hide_dangling()
    return max(0, int(_real["_count"]()) - sum(1 for t in hidden if t.is_alive()))


# -- processes and TLS -----------------------------------------------------------------


def _refusal(what: str) -> NotImplementedError:
    return NotImplementedError(
        f"{what} in simulated thread {threading.current_thread().name!r}: processes are "
        "not simulated (a child process would escape the simulation and its clock); run "
        "it outside the simulation, or use threads (ThreadingMixIn) in simulated tests"
    )


def _refusing(name: str, original: Any) -> Any:
    def refusing(*args: Any, **kwargs: Any) -> Any:
        if caller_network() is not None:
            raise _refusal(f"os.{name}()")
        return original(*args, **kwargs)

    refusing.__name__ = refusing.__qualname__ = name
    refusing.__doc__ = original.__doc__
    return refusing


def _popen_init(self: Any, *args: Any, **kwargs: Any) -> None:
    if caller_network() is not None:
        raise _refusal("subprocess.Popen()")
    _real["Popen.__init__"](self, *args, **kwargs)


def _is_simulated_socket(sock: Any) -> bool:
    return isinstance(sock, SimSocket) or (
        isinstance(sock, InterceptSocket) and sock._sf_sim is not None
    )


def _wrap_socket_guard(original: Any) -> Any:
    def wrap_socket(
        self: Any,
        sock: Any,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: Any = None,
        session: Any = None,
    ) -> Any:
        if not _is_simulated_socket(sock):
            return original(
                self, sock, server_side, do_handshake_on_connect, suppress_ragged_eofs,
                server_hostname, session,
            )
        sim = sock if isinstance(sock, SimSocket) else sock._sf_sim
        if isinstance(sock, InterceptSocket):
            # As the real wrap_socket detaches the socket it wraps.
            sock._sf_sim = None
            sock._closed = True
        return wrap_simulated(
            sim,
            self,
            server_side=server_side,
            do_handshake_on_connect=do_handshake_on_connect,
            suppress_ragged_eofs=suppress_ragged_eofs,
            server_hostname=server_hostname,
            session=session,
        )

    wrap_socket.__doc__ = original.__doc__
    return wrap_socket


# -- servers built without network= ----------------------------------------------------


class _DispatchNetwork:
    """The default network during an interception: simulated in simulated threads."""

    name = "intercept"

    def _pick(self) -> Any:
        net = caller_network()
        return net if net is not None else REAL_NETWORK

    def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM,
               proto: int = 0) -> Any:
        return self._pick().socket(family, type, proto)

    def create_connection(self, address: tuple[str, int], timeout: float | None = None) -> Any:
        return self._pick().create_connection(address, timeout)

    def selector(self) -> Any:
        return self._pick().selector()

    def waker(self) -> Any:
        return self._pick().waker()

    def time(self) -> float:
        return float(self._pick().time())

    def sleep(self, seconds: float) -> None:
        self._pick().sleep(seconds)

    def thread(self, target: Callable[..., object], args: tuple[Any, ...] = (),
               name: str | None = None, daemon: bool | None = None) -> Any:
        return self._pick().thread(target, args, name, daemon)

    def event(self) -> Any:
        return self._pick().event()

    def lock(self) -> Any:
        return self._pick().lock()

    def queue(self, maxsize: int = 0) -> Any:
        return self._pick().queue(maxsize)

    def fork(self) -> int:
        return int(self._pick().fork())

    def refuse_fork(self) -> None:
        refuse = getattr(self._pick(), "refuse_fork", None)
        if refuse is not None:
            refuse()

    def waitpid(self, pid: int, options: int) -> tuple[int, int]:
        return cast("tuple[int, int]", self._pick().waitpid(pid, options))

    def exit_child(self, status: int) -> Any:
        return self._pick().exit_child(status)

    def __repr__(self) -> str:
        return "<sockfake intercept network: simulated in simulated threads, else real>"


_dispatch_network = _DispatchNetwork()
_default_network_cm: Any = None

# -- install and restore ---------------------------------------------------------------


def _set(obj: Any, name: str, value: Any) -> None:
    if isinstance(obj, type):
        old = obj.__dict__.get(name, _MISSING)
    else:
        old = getattr(obj, name, _MISSING)
    _saved.append((obj, name, old))
    setattr(obj, name, value)


def _install() -> None:
    global _default_network_cm
    _set(time, "sleep", _sleep)
    for name, func in (
        ("monotonic", _monotonic), ("monotonic_ns", _monotonic_ns), ("time", _time),
        ("time_ns", _time_ns), ("perf_counter", _perf_counter),
        ("perf_counter_ns", _perf_counter_ns),
    ):  # fmt: skip
        _set(time, name, func)
    # queue.Queue.get/put(timeout=) compute their deadline with this captured name.
    if getattr(queue, "time", None) is _real["monotonic"]:
        _set(queue, "time", _monotonic)

    _set(select, "select", _select)
    if _real["poll"] is not None:
        _set(select, "poll", _poll)
    if _real["epoll"] is not None:
        _set(select, "epoll", _EpollDispatch)
    patched_selectors: dict[Any, Any] = {}
    for name in _SELECTOR_NAMES:
        real_cls = getattr(selectors, name, None)
        if real_cls is not None:
            patched_selectors[real_cls] = _selector_class(real_cls)
            _set(selectors, name, patched_selectors[real_cls])
    _set(selectors, "DefaultSelector", patched_selectors.get(selectors.DefaultSelector,
                                                             selectors.DefaultSelector))
    server_selector = getattr(_sockfake_network, "_ServerSelector", None)
    if server_selector in patched_selectors:
        _set(_sockfake_network, "_ServerSelector", patched_selectors[server_selector])

    _patched_socket.guard_real_class()
    _set(socket, "socket", InterceptSocket)
    _set(socket, "create_connection", _create_connection)
    if _real["create_server"] is not None:
        _set(socket, "create_server", _create_server)
    if _real["socketpair"] is not None:
        _set(socket, "socketpair", _socketpair)
    _set(socket, "getaddrinfo", _getaddrinfo)
    _set(socket, "gethostbyname", _gethostbyname)
    _set(socket, "gethostbyname_ex", _gethostbyname_ex)
    _set(socket, "gethostbyaddr", _gethostbyaddr)
    _set(socket, "getfqdn", _getfqdn)
    _set(socket, "gethostname", _gethostname)

    _set(threading, "Lock", _lock)
    _set(threading, "RLock", _rlock)
    _set(threading, "Condition", _dispatch_class(_real["Condition"], SimCondition))
    _set(threading, "Event", _dispatch_class(_real["Event"], SimEvent))
    _set(threading, "Semaphore", _dispatch_class(_real["Semaphore"], SimSemaphore))
    _set(threading, "BoundedSemaphore",
         _dispatch_class(_real["BoundedSemaphore"], SimBoundedSemaphore))
    _set(threading, "Barrier", _dispatch_class(_real["Barrier"], _make_barrier))
    _set(threading, "Timer", _timer_class())
    _set(threading.Thread, "start", _start_yields(threading.Thread.start))
    _set(threading, "enumerate", _enumerate)
    _set(threading, "active_count", _active_count)
    _set(_thread, "_count", _thread_count)
    _set(queue, "SimpleQueue", _SimpleQueueDispatch)
    from concurrent.futures import thread as futures_thread

    pool = futures_thread.ThreadPoolExecutor
    if "_counter" in pool.__dict__:
        _set(pool, "_counter", _pool_counter(pool.__dict__["_counter"]))

    for name in ("fork", "forkpty", "system", "posix_spawn", "posix_spawnp"):
        original = getattr(os, name, None)
        if original is not None:
            _set(os, name, _refusing(name, original))
    _set(subprocess.Popen, "__init__", _popen_init)
    ssl_module = sys.modules.get("ssl")
    if ssl_module is None:
        try:
            import ssl as ssl_module
        except ImportError:  # pragma: no cover - Python built without ssl
            ssl_module = None
    if ssl_module is not None:
        context = ssl_module.SSLContext
        _set(context, "wrap_socket", _wrap_socket_guard(context.wrap_socket))

    _default_network_cm = use_network(_dispatch_network)
    _default_network_cm.__enter__()


def _uninstall() -> None:
    global _default_network_cm
    if _default_network_cm is not None:
        _default_network_cm.__exit__(None, None, None)
        _default_network_cm = None
    while _saved:
        obj, name, old = _saved.pop()
        if old is _MISSING:
            delattr(obj, name)
        else:
            setattr(obj, name, old)
    _patched_socket.unguard_real_class()


class Interception:
    """The context manager ``net.intercept()`` returns (see the module docstring)."""

    def __init__(self, network: SimNetwork) -> None:
        self.network = network
        self._active = False

    def __enter__(self) -> SimNetwork:
        net = self.network
        kernel = net.kernel
        if kernel.closed:
            raise SockfakeRuntimeError("net.intercept() on a closed simulated network")
        kernel.thread_for_caller()  # a clear error from a thread outside the network
        if current_kernel() is not kernel:
            raise SockfakeRuntimeError(
                "net.intercept() must be entered in a thread of that network (its main "
                "thread), not while another simulated network is innermost"
            )
        with _install_lock:
            if kernel in _active:
                raise SockfakeRuntimeError(
                    f"{net!r} is already intercepted: net.intercept() does not nest"
                )
            if not _active:
                _install()
            _active[kernel] = net
        self._active = True
        return net

    def __exit__(self, *args: object) -> None:
        if not self._active:
            return
        self._active = False
        with _install_lock:
            _active.pop(self.network.kernel, None)
            if not _active:
                _uninstall()

    def __repr__(self) -> str:
        state = "active" if self._active else "inactive"
        return f"<Interception of {self.network!r} {state}>"


def intercept(network: SimNetwork) -> Interception:
    """While the returned context manager is active, ``network``'s threads get the
    simulation from the stdlib's own entry points (see the module docstring)."""
    return Interception(network)


def active_networks() -> Iterator[SimNetwork]:
    """The networks intercepted right now."""
    return iter(list(_active.values()))

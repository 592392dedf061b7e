"""``net.intercept()``: the simulation is the operating system of its own threads.

While an interception is active, the stdlib's own entry points dispatch per call:

* ``socket``: ``socket.socket`` (a real subclass of the real class, see
  ``sockfake.sim.intercept.sockets``), ``create_connection``, ``create_server``,
  ``socketpair``, ``getaddrinfo``, ``gethostbyname(_ex)``, ``gethostbyaddr``,
  ``getfqdn``, ``gethostname`` resolve and connect on the simulated network
  (127.0.0.1, ``localhost``, ::1, and the names given to ``net.add_host``).
* ``select.select``, ``select.poll``, ``select.epoll`` and every ``selectors`` class
  (``DefaultSelector`` included) wait in virtual time on simulated sockets.
* ``time.sleep``, ``monotonic``, ``time``, ``perf_counter`` (and the ``_ns`` variants)
  are virtual: ``time.time()`` is a fixed epoch (``EPOCH``) plus the virtual clock.
* ``threading.Lock``, ``RLock``, ``Condition``, ``Event``, ``Semaphore``,
  ``BoundedSemaphore``, ``Barrier``, ``Timer`` and ``queue.SimpleQueue`` made by a
  simulated thread wait in virtual time (``sockfake.sim.intercept.threads``).
  ``queue.Queue``, ``LifoQueue``, ``PriorityQueue``, ``concurrent.futures.Future`` and
  ``ThreadPoolExecutor`` build on those names looked up at call time, so they follow.
* ``signal.pthread_kill`` from a simulated thread to one of the network's threads,
  ``os.kill`` of its own process and ``signal.raise_signal``, for a signal with a
  Python handler, run the handler on the main thread at its next turn in virtual time
  (``Kernel.deliver_signal``); a blocking call it interrupts goes on, as PEP 475
  says. A real signal would run it whenever the main thread next got the GIL: real
  time, not the simulation's.
* ``os.fork``, ``os.forkpty``, ``os.system``, ``os.posix_spawn(p)`` and
  ``subprocess.Popen`` are refused in a simulated thread (``NotImplementedError``):
  a process would escape the simulation and its clock.
* ``ssl.SSLContext.wrap_socket`` on a simulated stream socket runs real TLS (OpenSSL
  over ``MemoryBIO``, see ``sockfake.sim.intercept.tls``); on a datagram socket (DTLS) it
  is refused with ``NotImplementedError``. TLS draws on OpenSSL's own randomness, so a
  run with TLS repeats its schedule but not its ciphertext (nor its digest).
* Servers built without ``network=`` (``xmlrpc.server.SimpleXMLRPCServer`` on
  sockfake) get the simulated network in a simulated thread: the default network is
  a dispatcher for the duration.

Scheduling: under interception ``Thread.start()`` hands the turn to the new thread
(it runs at once, as on the real OS), except when ``concurrent.futures`` or
``multiprocessing`` start it (they hold a real lock meanwhile).

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
on in a simulated thread, or a real lock held across a simulated call (another
simulated thread that wants it blocks for real: a stall, e.g. a
``logging.handlers.SocketHandler`` whose real handler lock is held while it sends),
``time.localtime()`` and friends without an argument (C calls on the wall clock),
``os.read``/``os.write`` on real descriptors, ``subclass(threading.Event)`` and the
like (a subclass defined by user code is a real primitive).

The pieces: ``_intercept_dispatch`` (who is asking, the originals), ``_patched_socket``
(the socket class and the guard on the real one), ``_resolver``, ``_sim_select``,
``_sim_threading`` (the primitives), ``_sim_tls`` (TLS over ``MemoryBIO``); this module
holds the clocks, the factories, the refusals and the install/restore logic.

Exit restores every attribute exactly (the identity of ``socket.socket``,
``time.sleep`` ... after exit is the one before). Interceptions of different
networks may be active together (each network's threads get their own network); the
same network cannot be intercepted twice at once (a clear error).

Why this module passes 600 lines: installing and removing some 45 patches must mirror
each other exactly, so the whole table of what is patched, and how it is put back,
stays in one reading. The substitutes themselves live apart: ``_patched_socket``,
``_resolver``, ``_sim_select``, ``_sim_threading``, ``_sim_tls``, and the per-call
dispatch in ``_intercept_dispatch``.
"""

from __future__ import annotations

import _thread
import itertools
import os
import queue
import select
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn, cast

import sockfake.network as _sockfake_network
from sockfake.network import REAL_NETWORK, SockfakeRuntimeError, use_network
from sockfake.sim.intercept import sockets as _patched_socket
from sockfake.sim.intercept.dispatch import (
    REAL as _real,
    _active,
    _internal,
    _sim_kernel_for_new,
    caller_network,
    is_intercepted,
)
from sockfake.sim.intercept.resolver import (
    _create_connection,
    _create_server,
    _getaddrinfo,
    _getfqdn,
    _gethostbyaddr,
    _gethostbyname,
    _gethostbyname_ex,
    _gethostname,
    _socketpair,
)
from sockfake.sim.intercept.selecting import (
    _SELECTOR_NAMES,
    SIM_FD_BASE,
    _EpollDispatch,
    _poll,
    _select,
    _selector_class,
)
from sockfake.sim.intercept.sockets import InterceptSocket
from sockfake.sim.intercept.threads import (
    new_bounded_semaphore,
    new_condition,
    new_event,
    new_lock,
    new_rlock,
    new_semaphore,
    new_simple_queue,
    sim_barrier_class,
)
from sockfake.sim.intercept.tls import wrap_simulated
from sockfake.sim.kernel.core import Kernel, current_kernel
from sockfake.sim.net.sockets import SimSocket

if TYPE_CHECKING:
    from sockfake.sim.network import SimNetwork

__all__ = [
    "intercept", "Interception", "EPOCH", "MONOTONIC_BASE", "SIM_FD_BASE", "is_intercepted",
]  # fmt: skip

# time.time() in a simulated thread: this fixed epoch (2030-01-01T00:00:00Z) plus the
# virtual clock, so a run's timestamps (HTTP Date headers, log records) are the same
# every time. Recent enough that clients checking for a sane clock (urllib3) are happy.
EPOCH = 1_893_456_000.0
# time.monotonic() and perf_counter(): a fixed base plus the virtual clock.
MONOTONIC_BASE = 1_000.0

_MISSING = object()
_install_lock = _thread.allocate_lock()
_saved: list[tuple[Any, str, Any]] = []

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


def _deliver_simulated(signalnum: object, thread_id: int | None = None) -> bool:
    """Deliver a signal a simulated thread sends to its own process (``thread_id``
    None) or to one of its network's threads in virtual time (see
    ``Kernel.deliver_signal``), if it has a Python handler; False: the caller makes the
    real call."""
    net = caller_network()
    if net is None or _internal(2):
        return False
    if thread_id is not None and not net.kernel.is_simulated_ident(thread_id):
        return False
    if not isinstance(signalnum, int):  # signal.Signals is one
        return False  # the real call raises CPython's TypeError
    if not 0 < signalnum < signal.NSIG:
        return False  # 0 probes whether the target exists; out of range is an error
    handler = signal.getsignal(int(signalnum))
    return callable(handler) and net.kernel.deliver_signal(int(signalnum))


def _pthread_kill(thread_id: int, signalnum: int) -> None:
    if not _deliver_simulated(signalnum, thread_id):
        _real["pthread_kill"](thread_id, signalnum)


def _kill(pid: int, signalnum: int) -> None:
    if pid != os.getpid() or not _deliver_simulated(signalnum):
        _real["kill"](pid, signalnum)


def _raise_signal(signalnum: int) -> None:
    if not _deliver_simulated(signalnum):
        _real["raise_signal"](signalnum)


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

# -- threading and queue ---------------------------------------------------------------


def _lock() -> Any:
    kernel = _sim_kernel_for_new(1)
    if kernel is None:
        return _real["Lock"]()
    return new_lock(kernel)


def _rlock(*args: Any, **kwargs: Any) -> Any:
    kernel = _sim_kernel_for_new(1)
    if kernel is None:
        return _real["RLock"](*args, **kwargs)
    return new_rlock(kernel)


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
                self.finished = new_event(net.kernel)

    Timer.__module__ = "threading"
    return Timer


class _SimpleQueueDispatch:
    """Stands in for ``queue.SimpleQueue`` (C): simulated when a simulated thread makes one."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        kernel = _sim_kernel_for_new(1)
        if kernel is None:
            return _real["SimpleQueue"]()
        return new_simple_queue(kernel)

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


# Callers that start threads while holding a real lock made at import time
# (ThreadPoolExecutor.submit holds concurrent.futures.thread._global_shutdown_lock):
# another simulated thread run there could block on that lock for real.
_STARTS_UNDER_A_REAL_LOCK = ("concurrent.futures", "multiprocessing")


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
        if net is None or getattr(self, "_sockfake_thread", None) is None:
            return
        caller: str = sys._getframe(1).f_globals.get("__name__", "")
        if caller.startswith(_STARTS_UNDER_A_REAL_LOCK):
            return
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

    def check_fork(self) -> None:
        self._pick().check_fork()

    def waitpid(self, pid: int, options: int) -> tuple[int, int]:
        return cast("tuple[int, int]", self._pick().waitpid(pid, options))

    def exit_child(self, status: int) -> NoReturn:
        self._pick().exit_child(status)
        raise AssertionError("exit_child returned")  # both networks' exit_child never do

    def unix_file_identity(self, path: Any) -> object | None:
        identity: object | None = self._pick().unix_file_identity(path)
        return identity

    def remove_stale_unix_socket(self, path: Any, socket_type: int) -> None:
        self._pick().remove_stale_unix_socket(path, socket_type)

    def remove_unix_socket(self, path: Any, identity: object) -> None:
        self._pick().remove_unix_socket(path, identity)

    def chmod_unix_socket(self, path: Any, mode: int) -> None:
        self._pick().chmod_unix_socket(path, mode)

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

    if _real["pthread_kill"] is not None:
        _set(signal, "pthread_kill", _pthread_kill)
    _set(os, "kill", _kill)
    _set(signal, "raise_signal", _raise_signal)

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
    _set(socket, "dup", _patched_socket.sim_dup)
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
    _set(threading, "Condition", _dispatch_class(_real["Condition"], new_condition))
    _set(threading, "Event", _dispatch_class(_real["Event"], new_event))
    _set(threading, "Semaphore", _dispatch_class(_real["Semaphore"], new_semaphore))
    _set(threading, "BoundedSemaphore",
         _dispatch_class(_real["BoundedSemaphore"], new_bounded_semaphore))
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

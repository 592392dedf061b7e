"""``net.intercept()``: the simulation is the operating system of its own threads.

While an interception is active, the stdlib's own entry points dispatch per call:

* ``socket``: ``socket.socket`` (a real subclass of the real class, see
  ``sockfake.sim.intercept.sockets``), ``create_connection``, ``create_server``,
  ``socketpair``, ``getaddrinfo``, ``gethostbyname(_ex)``, ``gethostbyaddr``,
  ``getfqdn``, ``gethostname`` resolve and connect on the simulated network
  (127.0.0.1, ``localhost``, ::1, and the names given to ``net.add_host``).
* ``datetime.datetime.now``/``today``/``utcnow`` and ``datetime.date.today`` read the
  virtual clock (``datetimes``: the module's two names are stand-ins, subclasses equal
  to the real classes).
* With ``seed_entropy=True`` (the default), ``os.urandom``, ``secrets``,
  ``uuid.uuid4``, ``random.SystemRandom``, ``ssl.RAND_bytes`` and unseeded
  ``random.Random()`` draw from the network's seed, and the ``random`` module's
  generator is seeded from it for the duration (``entropy``).
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
* ``signal.set_wakeup_fd`` on the main thread takes a simulated socket (an event
  loop's self-pipe), and a simulated signal writes its number there, so
  ``loop.add_signal_handler`` works (``signals``). ``signal.setitimer(ITIMER_REAL)``,
  ``getitimer`` and ``alarm`` count virtual time: ``SIGALRM`` comes as such a signal.
* ``fcntl`` (``FD_CLOEXEC``, ``O_NONBLOCK``) and ``os.read``/``write``/``fstat``/
  ``get_blocking``/``dup``/``close`` ... on a simulated socket's descriptor, and
  ``os.pipe()`` (a simulated socket pair); any other descriptor call on one fails with
  a message naming the call (``fdcalls``).
* ``os.stat``, ``lstat``, ``unlink``, ``remove``, ``rename`` and ``replace`` of a path
  where a simulated Unix socket is bound see the network's in-memory socket file
  (``unix_files``); every other path gets the real call.
* ``loop.connect_read_pipe``/``connect_write_pipe``/``add_reader``/``add_writer`` of a
  loop on a simulated selector refuse a real descriptor in the caller (``loops``).
* Processes are refused in a simulated thread (``NotImplementedError``), at every
  level: ``os.fork``, ``forkpty``, ``system``, ``posix_spawn(p)``, ``exec*``,
  ``subprocess.Popen``, ``_posixsubprocess.fork_exec``, ``multiprocessing``'s
  ``Process.start()`` and ``concurrent.futures.ProcessPoolExecutor()``: a process
  would escape the simulation and its clock (``processes``).
* ``_thread.start_new_thread`` in a simulated thread starts a ``threading.Thread``,
  which joins the simulation (``raw_threads``).
* The backstop: an audit hook (``audit``, added once per process) refuses in a
  simulated thread what reaches C without a patch: ``socket.SocketType``, the C socket
  type's ``connect``/``bind``/``sendto``/``sendmsg`` on a real socket, processes and
  raw threads through references taken before the interception, ctypes look-ups of
  socket and process functions.
* Detected after the fact (``stray_sockets``): a real socket that C code (libcurl,
  libpq, gRPC, ctypes) opened while the interception was active fails its exit with
  a ``SockfakeRuntimeError`` naming the socket and its peer.
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
(captured before) fails at once (``ValueError: filedescriptor out of range``). A
``selectors`` class bound at import (``socketserver._ServerSelector``) makes its
poller through the dispatching ``poll``/``epoll``; a selector made before the
interception refuses a simulated socket at ``register()``. A bare ``select.poll()``
object made before the interception cannot be guarded: it reports a simulated
descriptor as ``POLLNVAL``.

Names and objects bound before the interception (``made_before``): a module imported
earlier holds what the stdlib handed out then. At install the loaded modules that are
not the stdlib's, sockfake's or the test machinery's are scanned (globals; their
classes' attributes and methods' defaults and closures; their functions' defaults and
closures; the attributes of objects they made): a place bound to an original this
table replaces (``from time import monotonic``, ``from socket import
create_connection``, ``from threading import Lock``, ``_sleep = time.sleep``,
``Map.lock_class = Lock``) is rebound to the replacement for the duration; a real
``threading.Lock``/``RLock`` there is stood in for by a ``GuardedLock``. Any real
``Condition`` (so ``Event``, ``Semaphore``, ``Barrier``, ``queue.Queue``) a simulated
thread waits on waits in virtual time. A simulated thread's ``submit()`` to a
``ThreadPoolExecutor`` made outside the simulation runs on a simulated stand-in pool
(``futures``). An import in a simulated thread makes real primitives (the module
outlives the simulation), its locks in a ``GuardedLock``. A name bound in a dict that
is not a module's globals (``exec``) keeps the real function, unless it was bound
while an interception was active: the objects installed here stay valid after exit
and dispatch per call. The stdlib's own modules are not rebound: ``queue`` captured
``time.monotonic`` as ``queue.time`` and ``threading`` as ``threading._time``; both
are rebound here because ``Queue.get(timeout=)`` and ``Semaphore.acquire(timeout=)``
compute their deadline with them.
Other uncovered paths: ``send``/``recv``/``accept`` through the C socket type's methods
on a real socket made before the interception (no audit event), a real lock made
before the interception and reached deeper than one object below a module's globals,
or a real lock held across a simulated call by the stdlib (another simulated thread
that wants it blocks for real: a stall, e.g. a ``logging.handlers.SocketHandler``
whose real handler lock is held while it sends),
``time.localtime()`` and friends without an argument (C calls on the wall clock),
``os.read``/``os.write`` on real descriptors, ``subclass(threading.Event)`` and the
like (a subclass defined by user code is a real primitive).

The pieces, one module per stdlib area: ``dispatch`` (who is asking, the originals),
``clock`` (``time``), ``datetimes``, ``entropy``, ``signals``, ``fdcalls`` (``fcntl``,
``os`` on a descriptor), ``loops`` (``asyncio``), ``processes`` (``os`` and
``subprocess``),
``sockets`` (the socket class and the guard on the real one), ``resolver``,
``selecting`` (``select``, ``selectors``), ``raw_threads``, ``audit`` (the backstop),
``stray_sockets`` (C code's sockets), ``threading_names`` (what ``threading``'s
and ``queue``'s names hand out) and ``threads`` (the primitives), ``futures``
(``concurrent.futures``), ``tls`` (``ssl``: TLS over ``MemoryBIO``),
``default_network`` (servers built without ``network=``), ``made_before`` (names and
objects bound before the interception). This module holds the one
install table, what is patched and how it is put back, in one reading.

Exit restores every attribute exactly (the identity of ``socket.socket``,
``time.sleep`` ... after exit is the one before). Interceptions of different
networks may be active together (each network's threads get their own network); the
same network cannot be intercepted twice at once (a clear error).
"""

from __future__ import annotations

import _thread
import builtins
import contextlib
import copyreg
import datetime
import io
import os
import pathlib
import queue
import random
import select
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import sockfake.network as _sockfake_network
import sockfake.sim.kernel.backends as _backends
from sockfake.network import SockfakeRuntimeError, SockfakeTypeError, use_network
from sockfake.sim.intercept import (
    audit,
    clock,
    datetimes,
    entropy,
    fdcalls,
    fdfiles,
    futures,
    loops,
    made_before,
    processes,
    raw_threads,
    signals,
    sockets as _patched_socket,
    stray_sockets,
    threading_names,
    unix_files,
)
from sockfake.sim.intercept.allow_real import allow_real as allow_real_endpoints
from sockfake.sim.intercept.clock import EPOCH, MONOTONIC_BASE
from sockfake.sim.intercept.default_network import DISPATCH_NETWORK
from sockfake.sim.intercept.dispatch import REAL as _real, _active, is_intercepted
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
    bound_at_import_patches,
)
from sockfake.sim.intercept.sockets import InterceptSocket
from sockfake.sim.intercept.threads import (
    new_bounded_semaphore,
    new_condition,
    new_event,
    new_semaphore,
)
from sockfake.sim.intercept.tls import wrap_socket_guard
from sockfake.sim.kernel.core import current_kernel

if TYPE_CHECKING:
    from sockfake.sim.network import SimNetwork

__all__ = [
    "intercept", "Interception", "EPOCH", "MONOTONIC_BASE", "SIM_FD_BASE", "is_intercepted",
    "is_lingering", "keep_patches", "remove_lingering",
]  # fmt: skip

_MISSING = object()
_install_lock = _thread.allocate_lock()
_saved: list[tuple[Any, str, Any]] = []
_default_network_cm: Any = None
# The patches are in place with no network intercepted: the last interception to end
# was made with linger=True (the pytest plugin's, between its tests). Every patched
# entry point then dispatches to the real one (no thread is simulated), and the next
# interception reuses them instead of building and setting some 120 patches again.
_lingering = False
# keep_patches() scopes open: while there is one, every interception's end lingers as
# if made with linger=True (a loop of fresh networks outside pytest installs once);
# the outermost scope's end takes the patches away unless they lingered before it.
_kept_scopes = 0
_lingered_before_scope = False

# -- install and restore ---------------------------------------------------------------


def _set(obj: Any, name: Any, value: Any) -> None:
    """An attribute of a module or class, or an item of a dict (``name`` its key)."""
    if isinstance(obj, dict):
        _saved.append((obj, name, obj.get(name, _MISSING)))
        obj[name] = value
        return
    if isinstance(obj, type):
        old = obj.__dict__.get(name, _MISSING)
    else:
        old = getattr(obj, name, _MISSING)
    _saved.append((obj, name, old))
    setattr(obj, name, value)


def _install() -> None:
    global _default_network_cm
    # the backstop under every patch below (audit.py): added once, never removed
    audit.install_once()

    # time (clock.py)
    _set(time, "sleep", clock.sleep)
    for name in ("monotonic", "monotonic_ns", "time", "time_ns", "perf_counter",
                 "perf_counter_ns"):
        _set(time, name, clock.CLOCKS[name])
    # queue.Queue.get/put(timeout=) compute their deadline with this captured name.
    if getattr(queue, "time", None) is _real["monotonic"]:
        _set(queue, "time", clock.CLOCKS["monotonic"])
    # So do Semaphore.acquire(timeout=) and Condition.wait_for with threading's, around
    # a wait that runs in virtual time on a condition made before (made_before.py).
    if getattr(threading, "_time", None) is _real["monotonic"]:
        _set(threading, "_time", clock.CLOCKS["monotonic"])
    # datetime (datetimes.py): now() and today() on the virtual clock
    _set(datetime, "datetime", datetimes.SimDatetime)
    _set(datetime, "date", datetimes.SimDate)
    for real_class, reducer in datetimes.REDUCERS.items():
        _set(copyreg.dispatch_table, real_class, reducer)

    # entropy (entropy.py): the seed's, for networks intercepted with seed_entropy=True
    _set(os, "urandom", entropy.urandom)
    _set(random, "_urandom", entropy.urandom)  # SystemRandom's, and so secrets'
    _set(random.Random, "seed", entropy.random_seed)

    # signals (signals.py)
    if _real["pthread_kill"] is not None:
        _set(signal, "pthread_kill", signals.pthread_kill)
    _set(os, "kill", signals.kill)
    _set(signal, "raise_signal", signals.raise_signal)
    _set(signal, "set_wakeup_fd", signals.set_wakeup_fd)
    for name in ("setitimer", "getitimer", "alarm"):  # POSIX
        if _real[name] is not None:
            _set(signal, name, getattr(signals, name))

    # select and selectors (selecting.py)
    _set(select, "select", _select)
    if _real["poll"] is not None:
        _set(select, "poll", _poll)
    if _real["epoll"] is not None:
        _set(select, "epoll", _EpollDispatch)
    # Classes bound at import (the stdlib's socketserver._ServerSelector) build their
    # poller through these, so they wait in virtual time from a simulated thread.
    for cls, attribute, value in bound_at_import_patches():
        _set(cls, attribute, value)
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

    # socket (sockets.py) and the resolver (resolver.py)
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

    # threading and queue (threading_names.py, threads.py)
    dispatch_class = threading_names.dispatch_class
    _set(threading, "Lock", threading_names.lock)
    _set(threading, "RLock", threading_names.rlock)
    _set(threading, "Condition", dispatch_class(_real["Condition"], new_condition))
    _set(threading, "Event", dispatch_class(_real["Event"], new_event))
    _set(threading, "Semaphore", dispatch_class(_real["Semaphore"], new_semaphore))
    _set(threading, "BoundedSemaphore",
         dispatch_class(_real["BoundedSemaphore"], new_bounded_semaphore))
    _set(threading, "Barrier", dispatch_class(_real["Barrier"], threading_names.make_barrier))
    _set(threading, "Timer", threading_names.timer_class())
    _set(threading.Thread, "start", threading_names.start_yields(threading.Thread.start))
    _set(threading, "enumerate", threading_names.enumerate_threads)
    _set(threading, "active_count", threading_names.active_count)
    _set(_thread, "_count", threading_names.thread_count)
    _set(queue, "SimpleQueue", threading_names.SimpleQueueDispatch)

    # concurrent.futures (futures.py)
    from concurrent.futures import thread as futures_thread

    pool = futures_thread.ThreadPoolExecutor
    if "_counter" in pool.__dict__:
        _set(pool, "_counter", futures.pool_counter(pool.__dict__["_counter"]))
    _set(pool, "submit", futures.pool_submit(pool.submit))
    _set(pool, "shutdown", futures.pool_shutdown(pool.shutdown))
    _set(pool, "__init__", futures.pool_init(pool.__init__))
    shutdown_lock = getattr(futures_thread, "_global_shutdown_lock", None)
    if shutdown_lock is not None:
        _set(futures_thread, "_global_shutdown_lock", futures.SharedShutdownLock(shutdown_lock))

    # processes (processes.py)
    for name in processes.REFUSED_OS_CALLS:
        original = getattr(os, name, None)
        if original is not None:
            _set(os, name, processes.refuse_in_simulation(name, original))
    _set(subprocess.Popen, "__init__", processes.popen_init)
    for obj, name, value in processes.process_patches():
        _set(obj, name, value)

    # raw threads (raw_threads.py): adopted into the simulation
    for name in ("start_new_thread", "start_new"):
        original = getattr(_thread, name, None)
        if original is not None:
            _set(_thread, name, raw_threads.start_new_thread(original))

    # descriptor calls on a simulated socket (fdcalls.py)
    for name in fdcalls.OS_CALLS:
        original = getattr(os, name, None)
        if original is not None:
            _set(os, name, fdcalls.os_call(name, original))
    _set(os, "pipe", fdcalls.pipe_call(os.pipe))
    # the simulated Unix sockets' files (unix_files.py)
    for name in unix_files.CALLS:
        _set(os, name, unix_files.file_call(name, getattr(os, name)))
    for name, original in unix_files.pathlib_accessor_calls():
        # Python 3.10's pathlib calls os's functions through class attributes bound at
        # import (_NormalAccessor): patched there too, as static methods.
        _set(pathlib._NormalAccessor, name,  # type: ignore[attr-defined]
             staticmethod(unix_files.file_call(name, original)))
    # file objects over a simulated descriptor (fdfiles.py; os.fdopen calls io.open)
    simulated_open = fdfiles.open_call(io.open)
    _set(io, "open", simulated_open)
    _set(builtins, "open", simulated_open)
    for name in fdcalls.FCNTL_CALLS if fdcalls.FCNTL_MODULE is not None else ():
        _set(fdcalls.FCNTL_MODULE, name, fdcalls.fcntl_call(
            name, getattr(fdcalls.FCNTL_MODULE, name)))

    # asyncio (loops.py): a real descriptor in a simulated loop fails its caller
    from asyncio import selector_events

    for name in ("add_reader", "add_writer"):
        loop_class = selector_events.BaseSelectorEventLoop
        _set(loop_class, name, loops.guard_add(name, getattr(loop_class, name)))
    from asyncio import base_events

    _set(base_events.BaseEventLoop, "run_forever",
         loops.guard_run_forever(base_events.BaseEventLoop.run_forever))
    unix_events = sys.modules.get("asyncio.unix_events")
    if unix_events is not None:  # POSIX
        for name in ("_make_read_pipe_transport", "_make_write_pipe_transport"):
            loop_class = unix_events._UnixSelectorEventLoop
            _set(loop_class, name, loops.guard_pipe_transport(name, getattr(loop_class, name)))

    # ssl (tls.py)
    ssl_module = sys.modules.get("ssl")
    if ssl_module is None:
        try:
            import ssl as ssl_module
        except ImportError:  # pragma: no cover - Python built without ssl
            ssl_module = None
    if ssl_module is not None:
        context = ssl_module.SSLContext
        _set(context, "wrap_socket", wrap_socket_guard(context.wrap_socket))
        _set(ssl_module, "RAND_bytes", entropy.rand_bytes(ssl_module.RAND_bytes))

    # servers built without network= (default_network.py)
    _default_network_cm = use_network(DISPATCH_NETWORK)
    _default_network_cm.__enter__()

    # names and objects bound before the interception (made_before.py): last, so that
    # every replaced original is known
    for name, replacement in made_before.condition_patches():
        _set(_real["Condition"], name, replacement)
    _rebind_made_before()


# _replaced_originals() for the patches in place (None: not yet read). Only _install()
# patches modules (a later _set() rebinds globals dicts, classes and cells), so it holds
# until _uninstall(); each lingering interception's start reuses it.
_replaced: dict[int, Any] | None = None


def _replaced_originals() -> dict[int, Any]:
    """id of each module-level function or class the table replaced -> its replacement
    (not ``socket.socket``: real sockets must stay instances of a name bound to it; nor
    ``datetime``'s classes: ``type(value) is datetime`` on a value made before)."""
    global _replaced
    if _replaced is not None:
        return _replaced
    replaced: dict[int, Any] = {}
    for obj, name, old in _saved:
        if not isinstance(obj, types.ModuleType) or old is _MISSING or old is _real["socket"]:
            continue
        if obj is datetime:  # the stand-ins are for the module's names only (datetimes.py)
            continue
        if isinstance(old, (types.FunctionType, types.BuiltinFunctionType, type)):
            replaced[id(old)] = getattr(obj, name)
    # A name bound to the OS's get_ident at import (anyio's `from threading import
    # get_ident`) asks the one in place: on the greenlet backend it answers the
    # simulated thread (the OS's gives them all one ident). Always: a module is read
    # once, whichever backend the network that read it had.
    replaced[id(_backends.os_get_ident)] = _backends.current_get_ident
    _replaced = replaced
    return replaced


def _rebind_made_before() -> None:
    """Rebind or guard what the modules' globals hold from before (again when the
    patches lingered: modules imported since are read, the rest was done then)."""
    replaced = _replaced_originals()
    for found in made_before.scan(replaced):
        if id(found.value) in replaced:
            _set(*found.put(replaced[id(found.value)]))
            continue
        guard = made_before.register(found)
        if guard is not None:
            _set(*found.put(guard))


def _uninstall() -> None:
    global _default_network_cm, _lingering, _replaced
    _lingering = False
    _replaced = None
    if _default_network_cm is not None:
        _default_network_cm.__exit__(None, None, None)
        _default_network_cm = None
    while _saved:
        obj, name, old = _saved.pop()
        if isinstance(obj, dict):
            if old is _MISSING:
                obj.pop(name, None)
            else:
                obj[name] = old
        elif old is _MISSING:
            delattr(obj, name)
        else:
            setattr(obj, name, old)
    _patched_socket.unguard_real_class()
    made_before.forget()
    futures.forget_stand_ins()


class Interception:
    """The context manager ``net.intercept()`` returns (see the module docstring)."""

    def __init__(self, network: SimNetwork, seed_entropy: bool = True,
                 linger: bool = False, allow_real: Any = ()) -> None:
        if not isinstance(seed_entropy, bool):
            raise SockfakeTypeError(f"seed_entropy must be True or False, not {seed_entropy!r}")
        self.network = network
        self.seed_entropy = seed_entropy
        self.linger = linger
        self.allow_real = allow_real_endpoints(allow_real)  # validated here, at the call
        self._active = False
        self._strays: stray_sockets.Watch | None = None

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
                if _lingering:
                    _rebind_made_before()
                else:
                    _install()
            _active[kernel] = net
            kernel.interception_ended = False
            if self.seed_entropy:
                entropy.enter(kernel)
        self._active = True
        self._strays = stray_sockets.begin(repr(net), kernel, self.allow_real)
        return net

    def __exit__(self, *args: object) -> None:
        if not self._active:
            return
        leaving = args[1] if len(args) > 1 and isinstance(args[1], BaseException) else None
        self._active = False
        signals.leave(self.network.kernel)
        with _install_lock:
            entropy.leave(self.network.kernel)
            _active.pop(self.network.kernel, None)
            self.network.kernel.interception_ended = True  # its new threads get the OS
            if not _active:
                if self.linger or _kept_scopes:
                    global _lingering
                    _lingering = True
                else:
                    _uninstall()
        strays, self._strays = self._strays, None
        error = stray_sockets.end(strays, leaving) if strays is not None else None
        if error is not None:
            raise error

    def __repr__(self) -> str:
        state = "active" if self._active else "inactive"
        return f"<Interception of {self.network!r} {state}>"


def intercept(network: SimNetwork, seed_entropy: bool = True,
              linger: bool = False, allow_real: Any = ()) -> Interception:
    """While the returned context manager is active, ``network``'s threads get the
    simulation from the stdlib's own entry points (see the module docstring);
    ``seed_entropy``: their random bytes come from the network's seed
    (``sockfake.sim.intercept.entropy``). ``linger``: if it is the last to end, the
    patches stay in place, dispatching every call to the real OS, until the next
    interception reuses them or ``remove_lingering()`` takes them away (the pytest
    plugin's: one installation for a run of intercepted tests). ``allow_real``: real
    endpoints C code may use on purpose, or ``"all"``
    (``sockfake.sim.intercept.allow_real``)."""
    return Interception(network, seed_entropy, linger, allow_real)


def remove_lingering() -> None:
    """Take away the patches a ``linger=True`` interception left (none: nothing)."""
    with _install_lock:
        if _lingering and not _active:
            _uninstall()


@contextlib.contextmanager
def keep_patches() -> Iterator[None]:
    """Within the block, an interception's end leaves the patches in place for the
    next one (as ``linger=True``: between interceptions every patched call goes to the
    real OS); at the outermost block's end they are taken away, unless they were
    already lingering when it began (the pytest plugin's, which it removes itself).
    For loops of fresh intercepted networks outside pytest (``open_testbed`` and
    ``explore`` per seed): one installation instead of one per iteration."""
    global _kept_scopes, _lingered_before_scope
    with _install_lock:
        if not _kept_scopes:
            _lingered_before_scope = _lingering
        _kept_scopes += 1
    try:
        yield
    finally:
        with _install_lock:
            _kept_scopes -= 1
            if not _kept_scopes and _lingering and not _active and not _lingered_before_scope:
                _uninstall()


def is_lingering() -> bool:
    """Are the patches in place with no network intercepted?"""
    return _lingering


def active_networks() -> Iterator[SimNetwork]:
    """The networks intercepted right now."""
    return iter(list(_active.values()))

"""Objects and names bound before ``net.intercept()``, used from a simulated thread.

A module imported before the interception holds what the stdlib handed out then: the
real ``time.monotonic`` under ``from time import monotonic``, a real
``threading.Lock()`` or ``queue.Queue()`` at module level, in a class attribute, a
default argument, a closure or an object it made. Patching the stdlib's attributes
does not reach them. At install time the interception scans the loaded modules that
are not the stdlib's, sockfake's or the test machinery's (``scan()``: their globals;
the attributes, and the methods' defaults and closures, of the classes they define;
their functions' defaults and closures; the attributes of the objects they made, and
of the objects among those, three objects deep (``app.registry.cache.lock``). A
module is read once, and only its hits are looked at again in later interceptions)
and:

* rebinds, for the duration, a place bound to a real function or class that the
  interception replaces (``from time import monotonic``, ``from socket import
  create_connection``, ``from threading import Lock``, ``_sleep = time.sleep``,
  werkzeug's ``Map.lock_class = Lock``, a dataclass field's
  ``default_factory=Lock`` in anyio) to its replacement, which dispatches per
  calling thread as the module attribute does. A name that says it is real is left
  alone (``from time import perf_counter as real_clock``): that is how a test keeps
  the real clock on purpose;
* puts a ``GuardedLock`` in place of a real ``threading.Lock`` or ``RLock`` found
  there (the C lock cannot be patched): for any other thread it is the lock itself;
  a simulated thread that finds it held polls it in virtual time instead of blocking
  the OS thread that holds the simulation's turn;
* registers the conditions under a module-level ``Condition``, ``Event``,
  ``Semaphore``, ``Barrier`` or ``queue.Queue``, to name them in reports. The real
  ``Condition``'s ``wait`` and ``__enter__`` (Python methods, patched on the class)
  wait in virtual time whenever a simulated thread calls them, registered or not
  (reached through any path, or made by an import during the interception), except
  ``Thread.start``'s wait for the new thread (which sets it before it joins the
  simulation), so ``event.wait()``, ``queue.get()`` or ``sem.acquire()`` in one
  thread and ``set()``, ``put()`` or ``release()`` in another work as on the real
  OS.

A ``ThreadPoolExecutor`` made before runs a simulated thread's work on a stand-in
(``futures.py``). A lock an import makes in a simulated thread is a ``GuardedLock``
too (``threading_names.py``).

With nothing else to happen in the simulation, a poll waits for a thread outside it
in real time, up to the kernel's ``stall_timeout``. A poll that can never succeed (the
holder is blocked for ever) ends as the kernel's spin report: ``SimDeadlockError`` naming the
object (``busy-polls (the threading.Lock early.lock, made before net.intercept())``)
and the waiting frames. What is not covered: a real lock more than three objects below
a module's globals (``app.a.b.c.lock``) or in a container (``app.locks["db"]``), a
real ``SimpleQueue``, and names
rebound after their module's import.
"""

from __future__ import annotations

import _thread
import queue
import sys
import threading
import types
from collections.abc import Iterable, Iterator
from typing import Any

from sockfake.sim.intercept.dispatch import _REAL_TIME_PACKAGES, REAL as _real, caller_network
from sockfake.sim.kernel.core import Kernel

__all__ = [
    "GuardedLock",
    "Found",
    "condition_patches",
    "forget",
    "register",
    "scan",
]

_LOCK_TYPES: tuple[type, ...] = (
    type(_thread.allocate_lock()),
    type(_real["RLock"]()),
)
_REAL_CONDITION: Any = _real["Condition"]
_CONDITION_OWNERS: tuple[type, ...] = (
    _real["Event"], _real["Semaphore"], _real["Barrier"], queue.Queue,
)
_PRIMITIVES = _LOCK_TYPES + (_REAL_CONDITION,) + _CONDITION_OWNERS
_SKIPPED_TOP_LEVEL = frozenset(getattr(sys, "stdlib_module_names", ())) | _REAL_TIME_PACKAGES | {
    "sockfake", "_pytest", "__editable___sockfake_finder",
}

# Registered conditions: id -> (the object, its label). Held for the
# interception's duration only (install fills it, uninstall empties it).
_registered: dict[int, tuple[object, str]] = {}

# -- the scan ------------------------------------------------------------------------


class Found:
    """One place worth acting on, holding ``value``: ``holder[name]`` when ``holder`` is
    a dict (a module's globals, an instance's ``__dict__``, a function's
    ``__kwdefaults__``), else the attribute ``name`` of ``holder`` (a class attribute,
    a closure cell's ``cell_contents``, or a function's ``__defaults__``, ``index`` its
    item). ``put(value)`` says what to set there instead: (holder, name, new)."""

    __slots__ = ("holder", "name", "value", "label", "index")

    def __init__(self, holder: Any, name: str, value: object, label: str,
                 index: int | None = None) -> None:
        self.holder = holder
        self.name = name
        self.value = value
        self.label = label
        self.index = index

    def put(self, value: object) -> tuple[Any, str, object]:
        if isinstance(self.holder, type) and isinstance(value, types.FunctionType) and (
                not isinstance(self.value, types.FunctionType)):
            # A class attribute bound to a C function (werkzeug's Map.lock_class =
            # threading.Lock) is not a method: neither is its replacement.
            value = staticmethod(value)
        if self.index is None:
            return self.holder, self.name, value
        defaults = list(self.holder.__defaults__)
        defaults[self.index] = value
        return self.holder, self.name, tuple(defaults)


# A place read at the first scan: (holder, name, index, label); read() gives its value.
_Site = tuple[Any, str, "int | None", str]

# Module name -> (its namespace, the places that held something of interest when
# read), and the subset with places: a later scan reads only new modules and these.
_scanned: dict[str, tuple[dict[str, Any], list[_Site]]] = {}
_with_hits: dict[str, tuple[dict[str, Any], list[_Site]]] = {}

_NO_VALUE = object()


def _skipped(module_name: str) -> bool:
    return module_name.partition(".")[0] in _SKIPPED_TOP_LEVEL


def _interesting(label: str, value: object, replaced: dict[int, object]) -> bool:
    if id(value) in replaced:
        # real_clock = time.perf_counter: on purpose (the name bound, the label's last word)
        return "real" not in label.replace(" ", ".").rpartition(".")[2].lower()
    return isinstance(value, _PRIMITIVES)


def _read(site: _Site) -> object:
    holder, name, index, _ = site
    try:
        if isinstance(holder, dict):
            return holder.get(name, _NO_VALUE)
        if index is not None:
            defaults = holder.__defaults__ or ()
            return defaults[index] if index < len(defaults) else _NO_VALUE
        if isinstance(holder, type):
            return holder.__dict__.get(name, _NO_VALUE)
        return getattr(holder, name, _NO_VALUE)  # a cell: empty raises ValueError
    except ValueError:
        return _NO_VALUE


# type -> is it a primitive's (a subclass included)? Asked of every value a first scan
# reads: a dict look-up is several times cheaper than isinstance against the tuple.
_is_primitive_type: dict[type, bool] = {}


def _hit(value: object, replaced: dict[int, object]) -> bool:
    if id(value) in replaced:
        return True
    kind = type(value)
    known = _is_primitive_type.get(kind)
    if known is None:
        known = _is_primitive_type[kind] = issubclass(kind, _PRIMITIVES)
    return known


def _function_hits(function: Any, label: str, replaced: dict[int, object]) -> Iterator[_Site]:
    """A function's default arguments and closure cells (``def f(lock=Lock())``, a
    dataclass field's ``default_factory=threading.Lock`` in its ``__init__``)."""
    if isinstance(function, (staticmethod, classmethod)):
        function = function.__func__
    if not isinstance(function, types.FunctionType):
        return
    code = function.__code__
    defaults = function.__defaults__
    if defaults:
        first = code.co_argcount - len(defaults)
        for index, value in enumerate(defaults):
            if _hit(value, replaced):
                yield (function, "__defaults__", index,
                       f"{label}() default {code.co_varnames[first + index]}")
    kwdefaults = function.__kwdefaults__
    if kwdefaults:
        for name, value in kwdefaults.items():
            if _hit(value, replaced):
                yield kwdefaults, name, None, f"{label}() default {name}"
    closure = function.__closure__
    if closure:
        for name, cell in zip(code.co_freevars, closure, strict=True):
            try:
                value = cell.cell_contents
            except ValueError:  # empty
                continue
            if _hit(value, replaced):
                yield cell, "cell_contents", None, f"{label}() closure {name}"


def _module_hits(module_name: str, namespace: dict[str, Any],
                 replaced: dict[int, object]) -> Iterator[_Site]:
    """The places a module's import may have bound a primitive or a replaced original,
    that hold one: its globals; the attributes, and methods' defaults and closures, of
    the classes it defines; its functions' defaults and closures; the attributes of
    the objects it made (``pool = EntropyPool()`` whose ``__init__`` made a Lock),
    ``_OBJECT_DEPTH`` objects deep; one level each otherwise. Deeper primitives are
    reached by the condition patches (any real ``Condition``) or not at all (a real
    lock; documented). Labels are made for hits only: a first scan reads some 50,000
    places (``benchmarks/bench_intercept.py``)."""
    walked: dict[int, int] = {}  # id of an object -> the depth it was read to
    for name, value in list(namespace.items()):
        if _hit(value, replaced):
            yield namespace, name, None, f"{module_name}.{name}"
        if isinstance(value, type):
            if value.__module__ != module_name:
                continue
            for attribute, member in list(value.__dict__.items()):
                if _hit(member, replaced):
                    yield value, attribute, None, f"{module_name}.{name}.{attribute}"
                else:
                    yield from _function_hits(member, f"{module_name}.{name}.{attribute}",
                                              replaced)
        elif isinstance(value, types.FunctionType):
            if value.__module__ == module_name:
                yield from _function_hits(value, f"{module_name}.{name}", replaced)
        elif not isinstance(value, (types.ModuleType, types.BuiltinFunctionType)):
            yield from _object_hits(value, f"{module_name}.{name}", replaced, _OBJECT_DEPTH,
                                    walked)


# How many objects deep the attributes of the objects a module made are read:
# ``app.lock``, ``app.registry.lock``, ``app.registry.cache.lock``. Bounded, and each
# object read once per module, so a first scan stays about as cheap
# (``benchmarks/bench_intercept.py``); later scans read only the places that held a hit.
_OBJECT_DEPTH = 3
# What the walk does not go into: classes, modules and functions (a module's own are
# read as such above; others are not the module's to have made).
_NOT_WALKED: tuple[type, ...] = (
    type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType,
    types.MethodType, staticmethod, classmethod, property,
)


def _object_hits(value: object, label: str, replaced: dict[int, object], depth: int,
                 walked: dict[int, int]) -> Iterator[_Site]:
    """The attributes of ``value`` (an object a module made) that hold a hit, and those
    of the objects among them, ``depth`` objects deep (``_OBJECT_DEPTH``); an object
    already read as deep (``walked``: shared, or a cycle) is not read again."""
    if walked.get(id(value), 0) >= depth:
        return
    walked[id(value)] = depth
    try:  # a proxy (werkzeug's LocalProxy) may raise anything here
        attributes = object.__getattribute__(value, "__dict__")
    except Exception:
        return
    if not isinstance(attributes, dict):
        return
    for attribute, member in list(attributes.items()):
        if _hit(member, replaced):
            yield attributes, attribute, None, f"{label}.{attribute}"
        elif depth > 1 and _walked(type(member)):
            yield from _object_hits(member, f"{label}.{attribute}", replaced, depth - 1,
                                    walked)


# type -> are its instances walked (they have a __dict__ and are not _NOT_WALKED)?
_is_walked_type: dict[type, bool] = {}


def _walked(kind: type) -> bool:
    known = _is_walked_type.get(kind)
    if known is None:
        known = _is_walked_type[kind] = bool(kind.__dictoffset__) and not issubclass(
            kind, _NOT_WALKED)
    return known


def scan(replaced: dict[int, object]) -> Iterator[Found]:
    """The places bound to a replaced original (``replaced``: id of the original -> it)
    or to a real primitive, in modules that are not the stdlib's (``_module_hits``).

    A module is read in full once (while it stays in ``sys.modules``); later scans look
    only at the places that held something then (a module binds its globals when it is
    imported), which keeps an interception's start cheap (``benchmarks/bench_intercept.py``)."""
    modules = sys.modules
    # Between two tests the modules rarely change: comparing the key views (no set made)
    # costs half of taking both differences.
    news: Iterable[str] = ()
    if modules.keys() != _scanned.keys():
        for gone in _scanned.keys() - modules.keys():
            del _scanned[gone]
            _with_hits.pop(gone, None)
        news = modules.keys() - _scanned.keys()
    for module_name in news:
        namespace = getattr(modules.get(module_name), "__dict__", None)
        if not isinstance(namespace, dict) or _skipped(module_name):
            _scanned[module_name] = ({}, [])
            continue
        sites = [site for site in _module_hits(module_name, namespace, replaced)
                 if _interesting(site[3], _read(site), replaced)]
        _scanned[module_name] = (namespace, sites)
        if sites:
            _with_hits[module_name] = (namespace, sites)
    for module_name, (globals_, sites) in list(_with_hits.items()):
        if getattr(modules.get(module_name), "__dict__", None) is not globals_:
            del _scanned[module_name], _with_hits[module_name]  # replaced: read again next time
            continue
        for site in sites:
            value = _read(site)
            if value is not _NO_VALUE and _interesting(site[3], value, replaced):
                holder, name, index, label = site
                yield Found(holder, name, value, label, index)


# -- what a simulated thread does with them --------------------------------------------


def _describe(kind: str, label: str) -> str:
    return f"the {kind} {label}, made before net.intercept()"


# A poll with nothing else to happen in the simulation waits this many times for a
# thread outside it, each 1/_OUTSIDE_WAITS of the kernel's stall_timeout of real time:
# as many as the kernel's polls before it reports a spin (core._SPIN_POLLS), so the
# whole grace is one stall_timeout.
_OUTSIDE_WAITS = 64


def _acquire(lock: Any, real_seconds: float = 0.0) -> bool:
    """One try at a real lock (a ``GuardedLock``'s own), waiting up to ``real_seconds``."""
    if isinstance(lock, GuardedLock):
        return lock.try_acquire(real_seconds)
    real = lock
    if real_seconds <= 0:
        return bool(real.acquire(False))
    return bool(real.acquire(True, real_seconds))


def _poll(kernel: Kernel, lock: Any, timeout: float | None, what: str) -> bool:
    """Try ``lock`` until it is acquired or ``timeout`` virtual seconds pass: between
    tries other simulated threads run, and with none ready the kernel moves the clock
    on (or reports a spin that cannot end, naming ``what``). When nothing in the
    simulation can happen (no thread ready, nothing scheduled), only a thread outside
    it can release the lock (the new thread that sets ``Thread._started``, a real
    worker's future, a listener's queue): the try waits for it in real time, up to the
    kernel's ``stall_timeout`` in all before the spin is reported."""
    if _acquire(lock):
        return True
    deadline = None if timeout is None or timeout < 0 else kernel.deadline(timeout)
    # An event at the deadline, so a poll with nothing else scheduled times out.
    timer = kernel.call_at(deadline, _nothing) if deadline is not None else None
    try:
        while not _acquire(lock):
            if deadline is not None and kernel.now >= deadline:
                return False
            if not kernel.has_pending_work() and _acquire(
                    lock, kernel.stall_timeout / _OUTSIDE_WAITS):
                return True
            kernel.idle_poll(what)
        return True
    finally:
        if timer is not None:
            timer.cancel()


def _nothing() -> None:
    pass


class GuardedLock:
    """Stands in for a module-level ``threading.Lock``/``RLock`` made before the
    interception, for its duration: the lock itself for every thread, except that a
    simulated thread that finds it held polls in virtual time (the thread that holds
    it may be a simulated one waiting for the turn this one would keep).

    An RLock's owner is also kept here, by ``threading.get_ident()``: on the greenlet
    backend every simulated thread is the same OS thread, which the real RLock takes
    for one owner (it would let a second simulated thread in while the first holds it)."""

    def __init__(self, lock: Any, label: str, what: str | None = None) -> None:
        self.lock = lock
        self.label = label
        self._pollers = 0  # simulated threads waiting for it (one runs at a time)
        self._rlock = "RLock" in type(lock).__name__
        kind = "threading.RLock" if self._rlock else "threading.Lock"
        self._what = what if what is not None else _describe(kind, label)
        # The RLock's holder while held through this object: its get_ident(), its OS
        # thread's native id, and how deep it holds it.
        self._owner: int | None = None
        self._owner_os = 0
        self._depth = 0

    def try_acquire(self, real_seconds: float = 0.0) -> bool:
        """One try, waiting up to ``real_seconds`` real seconds for the real lock."""
        if self._rlock and self._held_by_another_on_this_os_thread():
            return False  # the real RLock would let this thread in
        if real_seconds <= 0:
            acquired = bool(self.lock.acquire(False))
        else:
            acquired = bool(self.lock.acquire(True, real_seconds))
        if acquired:
            self._took()
        return acquired

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        net = caller_network()
        if not blocking:
            return self.try_acquire()
        if net is None:
            acquired = bool(self.lock.acquire(blocking, timeout))
            if acquired:
                self._took()
            return acquired
        if self.try_acquire():
            return True
        self._pollers += 1
        try:
            return _poll(net.kernel, self, None if timeout == -1 else timeout, self._what)
        finally:
            self._pollers -= 1

    def _held_by_another_on_this_os_thread(self) -> bool:
        if self._owner is None or self._owner_os != _thread.get_native_id():
            return False
        if not self.lock._is_owned():
            # Released past this object (a Condition made on the real RLock releases it
            # with its own _release_save): the record is stale.
            self._owner, self._depth = None, 0
            return False
        return self._owner != threading.get_ident()

    def _took(self) -> None:
        if self._rlock:
            self._owner = threading.get_ident()
            self._owner_os = _thread.get_native_id()
            self._depth += 1

    def release(self) -> None:
        if self._rlock and self._held_by_another_on_this_os_thread():
            raise RuntimeError("cannot release un-acquired lock")  # as the RLock says
        self.lock.release()
        if self._rlock and self._depth:
            self._depth -= 1
            if not self._depth:
                self._owner = None
        # Progress only for a simulated thread polling it: a busy loop that takes and
        # releases a free lock (unittest.mock's, in each call of a mock selector) is
        # still a loop that waits for time to pass.
        if self._pollers:
            net = caller_network()
            if net is not None:
                net.kernel.made_progress()

    __enter__ = acquire

    def __exit__(self, *args: object) -> None:
        self.release()

    def locked(self) -> bool:
        return bool(self.lock.locked())

    def __getattr__(self, name: str) -> Any:
        # An RLock's _is_owned (a Condition made on this one asks): a plain Lock has
        # none, and Condition falls back to its own test on the AttributeError.
        if name == "_is_owned":
            return self._rlock_is_owned if self._rlock else getattr(self.lock, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _rlock_is_owned(self) -> bool:
        if self._owner is not None:
            return self._owner == threading.get_ident()
        return bool(self.lock._is_owned())  # held from before, or not at all

    def _at_fork_reinit(self) -> None:
        self.lock._at_fork_reinit()

    def __repr__(self) -> str:
        return f"<GuardedLock {self.label}: {self.lock!r}>"


def register(found: Found) -> GuardedLock | None:
    """Act on one module global: a lock gets a ``GuardedLock`` to stand in for it
    (returned), the conditions of other primitives and executors are registered."""
    value, label = found.value, found.label
    if isinstance(value, _LOCK_TYPES):
        return GuardedLock(value, label)
    if isinstance(value, _REAL_CONDITION):
        _registered[id(value)] = (value, _describe("threading.Condition", label))
    elif isinstance(value, queue.Queue):
        what = _describe(f"queue.{type(value).__name__}", label)
        for condition in (value.not_empty, value.not_full, value.all_tasks_done):
            _registered[id(condition)] = (condition, what)
    elif isinstance(value, _CONDITION_OWNERS):
        owner: Any = value
        condition = owner._cond
        _registered[id(condition)] = (condition, _describe(f"threading.{type(value).__name__}",
                                                           label))
    return None


def forget() -> None:
    _registered.clear()


def _registered_what(obj: object) -> str | None:
    entry = _registered.get(id(obj))
    if entry is None or entry[0] is not obj:
        return None
    return entry[1]


_UNREGISTERED = (
    "a threading.Condition (under an Event, Semaphore, Barrier or queue.Queue) made "
    "outside the simulation: before net.intercept(), by an import, or by a thread "
    "outside it"
)


# Thread.start waits on the new thread's real _started event, which the new OS thread
# sets before it joins the simulation (not holding the turn): a real wait.
# (Compared by file and name: Thread.start may be wrapped when this module is imported.)
_THREADING_FILE = threading.__file__


def _sim_condition_wait(condition: object) -> tuple[Any, str] | None:
    """(the caller's network, what to call ``condition``) when a simulated thread uses
    a real ``Condition``: any one, not only a registered module global (one reached
    through an object, a default argument, a closure, or made by an import during the
    interception); None for every other thread, and for ``Thread.start``'s wait."""
    net = caller_network()
    if net is None:
        return None
    what = _registered_what(condition) if _registered else None
    if what is not None:
        return net, what
    frame: Any = sys._getframe(2)
    for _ in range(3):  # Thread.start -> Event.wait -> Condition.wait (-> here)
        if frame is None:
            break
        code = frame.f_code
        if code.co_name == "start" and code.co_filename == _THREADING_FILE:
            return None
        frame = frame.f_back
    return net, _UNREGISTERED


def condition_patches() -> list[tuple[str, Any]]:
    """The real ``Condition``'s methods that wait in virtual time when a simulated
    thread calls them (a real ``Condition``'s notifier in a simulated thread waits for
    the turn this one would keep): (name, replacement)."""
    real_enter = _REAL_CONDITION.__enter__
    real_wait = _REAL_CONDITION.wait
    real_notify = _REAL_CONDITION.notify

    def __enter__(self: Any) -> bool:
        simulated = _sim_condition_wait(self)
        if simulated is None:
            return bool(real_enter(self))
        net, what = simulated
        return _poll(net.kernel, self._lock, None, what)

    def wait(self: Any, timeout: float | None = None) -> bool:
        simulated = _sim_condition_wait(self)
        if simulated is None:
            return bool(real_wait(self, timeout))
        net, what = simulated
        return _wait(net.kernel, self, timeout, what)

    def notify(self: Any, n: int = 1) -> None:
        waited_on = bool(self._waiters)
        real_notify(self, n)
        if waited_on:  # progress for a waiter, not for a loop that notifies no one
            net = caller_network()
            if net is not None:
                net.kernel.made_progress()

    return [("__enter__", __enter__), ("wait", wait), ("notify", notify)]


def _wait(kernel: Kernel, condition: Any, timeout: float | None, what: str) -> bool:
    """CPython's ``Condition.wait``, with the two blocking acquires polled."""
    if not condition._is_owned():
        raise RuntimeError("cannot wait on un-acquired lock")
    waiter = _thread.allocate_lock()
    waiter.acquire()
    condition._waiters.append(waiter)
    saved_state = condition._release_save()
    notified = False
    try:
        notified = _poll(kernel, waiter, timeout, what)
        return notified
    finally:
        lock = condition._lock
        _poll(kernel, lock, None, what)
        lock.release()  # free now, and no simulated thread runs before the next line
        condition._acquire_restore(saved_state)
        if not notified:
            try:
                condition._waiters.remove(waiter)
            except ValueError:
                pass

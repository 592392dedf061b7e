"""Objects and names bound before ``net.intercept()``, used from a simulated thread.

A module imported before the interception holds what the stdlib handed out then: the
real ``time.monotonic`` under ``from time import monotonic``, a real
``threading.Lock()`` or ``queue.Queue()`` at module level, a real
``ThreadPoolExecutor``. Patching the stdlib's attributes does not reach them. At
install time the interception scans the globals of the loaded modules that are not the
stdlib's, sockfake's or the test machinery's (``scan()``; a module is read once, and
only its hits are looked at again in later interceptions) and:

* rebinds, for the duration, a name bound to a real function or class that the
  interception replaces (``from time import monotonic``, ``from socket import
  create_connection``, ``from threading import Lock``, ``_sleep = time.sleep``) to its
  replacement, which dispatches per calling thread as the module attribute does. A
  name that says it is real is left alone (``from time import perf_counter as
  real_clock``): that is how a test keeps the real clock on purpose;
* puts a ``GuardedLock`` in place of a module-level ``threading.Lock`` or ``RLock``
  (the C lock cannot be patched): for any other thread it is the lock itself; a
  simulated thread that finds it held polls it in virtual time instead of blocking
  the OS thread that holds the simulation's turn;
* registers the condition under a module-level ``Condition``, ``Event``,
  ``Semaphore``, ``Barrier`` or ``queue.Queue``: the real ``Condition``'s ``wait``
  and ``__enter__`` (Python methods, patched on the class) wait in virtual time when a
  simulated thread calls them on a registered one, so ``event.wait()``,
  ``queue.get()`` or ``sem.acquire()`` in one thread and ``set()``, ``put()`` or
  ``release()`` in another work as on the real OS;
* refuses, at once and by name, a simulated thread's ``submit()`` to a
  ``ThreadPoolExecutor`` made outside the simulation (its work queue is a real C
  queue its workers would block on for real), saying what to do.

A poll that can never succeed (the holder is blocked for ever, or is a thread outside
the simulation) ends as the kernel's spin report: ``SimDeadlockError`` naming the
object (``busy-polls (the threading.Lock early.lock, made before net.intercept())``)
and the waiting frames. What is not covered: a primitive reached other than through a
module global (an attribute of an object made at import), a real ``SimpleQueue``, and
names rebound after their module's import.
"""

from __future__ import annotations

import _thread
import queue
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import thread as futures_thread
from typing import Any

from sockfake.network import SockfakeRuntimeError
from sockfake.sim.intercept.dispatch import _REAL_TIME_PACKAGES, REAL as _real, caller_network
from sockfake.sim.kernel.core import Kernel

__all__ = [
    "GuardedLock",
    "Found",
    "condition_patches",
    "forget",
    "register",
    "scan",
    "submit_guard",
]

_LOCK_TYPES: tuple[type, ...] = (
    type(_thread.allocate_lock()),
    type(_real["RLock"]()),
)
_REAL_CONDITION: Any = _real["Condition"]
_CONDITION_OWNERS: tuple[type, ...] = (
    _real["Event"], _real["Semaphore"], _real["Barrier"], queue.Queue,
)
_EXECUTOR = futures_thread.ThreadPoolExecutor
_SKIPPED_TOP_LEVEL = frozenset(getattr(sys, "stdlib_module_names", ())) | _REAL_TIME_PACKAGES | {
    "sockfake", "_pytest", "__editable___sockfake_finder",
}

# Registered conditions and executors: id -> (the object, its label). Held for the
# interception's duration only (install fills it, uninstall empties it).
_registered: dict[int, tuple[object, str]] = {}

# -- the scan ------------------------------------------------------------------------


class Found:
    """One module global worth acting on: ``namespace[name]`` is ``value``."""

    __slots__ = ("namespace", "name", "value", "label")

    def __init__(self, namespace: dict[str, Any], name: str, value: object, label: str) -> None:
        self.namespace = namespace
        self.name = name
        self.value = value
        self.label = label


# Module name -> (its namespace, the names that held something of interest when read),
# and the subset with names: a later scan reads only new modules and these.
_scanned: dict[str, tuple[dict[str, Any], list[str]]] = {}
_with_hits: dict[str, tuple[dict[str, Any], list[str]]] = {}


def _skipped(module_name: str) -> bool:
    return module_name.partition(".")[0] in _SKIPPED_TOP_LEVEL


def _interesting(name: str, value: object, replaced: dict[int, object]) -> bool:
    if id(value) in replaced:
        return "real" not in name.lower()  # real_clock = time.perf_counter: on purpose
    return isinstance(value, _LOCK_TYPES + (_REAL_CONDITION, _EXECUTOR) + _CONDITION_OWNERS)


def scan(replaced: dict[int, object]) -> Iterator[Found]:
    """The module globals bound to a replaced original (``replaced``: id of the
    original -> it) or to a real primitive, in modules that are not the stdlib's.

    A module is read in full once (while it stays in ``sys.modules``); later scans look
    only at the names that held something then (a module binds its globals when it is
    imported), which keeps an interception's start cheap (``benchmarks/bench_intercept.py``)."""
    modules = sys.modules
    for gone in _scanned.keys() - modules.keys():
        del _scanned[gone]
        _with_hits.pop(gone, None)
    for module_name in modules.keys() - _scanned.keys():
        namespace = getattr(modules.get(module_name), "__dict__", None)
        if not isinstance(namespace, dict) or _skipped(module_name):
            _scanned[module_name] = ({}, [])
            continue
        names = [name for name, value in list(namespace.items())
                 if _interesting(name, value, replaced)]
        _scanned[module_name] = (namespace, names)
        if names:
            _with_hits[module_name] = (namespace, names)
    for module_name, (globals_, names) in list(_with_hits.items()):
        if getattr(modules.get(module_name), "__dict__", None) is not globals_:
            del _scanned[module_name], _with_hits[module_name]  # replaced: read again next time
            continue
        for name in names:
            value = globals_.get(name)
            if _interesting(name, value, replaced):
                yield Found(globals_, name, value, f"{module_name}.{name}")


# -- what a simulated thread does with them --------------------------------------------


def _describe(kind: str, label: str) -> str:
    return f"the {kind} {label}, made before net.intercept()"


def _poll(kernel: Kernel, try_once: Callable[[], bool], timeout: float | None, what: str) -> bool:
    """``try_once()`` until it succeeds or ``timeout`` virtual seconds pass: between tries
    other simulated threads run, and with none ready the kernel moves the clock on (or
    reports a spin that cannot end, naming ``what``)."""
    if try_once():
        return True
    deadline = None if timeout is None or timeout < 0 else kernel.now + timeout
    # An event at the deadline, so a poll with nothing else scheduled times out.
    timer = kernel.call_at(deadline, _nothing) if deadline is not None else None
    try:
        while not try_once():
            if deadline is not None and kernel.now >= deadline:
                return False
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
    it may be a simulated one waiting for the turn this one would keep)."""

    def __init__(self, lock: Any, label: str) -> None:
        self.lock = lock
        self.label = label
        kind = "threading.RLock" if "RLock" in type(lock).__name__ else "threading.Lock"
        self._what = _describe(kind, label)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        net = caller_network()
        if net is None or not blocking:
            return bool(self.lock.acquire(blocking, timeout))
        return _poll(net.kernel, lambda: bool(self.lock.acquire(False)),
                     None if timeout == -1 else timeout, self._what)

    def release(self) -> None:
        self.lock.release()
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
            return getattr(self.lock, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

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
    elif isinstance(value, _EXECUTOR):
        _registered[id(value)] = (value, label)
    return None


def forget() -> None:
    _registered.clear()


def _registered_what(obj: object) -> str | None:
    entry = _registered.get(id(obj))
    if entry is None or entry[0] is not obj:
        return None
    return entry[1]


def condition_patches() -> list[tuple[str, Any]]:
    """The real ``Condition``'s methods that wait in virtual time when a simulated
    thread calls them on a registered condition: (name, replacement)."""
    real_enter = _REAL_CONDITION.__enter__
    real_wait = _REAL_CONDITION.wait
    real_notify = _REAL_CONDITION.notify

    def __enter__(self: Any) -> bool:
        what = _registered_what(self) if _registered else None
        net = caller_network() if what is not None else None
        if net is None:
            return bool(real_enter(self))
        return _poll(net.kernel, lambda: bool(self._lock.acquire(False)), None, what or "")

    def wait(self: Any, timeout: float | None = None) -> bool:
        what = _registered_what(self) if _registered else None
        net = caller_network() if what is not None else None
        if net is None:
            return bool(real_wait(self, timeout))
        return _wait(net.kernel, self, timeout, what or "")

    def notify(self: Any, n: int = 1) -> None:
        real_notify(self, n)
        if _registered and _registered_what(self) is not None:
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
        notified = _poll(kernel, lambda: bool(waiter.acquire(False)), timeout, what)
        return notified
    finally:
        lock = condition._lock
        _poll(kernel, lambda: bool(lock.acquire(False)), None, what)
        lock.release()  # free now, and no simulated thread runs before the next line
        condition._acquire_restore(saved_state)
        if not notified:
            try:
                condition._waiters.remove(waiter)
            except ValueError:
                pass


def submit_guard(real_submit: Callable[..., Any]) -> Any:
    """``ThreadPoolExecutor.submit``: a simulated thread's submit to a pool made outside
    the simulation fails at once, naming the pool and what to do."""
    sim_queue = _real["SimpleQueue"]

    def submit(self: Any, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        if isinstance(self._work_queue, sim_queue) and caller_network() is not None:
            label = _registered_what(self)
            where = (f"{label} (made at import, before net.intercept())" if label is not None
                     else f"{self!r} (made before net.intercept() or outside the simulation)")
            name = label.rpartition(".") if label is not None else None
            fix = (f"monkeypatch.setattr({name[0]}, {name[2]!r}, ThreadPoolExecutor(...))"
                   if name is not None else "a new ThreadPoolExecutor")
            raise SockfakeRuntimeError(
                f"a simulated thread submitted work to the ThreadPoolExecutor {where}: its "
                "workers would wait on a real queue and stall the simulation. Make the "
                "executor inside the interception (in the test or a fixture), or replace "
                f"it for the test with {fix} inside net.intercept()"
            )
        return real_submit(self, fn, *args, **kwargs)

    submit.__doc__ = real_submit.__doc__
    return submit

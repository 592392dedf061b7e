"""The watchdog: a real thread that notices a turn held without calling in.

One thread watches every open network of the process (``_Watcher``), looking at
each every ``RootWatchdog.period``; it outlives the last network by
``WATCHER_IDLE_EXIT`` seconds, so a run of tests or seeds starts and joins no thread
per network.

Two stalls the scheduler itself cannot see, because the thread holding the turn is
blocked outside the simulation (``time.sleep``, ``queue.Queue.get``, a real lock):

- Another simulated thread holds it while the main thread waits for its turn: the
  watchdog fails the run (``Kernel.stall_from_outside``) and hands the main thread the
  turn, where its ``wait()`` raises ``SimStallError``. (Without a watchdog thread the
  main thread watches itself, with a timed wait; see ``Kernel._await_turn``.)
- The main thread itself holds it, blocked on something real (a result a simulated
  thread would produce), and every simulated thread starves: the watchdog interrupts
  the main thread with ``SIGUSR2``, whose handler raises ``SimStallError`` there (real
  lock waits, sleeps and reads are interruptible on POSIX). Where no signal can be used
  (the network's main thread is not the process's main thread, or someone else handles
  the signal), it prints the report instead.

Only real time with no call into the simulation and no switch counts (the kernel's
``calls``), so a thread busy in the simulation's own work is never taken for stalled.
The signal is used only while some network needs it and only if nobody else
handles it; the previous disposition is restored when the last network closes.
"""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sockfake.errors import SimStallError

if TYPE_CHECKING:
    from sockfake.sim.kernel.core import Kernel

__all__ = ["RootWatchdog"]

_STALL_SIGNAL = getattr(signal, "SIGUSR2", None)
# Captured at import: net.intercept() replaces them for simulated threads.
_allocate_lock = _thread.allocate_lock
_monotonic = time.monotonic
_users: list[RootWatchdog] = []
_previous_handler: Any = None


class RootWatchdog:
    """Watches one kernel's main thread, from the process's one watcher thread."""

    def __init__(self, kernel: Kernel, start_thread: Callable[[threading.Thread], None]) -> None:
        self.kernel = kernel
        self.stall: SimStallError | None = None
        # The watcher thread runs for it, so the main thread need not watch (read on
        # every handoff back to the main thread: a plain attribute).
        self.watching = False
        # Real seconds between two looks: four a stall timeout, within 10-250 ms.
        self.period = min(0.25, max(0.01, kernel.stall_timeout / 4))
        self._uses_signal = _acquire_signal(self)
        try:
            _watcher.add(self, start_thread)
        except RuntimeError:
            # No thread to spare: the main thread watches the others itself (a timed
            # wait for its turn); a stall of its own goes unnoticed.
            self._release_signal()
            return
        self.watching = True

    def stop(self) -> None:
        """Stop watching and give the signal back if unused. Once this returns, no
        look at this kernel is under way (the watcher looks under the lock taken here)."""
        self.watching = False
        _watcher.remove(self)
        self._release_signal()

    def _release_signal(self) -> None:
        if self in _users:
            _users.remove(self)
        self._uses_signal = False
        _restore_signal()

    def look(self) -> None:
        """One look at the kernel (the watcher thread's, every ``period``)."""
        kernel = self.kernel
        root = kernel.root
        if kernel.closed or kernel.failure is not None or self.stall is not None:
            return
        holder = kernel.current
        if holder is not root:
            # Another thread holds the turn while the main thread waits for it.
            idle = kernel.real_seconds_since_last_call()
            if idle > kernel.stall_timeout:
                kernel.stall_from_outside(holder, idle)
            return
        if root.state != "running":
            return
        idle = kernel.real_seconds_since_last_call()
        if idle <= kernel.stall_timeout:
            return
        if not kernel.has_pending_work():
            return  # nobody starves: the main thread may wait on the real world
        if not kernel.root_still_in_caller():
            return  # the code that used this network has moved on: left behind
        self.stall = SimStallError(kernel.stall_message(root, idle))
        ident = root.thread.ident if root.thread is not None else None
        if (
            self._uses_signal
            and _STALL_SIGNAL is not None
            and ident is not None
            and ident == threading.main_thread().ident
        ):
            signal.pthread_kill(ident, _STALL_SIGNAL)
        else:
            print(self.stall, file=sys.__stderr__, flush=True)


# How long the watcher thread outlives the last network it watched (real seconds): a
# run of tests, or of a campaign's seeds, each its own network, keeps one thread
# instead of starting and joining one per network.
WATCHER_IDLE_EXIT = 1.0


class _Watcher:
    """The process's one watcher thread, looking at every open kernel's watchdog.

    Its locks are raw ``_thread`` locks made at import: never a simulation's."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._lock = _allocate_lock()  # guards the fields; held for a round of looks
        self._wake = _allocate_lock()  # held: the thread's timed sleep; released: wake it
        self._wake.acquire()
        self._watchdogs: list[RootWatchdog] = []
        self._running = False
        self._period = WATCHER_IDLE_EXIT

    def add(self, watchdog: RootWatchdog, start_thread: Callable[[threading.Thread], None],
            ) -> None:
        """Watch ``watchdog``'s kernel; starts the thread if none runs (RuntimeError:
        none could be started)."""
        with self._lock:
            if not self._running:
                thread = threading.Thread(target=self._run, name=WATCHER_NAME, daemon=True)
                start_thread(thread)  # raises before anything changes
                self._running = True
            self._watchdogs.append(watchdog)
            sooner = watchdog.period < self._period
        if sooner:
            self._wake_up()  # it sleeps longer than this kernel's period

    def remove(self, watchdog: RootWatchdog) -> None:
        with self._lock:
            if watchdog in self._watchdogs:
                self._watchdogs.remove(watchdog)

    def _wake_up(self) -> None:
        try:
            self._wake.release()
        except RuntimeError:  # already released: it wakes anyway
            pass

    def _run(self) -> None:
        idle_since: float | None = None
        while True:
            with self._lock:
                if self._watchdogs:
                    idle_since = None
                    for watchdog in list(self._watchdogs):
                        watchdog.look()
                    self._period = min(watchdog.period for watchdog in self._watchdogs)
                else:
                    now = _monotonic()
                    if idle_since is None:
                        idle_since = now
                    elif now - idle_since >= WATCHER_IDLE_EXIT:
                        self._running = False
                        return
                    self._period = WATCHER_IDLE_EXIT / 4
                period = self._period
            self._wake.acquire(True, period)


# The watcher thread's name (intercept/threading_names.py hides it).
WATCHER_NAME = "sockfake-watchdog"

_watcher = _Watcher()
if hasattr(os, "register_at_fork"):
    # A child has no watcher thread: its first network starts one.
    os.register_at_fork(after_in_child=_watcher._reset)


def _on_stall_signal(signum: int, frame: Any) -> None:
    for watchdog in list(_users):  # noqa: PERF101 - a snapshot: the handler interrupts any code
        error = watchdog.stall
        kernel = watchdog.kernel
        if error is not None and kernel.failure is None and not kernel.closed:
            kernel.failure = error
            raise error


def _acquire_signal(watchdog: RootWatchdog) -> bool:
    global _previous_handler
    if _STALL_SIGNAL is None or threading.current_thread() is not threading.main_thread():
        return False
    if not _users:
        try:
            current = signal.getsignal(_STALL_SIGNAL)
            if current not in (signal.SIG_DFL, None):
                return False
            _previous_handler = signal.signal(_STALL_SIGNAL, _on_stall_signal)
        except (ValueError, OSError):
            return False
    _users.append(watchdog)
    return True


def _restore_signal() -> None:
    global _previous_handler
    for watchdog in [w for w in _users if w.kernel.closed]:
        _users.remove(watchdog)
    if _users or _previous_handler is None or _STALL_SIGNAL is None:
        return
    if threading.current_thread() is threading.main_thread():
        try:
            signal.signal(_STALL_SIGNAL, _previous_handler)
        except (ValueError, OSError):
            return
        _previous_handler = None

"""The watchdog: a real thread that notices a turn held without calling in.

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

import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sockfake.errors import SimStallError

if TYPE_CHECKING:
    from sockfake.sim.kernel.core import Kernel

__all__ = ["RootWatchdog"]

_STALL_SIGNAL = getattr(signal, "SIGUSR2", None)
_users: list[RootWatchdog] = []
_previous_handler: Any = None


class RootWatchdog:
    """Watches one kernel's main thread from a daemon thread of its own."""

    def __init__(self, kernel: Kernel, start_thread: Callable[[threading.Thread], None]) -> None:
        self.kernel = kernel
        self.stall: SimStallError | None = None
        self._stop = threading.Event()
        # The watchdog's thread runs, so the main thread need not watch (read on
        # every handoff back to the main thread: a plain attribute).
        self.watching = False
        self._thread: threading.Thread | None = None
        self._uses_signal = _acquire_signal(self)
        thread = threading.Thread(target=self._watch, name="sockfake-watchdog", daemon=True)
        try:
            start_thread(thread)
        except RuntimeError:
            # No thread to spare: the main thread watches the others itself (a timed
            # wait for its turn); a stall of its own goes unnoticed.
            self._release_signal()
            return
        self._thread = thread
        self.watching = True

    def stop(self) -> None:
        """Stop watching (the thread wakes at once) and give the signal back if unused."""
        self.watching = False
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)
        self._release_signal()

    def _release_signal(self) -> None:
        if self in _users:
            _users.remove(self)
        self._uses_signal = False
        _restore_signal()

    def _watch(self) -> None:
        kernel = self.kernel
        period = min(0.25, max(0.01, kernel.stall_timeout / 4))
        while not self._stop.wait(period):
            root = kernel.root
            if kernel.closed or kernel.failure is not None or self.stall is not None:
                continue
            holder = kernel.current
            if holder is not root:
                # Another thread holds the turn while the main thread waits for it.
                idle = kernel.real_seconds_since_last_call()
                if idle > kernel.stall_timeout:
                    kernel.stall_from_outside(holder, idle)
                continue
            if root.state != "running":
                continue
            idle = kernel.real_seconds_since_last_call()
            if idle <= kernel.stall_timeout:
                continue
            if not kernel.has_pending_work():
                continue  # nobody starves: the main thread may wait on the real world
            if not kernel.root_still_in_caller():
                continue  # the code that used this network has moved on: left behind
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

"""What the kernel says when a run cannot go on: thread dumps, wait-for cycles, stalls.

A dump lists every live simulated thread, what it waits on (``lock-3 (created at
app.py:12, held by Thread-2)``), the innermost frames of its own code at the blocking
call, and the wait-for cycle when threads wait on each other through locks they hold or
joins. Frames are read live (``sys._current_frames``): a blocked thread is parked in
the kernel, so nothing is captured on the hot path.
"""

from __future__ import annotations

import sys
import traceback
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sockfake.sim.kernel.core import Kernel, SimThread

__all__ = ["dump", "stall_message", "wait_for_cycle"]


def dump(kernel: Kernel) -> str:
    """Every live simulated thread: what it waits on, where (its own code's frames
    at the blocking call), and the wait-for cycle if threads wait on each other."""
    lines = [f"virtual time {kernel.now:.6f} s; simulated threads:"]
    frames = sys._current_frames()
    for thread in kernel.threads:
        if thread.state == "finished":
            continue
        if thread.state != "blocked":
            lines.append(f"  {thread.name}: {thread.state}")
            continue
        what = thread.waiting_on
        if callable(what):
            what = what()
        lines.append(f"  {thread.name}: blocked, waiting on {what}")
        ident = thread.thread.ident if thread.thread is not None else None
        if ident is not None and ident in frames:
            lines.extend(f"      {line}" for line in _user_frames(frames[ident]))
    cycle = wait_for_cycle(kernel.threads)
    if cycle:
        lines.append("wait-for cycle: " + " -> ".join(cycle))
    return "\n".join(lines)


def wait_for_cycle(threads: list[SimThread]) -> list[str]:
    """Threads that wait on each other (through locks they hold, or joins)."""
    from sockfake.sim.kernel.core import SimThread  # the kernel imports this module

    def next_of(thread: SimThread) -> tuple[str, SimThread] | None:
        on = thread.blocked_on
        if thread.state != "blocked" or on is None:
            return None
        if isinstance(on, SimThread):
            return f"join {on.name}", on
        owner = getattr(on, "owner", None)
        if isinstance(owner, SimThread):
            return f"{getattr(on, 'name', 'lock')} held by {owner.name}", owner
        return None

    for start in threads:
        path: list[SimThread] = []
        steps: list[str] = []
        thread: SimThread | None = start
        while thread is not None and thread not in path:
            path.append(thread)
            hop = next_of(thread)
            if hop is None:
                thread = None
                break
            steps.append(hop[0])
            thread = hop[1]
        if thread is not None and thread in path:
            first = path.index(thread)
            cycle = [f"{t.name} (waits on {step})" for t, step in
                     zip(path[first:], steps[first:], strict=True)]
            return cycle + [thread.name]
    return []


def stall_message(kernel: Kernel, holder: SimThread, held: float) -> str:
    stack = ""
    inside = False
    if holder.thread is not None and holder.thread.ident is not None:
        frame = sys._current_frames().get(holder.thread.ident)
        if frame is not None:
            stack = "".join(traceback.format_stack(frame))
            inside = frame.f_globals.get("__name__", "").startswith("sockfake.")
    if inside:
        # The innermost frame is the simulation's own: do not blame the user's code.
        why = (
            "while inside sockfake's own code: the simulation itself is stuck there "
            "(please report it, with this message)."
        )
    else:
        why = (
            "without calling into the simulation: it is blocked outside it "
            "(time.sleep, queue.Queue.get, a threading.Lock or Event?). Use the "
            "network's sleep(), event(), lock() and queue() instead."
        )
    return (
        f"simulated thread {holder.name!r} has held the turn for {held:.1f} s of real "
        f"time {why}\n"
        + dump(kernel)
        + ("\nits stack:\n" + stack if stack else "")
    )


def _user_frames(frame: Any, keep: int = 3) -> list[str]:
    """The innermost ``keep`` frames of user code (not sockfake's, not threading's)."""
    found: list[str] = []
    while frame is not None and len(found) < keep:
        module = frame.f_globals.get("__name__", "")
        if not module.startswith(("sockfake.", "threading", "queue", "selectors", "socket")):
            code = frame.f_code
            found.append(f"at {code.co_filename}:{frame.f_lineno} in {code.co_name}")
        frame = frame.f_back
    return found

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

from sockfake.sim.kernel.threads import SimThread

if TYPE_CHECKING:
    from sockfake.sim.kernel.core import Kernel

__all__ = ["dump", "spin_message", "stall_message", "wait_for_cycle"]


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


def spin_message(kernel: Kernel, thread: SimThread, doing: str, why: str) -> str:
    """``thread`` (the caller) ``doing`` (``busy-polls (select(0))``, ``reads the
    clock``) in a loop, and nothing can come of it (``why``): where it spins (its own
    code's frames; for an event loop, its tasks) and what to do instead."""
    if "clock" in doing:
        advice = (
            "Virtual time moves when every simulated thread waits; a loop on the clock "
            "(while time.monotonic() < deadline) with nothing scheduled is charged 1 ms "
            "per read, up to the network's spin_budget: wait instead (time.sleep(), a "
            "timeout, an event), or raise spin_budget= for a longer loop."
        )
    else:
        advice = (
            "Nothing the poll waits for can happen: wait instead (a blocking call or a "
            "timeout), or check what should have made it ready."
        )
    lines = [f"spin: {thread.name!r} {doing} in a loop and nothing else happens; {why}, "
             f"so the loop can never end. {advice}"]
    where = _user_frames(sys._getframe(0), keep=6, skip=("asyncio.",))
    lines.extend(f"  spinning {line}" if n == 0 else f"      {line}"
                 for n, line in enumerate(where))
    lines.extend(_asyncio_tasks())
    return "\n".join(lines) + "\n" + dump(kernel)


def _asyncio_tasks(keep: int = 8) -> list[str]:
    """The calling thread's running asyncio loop's tasks and where each is (a task
    that spins is among them: its coroutine is not on the thread's stack)."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return []
    loop = asyncio._get_running_loop()
    if loop is None:
        return []
    tasks = sorted(asyncio.all_tasks(loop), key=lambda task: task.get_name())
    lines = [f"  its event loop's tasks ({len(tasks)}):"] if tasks else []
    for task in tasks[:keep]:
        coro = task.get_coro()
        frame = getattr(coro, "cr_frame", None)
        name = getattr(coro, "__qualname__", repr(coro))
        place = (f" at {frame.f_code.co_filename}:{frame.f_lineno}" if frame is not None
                 else "")
        lines.append(f"      {task.get_name()}: {name}(){place}")
    return lines


def _user_frames(frame: Any, keep: int = 3, skip: tuple[str, ...] = ()) -> list[str]:
    """The innermost ``keep`` frames of user code (not sockfake's, not threading's)."""
    found: list[str] = []
    skipped = ("sockfake.", "threading", "queue", "selectors", "socket", *skip)
    while frame is not None and len(found) < keep:
        module = frame.f_globals.get("__name__", "")
        if not module.startswith(skipped):
            code = frame.f_code
            found.append(f"at {code.co_filename}:{frame.f_lineno} in {code.co_name}")
        frame = frame.f_back
    return found

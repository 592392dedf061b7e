"""Switch points inside handler code: every line (or bytecode) may hand the turn over.

Opt-in (``SimNetwork(switch_points="lines"|"opcodes")``) with an exploring scheduler
(``random``, ``pct``): a tracer on each simulated thread calls the kernel's switch point
on every line, or every bytecode, of code outside sockfake and the standard library.
A race with no simulated call in it (``self.server.hits += 1`` from two handlers: one
line, several bytecodes) then has a schedule that shows it. It costs speed (a Python
call per line or bytecode of user code); ``benchmarks/bench_races.py`` measures it.
``sys.settrace`` works on every supported Python; on 3.12+ ``sys.monitoring`` would be
cheaper, at the cost of a second implementation.

A limit of ``"opcodes"`` on 3.12+: the first run of freshly loaded code reports fewer
bytecode events than later runs (the interpreter instruments a code object for opcode
events when a frame first asks), so the same seed can schedule the very first run of a
handler differently from its reruns. Runs after the first are deterministic; explore
after one warm-up run. ``"lines"`` has no such difference.
"""

from __future__ import annotations

import os
import sysconfig
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sockfake.sim.kernel.core import Kernel

__all__ = ["tracer"]

Tracer = Callable[[FrameType, str, Any], Any]

_SKIP = tuple(
    {
        str(Path(__file__).resolve().parents[2]) + os.sep,  # sockfake (this is sim/kernel/)
        sysconfig.get_paths()["stdlib"] + os.sep,
        sysconfig.get_paths()["platstdlib"] + os.sep,
    }
)


def tracer(kernel: Kernel, *, opcodes: bool) -> Tracer:
    """A ``sys.settrace`` function that makes lines (or bytecodes) switch points."""
    event_name = "opcode" if opcodes else "line"

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if event == event_name:
            kernel.preemption_point(event_name)
        return local

    def global_(frame: FrameType, event: str, arg: Any) -> Any:
        filename = frame.f_code.co_filename
        if filename.startswith(_SKIP) or filename.startswith("<"):
            return None
        if opcodes:
            frame.f_trace_opcodes = True
            frame.f_trace_lines = False
        return local

    return global_

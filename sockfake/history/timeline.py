"""A history as text: one row per operation, its interval drawn on a shared time axis.

What a failed check prints. Each row is one operation, in invocation order: its
process, its times, a bar from invocation to completion (``>`` runs off the end: the
outcome is unknown), what it was and what it returned, and a mark from the checker
(its place in the linearization found so far, or why it is the culprit).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from sockfake.history.operations import Operation

__all__ = ["timeline"]


def _time(value: float) -> str:
    return "?" if math.isinf(value) else f"{value:.6f}"


def timeline(operations: Sequence[Operation], marks: Mapping[int, str] | None = None,
             width: int = 40) -> str:
    """The operations as rows on one time axis; ``marks`` adds a note by operation index."""
    if not operations:
        return "(no operations)"
    marks = marks or {}
    ops = sorted(operations, key=lambda op: (op.invoke, op.index))
    finite = [t for op in ops for t in (op.invoke, op.complete) if not math.isinf(t)]
    start, end = min(finite), max(finite)
    span = (end - start) or 1.0

    def column(t: float) -> int:
        return min(width - 1, int((t - start) / span * (width - 1)))

    process_width = max(len("process"), *(len(str(op.process)) for op in ops))
    header = (f"{'#':>4}  {'process':<{process_width}}  {'invoke':>12}  {'complete':>12}  "
              f"{'|' + 'time'.center(width) + '|'}  operation")
    lines = [header]
    for op in ops:
        left = column(op.invoke)
        bar = [" "] * width
        if math.isinf(op.complete):
            for i in range(left, width):
                bar[i] = "-"
            bar[left], bar[width - 1] = "[", ">"
        else:
            right = column(op.complete)
            for i in range(left, right + 1):
                bar[i] = "="
            bar[left] = "["
            bar[right] = "]" if right > left else "|"
        mark = marks.get(op.index, "")
        lines.append(
            f"{op.index:>4}  {op.process!s:<{process_width}}  {_time(op.invoke):>12}  "
            f"{_time(op.complete):>12}  |{''.join(bar)}|  {op.describe()}"
            + (f"   <- {mark}" if mark else "")
        )
    return "\n".join(lines)

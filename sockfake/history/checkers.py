"""Checks simpler than linearizability, each naming the operations that break it.

- ``acknowledged_writes_lost``: a write the system acknowledged is later gone: a read
  that began after the write completed returns a value that the write had already
  overwritten (an older write's, or the initial value). Needs each write of a key to
  write a distinct value, so a value names its write.
- ``monotonic_reads``: a process's reads of a key never go back: each returns a value
  no older than the one before, by the values' order (counters, versions) or by a
  ``version`` function.

Both take a history (``History`` or operations) and return a ``CheckResult``, true
when nothing is wrong; its ``describe()`` prints the culprits on a timeline.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sockfake.errors import SockfakeValueError
from sockfake.history.operations import History, Operation
from sockfake.history.timeline import timeline

__all__ = ["CheckResult", "acknowledged_writes_lost", "monotonic_reads"]

READS = ("read", "get")
WRITES = ("write", "put")


@dataclass
class CheckResult:
    """One check's verdict: true when ``problems`` is empty."""

    name: str
    operations: list[Operation]
    problems: list[str] = field(default_factory=list)
    culprits: dict[int, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return not self.problems

    @property
    def ok(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        if not self.problems:
            return f"{self.name}: ok ({len(self.operations)} operations)"
        return (f"{self.name}: {len(self.problems)} problem(s)\n"
                + "\n".join(f"  - {p}" for p in self.problems) + "\n"
                + timeline(self.operations, self.culprits))

    def __str__(self) -> str:
        return self.describe()


def _operations(history: History | Iterable[Operation]) -> list[Operation]:
    return history.operations if isinstance(history, History) else list(history)


def acknowledged_writes_lost(history: History | Iterable[Operation],
                             initial: Hashable = None) -> CheckResult:
    """Reads that show an acknowledged write was lost (see the module docstring)."""
    ops = _operations(history)
    result = CheckResult("no acknowledged write lost", ops)
    writers: dict[tuple[Hashable, object], Operation] = {}
    for op in ops:
        if op.f in WRITES and op.status != "fail":
            slot = (op.key, op.value)
            if slot in writers or op.value == initial:
                raise SockfakeValueError(
                    f"acknowledged_writes_lost needs distinct values per key: operation "
                    f"{op.index} writes {op.value!r} to {op.key!r}, as "
                    + (f"operation {writers[slot].index} does" if slot in writers
                       else "the initial value is")
                )
            writers[slot] = op
    acked = [op for op in ops if op.f in WRITES and op.status == "ok"]
    for read in ops:
        if read.f not in READS or read.status != "ok":
            continue
        source = writers.get((read.key, read.output))
        if source is None and read.output != initial:
            result.problems.append(
                f"operation {read.index} read {read.output!r} from {read.key!r}, which no "
                "operation wrote"
            )
            result.culprits[read.index] = "reads a value nobody wrote"
            continue
        for write in acked:
            if write.key != read.key or not write.precedes(read):
                continue
            # The read saw a state older than ``write``: the initial value, or a write
            # that completed before ``write`` began.
            if source is None or source.precedes(write):
                what = "the initial value" if source is None else \
                    f"the value of operation {source.index}"
                result.problems.append(
                    f"write {write.index} ({write.describe()}) was acknowledged at "
                    f"{write.complete:.6f}, yet read {read.index} (invoked at "
                    f"{read.invoke:.6f}) returned {what}, which it overwrote"
                )
                result.culprits[write.index] = "acknowledged, then lost"
                result.culprits[read.index] = f"reads over write {write.index}"
                break
    return result


def monotonic_reads(history: History | Iterable[Operation],
                    version: Callable[[Any], Any] | None = None) -> CheckResult:
    """Reads of each process, per key, that go back (see the module docstring).

    ``version(output)`` gives an orderable version of a read's output (default: the
    output itself; a read of None, nothing written yet, is older than any other)."""
    ops = _operations(history)
    result = CheckResult("reads are monotonic", ops)
    order = version if version is not None else (lambda output: output)
    last: dict[tuple[Hashable, Hashable], Operation] = {}
    for read in sorted(ops, key=lambda op: (op.invoke, op.index)):
        if read.f not in READS or read.status != "ok":
            continue
        slot = (read.process, read.key)
        previous = last.get(slot)
        if previous is not None and _older(read.output, previous.output, order):
            result.problems.append(
                f"process {read.process!r} read {read.output!r} from {read.key!r} "
                f"(operation {read.index}) after reading {previous.output!r} "
                f"(operation {previous.index})"
            )
            result.culprits[previous.index] = "read first"
            result.culprits[read.index] = f"goes back from operation {previous.index}"
        last[slot] = read
    return result


def _older(output: object, before: object, order: Callable[[Any], Any]) -> bool:
    if output is None:
        return before is not None
    if before is None:
        return False
    try:
        return bool(order(output) < order(before))
    except TypeError:
        raise SockfakeValueError(
            f"monotonic_reads cannot order the reads {before!r} and {output!r}: pass "
            "version= (a function from a read's output to an orderable version)"
        ) from None


"""Operations and histories: what clients asked of a system and what they were told.

A history is the raw material of every checker in this package: each client
operation has an invocation (who asked what, when) and a completion: ``ok`` (it
happened, with this output), ``fail`` (it certainly did not happen) or ``unknown`` (a
timeout, a reset: it may have happened, at any time after its invocation, or never).
Times are whatever clock the recorder is given: under a sockfake simulation, the
virtual clock, so a history replays with its seed. Pure code: no simulation needed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from sockfake.errors import SockfakeRuntimeError, SockfakeTypeError, SockfakeValueError

__all__ = ["History", "Operation", "Status", "Pending"]

Status = Literal["ok", "fail", "unknown"]
STATUSES: tuple[Status, ...] = ("ok", "fail", "unknown")
# Operations whose output is an answer even when it is None (nothing there yet).
ANSWERING = frozenset({"read", "get", "dequeue", "contains"})


@dataclass(frozen=True)
class Operation:
    """One completed client operation.

    ``f`` names the operation (``"read"``, ``"write"``, ``"cas"``, ``"put"``,
    ``"get"``, ``"enqueue"``, ``"dequeue"``, ``"add"``, ``"contains"``...; the model
    decides which it knows); ``key`` the object it is on (None: the one object);
    ``value`` its input; ``output`` what the client was told (None while unknown).
    ``complete`` is ``math.inf`` for an unknown outcome: it may take effect any time
    after ``invoke``.
    """

    index: int
    process: Hashable
    f: str
    key: Hashable
    value: object
    output: object
    invoke: float
    complete: float
    status: Status

    def describe(self) -> str:
        """``write(x, 3) -> ok``: the operation as a timeline prints it."""
        args = [repr(a) for a in (self.key, self.value) if a is not None]
        call = f"{self.f}({', '.join(args)})"
        if self.status == "ok":
            shown = self.output is not None or self.f in ANSWERING
            return f"{call} -> {self.output!r}" if shown else f"{call} -> ok"
        return f"{call} -> {self.status}"

    def precedes(self, other: Operation) -> bool:
        """Did this operation complete before ``other`` was invoked (real-time order)?"""
        return self.complete < other.invoke


@dataclass
class Pending:
    """An invoked operation awaiting its completion (what ``History.invoke`` returns)."""

    index: int
    process: Hashable
    f: str
    key: Hashable
    value: object
    invoke: float
    done: bool = False


class History:
    """A recorder of client operations: ``invoke``, then ``ok``, ``fail`` or ``unknown``.

    ``clock`` reads the time of each event (default ``time.monotonic``, which is the
    virtual clock in a simulated thread under interception). Operations still pending
    when the history is read count as ``unknown``: a client that never heard back
    cannot say whether its operation happened.

        history = History()
        op = history.invoke("client-1", "write", 3, key="x")
        ...
        history.ok(op)                  # or history.ok(op, output) for a read
    """

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock if clock is not None else time.monotonic
        self._pending: list[Pending] = []
        self._completed: dict[int, tuple[object, float, Status]] = {}
        self._running: dict[Hashable, Pending] = {}  # each process's latest operation

    def invoke(self, process: Hashable, f: str, value: object = None, *,
               key: Hashable = None) -> Pending:
        """Record the start of an operation; pass what it returns to ``ok``/``fail``/``unknown``."""
        if not isinstance(f, str) or not f:
            raise SockfakeTypeError(f"an operation's name f must be a non-empty str, not {f!r}")
        earlier = self._running.get(process)
        if earlier is not None and not earlier.done:
            raise SockfakeValueError(
                f"process {process!r} invoked {f} while its {earlier.f} (operation "
                f"{earlier.index}) is still pending: a process runs one operation at a "
                "time; use a new process name for a concurrent client (or complete the "
                "earlier one with unknown())"
            )
        op = Pending(len(self._pending), process, f, key, value, float(self._clock()))
        self._pending.append(op)
        self._running[process] = op
        return op

    def ok(self, op: Pending, output: object = None) -> None:
        """The operation happened, and the client was told ``output``."""
        self._complete(op, output, "ok")

    def fail(self, op: Pending) -> None:
        """The operation certainly did not happen (the server refused it)."""
        self._complete(op, None, "fail")

    def unknown(self, op: Pending) -> None:
        """The client cannot tell whether the operation happened (a timeout, a reset)."""
        self._complete(op, None, "unknown")

    def _complete(self, op: Pending, output: object, status: Status) -> None:
        if not isinstance(op, Pending) or op.index >= len(self._pending) or \
                self._pending[op.index] is not op:
            raise SockfakeTypeError(f"{op!r} is not an operation this history invoked")
        if op.done:
            raise SockfakeRuntimeError(f"operation {op.index} ({op.f}) is already complete")
        op.done = True
        self._completed[op.index] = (output, float(self._clock()), status)

    @property
    def operations(self) -> list[Operation]:
        """Every operation, in invocation order; pending ones as ``unknown``."""
        result = []
        for op in self._pending:
            output, complete, status = self._completed.get(op.index, (None, math.inf, "unknown"))
            if status == "unknown":
                complete = math.inf
            result.append(Operation(op.index, op.process, op.f, op.key, op.value, output,
                                    op.invoke, complete, status))
        return result

    def __iter__(self) -> Iterator[Operation]:
        return iter(self.operations)

    def __len__(self) -> int:
        return len(self._pending)

    @staticmethod
    def of(operations: Iterable[tuple[Hashable, str, object, object, float, float, str]]
           | Iterable[Operation]) -> list[Operation]:
        """A history from plain data: ``(process, f, value, output, invoke, complete,
        status)`` tuples (key None) or ``Operation``s, checked and numbered."""
        result: list[Operation] = []
        for item in operations:
            key: Hashable = None
            if isinstance(item, Operation):
                process, f, key, value, output = (item.process, item.f, item.key, item.value,
                                                  item.output)
                invoke, complete, status = item.invoke, item.complete, str(item.status)
            else:
                process, f, value, output, invoke, complete, status = item
            if status not in STATUSES:
                raise SockfakeValueError(
                    f"status must be one of {', '.join(STATUSES)}, not {status!r}"
                )
            if status == "unknown":
                complete = math.inf
            if not complete >= invoke:
                raise SockfakeValueError(
                    f"operation {f} of {process!r} completes ({complete}) before it is "
                    f"invoked ({invoke})"
                )
            checked: Status = "ok" if status == "ok" else "fail" if status == "fail" else "unknown"
            result.append(Operation(len(result), process, f, key, value, output,
                                    float(invoke), float(complete), checked))
        return result

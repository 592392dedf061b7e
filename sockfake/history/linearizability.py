"""Is a concurrent history linearizable? Wing and Gong's search with Lowe's memoisation.

A history is linearizable if every operation can be given one instant between its
invocation and its completion such that the operations, in the order of those
instants, are what one correct copy of the object (the ``Model``) would answer. The
search (Wing & Gong 1993, with the cache of Lowe 2017, as in Porcupine) walks the
invocations and completions in time order: at an invocation it tries to linearize
that operation now (the model accepts its output), remembering (operations done,
state) pairs already explored so no state is searched twice; at a completion of an
operation not yet linearized it backtracks. Porcupine's other optimisation is here
too: a model may split a history into independent parts (a key-value store's keys),
each checked alone.

Operations that ``fail`` did not happen and are left out. An ``unknown`` one may take
effect at any time after its invocation (its completion is at infinity) and its
output is not checked; an unknown one that changes nothing (a read) is left out.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field

from sockfake.errors import SockfakeValueError
from sockfake.history.models import MODELS, Model
from sockfake.history.operations import History, Operation
from sockfake.history.timeline import timeline

__all__ = ["LinearizabilityResult", "check_linearizable"]


@dataclass
class LinearizabilityResult:
    """What ``check_linearizable`` found; true when the history is linearizable.

    On failure: ``linearized``, the longest order of operations the search could give
    a place to (in that order); ``state``, the model's state after them; ``stuck``, the
    operations that completed without any order giving them a place; ``operations``,
    the part of the history that failed (a key's, under a per-key model).
    """

    ok: bool
    model: str
    operations: list[Operation] = field(default_factory=list)
    linearized: list[Operation] = field(default_factory=list)
    state: object = None
    stuck: list[Operation] = field(default_factory=list)
    explored: int = 0

    def __bool__(self) -> bool:
        return self.ok

    def describe(self, context: int = 6) -> str:
        """A counterexample as a timeline (or one line when linearizable): the operations
        that could not be placed, those running with them, and the ``context`` last
        linearized before them (earlier ones are summed up in a line)."""
        if self.ok:
            return f"linearizable ({self.model} model; {self.explored} states explored)"
        place = {op.index: n for n, op in enumerate(self.linearized)}
        marks = {op.index: f"linearized {n + 1}" for n, op in enumerate(self.linearized)}
        for op in self.stuck:
            marks[op.index] = (f"NOT LINEARIZABLE: no order of the operations before it "
                               f"explains this (the {self.model} after the "
                               f"{len(self.linearized)} linearized: {self.state!r})")
        tail = self.linearized[-context:] if context else []
        start = min([op.invoke for op in tail + self.stuck])
        end = max(op.complete for op in self.stuck)
        shown = [op for op in self.operations
                 if (op.index in place and place[op.index] >= len(self.linearized) - context)
                 or (op.index not in place and op.complete >= start and op.invoke <= end
                     and op.status != "fail")]
        hidden = len(self.linearized) - len(tail)
        order = ", ".join(str(op.index) for op in tail) or "none"
        return (
            f"not linearizable ({self.model} model): after {len(self.linearized)} operations "
            f"linearized (the last: {order}), operation "
            f"{', '.join(str(op.index) for op in self.stuck)} cannot be placed"
            + (f"; {hidden} earlier linearized operations not shown" if hidden else "")
            + "\n" + timeline(shown, marks)
        )

    def __str__(self) -> str:
        return self.describe()


def _model(model: Model | str) -> Model:
    if isinstance(model, str):
        try:
            return MODELS[model]()
        except KeyError:
            raise SockfakeValueError(
                f"unknown model {model!r}; models: {', '.join(MODELS)} (or pass a Model)"
            ) from None
    return model


def check_linearizable(history: History | Iterable[Operation],
                       model: Model | str) -> LinearizabilityResult:
    """Check ``history`` against ``model`` (a ``Model`` or a name in ``MODELS``)."""
    spec = _model(model)
    operations = history.operations if isinstance(history, History) else list(history)
    explored = 0
    for part in spec.partition(operations):
        result = _check_part(part, spec)
        explored += result.explored
        if not result.ok:
            result.explored = explored
            return result
    return LinearizabilityResult(True, spec.name, operations, explored=explored)


def _check_part(operations: Sequence[Operation], model: Model) -> LinearizabilityResult:
    ops = [op for op in operations
           if op.status == "ok" or (op.status == "unknown" and not model.read_only(op))]
    n = len(ops)
    # The events in time order: an invocation before a completion at the same instant
    # (touching intervals overlap); then by operation, for a deterministic search.
    events = sorted(
        [(op.invoke, 0, i) for i, op in enumerate(ops)]
        + [(op.complete, 1, i) for i, op in enumerate(ops)]
    )
    # A doubly linked list of the events, node 0 the head sentinel; node k + 1 is
    # events[k]. Linearizing an operation lifts its two nodes out; backtracking puts
    # them back (in reverse order, so the links come back exactly).
    size = 2 * n + 1
    nxt = list(range(1, size + 1))
    prv = list(range(-1, size - 1))
    nxt[size - 1] = 0  # 0 ends the list (the sentinel is never a successor)
    is_call = [False] * size
    op_of = [0] * size
    match = [0] * size
    call_node = [0] * n
    for k, (_, kind, i) in enumerate(events):
        node = k + 1
        is_call[node] = kind == 0
        op_of[node] = i
        if kind == 0:
            call_node[i] = node
        else:
            match[call_node[i]] = node

    def lift(node: int) -> None:
        for x in (node, match[node]):
            nxt[prv[x]] = nxt[x]
            if nxt[x]:
                prv[nxt[x]] = prv[x]

    def unlift(node: int) -> None:
        for x in (match[node], node):
            nxt[prv[x]] = x
            if nxt[x]:
                prv[nxt[x]] = x

    state: Hashable = model.init()
    done = 0  # a bitset of linearized operations
    seen: set[tuple[int, Hashable]] = {(0, state)}
    calls: list[tuple[int, Hashable]] = []  # (call node, state before it)
    best: tuple[int, list[int], Hashable, int] = (-1, [], state, -1)
    explored = 0
    node = nxt[0]
    while nxt[0]:
        if is_call[node]:
            i = op_of[node]
            legal, after = model.step(state, ops[i])
            explored += 1
            if legal:
                key = (done | (1 << i), after)
                if key not in seen:
                    seen.add(key)
                    calls.append((node, state))
                    state, done = after, done | (1 << i)
                    lift(node)
                    node = nxt[0]
                    continue
            node = nxt[node]
        else:
            # A completion reached with its operation not yet placed: back up.
            if len(calls) > best[0]:
                best = (len(calls), [op_of[c] for c, _ in calls], state, op_of[node])
            if not calls:
                break
            call, state = calls.pop()
            done &= ~(1 << op_of[call])
            unlift(call)
            node = nxt[call]
    else:
        return LinearizabilityResult(True, model.name, list(operations), explored=explored)
    _, order, at, stuck = best
    return LinearizabilityResult(
        False, model.name, list(operations), [ops[i] for i in order], at, [ops[stuck]],
        explored,
    )


def is_linearizable_brute_force(operations: Sequence[Operation], model: Model | str) -> bool:
    """The definition, checked by trying every order (tests hold the search to it; only
    for a handful of operations). An unknown operation may also never take effect."""
    spec = _model(model)
    ops = [op for op in operations if op.status != "fail"]
    required = [op for op in ops if op.status == "ok"]
    optional = [op for op in ops if op.status == "unknown"]

    def orders(remaining: list[Operation], placed: list[Operation]) -> Iterable[list[Operation]]:
        if not remaining:
            yield placed
            return
        for op in remaining:
            # op may come next only if nothing left completed before it was invoked.
            if any(other.complete < op.invoke for other in remaining if other is not op):
                continue
            yield from orders([o for o in remaining if o is not op], placed + [op])

    for mask in range(1 << len(optional)):
        chosen = required + [op for b, op in enumerate(optional) if mask >> b & 1]
        for order in orders(chosen, []):
            state: Hashable = spec.init()
            for op in order:
                legal, state = spec.step(state, op)
                if not legal:
                    break
            else:
                return True
    return False


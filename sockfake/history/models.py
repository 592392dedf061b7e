"""Sequential models: what a single correct copy of an object would answer.

A linearizability check asks whether a concurrent history could have come from one
copy of the object answering one operation at a time. The model is that copy, as
data: ``init()`` is its first state, ``step(state, op)`` says whether ``op``'s output
is what the copy would answer in ``state`` and gives the state after it. States are
hashable values (tuples, frozensets), so the checker can remember which (state,
operations done) pairs it has seen. An operation whose outcome is ``unknown`` has no
output to check: ``step`` accepts any answer for it and only applies its effect.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Protocol

from sockfake.errors import SockfakeValueError
from sockfake.history.operations import Operation

__all__ = ["KeyValue", "Model", "Queue", "Register", "Set", "MODELS"]


class Model(Protocol):
    """A sequential specification (see the module docstring)."""

    name: str

    def init(self) -> Hashable: ...

    def step(self, state: Hashable, op: Operation) -> tuple[bool, Hashable]:
        """(is ``op``'s output legal in ``state``, the state after it)."""
        ...

    def read_only(self, op: Operation) -> bool:
        """Does ``op`` leave the state alone (an unknown one can then be dropped)?"""
        ...

    def partition(self, operations: Sequence[Operation]) -> list[list[Operation]]:
        """Independent parts checked one by one (per key), or the whole history."""
        ...


def _unknown_op(model: str, op: Operation, known: str) -> SockfakeValueError:
    return SockfakeValueError(
        f"the {model} model has no operation {op.f!r} (operation {op.index} of process "
        f"{op.process!r}); it knows {known}"
    )


class Register:
    """One value: ``read`` (output: the value), ``write(value)``, ``cas((old, new))``
    (``ok`` with output True or None: it swapped; output False: the value was not
    ``old``). ``get``/``put`` are accepted as ``read``/``write``."""

    name = "register"

    def __init__(self, initial: Hashable = None) -> None:
        self.initial = initial

    def init(self) -> Hashable:
        return self.initial

    def step(self, state: Hashable, op: Operation) -> tuple[bool, Hashable]:
        f = op.f
        known = op.status == "ok"
        if f in ("read", "get"):
            return (not known or op.output == state), state
        if f in ("write", "put"):
            return True, op.value
        if f == "cas":
            if not isinstance(op.value, (tuple, list)) or len(op.value) != 2:
                raise SockfakeValueError(
                    f"cas takes (old, new) as its value, not {op.value!r} (operation {op.index})"
                )
            old, new = op.value
            if not known:
                return True, (new if state == old else state)
            if op.output is False:
                return state != old, state
            return state == old, new
        raise _unknown_op(self.name, op, "read, write, cas (get, put)")

    def read_only(self, op: Operation) -> bool:
        return op.f in ("read", "get")

    def partition(self, operations: Sequence[Operation]) -> list[list[Operation]]:
        return [list(operations)]


class KeyValue(Register):
    """A map of independent registers: the operations of ``Register`` with a ``key``;
    each key is checked on its own (Porcupine's partitioning: a history is
    linearizable if and only if each key's is)."""

    name = "key-value"

    def partition(self, operations: Sequence[Operation]) -> list[list[Operation]]:
        keys: dict[Hashable, list[Operation]] = {}
        for op in operations:
            keys.setdefault(op.key, []).append(op)
        return list(keys.values())


class Queue:
    """A FIFO queue: ``enqueue(value)``, ``dequeue`` (output: the value, or None when
    empty)."""

    name = "queue"

    def init(self) -> Hashable:
        return ()

    def step(self, state: Hashable, op: Operation) -> tuple[bool, Hashable]:
        assert isinstance(state, tuple)
        if op.f == "enqueue":
            return True, state + (op.value,)
        if op.f == "dequeue":
            head = state[0] if state else None
            if op.status == "ok" and op.output != head:
                return False, state
            return True, state[1:]
        raise _unknown_op(self.name, op, "enqueue, dequeue")

    def read_only(self, op: Operation) -> bool:
        return False

    def partition(self, operations: Sequence[Operation]) -> list[list[Operation]]:
        return [list(operations)]


class Set:
    """A set: ``add(value)``, ``remove(value)``, ``contains(value)`` (output: a bool),
    ``read`` (output: every element, any iterable)."""

    name = "set"

    def init(self) -> Hashable:
        return frozenset()

    def step(self, state: Hashable, op: Operation) -> tuple[bool, Hashable]:
        assert isinstance(state, frozenset)
        known = op.status == "ok"
        if op.f == "add":
            return True, state | {op.value}
        if op.f == "remove":
            return True, state - {op.value}
        if op.f == "contains":
            return (not known or op.output == (op.value in state)), state
        if op.f == "read":
            output = op.output
            if not known:
                return True, state
            try:
                elements = frozenset(output)  # type: ignore[call-overload]
            except TypeError:
                raise SockfakeValueError(
                    f"a set read's output must be an iterable, not {output!r} "
                    f"(operation {op.index})"
                ) from None
            return elements == state, state
        raise _unknown_op(self.name, op, "add, remove, contains, read")

    def read_only(self, op: Operation) -> bool:
        return op.f in ("contains", "read")

    def partition(self, operations: Sequence[Operation]) -> list[list[Operation]]:
        return [list(operations)]


# The models by name, for ``check_linearizable(history, "register")``.
MODELS: dict[str, type[Register] | type[Queue] | type[Set]] = {
    "register": Register,
    "key-value": KeyValue,
    "queue": Queue,
    "set": Set,
}

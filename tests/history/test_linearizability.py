"""The linearizability search, held to the definition (every order tried) and to
hand-made histories whose verdict is known."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings, strategies as st

from sockfake.errors import SockfakeValueError
from sockfake.history import History, Operation, check_linearizable
from sockfake.history.linearizability import is_linearizable_brute_force


def ops(*rows: tuple[object, str, object, object, float, float, str]) -> list[Operation]:
    return History.of(rows)


def test_a_read_of_a_completed_write_is_linearizable() -> None:
    history = ops(("a", "write", 1, None, 0, 1, "ok"), ("b", "read", None, 1, 2, 3, "ok"))
    assert check_linearizable(history, "register")


def test_a_stale_read_after_a_completed_write_is_not() -> None:
    history = ops(("a", "write", 1, None, 0, 1, "ok"), ("b", "read", None, None, 2, 3, "ok"))
    result = check_linearizable(history, "register")
    assert not result
    assert [op.index for op in result.linearized] == [0]
    assert [op.index for op in result.stuck] == [1]
    text = result.describe()
    assert "NOT LINEARIZABLE" in text and "read() -> None" in text


def test_overlapping_operations_may_take_effect_in_either_order() -> None:
    history = ops(("a", "write", 1, None, 0, 5, "ok"), ("b", "read", None, None, 1, 2, "ok"),
                  ("c", "read", None, 1, 3, 4, "ok"))
    assert check_linearizable(history, "register")
    # ...but a read cannot see the write, then not see it.
    history = ops(("a", "write", 1, None, 0, 5, "ok"), ("b", "read", None, 1, 1, 2, "ok"),
                  ("c", "read", None, None, 3, 4, "ok"))
    assert not check_linearizable(history, "register")


def test_an_unknown_write_may_or_may_not_have_happened() -> None:
    for seen in (None, 1):
        history = ops(("a", "write", 1, None, 0, 0, "unknown"),
                      ("b", "read", None, seen, 2, 3, "ok"))
        assert history[0].complete == math.inf
        assert check_linearizable(history, "register")
    # Once seen, it stays: an unknown write takes effect at one instant.
    history = ops(("a", "write", 1, None, 0, 0, "unknown"), ("b", "read", None, 1, 2, 3, "ok"),
                  ("b", "read", None, None, 4, 5, "ok"))
    assert not check_linearizable(history, "register")


def test_a_failed_write_did_not_happen() -> None:
    history = ops(("a", "write", 1, None, 0, 1, "fail"), ("b", "read", None, 1, 2, 3, "ok"))
    assert not check_linearizable(history, "register")


def test_key_value_checks_each_key_alone() -> None:
    recorder = History(clock=iter(range(100)).__next__)
    w = recorder.invoke("a", "put", 1, key="x")
    recorder.ok(w)
    r = recorder.invoke("b", "get", key="y")
    recorder.ok(r, None)
    r = recorder.invoke("b", "get", key="x")
    recorder.ok(r, 1)
    assert check_linearizable(recorder, "key-value")
    r = recorder.invoke("c", "get", key="x")
    recorder.ok(r, None)
    result = check_linearizable(recorder, "key-value")
    assert not result
    assert {op.key for op in result.operations} == {"x"}


def test_queue_and_set_models() -> None:
    queue = ops(("a", "enqueue", 1, None, 0, 1, "ok"), ("a", "enqueue", 2, None, 2, 3, "ok"),
                ("b", "dequeue", None, 2, 4, 5, "ok"))
    assert not check_linearizable(queue, "queue")
    queue = ops(("a", "enqueue", 1, None, 0, 3, "ok"), ("b", "enqueue", 2, None, 0, 3, "ok"),
                ("c", "dequeue", None, 2, 4, 5, "ok"), ("c", "dequeue", None, 1, 6, 7, "ok"),
                ("c", "dequeue", None, None, 8, 9, "ok"))
    assert check_linearizable(queue, "queue")
    items = ops(("a", "add", 1, None, 0, 1, "ok"), ("b", "contains", 1, False, 2, 3, "ok"))
    assert not check_linearizable(items, "set")
    items = ops(("a", "add", 1, None, 0, 1, "ok"), ("b", "read", None, [1], 2, 3, "ok"))
    assert check_linearizable(items, "set")


def test_cas_swaps_only_from_the_expected_value() -> None:
    history = ops(("a", "write", 1, None, 0, 1, "ok"), ("b", "cas", (1, 2), True, 2, 3, "ok"),
                  ("c", "cas", (1, 3), False, 4, 5, "ok"), ("c", "read", None, 2, 6, 7, "ok"))
    assert check_linearizable(history, "register")
    history = ops(("a", "write", 1, None, 0, 1, "ok"), ("b", "cas", (0, 2), None, 2, 3, "ok"))
    assert not check_linearizable(history, "register")


def test_mistakes_get_errors_that_name_them() -> None:
    with pytest.raises(SockfakeValueError, match="unknown model 'regster'"):
        check_linearizable([], "regster")
    with pytest.raises(SockfakeValueError, match="no operation 'push'"):
        check_linearizable(ops(("a", "push", 1, None, 0, 1, "ok")), "queue")
    with pytest.raises(SockfakeValueError, match="completes"):
        ops(("a", "write", 1, None, 2, 1, "ok"))
    recorder = History(clock=lambda: 0.0)
    recorder.invoke("a", "read")
    with pytest.raises(SockfakeValueError, match="one operation at a time"):
        recorder.invoke("a", "read")


def test_a_long_history_is_checked_quickly() -> None:
    """The cache keeps a long history with much concurrency tractable: 400 operations
    of 8 clients whose intervals overlap heavily."""
    recorder = History(clock=iter(range(10**6)).__next__)
    value = 0
    for step in range(50):
        batch = [(recorder.invoke(f"c{c}", "write" if c == step % 8 else "read",
                                  step if c == step % 8 else None), c) for c in range(8)]
        value = step
        for op, c in batch:
            if c == step % 8:
                recorder.ok(op)
            else:
                recorder.ok(op, value if c % 2 else (step - 1 if step else None))
    result = check_linearizable(recorder, "register")
    assert result, result.describe()


# -- the search agrees with the definition on thousands of small random histories ----

VALUES = st.sampled_from([None, 0, 1, 2])


@st.composite
def register_ops(draw: st.DrawFn) -> tuple[str, object, object]:
    f = draw(st.sampled_from(["read", "write", "cas"]))
    if f == "read":
        return f, None, draw(VALUES)
    if f == "write":
        return f, draw(st.integers(0, 2)), None
    return f, (draw(VALUES), draw(st.integers(0, 2))), draw(st.sampled_from([None, False]))


@st.composite
def queue_ops(draw: st.DrawFn) -> tuple[str, object, object]:
    if draw(st.booleans()):
        return "enqueue", draw(st.integers(0, 2)), None
    return "dequeue", None, draw(VALUES)


@st.composite
def set_ops(draw: st.DrawFn) -> tuple[str, object, object]:
    f = draw(st.sampled_from(["add", "remove", "contains", "read"]))
    if f == "read":
        return f, None, draw(st.sampled_from([(), (0,), (1,), (0, 1)]))
    if f == "contains":
        return f, draw(st.integers(0, 1)), draw(st.booleans())
    return f, draw(st.integers(0, 1)), None


MODEL_OPS = {"register": register_ops, "queue": queue_ops, "set": set_ops}


@st.composite
def histories(draw: st.DrawFn) -> tuple[str, list[Operation]]:
    model = draw(st.sampled_from(sorted(MODEL_OPS)))
    rows = []
    for process in range(draw(st.integers(1, 6))):
        f, value, output = draw(MODEL_OPS[model]())
        invoke = draw(st.integers(0, 8))
        complete = invoke + draw(st.integers(0, 4))
        status = draw(st.sampled_from(["ok", "ok", "ok", "unknown", "fail"]))
        rows.append((process, f, value, output, invoke, complete, status))
    return model, History.of(rows)


@pytest.mark.timeout(600)  # 2,000 searches and brute-force checks: on a loaded machine, minutes
@settings(max_examples=2000, deadline=None)
@given(histories())
def test_the_search_agrees_with_trying_every_order(case: tuple[str, list[Operation]]) -> None:
    model, history = case
    assert bool(check_linearizable(history, model)) == \
        is_linearizable_brute_force(history, model), history

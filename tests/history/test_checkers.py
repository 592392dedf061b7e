"""The simpler checks: acknowledged writes lost, monotonic reads; and the recorder."""

from __future__ import annotations

import math

import pytest

from sockfake.errors import SockfakeRuntimeError, SockfakeTypeError, SockfakeValueError
from sockfake.history import History, acknowledged_writes_lost, monotonic_reads, timeline


def test_a_read_older_than_an_acknowledged_write_is_a_lost_write() -> None:
    history = History.of(
        [
            ("a", "write", 1, None, 0, 1, "ok"),
            ("a", "write", 2, None, 2, 3, "ok"),
            ("b", "read", None, 1, 4, 5, "ok"),  # 2 was acknowledged at 3: lost
        ]
    )
    result = acknowledged_writes_lost(history)
    assert not result
    assert "write 1 (write(2) -> ok) was acknowledged" in result.problems[0]
    assert "acknowledged, then lost" in result.describe()


def test_a_read_concurrent_with_the_write_may_miss_it() -> None:
    history = History.of(
        [
            ("a", "write", 1, None, 0, 1, "ok"),
            ("a", "write", 2, None, 2, 5, "ok"),
            ("b", "read", None, 1, 4, 6, "ok"),
            ("c", "read", None, None, 0.5, 0.7, "ok"),
        ]
    )
    assert acknowledged_writes_lost(history)


def test_the_initial_value_after_an_acknowledged_write_is_a_loss() -> None:
    history = History.of(
        [("a", "write", 1, None, 0, 1, "ok"), ("b", "read", None, None, 2, 3, "ok")]
    )
    assert "the initial value" in acknowledged_writes_lost(history).problems[0]
    history = History.of([("b", "read", None, 7, 2, 3, "ok")])
    assert "which no operation wrote" in acknowledged_writes_lost(history).problems[0]


def test_lost_writes_need_distinct_values() -> None:
    history = History.of([("a", "write", 1, None, 0, 1, "ok"), ("b", "write", 1, None, 0, 1, "ok")])
    with pytest.raises(SockfakeValueError, match="distinct values per key"):
        acknowledged_writes_lost(history)


def test_reads_that_go_back_are_not_monotonic() -> None:
    history = History.of(
        [
            ("a", "read", None, 1, 0, 1, "ok"),
            ("a", "read", None, 3, 2, 3, "ok"),
            ("a", "read", None, 2, 4, 5, "ok"),
            ("b", "read", None, 1, 6, 7, "ok"),  # another process: its own order
        ]
    )
    result = monotonic_reads(history)
    assert len(result.problems) == 1
    assert "read 2" in result.problems[0] and "after reading 3" in result.problems[0]
    assert monotonic_reads(history[:2])
    versions = History.of(
        [("a", "read", None, "v10", 0, 1, "ok"), ("a", "read", None, "v9", 2, 3, "ok")]
    )
    assert monotonic_reads(versions)  # as strings, "v9" > "v10"
    assert not monotonic_reads(versions, version=lambda v: int(v[1:]))
    mixed = History.of([("a", "read", None, "x", 0, 1, "ok"), ("a", "read", None, 1, 2, 3, "ok")])
    with pytest.raises(SockfakeValueError, match="pass version="):
        monotonic_reads(mixed)


def test_the_recorder_reads_its_clock_and_leaves_pending_operations_unknown() -> None:
    times = iter([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    history = History(clock=lambda: next(times))
    w = history.invoke("a", "write", 1, key="k")
    r = history.invoke("b", "read", key="k")
    history.ok(w)
    f = history.invoke("c", "write", 2, key="k")
    history.fail(f)
    first, second, third = history.operations
    assert (first.invoke, first.complete, first.status) == (1.0, 3.0, "ok")
    assert second.status == "unknown" and second.complete == math.inf
    assert (third.status, third.complete) == ("fail", 5.0)
    with pytest.raises(SockfakeRuntimeError, match="already complete"):
        history.ok(w)
    history.unknown(r)
    with pytest.raises(SockfakeTypeError, match="not an operation this history invoked"):
        History().ok(w)
    assert len(history) == 3 and [op.index for op in history] == [0, 1, 2]


def test_the_timeline_draws_each_interval_on_one_axis() -> None:
    history = History.of(
        [
            ("a", "write", 1, None, 0, 10, "ok"),
            ("b", "read", None, 1, 5, 10, "ok"),
            ("c", "write", 2, None, 5, 0, "unknown"),
        ]
    )
    lines = timeline(history, {1: "here"}, width=11).splitlines()
    assert lines[1].endswith("|[=========]|  write(1) -> ok")
    assert "|     [====]|  read() -> 1   <- here" in lines[2]
    assert "|     [---->|  write(2) -> unknown" in lines[3]
    assert timeline([]) == "(no operations)"

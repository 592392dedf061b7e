"""Systematic exploration: every schedule within a preemption bound, fewest first."""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest
from race_bugs import REAL_CODE_BUGS, debit_twice, independent_locks

from sockfake.errors import SockfakeValueError
from sockfake.sim import SimNetwork
from sockfake.testing import explore


def _debits(fixed: bool) -> Any:
    """Two threads debit 60 from 100: read and write under a lock, in one step or two."""

    def scenario(net: Any) -> None:
        with net.intercept():
            assert not debit_twice(net, fixed), "overdrawn"

    return scenario


def test_the_fixed_version_is_exhausted_within_the_bound() -> None:
    result = explore(_debits(fixed=True), "systematic", preemption_bound=2)
    assert result.exhausted and not result.failures
    assert str(result) == (
        f"all {result.schedules} schedules with <= 2 preemptions explored, none failed"
    )
    assert result.schedules > 10
    # Deterministic, and a higher bound has more schedules.
    assert explore(_debits(fixed=True), "systematic", preemption_bound=2).schedules == \
        result.schedules
    assert explore(_debits(fixed=True), "systematic", preemption_bound=1).schedules < \
        result.schedules


def test_a_bug_within_the_bound_is_found_and_its_schedule_replays() -> None:
    result = explore(_debits(fixed=False), "systematic", preemption_bound=2)
    assert not result.exhausted
    assert str(result).startswith("failing schedule found after ")
    first = result.first_failure
    assert first is not None
    seed, _, schedule = first
    with SimNetwork(seed=seed, scheduling="systematic", replay=schedule) as net:
        with pytest.raises(AssertionError, match="overdrawn"):
            _debits(fixed=False)(net)


def test_max_schedules_stops_early_and_says_so() -> None:
    result = explore(_debits(fixed=True), "systematic", preemption_bound=2, max_schedules=3)
    assert result.schedules == 3 and not result.exhausted
    assert "stopped at max_schedules" in str(result)


def test_bad_arguments_name_themselves() -> None:
    bad: list[tuple[str, Any]] = [("preemption_bound", -1), ("max_schedules", 0),
                                  ("reduction", "yes"),
                                  ("preemption_bound", "2")]
    for key, value in bad:
        with pytest.raises(SockfakeValueError, match=key):
            options: dict[str, Any] = {key: value}
            explore(_debits(fixed=True), "systematic", **options)
    with pytest.raises(SockfakeValueError, match="scheduling="):
        explore(_debits(fixed=True), "systematic", scheduling="pct")
    with pytest.raises(SockfakeValueError, match="systematic"):
        explore(_debits(fixed=True), "sometimes")


def _independent(net: Any) -> None:
    with net.intercept():
        assert not independent_locks(net)


def test_partial_order_reduction_runs_fewer_schedules_on_independent_threads() -> None:
    reduced = explore(_independent, "systematic", preemption_bound=2)
    plain = explore(_independent, "systematic", preemption_bound=2, reduction=False)
    assert reduced.exhausted and plain.exhausted
    assert not reduced.failures and not plain.failures
    assert reduced.schedules < plain.schedules, (reduced.schedules, plain.schedules)
    # Dependent threads (one lock): still fewer, and the bug is still found.
    fixed = explore(_debits(fixed=True), "systematic", preemption_bound=2)
    assert fixed.exhausted
    assert fixed.schedules < explore(_debits(fixed=True), "systematic", preemption_bound=2,
                                     reduction=False).schedules
    found = explore(_debits(fixed=False), "systematic", preemption_bound=2)
    assert found.failures, str(found)


def test_a_lock_is_a_resource_of_its_own() -> None:
    """Accesses to one lock are dependent; to two locks, not: the reduction branches
    only where the same lock is touched by two threads."""
    from sockfake.sim.kernel.systematic import Access, races

    accesses = [Access("a", 1, 0), Access("b", 2, 1), Access("b", 1, 2), Access("a", 2, 3)]
    assert [race[:2] for race in races(accesses)] == [(0, "b"), (1, "a")]
    assert [race[:2] for race in races([Access("a", 1, 0), Access("b", None, 1)])] == \
        [(0, "b")]


def test_a_start_or_a_wake_up_orders_what_the_thread_does_next() -> None:
    """A thread cannot run before it is started, nor a waiter before what woke it (a
    release, a send): such pairs are not reversed. Without them, they are."""
    from sockfake.sim.kernel.systematic import FOLLOWS, STARTS, WAKES, Access, races

    started = [Access("main", 7, 0), Access("main", (STARTS, "t"), 0), Access("t", 7, 1)]
    assert list(races(started)) == []
    # A wake-up by a timer a thread's send asked for (the delivery) follows the send.
    delivered = [Access("sender", 7, 0), Access("reader", (FOLLOWS, "sender", 0), 1),
                 Access("reader", 7, 1)]
    assert list(races(delivered)) == []
    # The wake-up is recorded inside the operation, before its access at the switch
    # point after it: the woken thread follows that access too.
    woken = [Access("a", (WAKES, "b"), 0), Access("a", 7, 0), Access("b", 7, 1)]
    assert list(races(woken)) == []
    unrelated = [Access("main", 7, 0), Access("u", 7, 1)]
    assert [race[:2] for race in races(unrelated)] == [(0, "u")]


def test_each_other_threads_latest_dependent_access_is_a_race() -> None:
    """Within a bound, reversing only the latest race would need a preemption per step
    back: each thread's latest unordered access is reversed directly."""
    from sockfake.sim.kernel.systematic import Access, races

    accesses = [Access("sender", 1, 0), Access("handler", 1, 1), Access("closer", 1, 2)]
    assert sorted(race[:2] for race in races(accesses)) == \
        [(0, "closer"), (0, "handler"), (1, "closer")]


def test_a_reversal_starts_with_the_thread_that_can_start_it() -> None:
    """Source sets: a thread started after the earlier access cannot run in its place;
    the thread that started it can (its start comes first in the reversed run)."""
    from sockfake.sim.kernel.systematic import STARTS, Access, races

    accesses = [Access("worker", 7, 0), Access("main", (STARTS, "client"), 1),
                Access("client", 7, 2)]
    assert [race.initials for race in races(accesses)] == [("main",)]


def test_a_connections_two_directions_are_independent_and_a_close_touches_both() -> None:
    from sockfake.sim.kernel.systematic import Access, races

    request, reply = ("connection", 1, 10), ("connection", 1, 20)
    assert list(races([Access("client", request, 0), Access("handler", reply, 1)])) == []
    assert [race[:2] for race in races([Access("client", request, 0),
                                        Access("handler", request, 1)])] == [(0, "handler")]
    assert [race[:2] for race in races([Access("client", request, 0),
                                        Access("handler", ("connection", 1), 1)])] == \
        [(0, "handler")]


# Each fixed version of race_bugs' real-code bugs, exhausted at bound 2: the schedules
# it takes (measured; benchmarks/bench_systematic.py prints them), with room to spare.
EXHAUSTED_WITHIN = {
    "connection cache": 300, "lost wake-up": 300, "LWW over UDP": 1000,
    "check-then-debit": 1500, "forwarding servers": 2500, "Queue.join under lock": 2500,
}
# The two that take 1,500-1,900 schedules (15-40 s on a loaded machine) run on one
# Python (CI's time is counted; the search is the same code on each), and on any with
# SOCKFAKE_LONG_TESTS=1.
LONG = {"forwarding servers", "Queue.join under lock"}
RUN_LONG = os.environ.get("SOCKFAKE_LONG_TESTS") == "1" or sys.version_info[:2] == (3, 12)


def _real_code(name: str, fixed: bool) -> Any:
    bug = REAL_CODE_BUGS[name]

    def scenario(net: Any) -> None:
        with net.intercept():
            assert not bug(net, fixed), "the bug showed"

    return scenario


@pytest.mark.parametrize("name", list(REAL_CODE_BUGS))
def test_each_fixed_version_is_exhausted_at_bound_2(name: str) -> None:
    if name in LONG and not RUN_LONG:
        pytest.skip(f"{EXHAUSTED_WITHIN[name]} schedules at most: runs on 3.12, or here "
                    "with SOCKFAKE_LONG_TESTS=1")
    fixed = explore(_real_code(name, fixed=True), "systematic", preemption_bound=2,
                    max_schedules=EXHAUSTED_WITHIN[name])
    assert fixed.exhausted and not fixed.failures, str(fixed)


@pytest.mark.parametrize("name", list(REAL_CODE_BUGS))
def test_each_bug_is_found_at_bound_2(name: str) -> None:
    found = explore(_real_code(name, fixed=False), "systematic", preemption_bound=2,
                    max_schedules=EXHAUSTED_WITHIN[name])
    assert found.failures and "the bug showed" in str(found.failures[0][1]), str(found)

"""Systematic exploration: every schedule within a preemption bound, fewest first."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from sockfake.errors import SockfakeValueError
from sockfake.sim import SimNetwork
from sockfake.testing import explore


def _debits(fixed: bool) -> Any:
    """Two threads debit 60 from 100: read and write under a lock, in one step or two."""

    def scenario(net: Any) -> None:
        with net.intercept():
            account = {"balance": 100}
            lock = threading.Lock()

            def debit() -> None:
                if fixed:
                    with lock:
                        if account["balance"] >= 60:
                            account["balance"] -= 60
                    return
                with lock:
                    balance = account["balance"]
                if balance >= 60:
                    with lock:
                        account["balance"] -= 60

            threads = [threading.Thread(target=debit) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert account["balance"] >= 0, account

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
        with pytest.raises(AssertionError, match="balance"):
            _debits(fixed=False)(net)


def test_max_schedules_stops_early_and_says_so() -> None:
    result = explore(_debits(fixed=True), "systematic", preemption_bound=2, max_schedules=3)
    assert result.schedules == 3 and not result.exhausted
    assert "stopped at max_schedules" in str(result)


def test_bad_arguments_name_themselves() -> None:
    bad: list[tuple[str, Any]] = [("preemption_bound", -1), ("max_schedules", 0),
                                  ("preemption_bound", "2")]
    for key, value in bad:
        with pytest.raises(SockfakeValueError, match=key):
            options: dict[str, Any] = {key: value}
            explore(_debits(fixed=True), "systematic", **options)
    with pytest.raises(SockfakeValueError, match="scheduling="):
        explore(_debits(fixed=True), "systematic", scheduling="pct")
    with pytest.raises(SockfakeValueError, match="systematic"):
        explore(_debits(fixed=True), "sometimes")

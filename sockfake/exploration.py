"""Exploration without pytest: run a scenario under many schedules, collect failures.

The pytest marker's ``explore=N`` makes one test item per schedule; this is the same
for any runner: each schedule is a fresh ``SimNetwork`` with its own seed under an
exploring scheduler, and each failure comes with its seed and recorded schedule.

``explore(scenario, "systematic", preemption_bound=k)`` enumerates instead: every
schedule of the scenario with at most ``k`` preemptions, fewest first (iterative
context bounding, as CHESS does). A schedule is a path through the decisions the
kernel asks for (``Systematic``): at a switch point with other threads ready, stay
(free) or yield (one preemption); when the running thread blocks or yields, which
ready thread runs (free). Each run follows a prefix of decisions and then never
preempts. It ends with "failing schedule found" or "all N schedules with <= k
preemptions explored, none failed" (``max_schedules`` caps it, and the result says
so). With ``reduction=True`` (the default) a run branches only where two threads'
operations are dependent (partial-order reduction, ``sockfake.sim.kernel.systematic``);
``reduction=False`` branches at every decision past the prefix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sockfake.errors import SockfakeValueError

__all__ = ["Exploration", "check_systematic_options", "explore", "systematic_verdict"]


@dataclass
class Exploration:
    """What :func:`explore` saw: how many schedules ran, and the failing ones."""

    schedules: int
    failures: list[tuple[int, BaseException, list[str]]]  # (seed, error, schedule)
    # Systematic exploration only: the preemption bound, and whether every schedule
    # within it ran (False: stopped at a failure or at max_schedules).
    preemption_bound: int | None = None
    exhausted: bool = False

    @property
    def first_failure(self) -> tuple[int, BaseException, list[str]] | None:
        return self.failures[0] if self.failures else None

    def __str__(self) -> str:
        if self.preemption_bound is not None:
            return self._systematic_text()
        text = f"{self.schedules} schedules, {len(self.failures)} failed"
        first = self.first_failure
        if first is not None:
            text += f"; first: seed {first[0]}: {type(first[1]).__name__}: {first[1]}"
        return text


    def _systematic_text(self) -> str:
        first = self.first_failure
        text = systematic_verdict(self.schedules, self.preemption_bound or 0,
                                  failed=first is not None, exhausted=self.exhausted)
        if first is not None:
            text += f": {type(first[1]).__name__}: {first[1]}"
        return text


def systematic_verdict(schedules: int, bound: int, *, failed: bool, exhausted: bool) -> str:
    """What a systematic exploration ends with (here and in the pytest plugin)."""
    if failed:
        return f"failing schedule found after {schedules} schedules (<= {bound} preemptions)"
    if exhausted:
        return f"all {schedules} schedules with <= {bound} preemptions explored, none failed"
    return (f"{schedules} schedules with <= {bound} preemptions explored, none failed; "
            "stopped at max_schedules before all were")


def explore(
    scenario: Callable[[Any], object],
    schedules: int | str = 100,
    *,
    scheduling: str = "swarm",
    first_seed: int = 0,
    stop_at_first: bool = False,
    preemption_bound: int = 2,
    max_schedules: int = 10_000,
    reduction: bool | str = True,
    **network_options: Any,
) -> Exploration:
    """Run ``scenario(net)`` on ``schedules`` fresh simulated networks (seeds from
    ``first_seed``) under an exploring scheduler; an exception is a failing schedule.

    Each failure comes with its seed and its recorded schedule: rerun it with
    ``SimNetwork(seed, scheduling=..., replay=schedule)``. The default ``"swarm"``
    draws each seed's policy, switch points and PCT depth from the seed (a knob given
    as a keyword is kept). The pytest marker's ``explore=N`` does the same with one
    test item per schedule.

    ``schedules="systematic"``: every schedule with at most ``preemption_bound``
    preemptions instead (at most ``max_schedules``), partial-order reduced unless
    ``reduction=False`` (``reduction="dpor"``: without the memory of races already
    reversed, to measure it); the marker's ``explore="systematic"`` does the same in
    one item.
    """
    from sockfake.sim.intercept.install import keep_patches

    if schedules == "systematic":
        if scheduling != "swarm":
            raise SockfakeValueError("explore('systematic') sets scheduling= itself")
        # A scenario that intercepts installs the patches once for the whole loop;
        # keep_patches() takes them away at the end.
        with keep_patches():
            return _systematic(scenario, first_seed, preemption_bound, max_schedules,
                               reduction, network_options)
    if isinstance(schedules, bool) or not isinstance(schedules, int) or schedules < 1:
        raise SockfakeValueError(
            f"explore(schedules={schedules!r}): must be an int >= 1, or \"systematic\""
        )
    with keep_patches():
        return _random(scenario, schedules, scheduling, first_seed, stop_at_first,
                       network_options)


def _random(
    scenario: Callable[[Any], object], schedules: int, scheduling: str, first_seed: int,
    stop_at_first: bool, network_options: dict[str, Any],
) -> Exploration:
    """``schedules`` seeds from ``first_seed`` under ``scheduling``; see explore()."""
    from sockfake.sim import SimNetwork

    failures: list[tuple[int, BaseException, list[str]]] = []
    ran = 0
    for seed in range(first_seed, first_seed + schedules):
        ran += 1
        with SimNetwork(seed=seed, scheduling=scheduling, **network_options) as net:
            try:
                scenario(net)
            except Exception as exc:
                failures.append((seed, exc, net.schedule))
                if stop_at_first:
                    break
    return Exploration(ran, failures)


def _systematic(
    scenario: Callable[[Any], object], seed: int, bound: int, max_schedules: int,
    reduction: bool | str, network_options: dict[str, Any],
) -> Exploration:
    """Every schedule with at most ``bound`` preemptions, fewest first; see the module."""
    from sockfake.sim import SimNetwork
    from sockfake.sim.kernel.systematic import ScheduleSearch, Systematic

    check_systematic_options(bound, max_schedules)
    if not isinstance(reduction, bool) and reduction != "dpor":
        raise SockfakeValueError(
            f"explore(reduction={reduction!r}): must be True, False or \"dpor\"")
    for key in ("scheduling", "replay"):
        if key in network_options:
            raise SockfakeValueError(f"explore('systematic') sets {key}= itself")
    search = ScheduleSearch(bound, reduction=bool(reduction), remember=reduction is True)
    failures: list[tuple[int, BaseException, list[str]]] = []
    ran = 0
    while (prefix := search.next_prefix()) is not None:
        if ran >= max_schedules:
            return Exploration(ran, failures, bound, exhausted=False)
        ran += 1
        with SimNetwork(seed=seed, scheduling="systematic", replay=prefix,
                        **network_options) as net:
            policy = net.kernel.base_policy
            assert isinstance(policy, Systematic)
            try:
                scenario(net)
            except Exception as exc:
                failures.append((seed, exc, [decision.chosen for decision in policy.log]))
                return Exploration(ran, failures, bound, exhausted=False)
        search.record(prefix, policy)
    return Exploration(ran, failures, bound, exhausted=True)


def check_systematic_options(bound: object, max_schedules: object) -> None:
    """``preemption_bound`` (an int >= 0) and ``max_schedules`` (>= 1), or a clear error
    naming the key."""
    for label, value, least in (("preemption_bound", bound, 0),
                                ("max_schedules", max_schedules, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise SockfakeValueError(f"explore({label}={value!r}): must be an int >= {least}")

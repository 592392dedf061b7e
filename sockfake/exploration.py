"""Exploration without pytest: run a scenario under many schedules, collect failures.

The pytest marker's ``explore=N`` makes one test item per schedule; this is the same
for any runner: each schedule is a fresh ``SimNetwork`` with its own seed under an
exploring scheduler, and each failure comes with its seed and recorded schedule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sockfake.errors import SockfakeValueError

__all__ = ["Exploration", "explore"]


@dataclass
class Exploration:
    """What :func:`explore` saw: how many schedules ran, and the failing ones."""

    schedules: int
    failures: list[tuple[int, BaseException, list[str]]]  # (seed, error, schedule)

    @property
    def first_failure(self) -> tuple[int, BaseException, list[str]] | None:
        return self.failures[0] if self.failures else None

    def __str__(self) -> str:
        text = f"{self.schedules} schedules, {len(self.failures)} failed"
        first = self.first_failure
        if first is not None:
            text += f"; first: seed {first[0]}: {type(first[1]).__name__}: {first[1]}"
        return text


def explore(
    scenario: Callable[[Any], object],
    schedules: int = 100,
    *,
    scheduling: str = "swarm",
    first_seed: int = 0,
    stop_at_first: bool = False,
    **network_options: Any,
) -> Exploration:
    """Run ``scenario(net)`` on ``schedules`` fresh simulated networks (seeds from
    ``first_seed``) under an exploring scheduler; an exception is a failing schedule.

    Each failure comes with its seed and its recorded schedule: rerun it with
    ``SimNetwork(seed, scheduling=..., replay=schedule)``. The default ``"swarm"``
    draws each seed's policy, switch points and PCT depth from the seed (a knob given
    as a keyword is kept). The pytest marker's ``explore=N`` does the same with one
    test item per schedule.
    """
    from sockfake.sim import SimNetwork

    if isinstance(schedules, bool) or not isinstance(schedules, int) or schedules < 1:
        raise SockfakeValueError(f"explore(schedules={schedules!r}): must be an int >= 1")
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

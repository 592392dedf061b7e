"""A campaign's budget (a wall-clock duration or a number of seeds) and its seeds.

The budget is the user's: real seconds of their machine, or a count. The seeds are
not: seed number ``j`` of a test's campaign is a pure function of the campaign seed
(the session's base seed), the test's id and ``j``, and shard K of N runs the
positions K, K+N, K+2N..., so a campaign is reproducible from its seed and shard, and
the union of N shards' seed counts is one machine's run of the same total.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sockfake.campaign.shards import Shard
from sockfake.errors import SockfakeValueError
from sockfake.testing import derive_seed

__all__ = [
    "MAX_CAMPAIGN_SECONDS",
    "MAX_CAMPAIGN_SEEDS",
    "Budget",
    "campaign_seed",
    "parse_budget",
]

MAX_CAMPAIGN_SEEDS = 10**12
MAX_CAMPAIGN_SECONDS = 7 * 86400.0  # a week per test
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([smh])")


@dataclass(frozen=True)
class Budget:
    """How long each test's campaign runs: ``seeds`` (in total over all shards) or
    ``seconds`` (of real time, on each machine). Exactly one is set."""

    seeds: int | None = None
    seconds: float | None = None

    def __str__(self) -> str:
        if self.seeds is not None:
            return f"{self.seeds} seeds"
        return f"{self.seconds:g} s"

    def positions(self, shard: Shard) -> range:
        """The stream positions this shard runs: all of its own under a seed count,
        an unbounded run of them under a duration (the caller watches the clock)."""
        stop = self.seeds if self.seeds is not None else MAX_CAMPAIGN_SEEDS
        return range(shard.index, stop, shard.count)


def parse_budget(text: str, origin: str) -> Budget:
    """``"10000"`` (seeds), ``"30s"``, ``"5m"``, ``"1.5h"`` as a :class:`Budget`, or
    ``SockfakeValueError`` naming ``origin`` and the forms it accepts."""
    value = text.strip().lower()
    forms = "a number of seeds (10000) or a duration (30s, 5m, 1.5h)"
    if value.isdigit():
        seeds = int(value)
        if not 1 <= seeds <= MAX_CAMPAIGN_SEEDS:
            raise SockfakeValueError(
                f"{origin}={text!r}: the number of seeds must be from 1 to {MAX_CAMPAIGN_SEEDS}"
            )
        return Budget(seeds=seeds)
    found = _DURATION.fullmatch(value)
    if found is None:
        raise SockfakeValueError(f"{origin}={text!r} is not {forms}")
    seconds = float(found.group(1)) * _UNITS[found.group(2)]
    if not 0 < seconds <= MAX_CAMPAIGN_SECONDS:
        raise SockfakeValueError(
            f"{origin}={text!r}: the duration must be above 0 and at most "
            f"{MAX_CAMPAIGN_SECONDS / 86400:g} days"
        )
    return Budget(seconds=seconds)


def campaign_seed(base_seed: int, test_id: str, position: int) -> int:
    """The seed at ``position`` in ``test_id``'s campaign stream under ``base_seed``."""
    return derive_seed(base_seed, f"{test_id}\0campaign\0{position}")

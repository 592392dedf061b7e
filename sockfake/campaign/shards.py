"""Shards: machine K of N runs a disjoint, reproducible slice of the whole run.

A shard is ``K/N``, counted from 0 (as Kubernetes' ``JOB_COMPLETION_INDEX`` and GitHub
Actions' ``strategy.job-index`` are). Which shard runs what is a pure function of
names and numbers, never of collection order, time or the machine, so every shard of
a fleet agrees without talking to the others, and the union of the N shards is the
single-machine run, each part exactly once.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from sockfake.errors import SockfakeValueError

__all__ = [
    "MAX_SHARDS",
    "SHARD_COUNT_VARIABLE",
    "WHOLE_RUN",
    "Shard",
    "parse_shard",
    "shard_from_environment",
]

MAX_SHARDS = 1_000_000
# Kubernetes sets JOB_COMPLETION_INDEX in an Indexed Job's pods, but not the number
# of completions: the manifest passes it in this variable.
SHARD_COUNT_VARIABLE = "SOCKFAKE_SHARD_COUNT"
_SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (``0 <= index < count``)."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns_position(self, position: int) -> bool:
        """Does this shard run the ``position``-th part of a sequence (a seed's place
        in a campaign's stream)? Round robin: shard K runs K, K+N, K+2N..."""
        return position % self.count == self.index

    def owns_item(self, test_id: str, position: int | None = None) -> bool:
        """Does this shard run this item? ``position`` (a schedule's index) spreads
        the schedules of one test round robin from an offset hashed from the test's
        id, so a test's N schedules land on N different shards and tests with few
        schedules do not all start on shard 0; an item without one goes by its hash."""
        offset = int.from_bytes(hashlib.sha256(test_id.encode()).digest()[:8], "big")
        return self.owns_position(offset + (position or 0))


WHOLE_RUN = Shard(0, 1)


def parse_shard(text: str, origin: str) -> Shard:
    """``"K/N"`` as a :class:`Shard`, or ``SockfakeValueError`` naming ``origin`` and
    saying what is wrong."""
    found = _SHARD.fullmatch(text)
    if found is None:
        raise SockfakeValueError(
            f"{origin}={text!r} is not K/N: the shard's index K (from 0) and the number "
            "of shards N, e.g. 0/4 for the first of four"
        )
    index, count = int(found.group(1)), int(found.group(2))
    if not 1 <= count <= MAX_SHARDS:
        raise SockfakeValueError(
            f"{origin}={text!r}: the number of shards N must be from 1 to {MAX_SHARDS}"
        )
    if index >= count:
        raise SockfakeValueError(
            f"{origin}={text!r}: the shard index K counts from 0, so it must be from 0 to "
            f"{count - 1} for {count} shard{'s' if count > 1 else ''}"
        )
    return Shard(index, count)


def shard_from_environment(environ: Mapping[str, str]) -> tuple[Shard, str] | None:
    """The shard the environment names, and which variable named it: ``SOCKFAKE_SHARD``
    (``K/N``, for CI matrices), else Kubernetes' ``JOB_COMPLETION_INDEX`` with
    ``SOCKFAKE_SHARD_COUNT``; None when neither is set."""
    generic = environ.get("SOCKFAKE_SHARD", "").strip()
    if generic:
        return parse_shard(generic, "SOCKFAKE_SHARD"), "SOCKFAKE_SHARD"
    index = environ.get("JOB_COMPLETION_INDEX", "").strip()
    count = environ.get(SHARD_COUNT_VARIABLE, "").strip()
    if count and not index:
        raise SockfakeValueError(
            f"{SHARD_COUNT_VARIABLE}={count!r} is set but JOB_COMPLETION_INDEX is not: "
            "set both (an Indexed Job sets the index), or SOCKFAKE_SHARD=K/N instead"
        )
    if not count:
        # An Indexed Job that does not shard its pytest run: nothing to do.
        return None
    origin = f"JOB_COMPLETION_INDEX/{SHARD_COUNT_VARIABLE}"
    return parse_shard(f"{index}/{count}", origin), origin

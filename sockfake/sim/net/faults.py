"""Fault plans: deterministic faults chosen by index instead of by chance.

A :class:`LinkConditions` loss of 0.3 drops *some* datagrams, chosen by the seeded
random stream; a :class:`FaultPlan` says *which* ones: "drop the 2nd and 5th datagram
sent on this network, duplicate the 3rd, delay the 4th by 1.5 s". That is the shape
Hypothesis can search and shrink (``sockfake.strategies.fault_plans()``): a smaller
plan is a plan with fewer faults, the empty plan is a perfect network, and a shrunk
plan's ``repr`` can be pasted into ``@example(...)``.

Datagrams are numbered from 0 in the order ``sendto()`` is called anywhere on the
network (clients and servers alike); stream connections are numbered from 0 in the
order ``connect()`` is called. Datagrams and connections the plan does not mention go
through the link model as usual.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sockfake.errors import SockfakeTypeError, SockfakeValueError
from sockfake.sim.net.links import DatagramFate, LinkConditions

__all__ = ["FaultPlan"]


def _check_index(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SockfakeValueError(
            f"FaultPlan.{field} must hold non-negative indexes, not {value!r}"
        )
    return value


def _timed(field: str, raw: Any, what: str) -> tuple[tuple[int, float], ...]:
    """Validate (index, seconds) pairs (or a dict); sorted, one per index."""
    pairs = list(raw.items()) if isinstance(raw, dict) else list(raw)
    timed: dict[int, float] = {}
    for pair in pairs:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise SockfakeTypeError(
                f"FaultPlan.{field} must hold (index, seconds) pairs, not {pair!r}"
            )
        index, seconds = _check_index(field, pair[0]), pair[1]
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, (int, float))
            or not seconds >= 0
            or math.isinf(seconds)
        ):
            raise SockfakeValueError(
                f"FaultPlan.{field}: the time of {what} {index} must be a finite "
                f"non-negative number of seconds, not {seconds!r}"
            )
        if index in timed:
            raise SockfakeValueError(f"FaultPlan.{field}: {what} {index} appears twice")
        timed[index] = float(seconds)
    return tuple(sorted(timed.items()))


def _indexes(field: str, value: object) -> frozenset[int]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise SockfakeTypeError(f"FaultPlan.{field} must be a set of ints, not {value!r}")
    return frozenset(_check_index(field, item) for item in value)


@dataclass(frozen=True)
class FaultPlan:
    """Which datagrams and connections to disturb, by index (0 is the first).

    Datagrams: ``drops`` loses them, ``duplicates`` delivers them twice, ``delays``
    maps an index to extra seconds on top of the link's latency (so a delayed datagram
    can arrive after later ones). A dropped datagram is dropped whatever else the plan
    says about it.

    Stream connections: ``refusals`` makes those connection attempts fail with
    ``ConnectionRefusedError``; ``resets`` maps a connection index to the seconds after
    it is established at which it is reset (both ends then see
    ``ConnectionResetError``). ``FaultPlan(drops=frozenset({1}))`` loses the second
    datagram and nothing else.
    """

    drops: frozenset[int] = frozenset()
    duplicates: frozenset[int] = frozenset()
    delays: tuple[tuple[int, float], ...] = ()
    refusals: frozenset[int] = frozenset()
    resets: tuple[tuple[int, float], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "drops", _indexes("drops", self.drops))
        object.__setattr__(self, "duplicates", _indexes("duplicates", self.duplicates))
        object.__setattr__(self, "delays", _timed("delays", self.delays, "datagram"))
        object.__setattr__(self, "refusals", _indexes("refusals", self.refusals))
        object.__setattr__(self, "resets", _timed("resets", self.resets, "connection"))

    @property
    def is_empty(self) -> bool:
        """True for the plan with no fault at all (what shrinking moves toward)."""
        return not (
            self.drops or self.duplicates or self.delays or self.refusals or self.resets
        )

    def apply(self, network: Any) -> FaultPlan:
        """Install this plan on a ``SimNetwork`` (replacing any other); returns self."""
        network.fault_plan = self
        return self

    def datagram_fate(
        self, index: int, now: float, conditions: LinkConditions
    ) -> DatagramFate | None:
        """The fate of datagram ``index`` sent at ``now``, or None if the plan is silent."""
        if index in self.drops:
            return DatagramFate(dropped="fault plan")
        extra = dict(self.delays).get(index)
        duplicate = index in self.duplicates
        if extra is None and not duplicate:
            return None
        arrival = now + conditions.latency + (extra or 0.0)
        return DatagramFate(dropped=None, arrivals=(arrival, arrival) if duplicate else (arrival,))

    def refuses_connection(self, index: int) -> bool:
        """Is connection attempt ``index`` refused?"""
        return index in self.refusals

    def connection_reset_after(self, index: int) -> float | None:
        """Seconds after establishment at which connection ``index`` resets, or None."""
        return dict(self.resets).get(index)

    def __repr__(self) -> str:
        parts = []
        if self.drops:
            parts.append(f"drops=frozenset({{{', '.join(map(str, sorted(self.drops)))}}})")
        if self.duplicates:
            items = ", ".join(map(str, sorted(self.duplicates)))
            parts.append(f"duplicates=frozenset({{{items}}})")
        if self.delays:
            parts.append(f"delays={self.delays!r}")
        if self.refusals:
            parts.append(f"refusals=frozenset({{{', '.join(map(str, sorted(self.refusals)))}}})")
        if self.resets:
            parts.append(f"resets={self.resets!r}")
        return f"FaultPlan({', '.join(parts)})"

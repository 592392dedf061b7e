"""The determinism self-check: run twice with one seed, and say where the runs part.

Same seed, same code: the same trace, event for event. When two runs differ, something
outside the simulation decided a value or an order, and the first divergent event
says what it touched. ``first_divergence`` compares two lists of events;
``compare_traces`` compares two ``Trace``s, digests first (they cover every event, kept
or not) and then the events the rings kept; ``check_determinism`` runs a scenario twice
on fresh networks and compares. The pytest plugin's
``--sockfake-check-determinism`` reruns a failing test the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sockfake.sim.trace.recorder import Trace, TraceEvent

__all__ = ["Divergence", "check_determinism", "compare_traces", "first_divergence"]


@dataclass(frozen=True)
class Divergence:
    """Where two runs of one seed part: the index and both events there (None: ended)."""

    index: int
    first: TraceEvent | None
    second: TraceEvent | None
    # True: the digests differ but every kept event agrees, so the runs part before
    # ``index``, the first event both traces kept (their rings dropped the rest).
    before_kept: bool = False

    @property
    def likely_cause(self) -> str:
        a, b = self.first, self.second
        if self.before_kept:
            return (
                "unknown from the kept events: rerun with SimNetwork(trace_limit=None) "
                "(every event kept) to see where and why"
            )
        if a is None or b is None:
            return (
                "one run did more than the other: a loop or a wait bounded by something "
                "outside the simulation (the real clock, a real sleep or lock, a thread "
                "the simulation does not know)"
            )
        if a.kind == "switch" or b.kind == "switch" or a.actor != b.actor:
            return (
                "the threads ran in another order: something outside the simulation chose "
                "(a real lock, event or sleep, a thread started outside the network)"
            )
        if a.time != b.time and a.kind == b.kind:
            return (
                "the same step happened at another virtual time: a timeout or sleep "
                "computed from the real clock (time.time(), time.monotonic())"
            )
        return (
            "the same step carried other data: a value from outside the simulation "
            "(time.time() without interception, random.seed() with no argument or "
            "entropy with seed_entropy=False, OpenSSL's randomness, id() or hash() of "
            "an object, iteration over a set)"
        )

    @property
    def payload_difference(self) -> str | None:
        """Where two payloads part: the first differing byte's offset and the bytes
        around it in each run (two payloads that look alike at their start, such as
        websockets' masked frames, differ further in); None if they do not differ."""
        a = self.first.payload if self.first is not None else None
        b = self.second.payload if self.second is not None else None
        if a is None or b is None or a == b:
            return None
        pairs = enumerate(zip(a, b, strict=False))
        offset = next((i for i, (x, y) in pairs if x != y), min(len(a), len(b)))
        start = max(0, offset - 8)
        return (
            f"payloads differ first at byte {offset} (lengths {len(a)} and {len(b)}):\n"
            f"  first run:  [{start}:] {a[start:offset + 24]!r}\n"
            f"  second run: [{start}:] {b[start:offset + 24]!r}"
        )

    def describe(self) -> str:
        def show(event: TraceEvent | None) -> str:
            if event is None:
                return "(the run had ended)"
            text = f"{event.time:.6f}  {event.actor}  {event.kind}  {event.details}"
            if event.payload is not None:
                text += f"  payload {event.payload[:64]!r}"
            return text

        if self.before_kept and self.index == 0:  # nothing dropped, yet digests differ
            return (
                "the runs' digests differ but their events read alike: a value recorded "
                "differs where its text does not (1 against '1', a text's arguments)"
            )
        if self.before_kept:
            return (
                f"the runs part before event {self.index}, the first event the traces "
                "kept (their digests differ; the events kept from there on agree)\n"
                f"likely cause: {self.likely_cause}"
            )
        difference = self.payload_difference
        return (
            f"the runs part at event {self.index}:\n"
            f"  first run:  {show(self.first)}\n"
            f"  second run: {show(self.second)}\n"
            + (f"{difference}\n" if difference else "")
            + f"likely cause: {self.likely_cause}"
        )


def first_divergence(
    first: Sequence[TraceEvent], second: Sequence[TraceEvent]
) -> Divergence | None:
    """The first event where two traces differ (every field), or None if they agree."""
    for index, (a, b) in enumerate(zip(first, second, strict=False)):
        if a.canonical() != b.canonical():
            return Divergence(index, a, b)
    if len(first) != len(second):
        index = min(len(first), len(second))
        return Divergence(
            index,
            first[index] if index < len(first) else None,
            second[index] if index < len(second) else None,
        )
    return None


def compare_traces(first: Trace, second: Trace) -> Divergence | None:
    """Where two runs' traces part, or None when their digests (every event) agree.

    The digests are compared first; when they differ, the events both traces kept are
    compared by their index in the run, and a Divergence with ``before_kept`` says the
    runs part before the first of them when those all agree."""
    if first.digest() == second.digest():
        return None
    start = max(first.dropped, second.dropped)  # the run's first event both kept
    kept_first = first.events[start - first.dropped:]
    kept_second = second.events[start - second.dropped:]
    divergence = first_divergence(kept_first, kept_second)
    if divergence is not None:
        return Divergence(start + divergence.index, divergence.first, divergence.second)
    return Divergence(start, None, None, before_kept=True)


def check_determinism(
    scenario: Callable[[Any], object], seed: int = 0, **network_options: Any
) -> Divergence | None:
    """Run ``scenario(net)`` on two fresh ``SimNetwork(seed, **network_options)``;
    the first divergence of their traces, or None when the runs are equal."""
    from sockfake.sim.network import SimNetwork

    traces: list[Trace] = []
    for _ in range(2):
        with SimNetwork(seed=seed, **network_options) as net:
            try:
                scenario(net)
            finally:
                traces.append(net.trace)
    return compare_traces(traces[0], traces[1])

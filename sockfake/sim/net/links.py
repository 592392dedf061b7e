"""Link and fault models: pure functions of (conditions, state, input, now, rng).

Nothing here knows about sockets, threads or the clock, and nothing here mutates:
each model takes the link's state and returns its fate together with the next
state, which the caller stores (``sockfake.sim.net.topology``) and applies (schedules
the arrival on the kernel's clock, flips the bit). The only impurity is the random
stream passed in, drawn from in a fixed order, so "same seed, same fate" holds and
every model is testable on its own (``tests/sim/net/test_links.py``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import random
from dataclasses import dataclass

from sockfake.errors import SockfakeTypeError, SockfakeValueError

__all__ = [
    "TCP_RETRIES2",
    "DatagramFate",
    "GilbertElliott",
    "LinkConditions",
    "LinkState",
    "corrupted",
    "datagram_fate",
    "is_instant",
    "packet_loss",
    "retransmission_timeout",
    "stream_arrival",
    "stream_chunks",
]


def _check_probability(owner: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SockfakeTypeError(f"{owner}.{name} must be a number, not {value!r}")
    if not (0.0 <= value <= 1.0) or math.isnan(value):
        raise SockfakeValueError(f"{owner}.{name} must be a probability in [0, 1], not {value!r}")


def _check_non_negative(owner: str, name: str, value: object, *, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SockfakeTypeError(f"{owner}.{name} must be a number, not {value!r}")
    if not value >= 0 or (math.isinf(value) and name != "bandwidth"):
        raise SockfakeValueError(f"{owner}.{name} must be non-negative, not {value!r}")


@dataclass(frozen=True)
class GilbertElliott:
    """Bursty loss, with netem's ``loss gemodel p r 1-h 1-k`` parameters.

    Two states, good and bad. Before each datagram the chain moves good->bad with
    probability ``p`` and bad->good with probability ``r``; then the datagram is lost
    with probability ``loss_bad`` (netem's 1-h) in the bad state, ``loss_good`` (1-k)
    in the good one. ``GilbertElliott(p=0.01, r=0.3)`` gives rare bursts of about
    three lost datagrams.
    """

    p: float
    r: float = 1.0
    loss_bad: float = 1.0
    loss_good: float = 0.0

    def __post_init__(self) -> None:
        for name in ("p", "r", "loss_bad", "loss_good"):
            _check_probability("GilbertElliott", name, getattr(self, name))


@dataclass(frozen=True)
class LinkConditions:
    """What one direction of a link does to traffic. The default is a perfect link.

    - ``latency``: one-way delay, seconds; ``jitter``: extra delay uniform in
      ``[0, jitter)``. Datagrams can overtake each other through jitter; streams
      cannot (each segment arrives no earlier than the one before it).
    - ``bandwidth``: bytes per second, or None for unlimited: a payload of n bytes
      occupies the link for n / bandwidth seconds.
    - ``loss``: independent datagram loss; ``burst_loss``: a Gilbert-Elliott chain
      (both may be set: a datagram survives only if it survives both).
    - ``duplicate``: a surviving datagram is delivered twice.
    - ``reorder``: as netem, a datagram skips the latency (and jitter) and so
      overtakes those in flight; it has an effect only with latency.
    - ``corrupt``: one bit of a datagram's payload flipped.
    - ``chunk``: stream writes are cut into segments of seeded random sizes from 1
      to ``chunk`` bytes, so a reader sees short reads; None keeps each send() whole.

    Streams are reliable and ordered: a stream segment that ``loss`` or
    ``burst_loss`` takes is retransmitted after TCP's retransmission timeout (see
    ``retransmission_timeout``), so the stream is delayed, never cut or reordered;
    duplication and corruption apply to datagrams only.
    """

    latency: float = 0.0
    jitter: float = 0.0
    bandwidth: float | None = None
    loss: float = 0.0
    burst_loss: GilbertElliott | None = None
    duplicate: float = 0.0
    reorder: float = 0.0
    corrupt: float = 0.0
    chunk: int | None = None

    def __post_init__(self) -> None:
        owner = "LinkConditions"
        _check_non_negative(owner, "latency", self.latency, allow_none=False)
        _check_non_negative(owner, "jitter", self.jitter, allow_none=False)
        _check_non_negative(owner, "bandwidth", self.bandwidth, allow_none=True)
        if self.bandwidth is not None and self.bandwidth == 0:
            raise SockfakeValueError("LinkConditions.bandwidth must be positive or None, not 0")
        for name in ("loss", "duplicate", "reorder", "corrupt"):
            _check_probability(owner, name, getattr(self, name))
        if self.burst_loss is not None and not isinstance(self.burst_loss, GilbertElliott):
            raise SockfakeTypeError(
                f"LinkConditions.burst_loss must be a GilbertElliott, not {self.burst_loss!r}"
            )
        if self.chunk is not None and (
            isinstance(self.chunk, bool) or not isinstance(self.chunk, int) or self.chunk < 1
        ):
            raise SockfakeValueError(
                f"LinkConditions.chunk must be a positive int or None, not {self.chunk!r}"
            )

    @functools.cached_property
    def datagrams_untouched(self) -> bool:
        """Datagrams cross the link as sent, at once, and their fate draws no random
        number: a transport may deliver them without asking ``datagram_fate()``."""
        return (self.latency == 0 and self.jitter == 0 and self.bandwidth is None
                and self.loss == 0 and self.burst_loss is None and self.duplicate == 0
                and self.reorder == 0 and self.corrupt == 0)

    @functools.cached_property
    def streams_immediate(self) -> bool:
        """A stream's bytes cross the link whole (no re-chunking), at once and never
        lost: a transport may deliver a segment within the send, as ``carry()`` would."""
        return (self.chunk is None and is_instant(self) and self.loss == 0
                and self.burst_loss is None)

    def replace(self, **changes: object) -> LinkConditions:
        """A copy with some fields changed (unknown names are a clear error)."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise SockfakeTypeError(
                f"unknown link condition(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @property
    def is_perfect(self) -> bool:
        return self == PERFECT


PERFECT = LinkConditions()


@dataclass(frozen=True)
class LinkState:
    """The state of one link direction that the models carry from call to call."""

    burst_bad: bool = False  # the Gilbert-Elliott chain is in its bad state
    busy_until: float = 0.0  # when the link finishes sending what it has


@dataclass(frozen=True)
class DatagramFate:
    """What happens to one datagram: dropped (with the reason), or its arrivals."""

    dropped: str | None
    arrivals: tuple[float, ...] = ()
    flip_bit: int | None = None  # index of the payload bit to flip, if corrupted


def is_instant(conditions: LinkConditions) -> bool:
    """No latency, jitter or bandwidth limit: a packet arrives the moment it is sent."""
    return conditions.latency == 0 and conditions.jitter == 0 and conditions.bandwidth is None


def _transmit_end(
    conditions: LinkConditions, state: LinkState, size: int, now: float
) -> tuple[float, LinkState]:
    """When the last byte leaves the sender, given the bandwidth and what is queued."""
    if conditions.bandwidth is None:
        return now, state
    busy_until = max(now, state.busy_until) + size / conditions.bandwidth
    return busy_until, dataclasses.replace(state, busy_until=busy_until)


def _delay(conditions: LinkConditions, rng: random.Random) -> float:
    if conditions.jitter:
        return conditions.latency + rng.random() * conditions.jitter
    return conditions.latency


def packet_loss(
    conditions: LinkConditions, state: LinkState, rng: random.Random
) -> tuple[str | None, LinkState]:
    """Is one packet lost (``"burst-loss"``, ``"loss"``) or not (None)? The
    Gilbert-Elliott chain moves one step first; its state comes back."""
    if conditions.burst_loss is not None:
        chain = conditions.burst_loss
        bad = state.burst_bad
        if bad:
            if rng.random() < chain.r:
                bad = False
        elif rng.random() < chain.p:
            bad = True
        if bad != state.burst_bad:
            state = dataclasses.replace(state, burst_bad=bad)
        lose = chain.loss_bad if bad else chain.loss_good
        if lose and rng.random() < lose:
            return "burst-loss", state
    if conditions.loss and rng.random() < conditions.loss:
        return "loss", state
    return None, state


# Linux's retransmission timer (include/net/tcp.h): at least TCP_RTO_MIN above the
# round trip, doubling with each loss of the same segment, at most TCP_RTO_MAX.
RTO_MIN = 0.2
RTO_MAX = 120.0
# net.ipv4.tcp_retries2: the retransmissions of one segment before TCP gives up on the
# connection (ETIMEDOUT); from 200 ms, about 15 minutes.
TCP_RETRIES2 = 15


def retransmission_timeout(conditions: LinkConditions, attempt: int) -> float:
    """How long a sender waits before it sends a lost segment again, the ``attempt``-th
    time (0: the first): Linux's RTO on a link of this latency (its round trip plus
    ``TCP_RTO_MIN``), doubled per attempt, capped at ``TCP_RTO_MAX``."""
    base = RTO_MIN + 2 * (conditions.latency + conditions.jitter)
    return float(min(RTO_MAX, base * 2 ** min(attempt, 16)))


def datagram_fate(
    conditions: LinkConditions, state: LinkState, size: int, now: float, rng: random.Random
) -> tuple[DatagramFate, LinkState]:
    """Decide loss, duplication, corruption and arrival times of one datagram."""
    if conditions.burst_loss is not None or conditions.loss:
        lost, state = packet_loss(conditions, state, rng)
        if lost is not None:
            return DatagramFate(lost), state
    sent, state = _transmit_end(conditions, state, size, now)
    copies = 2 if conditions.duplicate and rng.random() < conditions.duplicate else 1
    arrivals = []
    for _ in range(copies):
        if conditions.reorder and rng.random() < conditions.reorder:
            arrivals.append(sent)
        else:
            arrivals.append(sent + _delay(conditions, rng))
    flip = None
    if conditions.corrupt and size and rng.random() < conditions.corrupt:
        flip = rng.randrange(size * 8)
    return DatagramFate(None, tuple(arrivals), flip), state


def corrupted(payload: bytes, fate: DatagramFate) -> bytes:
    """The payload as it arrives: with the fate's bit flipped, if it has one."""
    if fate.flip_bit is None:
        return payload
    mutable = bytearray(payload)
    mutable[fate.flip_bit // 8] ^= 1 << (fate.flip_bit % 8)
    return bytes(mutable)


def stream_chunks(conditions: LinkConditions, size: int, rng: random.Random) -> list[int]:
    """Cut one write of ``size`` bytes into segment lengths (seeded when chunking is on)."""
    if conditions.chunk is None:
        return [size]
    sizes = []
    left = size
    while left > 0:
        piece = min(left, rng.randint(1, conditions.chunk))
        sizes.append(piece)
        left -= piece
    return sizes


def stream_arrival(
    conditions: LinkConditions,
    state: LinkState,
    previous_arrival: float,
    size: int,
    now: float,
    rng: random.Random,
) -> tuple[float, LinkState]:
    """Arrival time of one stream segment: never before the connection's previous one."""
    sent, state = _transmit_end(conditions, state, size, now)
    arrival = sent + _delay(conditions, rng)
    return max(arrival, previous_arrival), state

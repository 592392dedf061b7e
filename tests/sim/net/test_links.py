"""The link models on their own: pure functions of (conditions, state, input, now, rng)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings, strategies as st

from sockfake import SockfakeError
from sockfake.sim.net.links import (
    DatagramFate,
    GilbertElliott,
    LinkConditions,
    LinkState,
    corrupted,
    datagram_fate,
    is_instant,
    stream_arrival,
    stream_chunks,
)


def test_a_perfect_link_delivers_once_at_once_and_keeps_its_state() -> None:
    state = LinkState()
    fate, after = datagram_fate(LinkConditions(), state, 100, 5.0, random.Random(1))
    assert fate == DatagramFate(None, (5.0,), None)
    assert after == state


def test_loss_drops_with_its_reason() -> None:
    fate, _ = datagram_fate(LinkConditions(loss=1.0), LinkState(), 10, 0.0, random.Random(1))
    assert fate.dropped == "loss" and fate.arrivals == ()


def test_latency_and_jitter_delay_the_arrival() -> None:
    fate, _ = datagram_fate(LinkConditions(latency=0.5), LinkState(), 10, 2.0, random.Random(1))
    assert fate.arrivals == (2.5,)
    fate, _ = datagram_fate(
        LinkConditions(latency=0.5, jitter=0.1), LinkState(), 10, 2.0, random.Random(1)
    )
    assert 2.5 <= fate.arrivals[0] < 2.6


def test_bandwidth_queues_datagrams_behind_each_other_through_the_returned_state() -> None:
    conditions = LinkConditions(bandwidth=1000.0)
    state = LinkState()
    first, state = datagram_fate(conditions, state, 500, 0.0, random.Random(1))
    second, state = datagram_fate(conditions, state, 500, 0.0, random.Random(1))
    assert first.arrivals == (0.5,)
    assert second.arrivals == (1.0,)  # waited for the first to leave
    assert state.busy_until == 1.0


def test_the_models_never_mutate_the_state_they_are_given() -> None:
    conditions = LinkConditions(burst_loss=GilbertElliott(p=1.0, r=0.0), bandwidth=10.0)
    state = LinkState()
    _, after = datagram_fate(conditions, state, 10, 0.0, random.Random(1))
    assert state == LinkState()  # frozen: the caller stores the new state
    assert after.burst_bad is True


def test_gilbert_elliott_loses_in_the_bad_state_and_recovers() -> None:
    chain = GilbertElliott(p=1.0, r=1.0, loss_bad=1.0, loss_good=0.0)
    conditions = LinkConditions(burst_loss=chain)
    fate, state = datagram_fate(conditions, LinkState(), 10, 0.0, random.Random(1))
    assert fate.dropped == "burst-loss" and state.burst_bad
    fate, state = datagram_fate(conditions, state, 10, 0.0, random.Random(1))
    assert fate.dropped is None and not state.burst_bad


def test_duplicate_gives_two_arrivals_and_reorder_skips_the_latency() -> None:
    fate, _ = datagram_fate(
        LinkConditions(latency=1.0, duplicate=1.0), LinkState(), 10, 0.0, random.Random(1)
    )
    assert fate.arrivals == (1.0, 1.0)
    fate, _ = datagram_fate(
        LinkConditions(latency=1.0, reorder=1.0), LinkState(), 10, 0.0, random.Random(1)
    )
    assert fate.arrivals == (0.0,)


def test_corruption_flips_exactly_the_chosen_bit() -> None:
    payload = bytes(8)
    fate, _ = datagram_fate(LinkConditions(corrupt=1.0), LinkState(), 8, 0.0, random.Random(3))
    assert fate.flip_bit is not None and 0 <= fate.flip_bit < 64
    changed = corrupted(payload, fate)
    diff = int.from_bytes(changed, "big") ^ int.from_bytes(payload, "big")
    assert bin(diff).count("1") == 1
    assert corrupted(payload, DatagramFate(None, (0.0,))) is payload


def test_same_random_stream_same_fates() -> None:
    conditions = LinkConditions(loss=0.3, duplicate=0.2, jitter=0.1, latency=0.01)

    def run(seed: int) -> list[DatagramFate]:
        rng, state, fates = random.Random(seed), LinkState(), []
        for index in range(50):
            fate, state = datagram_fate(conditions, state, 100, index * 0.1, rng)
            fates.append(fate)
        return fates

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_stream_segments_never_arrive_before_the_previous_one() -> None:
    conditions = LinkConditions(latency=0.1, jitter=1.0)
    rng = random.Random(5)
    state, previous = LinkState(), 0.0
    for index in range(100):
        arrival, state = stream_arrival(conditions, state, previous, 10, index * 0.01, rng)
        assert arrival >= previous
        previous = arrival


@pytest.mark.parametrize("chunk", [1, 3, 100])
def test_chunking_cuts_a_write_into_pieces_of_1_to_chunk_bytes(chunk: int) -> None:
    sizes = stream_chunks(LinkConditions(chunk=chunk), 250, random.Random(2))
    assert sum(sizes) == 250
    assert all(1 <= size <= chunk for size in sizes)
    assert stream_chunks(LinkConditions(), 250, random.Random(2)) == [250]


def test_only_a_link_without_delay_or_bandwidth_limit_is_instant() -> None:
    assert is_instant(LinkConditions())
    assert is_instant(LinkConditions(loss=0.5))
    assert not is_instant(LinkConditions(latency=0.001))
    assert not is_instant(LinkConditions(bandwidth=1e9))


class CountingRandom(random.Random):
    """A random stream that counts what is drawn from it."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.draws = 0

    def random(self) -> float:
        self.draws += 1
        return super().random()

    def getrandbits(self, k: int) -> int:
        self.draws += 1
        return super().getrandbits(k)


def test_gilbert_elliott_can_lose_in_the_good_state_and_stay_bad() -> None:
    good_lossy = LinkConditions(burst_loss=GilbertElliott(p=0.0, loss_good=1.0))
    state = LinkState()
    fate, after = datagram_fate(good_lossy, state, 10, 0.0, random.Random(1))
    assert fate.dropped == "burst-loss" and after is state  # no move: the same state
    sticky = LinkConditions(burst_loss=GilbertElliott(p=1.0, r=0.0, loss_bad=0.0))
    state = LinkState()
    for _ in range(5):
        fate, state = datagram_fate(sticky, state, 10, 0.0, random.Random(1))
        assert fate.dropped is None and state.burst_bad


def test_a_datagram_must_survive_both_burst_and_independent_loss() -> None:
    both = LinkConditions(burst_loss=GilbertElliott(p=0.0, loss_good=0.0), loss=1.0)
    fate, _ = datagram_fate(both, LinkState(), 10, 0.0, random.Random(1))
    assert fate.dropped == "loss"


def test_an_empty_datagram_is_never_corrupted() -> None:
    rng = CountingRandom(1)
    fate, _ = datagram_fate(LinkConditions(corrupt=1.0), LinkState(), 0, 0.0, rng)
    assert fate.flip_bit is None and rng.draws == 0


def test_stream_segments_queue_behind_each_other_on_a_limited_bandwidth() -> None:
    conditions = LinkConditions(bandwidth=100.0, latency=1.0)
    state = LinkState()
    first, state = stream_arrival(conditions, state, 0.0, 50, 0.0, random.Random(1))
    second, state = stream_arrival(conditions, state, first, 50, 0.0, random.Random(1))
    assert (first, second) == (1.5, 2.0)
    assert state.busy_until == 1.0
    later, state = stream_arrival(conditions, state, second, 100, 5.0, random.Random(1))
    assert later == 7.0  # the link was idle again: sent from now, not from busy_until
    assert state.busy_until == 6.0


def test_a_segment_never_arrives_before_the_connections_previous_one() -> None:
    conditions = LinkConditions(latency=0.1)
    arrival, _ = stream_arrival(conditions, LinkState(), 9.0, 10, 0.0, random.Random(1))
    assert arrival == 9.0


def test_each_model_draws_a_fixed_count_of_random_numbers() -> None:
    """A link without random faults draws nothing; each fault draws its numbers in a
    fixed order (the burst chain, its loss, the loss coin, duplication, per copy the
    reorder coin or the jitter, then corruption's coin and bit)."""

    def draws(conditions: LinkConditions, size: int = 10) -> int:
        rng = CountingRandom(1)
        datagram_fate(conditions, LinkState(), size, 0.0, rng)
        return rng.draws

    assert draws(LinkConditions()) == 0
    assert draws(LinkConditions(latency=1.0, bandwidth=10.0)) == 0
    assert draws(LinkConditions(jitter=0.1)) == 1
    assert draws(LinkConditions(loss=0.5)) == 1
    assert draws(LinkConditions(duplicate=1.0, jitter=0.1)) == 3  # the coin, two delays
    assert draws(LinkConditions(reorder=1.0)) == 1
    replay = random.Random(1)
    replay.random()  # corruption's coin, then its bit
    fate, _ = datagram_fate(LinkConditions(corrupt=1.0), LinkState(), 10, 0.0, random.Random(1))
    assert fate.flip_bit == replay.randrange(80)
    assert draws(LinkConditions(burst_loss=GilbertElliott(p=0.5, loss_bad=0.0))) == 1
    assert draws(LinkConditions(burst_loss=GilbertElliott(p=1.0, loss_bad=0.5))) == 2
    rng = CountingRandom(1)
    assert stream_chunks(LinkConditions(), 500, rng) == [500] and rng.draws == 0


BAD_CONDITIONS: list[tuple[dict[str, object], type[Exception], str]] = [
    ({"latency": True}, TypeError, "LinkConditions.latency must be a number, not True"),
    ({"latency": "1"}, TypeError, "LinkConditions.latency must be a number, not '1'"),
    ({"latency": float("inf")}, ValueError, "LinkConditions.latency must be non-negative"),
    ({"jitter": float("nan")}, ValueError, "LinkConditions.jitter must be non-negative"),
    ({"bandwidth": 0.0}, ValueError, "LinkConditions.bandwidth must be positive or None"),
    ({"loss": False}, TypeError, "LinkConditions.loss must be a number, not False"),
    ({"corrupt": 1.01}, ValueError, "LinkConditions.corrupt must be a probability in [0, 1]"),
    ({"burst_loss": 0.1}, TypeError, "LinkConditions.burst_loss must be a GilbertElliott"),
    ({"chunk": True}, ValueError, "LinkConditions.chunk must be a positive int or None"),
    ({"chunk": 2.0}, ValueError, "LinkConditions.chunk must be a positive int or None"),
]


@pytest.mark.parametrize(("fields", "kind", "message"), BAD_CONDITIONS)
def test_bad_conditions_name_the_field_and_the_value(
    fields: dict[str, object], kind: type[Exception], message: str
) -> None:
    with pytest.raises(SockfakeError) as raised:
        LinkConditions(**fields)  # type: ignore[arg-type]
    assert isinstance(raised.value, kind)
    assert str(raised.value).startswith(message)


def test_an_unlimited_bandwidth_may_be_given_as_infinity() -> None:
    fate, _ = datagram_fate(
        LinkConditions(bandwidth=float("inf")), LinkState(), 10, 3.0, random.Random(1)
    )
    assert fate.arrivals == (3.0,)


def test_gilbert_elliott_checks_each_probability() -> None:
    for name in ("p", "r", "loss_bad", "loss_good"):
        fields: dict[str, object] = {"p": 0.1, name: -0.5}
        with pytest.raises(ValueError, match=f"GilbertElliott.{name} must be a probability"):
            GilbertElliott(**fields)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"GilbertElliott\.p must be a number, not True"):
        GilbertElliott(p=True)


def test_replace_changes_fields_and_refuses_unknown_ones() -> None:
    base = LinkConditions(latency=0.1)
    assert base.replace(loss=0.2) == LinkConditions(latency=0.1, loss=0.2)
    assert base == LinkConditions(latency=0.1)  # a copy: the original stays
    with pytest.raises(TypeError, match=r"^unknown link condition[(]s[)] delay, lossy; known: "):
        base.replace(lossy=1, delay=2)
    with pytest.raises(ValueError, match="loss"):
        base.replace(loss=2.0)
    assert LinkConditions().is_perfect and not base.is_perfect


# The fast paths' predicates against the general models they skip: whenever a transport
# may skip datagram_fate() or carry() (``datagrams_untouched``, ``streams_immediate``),
# the model would have said "arrives now, unchanged, as one segment" and drawn nothing.
CONDITIONS = st.builds(
    LinkConditions,
    latency=st.sampled_from([0.0, 0, 0.25]),
    jitter=st.sampled_from([0.0, 0.1]),
    bandwidth=st.sampled_from([None, 1000.0, float("inf")]),
    loss=st.sampled_from([0.0, 0.3, 1.0]),
    burst_loss=st.sampled_from([None, GilbertElliott(p=0.5), GilbertElliott(p=0.0)]),
    duplicate=st.sampled_from([0.0, 0.5]),
    reorder=st.sampled_from([0.0, 0.5]),
    corrupt=st.sampled_from([0.0, 0.5]),
    chunk=st.sampled_from([None, 1, 7]),
)


@settings(max_examples=500, deadline=None, derandomize=True)
@given(conditions=CONDITIONS, size=st.integers(0, 70000), now=st.floats(0, 1e6),
       seed=st.integers(0, 2**32))
def test_what_the_fast_paths_skip_is_what_the_full_models_would_give(
    conditions: LinkConditions, size: int, now: float, seed: int
) -> None:
    state = LinkState(busy_until=now / 2)
    rng = CountingRandom(seed)
    fate, after = datagram_fate(conditions, state, size, now, rng)
    if conditions.datagrams_untouched:
        assert fate == DatagramFate(None, (now,), None)
        assert after == state and rng.draws == 0
    rng = CountingRandom(seed)
    chunks = stream_chunks(conditions, size, rng)
    arrival, after = stream_arrival(conditions, state, now, size, now, rng)
    lossless = conditions.loss == 0 and conditions.burst_loss is None
    assert conditions.streams_immediate == (
        conditions.chunk is None and is_instant(conditions) and lossless
    )
    if conditions.streams_immediate:
        assert chunks == [size] and arrival == now and after == state and rng.draws == 0

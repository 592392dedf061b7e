"""The link models on their own: pure functions of (conditions, state, input, now, rng)."""

from __future__ import annotations

import random

import pytest

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

"""The bounded trace: a ring of the last events, the digest of them all.

An idle asyncio loop ticking every 0.1 s for a virtual hour records about 36,000
events; the ring keeps the last ``trace_limit`` of them and the digest of every one, so
the failure report, the exports and the determinism check still work on a run longer
than the ring, and say what it no longer holds.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from sockfake import settings
from sockfake.errors import SockfakeValueError
from sockfake.failure_report import FailureReport
from sockfake.sim import SimNetwork
from sockfake.sim.determinism import check_determinism, compare_traces
from sockfake.sim.trace.recorder import DEFAULT_TRACE_LIMIT, Trace
from sockfake.testing import open_testbed

RING = 1000  # small, so a virtual hour of ticks overflows it many times


def _idle_hour(net: Any) -> None:
    """An asyncio loop with nothing to do but a 0.1 s tick, for one virtual hour."""

    async def ticking() -> None:
        deadline = time.monotonic() + 3600
        while time.monotonic() < deadline:
            await asyncio.sleep(0.1)

    with net.intercept():
        asyncio.run(ticking())


def _run(limit: int | None, scenario: Any = _idle_hour) -> SimNetwork:
    net = SimNetwork(seed=3, trace_limit=limit, time_limit=7200)
    try:
        scenario(net)
    finally:
        net.close()
    return net


def test_an_idle_hour_keeps_the_ring_and_the_digest_of_an_unbounded_run() -> None:
    ring, whole = _run(RING), _run(None)
    assert len(whole.trace) > 30_000 and whole.trace.dropped == 0
    assert len(whole.trace.events) == len(whole.trace)  # None keeps every event
    assert len(ring.trace) == len(whole.trace)
    assert len(ring.trace.events) == RING
    assert ring.trace.dropped == len(ring.trace) - RING
    assert ring.trace.events == whole.trace.events[-RING:]
    assert ring.trace.digest() == whole.trace.digest()


def test_the_default_network_keeps_a_ring_of_default_trace_limit() -> None:
    with SimNetwork(seed=1) as net:
        assert net.trace.limit == DEFAULT_TRACE_LIMIT


def test_the_failure_report_of_a_run_longer_than_the_ring(tmp_path: Path) -> None:
    net = _run(RING)
    text = FailureReport(seed=3, trace_dir=tmp_path, name="idle").text(net)
    dropped = net.trace.dropped
    assert f"{len(net.trace)} trace events, trace digest {net.trace.digest()}" in text
    assert f"{len(net.trace)} events, the first {dropped} not kept" in text
    assert "ran" in text and "more times before" in text  # the ticks, summarised
    assert (tmp_path / "idle.pcapng").exists()


def test_exports_of_a_trimmed_trace_say_what_they_omit(tmp_path: Path) -> None:
    trace = _run(RING).trace
    omitted = trace.omitted()
    assert omitted.startswith(f"{len(trace)} events, the first {trace.dropped} not kept")
    lines = trace.write_jsonl(tmp_path / "t.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    assert (first["kind"], first["details"], first["length"]) == (
        "omitted", omitted, trace.dropped)
    assert len(lines) == RING + 1
    assert omitted.encode() in trace.write_pcap(tmp_path / "t.pcapng").read_bytes()
    assert omitted in trace.write_html(tmp_path / "t.html").read_text()


def test_exports_of_a_whole_trace_claim_no_omission(tmp_path: Path) -> None:
    trace = _run(None, lambda net: net.sleep(1.0)).trace
    assert trace.omitted() == ""
    lines = trace.write_jsonl(tmp_path / "t.jsonl").read_text().splitlines()
    assert all(json.loads(line)["kind"] != "omitted" for line in lines)
    assert "not kept" not in trace.write_html(tmp_path / "t.html").read_text()


def _ticks(net: Any, count: int) -> None:
    for _ in range(count):
        net.sleep(0.1)


def test_the_determinism_check_passes_a_run_longer_than_the_ring() -> None:
    assert check_determinism(lambda net: _ticks(net, 2000), seed=3, trace_limit=100) is None


def test_a_divergence_inside_the_ring_is_found_at_its_index_in_the_run() -> None:
    runs = iter([0.1, 0.2])  # the second run's last sleep is another length

    def scenario(net: Any) -> None:
        _ticks(net, 2000)
        net.sleep(next(runs))

    ring = check_determinism(scenario, seed=3, trace_limit=100)
    runs = iter([0.1, 0.2])
    whole = check_determinism(scenario, seed=3, trace_limit=None)
    assert ring is not None and whole is not None
    assert not ring.before_kept
    assert ring.index == whole.index > 100
    assert ring.first == whole.first and ring.second == whole.second
    assert "the runs part at event" in ring.describe()


def test_a_divergence_before_the_ring_is_said_to_precede_it() -> None:
    runs = iter([b"a", b"b"])  # the runs differ in their first datagram, then agree

    def scenario(net: Any) -> None:
        with net.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(next(runs), ("127.0.0.1", 9))
        _ticks(net, 2000)

    divergence = check_determinism(scenario, seed=3, trace_limit=100)
    assert divergence is not None and divergence.before_kept
    assert divergence.index > 100  # the first event both rings kept
    text = divergence.describe()
    assert f"the runs part before event {divergence.index}" in text
    assert "trace_limit=None" in text


def test_the_marker_key_and_open_testbed_set_the_ring() -> None:
    assert settings.DEFAULT_TRACE_LIMIT == DEFAULT_TRACE_LIMIT  # settings imports no sim
    with open_testbed(trace_limit=None) as bed:
        assert bed.network.trace.limit is None
    with open_testbed(trace_limit=50) as bed:
        for _ in range(200):
            bed.network.sleep(0.1)
        assert len(bed.network.trace.events) == 50
    with open_testbed() as bed:
        assert bed.network.trace.limit == DEFAULT_TRACE_LIMIT
    with pytest.raises(SockfakeValueError, match="trace_limit=0 must be a number of events"):
        with open_testbed(trace_limit=0):
            pass


def test_traces_that_read_alike_but_hash_apart_are_said_to() -> None:
    first, second = Trace(), Trace()
    first.add(0.0, "main", "note", "x", src=1)
    second.add(0.0, "main", "note", "x", src="1")  # another value, the same text
    assert first.events[0].canonical() == second.events[0].canonical()
    divergence = compare_traces(first, second)
    assert divergence is not None and divergence.before_kept and divergence.index == 0
    assert "read alike" in divergence.describe()

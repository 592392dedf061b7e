"""The determinism self-check finds what reaches outside the simulation."""

from __future__ import annotations

import time
from typing import Any

from helpers import EchoHandler, recv_exactly, serving

import sockfake as socketserver
from sockfake.sim.determinism import check_determinism, first_divergence
from sockfake.sim.trace.recorder import TraceEvent


def _echo(net: Any, payload: bytes) -> None:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), EchoHandler, network=net)
    with serving(server), net.create_connection(server.server_address) as client:
        client.sendall(payload)
        assert recv_exactly(client, len(payload)) == payload


def test_a_deterministic_scenario_has_no_divergence() -> None:
    assert check_determinism(lambda net: _echo(net, b"same every time"), seed=5) is None


def test_an_injected_real_clock_is_found_at_its_first_send() -> None:
    divergence = check_determinism(lambda net: _echo(net, repr(time.time()).encode()), seed=5)
    assert divergence is not None
    assert divergence.first is not None and divergence.second is not None
    assert divergence.first.kind == divergence.second.kind == "send"
    assert divergence.first.payload != divergence.second.payload
    text = divergence.describe()
    assert "the runs part at event" in text and "time.time()" in text


def test_a_run_that_does_more_is_named() -> None:
    a = [TraceEvent(0.0, "main", "bind"), TraceEvent(1.0, "main", "close")]
    divergence = first_divergence(a, a[:1])
    assert divergence is not None and divergence.index == 1 and divergence.second is None
    assert "one run did more than the other" in divergence.likely_cause
    switched = first_divergence(
        [TraceEvent(0.0, "a", "switch", "notify")], [TraceEvent(0.0, "b", "switch", "notify")]
    )
    assert switched is not None and "another order" in switched.likely_cause


def test_payloads_that_part_late_are_shown_where_they_part() -> None:
    """Two payloads alike in their first 64 bytes (what the event line shows) are shown
    at their first differing byte, with its offset."""
    same = bytes(range(100))
    a = [TraceEvent(0.0, "main", "send", payload=same + b"AAAA")]
    b = [TraceEvent(0.0, "main", "send", payload=same + b"ABAA")]
    divergence = first_divergence(a, b)
    assert divergence is not None
    assert divergence.payload_difference is not None
    text = divergence.describe()
    assert "payloads differ first at byte 101 (lengths 104 and 104)" in text
    assert "[93:] " in text and "AAAA" in text and "ABAA" in text
    c = [TraceEvent(0.0, "main", "send", payload=same)]
    shorter = first_divergence(a, c)
    assert shorter is not None
    assert "first at byte 100 (lengths 104 and 100)" in shorter.describe()
    other = first_divergence(a, [TraceEvent(1.0, "main", "send", payload=same + b"AAAA")])
    assert other is not None and other.payload_difference is None

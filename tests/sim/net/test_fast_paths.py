"""The transports' fast paths give the trace of the full models they skip.

- ``DatagramTransport._launch`` (``sockfake/sim/net/udp.py``): on a link whose
  conditions leave datagrams untouched, and with no fault plan, a datagram is
  delivered without asking ``datagram_fate()``;
- ``StreamTransport.send_stream`` (``sockfake/sim/net/tcp.py``): on a link that
  carries streams whole and at once, with nothing in flight, the segment is delivered
  within the send, without ``stream_chunks()`` and ``Topology.carry()``.

Each run below is repeated with its fast path turned off; the digests must be equal.
The predicates themselves are pinned to the models in ``test_links.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers import echo_digest

import sockfake.sim.net.tcp as tcp
from sockfake.sim import COMPILED, FaultPlan, LinkConditions
from sockfake.sim.net.links import stream_chunks


def test_the_fast_path_for_perfect_datagram_links_gives_the_trace_of_the_full_model() -> None:
    # A plan, even a silent one, sends every datagram through datagram_fate().
    assert echo_digest(pin_cpu=True) == echo_digest(pin_cpu=True, prepare=FaultPlan().apply)


def test_the_fast_path_for_immediate_stream_links_gives_the_trace_of_carry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cut: list[int] = []
    if not COMPILED:  # count the full model's calls (a compiled module binds its own)
        chunks = stream_chunks

        def counted(*args: Any) -> list[int]:
            cut.append(1)
            return chunks(*args)

        monkeypatch.setattr(tcp, "stream_chunks", counted)
    fast = echo_digest()
    assert not cut  # every segment took the fast path
    with monkeypatch.context() as patch:
        patch.setattr(LinkConditions, "streams_immediate", property(lambda self: False))
        full = echo_digest()
    assert fast == full
    assert len(cut) >= 40 or COMPILED  # and here every one took the full model

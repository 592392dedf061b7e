"""Hypothesis strategies for sockfake: link conditions, fault plans, slow clients.

Every strategy here shrinks toward "no fault": a perfect link, the empty
:class:`~sockfake.sim.net.faults.FaultPlan`, a well-behaved client. So when a property
fails, Hypothesis reports the smallest fault that still breaks it, and the value
prints as a short expression you can paste into ``@example(...)``::

    from hypothesis import example, given
    from sockfake.strategies import FaultPlan, fault_plans
    from sockfake.testing import open_testbed

    @given(plan=fault_plans(max_index=12))
    @example(plan=FaultPlan(drops=frozenset({1})))
    def test_retries(plan):
        with open_testbed(seed=0) as bed:
            plan.apply(bed.network)
            ...

Randomness: a ``SimNetwork``'s random streams are derived from its seed (sha256 of
seed and concern), never from the global ``random`` module, so there is nothing to
``hypothesis.register_random``. Draw the seed with :func:`sim_seeds` instead: it
becomes part of the example, Hypothesis replays it exactly, and shrinks it toward 0.

This module imports Hypothesis; nothing else in sockfake does.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from sockfake.sim.net.faults import FaultPlan
from sockfake.sim.net.links import GilbertElliott, LinkConditions

__all__ = [
    "FaultPlan",
    "SlowClient",
    "fault_plans",
    "link_conditions",
    "sim_seeds",
    "slow_client_behaviours",
]


def sim_seeds() -> st.SearchStrategy[int]:
    """Seeds for ``SimNetwork(seed=...)``; shrink toward 0.

    The seed drives every random choice a fault plan does not fix (loss, jitter,
    re-chunking, random scheduling): drawn here, it is part of the example and replayed
    exactly. Shrinking it does not simplify the run; it makes the reported example
    canonical, and Hypothesis says when the failure does not depend on it.
    """
    return st.integers(min_value=0, max_value=2**32 - 1)


def _up_to(limit: float) -> st.SearchStrategy[float]:
    if limit <= 0:
        return st.just(0.0)
    return st.floats(min_value=0.0, max_value=limit, allow_nan=False, allow_infinity=False)


def link_conditions(
    *,
    max_latency: float = 0.2,
    max_jitter: float = 0.05,
    max_loss: float = 0.5,
    max_duplicate: float = 0.2,
    max_reorder: float = 0.2,
    max_corrupt: float = 0.0,
    bandwidth: bool = True,
    burst_loss: bool = True,
    chunk: bool = True,
) -> st.SearchStrategy[LinkConditions]:
    """``LinkConditions`` within the given bounds; shrinks toward the perfect link.

    Corruption is off unless ``max_corrupt`` is raised: most protocols under test
    have no checksum, and a flipped bit is rarely the bug being looked for.
    """
    optional_bandwidth: st.SearchStrategy[float | None] = st.none()
    if bandwidth:
        optional_bandwidth = st.none() | st.floats(min_value=1e3, max_value=1e8)
    optional_burst: st.SearchStrategy[GilbertElliott | None] = st.none()
    if burst_loss:
        optional_burst = st.none() | st.builds(
            GilbertElliott,
            p=st.floats(min_value=0.0, max_value=0.2),
            r=st.floats(min_value=0.1, max_value=1.0),
        )
    optional_chunk: st.SearchStrategy[int | None] = st.none()
    if chunk:
        optional_chunk = st.none() | st.integers(min_value=1, max_value=64)
    return st.builds(
        LinkConditions,
        latency=_up_to(max_latency),
        jitter=_up_to(max_jitter),
        bandwidth=optional_bandwidth,
        loss=_up_to(max_loss),
        burst_loss=optional_burst,
        duplicate=_up_to(max_duplicate),
        reorder=_up_to(max_reorder),
        corrupt=_up_to(max_corrupt),
        chunk=optional_chunk,
    )


def fault_plans(
    *,
    max_index: int = 20,
    max_faults: int = 4,
    duplicates: bool = True,
    delays: bool = True,
    max_delay: float = 2.0,
    connections: bool = True,
    max_connection: int = 5,
) -> st.SearchStrategy[FaultPlan]:
    """Fault plans; shrink toward no fault.

    A plan drops, duplicates and delays datagrams chosen by index (0 is the first
    ``sendto()`` on the network, up to ``max_index``), and, with ``connections``,
    refuses or resets stream connections chosen by index (0 is the first
    ``connect()``, up to ``max_connection``; a reset comes up to ``max_delay``
    seconds after the connection is established): at most ``max_faults`` of each
    kind. Shrinking removes faults, moves them to earlier indexes and resets to
    earlier times, so a failure ends as the smallest pattern that still breaks the
    property, e.g. ``FaultPlan(drops=frozenset({1}))``.
    """
    index = st.integers(min_value=0, max_value=max_index)
    connection = st.integers(min_value=0, max_value=max_connection)
    seconds = st.floats(min_value=0.0, max_value=max_delay)
    none: st.SearchStrategy[frozenset[int]] = st.just(frozenset())
    no_times: st.SearchStrategy[tuple[tuple[int, float], ...]] = st.just(())

    def timed(which: st.SearchStrategy[int]) -> st.SearchStrategy[tuple[tuple[int, float], ...]]:
        return st.lists(
            st.tuples(which, seconds), max_size=max_faults, unique_by=lambda pair: pair[0]
        ).map(tuple)

    return st.builds(
        FaultPlan,
        drops=st.frozensets(index, max_size=max_faults),
        duplicates=st.frozensets(index, max_size=max_faults) if duplicates else none,
        delays=timed(index) if delays else no_times,
        refusals=st.frozensets(connection, max_size=max_faults) if connections else none,
        resets=timed(connection) if connections else no_times,
    )


_BEHAVIOURS = ("normal", "trickle", "stall", "half_close", "reset", "silent")


@dataclass(frozen=True)
class SlowClient:
    """One stream client's behaviour, as a value Hypothesis can draw and shrink.

    - ``normal``: send the request, read the reply to EOF.
    - ``trickle``: send ``step`` bytes every ``interval`` seconds.
    - ``stall``: send the request, wait ``interval`` seconds, then read.
    - ``half_close``: send the request, ``shutdown(SHUT_WR)``, read.
    - ``reset``: send the request and reset the connection (``SO_LINGER`` 0)
      before the reply.
    - ``silent``: connect, say nothing for ``interval`` seconds, close.

    :meth:`run` plays it against a server address on a network (times are the
    network's: virtual on a ``SimNetwork``).
    """

    kind: str = "normal"
    step: int = 1
    interval: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in _BEHAVIOURS:
            raise ValueError(f"SlowClient.kind must be one of {', '.join(_BEHAVIOURS)}")

    def __repr__(self) -> str:
        if self.kind == "normal":
            return "SlowClient()"
        return f"SlowClient({self.kind!r}, step={self.step}, interval={self.interval!r})"

    def run(self, network: Any, address: Any, request: bytes, *, timeout: float = 60.0) -> bytes:
        """Play this behaviour; return what the server sent back (b"" if nothing)."""
        sock = network.create_connection(address, timeout)
        try:
            if self.kind == "silent":
                network.sleep(self.interval)
                return b""
            if self.kind == "trickle":
                for start in range(0, len(request), self.step):
                    sock.sendall(request[start : start + self.step])
                    network.sleep(self.interval)
            else:
                sock.sendall(request)
            if self.kind == "reset":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return b""
            if self.kind == "stall":
                network.sleep(self.interval)
            if self.kind == "half_close":
                sock.shutdown(socket.SHUT_WR)
            chunks = []
            while True:
                try:
                    data = sock.recv(65536)
                except (ConnectionResetError, TimeoutError):
                    break
                if not data:
                    break
                chunks.append(data)
            return b"".join(chunks)
        finally:
            sock.close()


def slow_client_behaviours(
    *, max_interval: float = 5.0, max_step: int = 16
) -> st.SearchStrategy[SlowClient]:
    """Client behaviours, shrinking toward ``SlowClient()`` (a normal client)."""
    interval = st.floats(min_value=0.0, max_value=max_interval)
    return st.just(SlowClient()) | st.builds(
        SlowClient,
        kind=st.sampled_from(_BEHAVIOURS[1:]),
        step=st.integers(min_value=1, max_value=max_step),
        interval=interval,
    )

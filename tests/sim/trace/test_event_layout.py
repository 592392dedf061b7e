"""The raw trace event, written by hand on the hot paths, pinned to ``Trace.add``.

A raw event is ``TraceEvent``'s eleven fields as a plain tuple; one whose details are
a ``Lazy`` has ``LAZY`` in the details' place and the Lazy's key and arguments after
the eleven (``sockfake.sim.trace.recorder``). ``Trace.add`` is the general path that
builds it. For speed, three places in ``sockfake/sim/kernel/core.py`` build the tuple
themselves and hand it to the trace's ``append``:

- ``Kernel.record``: an event of the running thread (both branches: a Lazy, flat;
  anything else in the details' place), the payload cut to the trace's limit;
- ``Kernel.record_net``: the same for the network's own events (actor ``net``);
- ``Kernel._hand_turn``: the ``switch`` event, its reason as details and as reason.

Each must append exactly the tuple ``Trace.add`` would for the same event, so the
events read back, and the digest, are the same whichever path recorded them.
"""

from __future__ import annotations

import socket
import threading
from collections import namedtuple
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from sockfake.sim import SimNetwork, Trace
from sockfake.sim.trace.recorder import LAZY, lazy_text

LIMIT = 8  # a small payload limit, so that cutting is tested


def _joined(*args: object) -> str:
    return "|".join(map(repr, args))


JOINED = lazy_text(_joined)
Pair = namedtuple("Pair", "a b")  # a tuple, but not exactly one: never flattened


def added(*args: Any, **fields: Any) -> tuple[Any, ...]:
    """The raw event ``Trace.add`` makes of these arguments (the general path)."""
    trace = Trace(payload_limit=LIMIT)
    trace.add(*args, **fields)
    [raw] = trace._events
    return raw


def read(raw: tuple[Any, ...]) -> tuple[Any, str]:
    """The event read back from a raw one, and the digest of a trace holding it."""
    trace = Trace(payload_limit=LIMIT)
    trace.append(raw)
    return trace.events[0], trace.digest()


ADDRESSES = st.one_of(st.none(), st.tuples(st.sampled_from(["10.0.0.1", "::1"]),
                                           st.integers(0, 65535)), st.just("/run/a.sock"))
NUMBERS = st.one_of(st.none(), st.integers(0, 2**40))
DETAILS = st.one_of(
    st.text(max_size=12),
    st.tuples(st.just(JOINED), st.integers(), ADDRESSES),  # a Lazy: flattened
    st.tuples(st.just(JOINED)),  # a Lazy without arguments
    st.just(()),  # an empty tuple is no Lazy
    st.builds(Pair, st.integers(), st.integers()),
)  # (record's details are a str or a Lazy; the compiled build refuses anything else)
FIELDS = st.fixed_dictionaries({
    "src": ADDRESSES,
    "dst": ADDRESSES,
    "conn": NUMBERS,
    "seq": NUMBERS,
    "length": NUMBERS,
    "payload": st.one_of(st.none(), st.binary(max_size=LIMIT * 2)),
    "reason": st.one_of(st.none(), st.text(max_size=8)),
})


@pytest.fixture(scope="module")
def net() -> Any:
    network = SimNetwork(seed=1, trace_payload_limit=LIMIT)
    try:
        yield network
    finally:
        network.close()


@settings(max_examples=300, deadline=None, derandomize=True)
@given(kind=st.text(min_size=1, max_size=10), details=DETAILS, fields=FIELDS,
       network_event=st.booleans())
def test_record_and_record_net_append_what_trace_add_would(
    net: SimNetwork, kind: str, details: Any, fields: dict[str, Any], network_event: bool
) -> None:
    kernel = net.kernel
    if network_event:
        kernel.record_net(kind, details, **fields)
        actor = "net"
    else:
        kernel.record(kind, details, **fields)
        actor = kernel.current.name
    raw = kernel.trace._events[-1]
    expected = added(kernel.now, actor, kind, details, **fields)
    assert type(raw) is tuple and raw == expected
    assert read(raw) == read(expected)


@pytest.mark.parametrize("size", [0, LIMIT - 1, LIMIT, LIMIT + 1, 3 * LIMIT])
def test_the_payload_is_cut_to_the_limit_on_every_path(net: SimNetwork, size: int) -> None:
    payload = bytes(range(size))
    net.kernel.record("send", (JOINED, size), payload=payload)
    net.kernel.record_net("deliver", "plain", payload=payload)
    for raw in net.trace._events[-2:]:
        assert raw[9] == payload[:LIMIT]
    assert net.trace._events[-2][3] is LAZY and net.trace._events[-2][11:] == (JOINED, size)


def test_a_lazy_is_flattened_into_the_event_not_kept_inside_it(net: SimNetwork) -> None:
    net.kernel.record("mark", (JOINED, 1, ("10.0.0.1", 80)))
    raw = net.trace._events[-1]
    assert len(raw) == 11 + 3 and raw[3] is LAZY
    assert not any(type(field) is tuple and field and field[0] == JOINED for field in raw)
    assert net.trace.events[-1].details == "1|('10.0.0.1', 80)"


def test_switch_events_are_what_trace_add_would_make_of_them() -> None:
    with SimNetwork(seed=1, trace_payload_limit=LIMIT) as net:
        ready = net.event()

        def sleeper() -> None:
            ready.set()
            net.sleep(1.0)

        started = threading.Thread(target=sleeper)
        started.start()
        ready.wait(5)
        net.sleep(2.0)
        started.join()
        switches = [raw for raw in net.trace._events if raw[2] == "switch"]
        assert {raw[10] for raw in switches} >= {"start", "notify", "timeout"}
        for raw in switches:
            when, actor, _, reason = raw[:4]
            assert raw == added(when, actor, "switch", reason, reason=reason)


def test_every_event_of_a_run_reads_as_trace_add_would_have_recorded_it() -> None:
    """Whatever path recorded it (the transports, the clock, the scheduler, the
    sockets), each event of a real run is one ``Trace.add`` gives for its fields."""
    with SimNetwork(seed=3, trace_payload_limit=LIMIT, latency=0.01, loss=0.2) as net:
        listener = net.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = net.create_connection(listener.getsockname())
        server, _ = listener.accept()
        echo = threading.Thread(target=lambda: server.sendall(server.recv(100)))
        echo.start()
        client.sendall(b"a stream payload longer than the limit")
        assert client.recv(100)
        echo.join()
        a, b = (net.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2))
        b.bind(("127.0.0.1", 0))
        for number in range(10):
            a.sendto(b"datagram %d" % number, b.getsockname())
        net.sleep(1.0)
        for sock in (listener, client, server, a, b):
            sock.close()
        kinds = set()
        for raw in net.trace._events:
            event = read(raw)[0]
            kinds.add(event.kind)
            details: Any = tuple(raw[11:]) if len(raw) > 11 else raw[3]
            assert raw == added(*event[:3], details, *event[4:])
        assert {"send", "deliver", "recv", "sendto", "drop", "switch", "jump"} <= kinds

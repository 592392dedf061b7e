"""Fault plans on connections: refuse or reset the N-th connection, and shrink to it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, find, settings

import sockfake
from sockfake.errors import SockfakeValueError
from sockfake.sim import SimNetwork
from sockfake.sim.net.faults import FaultPlan
from sockfake.strategies import fault_plans


class SlowUpper(sockfake.StreamRequestHandler):
    """Takes half a virtual second to answer a line."""

    def handle(self) -> None:
        line = self.rfile.readline()
        self.server.network.sleep(0.5)
        self.wfile.write(line.upper())


def serve(net: SimNetwork) -> tuple[sockfake.ThreadingTCPServer, threading.Thread]:
    server = sockfake.ThreadingTCPServer(("127.0.0.1", 0), SlowUpper, network=net)
    thread = threading.Thread(target=server.serve_forever, args=(None,))
    thread.start()
    return server, thread


def stop(server: sockfake.ThreadingTCPServer, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join()


def ask(net: SimNetwork, address: object) -> bytes:
    with net.create_connection(address) as conn:  # type: ignore[arg-type]
        conn.sendall(b"hello\n")
        return conn.makefile("rb").readline()


def fetch_with_retries(net: SimNetwork, address: object) -> bytes:
    """Retries a refused connection, but (the bug) not one reset mid-request."""
    for _ in range(3):
        try:
            return ask(net, address)
        except ConnectionRefusedError:
            continue
    raise ConnectionRefusedError("gave up")


@pytest.fixture
def net() -> Iterator[SimNetwork]:
    network = SimNetwork(seed=21, latency=0.01)
    yield network
    network.close()


def test_the_planned_connection_is_refused_and_no_other(net: SimNetwork) -> None:
    FaultPlan(refusals=frozenset({1})).apply(net)
    server, thread = serve(net)
    assert ask(net, server.server_address) == b"HELLO\n"
    with pytest.raises(ConnectionRefusedError):
        ask(net, server.server_address)
    assert ask(net, server.server_address) == b"HELLO\n"
    stop(server, thread)


def test_the_planned_connection_resets_at_its_time_on_both_ends(net: SimNetwork) -> None:
    FaultPlan(resets=((0, 0.2),)).apply(net)
    server, thread = serve(net)
    with net.create_connection(server.server_address) as conn:
        established = net.time()
        conn.sendall(b"hello\n")
        with pytest.raises(ConnectionResetError):
            conn.recv(100)
        assert net.time() == pytest.approx(established + 0.2)
    assert ask(net, server.server_address) == b"HELLO\n"  # connection 1 is untouched
    stop(server, thread)
    assert any(e.kind == "fault" and "reset" in e.details for e in net.trace)


def test_without_a_plan_nothing_is_refused_or_reset(net: SimNetwork) -> None:
    server, thread = serve(net)
    assert [ask(net, server.server_address) for _ in range(3)] == [b"HELLO\n"] * 3
    stop(server, thread)


def breaks_the_client(plan: FaultPlan) -> bool:
    with SimNetwork(seed=3, latency=0.01) as network:
        plan.apply(network)
        server, thread = serve(network)
        try:
            return fetch_with_retries(network, server.server_address) != b"HELLO\n"
        except OSError:
            return True
        finally:
            stop(server, thread)


def test_hypothesis_finds_the_reset_the_client_does_not_retry_and_shrinks_to_it() -> None:
    minimal = find(
        fault_plans(max_index=0, max_connection=3, duplicates=False, delays=False),
        breaks_the_client,
        settings=settings(
            database=None, derandomize=True, max_examples=300,
            suppress_health_check=list(HealthCheck),
        ),
    )
    assert minimal == FaultPlan(resets=((0, 0.0),))
    assert repr(minimal) == "FaultPlan(resets=((0, 0.0),))"
    # Refusals alone never break it: the client retries them.
    assert not breaks_the_client(FaultPlan(refusals=frozenset({0, 1})))


def test_connection_fault_plans_reject_bad_values() -> None:
    with pytest.raises(SockfakeValueError, match="refusals"):
        FaultPlan(refusals=frozenset({-1}))
    with pytest.raises(SockfakeValueError, match="resets"):
        FaultPlan(resets=((0, -1.0),))

"""Slow and hostile clients, in virtual time, against servers on the simulated network."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

import sockfake
from sockfake.errors import SockfakeRuntimeError, SockfakeValueError
from sockfake.sim import SimNetwork
from sockfake.sim.scenarios import (
    HalfCloseAndWait,
    ResetMidResponse,
    Slowloris,
    StalledReader,
    TrickleWriter,
)


class UpperLine(sockfake.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.readline().upper())


class BigReply(sockfake.StreamRequestHandler):
    """Answers any line with 1 MiB, far more than the socket buffers hold."""

    finished: list[str] = []

    def handle(self) -> None:
        self.rfile.readline()
        try:
            self.wfile.write(b"x" * (1 << 20))
            BigReply.finished.append("sent")
        except OSError as exc:
            BigReply.finished.append(type(exc).__name__)


@pytest.fixture
def net() -> Iterator[SimNetwork]:
    network = SimNetwork(seed=7)
    yield network
    network.close()


def serve(net: SimNetwork, server_class: type, handler: type) -> tuple[Any, threading.Thread]:
    server = server_class(("127.0.0.1", 0), handler, network=net)
    thread = threading.Thread(target=server.serve_forever, args=(0.5,))
    thread.start()
    return server, thread


def stop(server: Any, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join()


def answer_time_during_trickle(net: SimNetwork, server_class: type) -> float:
    """Virtual seconds a prompt client waits for its answer while a trickler is served."""
    server, thread = serve(net, server_class, UpperLine)
    slow = TrickleWriter(net, server.server_address, b"slow client\n", chunk=1, interval=1.0)
    slow.start()
    net.sleep(0.5)  # the slow client is being served by now
    asked = net.time()
    with net.create_connection(server.server_address) as conn:
        conn.sendall(b"quick\n")
        reply = conn.makefile("rb").readline()
    waited = net.time() - asked
    assert reply == b"QUICK\n"
    slow.wait()
    assert slow.reply == b"SLOW CLIENT\n"
    stop(server, thread)
    return waited


def test_synchronous_server_is_deaf_while_a_slow_client_is_served(net: SimNetwork) -> None:
    # The documentation's claim: a synchronous server handles one request at a time.
    waited = answer_time_during_trickle(net, sockfake.TCPServer)
    assert waited >= 10.0  # the trickler takes 11 virtual seconds to send its line


def test_threading_server_keeps_answering_while_a_slow_client_is_served(net: SimNetwork) -> None:
    waited = answer_time_during_trickle(net, sockfake.ThreadingTCPServer)
    assert waited < 0.01


def test_stalled_reader_blocks_the_handler_until_it_goes_away(net: SimNetwork) -> None:
    BigReply.finished = []
    server, thread = serve(net, sockfake.ThreadingTCPServer, BigReply)
    reader = StalledReader(net, server.server_address, b"give\n", read_limit=1000)
    reader.start()
    net.sleep(60.0)
    assert BigReply.finished == []  # still blocked in sendall after a virtual minute
    assert len(reader.reply) == 1000
    reader.release()
    reader.wait()
    net.sleep(1.0)
    # The reader closed with unread data: the handler's write ends with a reset.
    assert BigReply.finished in (["ConnectionResetError"], ["BrokenPipeError"])
    stop(server, thread)


def test_half_close_and_wait_gets_the_whole_reply(net: SimNetwork) -> None:
    server, thread = serve(net, sockfake.ThreadingTCPServer, UpperLine)
    client = HalfCloseAndWait(net, server.server_address, b"no more from me\n").start()
    assert client.wait(5.0)
    assert client.reply == b"NO MORE FROM ME\n"
    assert client.error is None
    stop(server, thread)


def test_reset_mid_response_does_not_take_the_server_down(net: SimNetwork) -> None:
    BigReply.finished = []
    server, thread = serve(net, sockfake.ThreadingTCPServer, BigReply)
    rude = ResetMidResponse(net, server.server_address, b"go\n", after=10).start()
    assert rude.wait(5.0)
    net.sleep(1.0)
    assert BigReply.finished in (["ConnectionResetError"], ["BrokenPipeError"])
    # The same server still answers others, in full.
    with net.create_connection(server.server_address) as conn:
        conn.sendall(b"still there?\n")
        with conn.makefile("rb") as reply:
            assert reply.read() == b"x" * (1 << 20)
    assert BigReply.finished[1:] == ["sent"]
    stop(server, thread)


def test_slowloris_starves_a_synchronous_server_but_not_a_threading_one(net: SimNetwork) -> None:
    waits = {}
    for server_class in (sockfake.TCPServer, sockfake.ThreadingTCPServer):
        server, thread = serve(net, server_class, UpperLine)
        attack = Slowloris(net, server.server_address, connections=5, interval=5.0,
                           duration=30.0).start()
        net.sleep(1.0)
        asked = net.time()
        with net.create_connection(server.server_address, timeout=100.0) as conn:
            conn.sendall(b"hello\n")
            assert conn.makefile("rb").readline() == b"HELLO\n"
        waits[server_class.__name__] = net.time() - asked
        attack.wait()
        assert attack.opened == 5
        stop(server, thread)
    assert waits["TCPServer"] >= 25.0
    assert waits["ThreadingTCPServer"] < 0.01


def test_scenarios_reject_bad_parameters(net: SimNetwork) -> None:
    with pytest.raises(SockfakeValueError, match="interval"):
        TrickleWriter(net, ("127.0.0.1", 1), b"x", interval=0)
    with pytest.raises(ValueError, match="connections"):
        Slowloris(net, ("127.0.0.1", 1), connections=0)


def test_waiting_for_a_scenario_never_started_says_so(net: SimNetwork) -> None:
    server, thread = serve(net, sockfake.ThreadingTCPServer, UpperLine)
    slow = TrickleWriter(net, server.server_address, b"never sent\n")
    with pytest.raises(SockfakeRuntimeError, match="never started; call start"):
        slow.wait(30)
    with pytest.raises(SockfakeRuntimeError, match="never started"):
        slow.wait()
    slow.start()
    with pytest.raises(SockfakeRuntimeError, match="start\\(\\) called twice"):
        slow.start()
    assert slow.wait(60)
    stop(server, thread)

"""A pool with its defaults is never a full denial: slow clients leave the pool.

On the simulated network, in virtual time: 300 slowloris connections, 50 stalled
readers, or fresh slow connections at 300 a second, against a ``ThreadPoolTCPServer``
with nothing set. A good client's replies stay quick (each under 0.1 virtual seconds,
never a 2 s gap), and the server's threads stay within the documented bound:
``max_workers + max_slow_requests``, plus the watchdog.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest

import sockfake
from sockfake.sim import SimNetwork
from sockfake.sim.scenarios import Slowloris, StalledReader

BIG = b"x" * (1 << 20)


class Handler(sockfake.StreamRequestHandler):
    def handle(self) -> None:
        line = self.rfile.readline(1024)
        self.wfile.write(BIG if line.startswith(b"BIG") else line.upper())


class Pool(sockfake.ThreadPoolTCPServer):
    """The defaults; max_workers pinned so the run does not depend on the CPU count."""

    max_workers = 6


def test_the_defaults_turn_the_defence_on_with_a_documented_thread_bound() -> None:
    assert sockfake.ThreadPoolTCPServer.max_slow_requests == 512
    assert sockfake.ThreadPoolTCPServer.slow_request_after == 0.005


def _good_client(net: SimNetwork, address: Any, rounds: int) -> tuple[list[float], float]:
    """Round trips every 0.05 virtual seconds: their durations and the longest gap."""
    durations = []
    last = net.time()
    gap = 0.0
    for _ in range(rounds):
        with net.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
            client.settimeout(5)
            began = net.time()
            client.connect(address)
            client.sendall(b"ping\n")
            with client.makefile("rb") as reader:
                assert reader.readline() == b"PING\n"
        done = net.time()
        durations.append(done - began)
        gap, last = max(gap, done - last), done
        net.sleep(0.05)
    return durations, gap


def _churn(net: SimNetwork, address: Any, rate: int, seconds: float) -> Callable[[], None]:
    """Fresh slow connections at ``rate`` a second, each dropped after 1 s; returns stop."""
    stop = net.event()

    def run() -> None:
        live: list[tuple[float, Any]] = []
        for _ in range(int(rate * seconds)):  # bounded
            if stop.is_set():
                break
            sock = net.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.connect(address)
            sock.sendall(b"G")
            live.append((net.time(), sock))
            while live and net.time() - live[0][0] >= 1.0:
                live.pop(0)[1].close()
            net.sleep(1 / rate)
        for _, sock in live:
            sock.close()

    thread = threading.Thread(target=run, name="churn", daemon=True)
    thread.start()

    def finish() -> None:
        stop.set()
        thread.join()

    return finish


@pytest.mark.parametrize("attack", ["slowloris x300", "stalled readers x50", "churn 300/s"])
def test_a_default_pool_serves_a_good_client_during_the_attack(attack: str) -> None:
    with SimNetwork(seed=3) as net:
        server = Pool(("127.0.0.1", 0), Handler, network=net)
        serving = threading.Thread(target=server.serve_forever, args=(0.5,))
        serving.start()
        address = server.server_address
        most_threads = [0]
        scenarios: list[Any] = []
        finish: Callable[[], None] | None = None
        try:
            if attack.startswith("slowloris"):
                scenarios = [
                    Slowloris(net, address, connections=300, request=b"GET /" * 8,
                              interval=0.5, duration=30).start()
                ]
            elif attack.startswith("stalled"):
                scenarios = [StalledReader(net, address, b"BIG\n").start() for _ in range(50)]
            else:
                finish = _churn(net, address, rate=300, seconds=4)
            net.sleep(0.5)  # the attack is in place

            def count() -> None:
                state = vars(server)["_pool_state"]
                most_threads[0] = max(
                    most_threads[0], len(state.workers) + state.inflight.spilled
                )

            durations = []
            gap = 0.0
            for _ in range(10):
                got, got_gap = _good_client(net, address, 3)
                durations += got
                gap = max(gap, got_gap)
                count()
            assert max(durations) < 0.1, durations
            assert gap < 2.0
            assert most_threads[0] <= Pool.max_workers + Pool.max_slow_requests
        finally:
            if finish is not None:
                finish()
            for scenario in scenarios:
                if isinstance(scenario, StalledReader):
                    scenario.release()
            server.shutdown()
            server.server_close(timeout=1.0)
            serving.join()

"""Nagle's algorithm and delayed ACKs: the write-write-read pattern on the real loopback
and in the simulation, with and without ``TCP_NODELAY``.

A client writes a 10-byte header, then a 10-byte body, then reads a 2-byte answer; the
server reads the 20 bytes and answers. On Linux, from the second request of a
connection on, the server's ACK of the header waits up to 40 ms (the connection is
interactive) while the client's Nagle holds the body for it. The real loopback's
figures are wall-clock milliseconds per request (requests 2 to N of each connection);
the simulation's are virtual milliseconds (what the code under test sees) and the
real microseconds a simulated request costs. Rounds alternate the four contenders;
medians with the spread (min-max) and the load average.

    python benchmarks/bench_tcp_timing.py [--rounds 5] [--requests 6]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sockfake.sim import SimNetwork  # noqa: E402

HEADER, BODY, ANSWER = b"h" * 10, b"b" * 10, b"ok"


def serve(conn: socket.socket) -> None:
    """Answer each 20-byte request with b"ok" until EOF."""
    with conn:
        while True:
            request = b""
            while len(request) < len(HEADER) + len(BODY):
                chunk = conn.recv(100)
                if not chunk:
                    return
                request += chunk
            conn.sendall(ANSWER)


def requests_on(client: socket.socket, count: int, clock: Callable[[], float]) -> list[float]:
    """Seconds (on ``clock``) of requests 2 to ``count`` of one connection."""
    took = []
    for number in range(count):
        start = clock()
        client.send(HEADER)
        client.send(BODY)
        if client.recv(10) != ANSWER:
            raise RuntimeError("unexpected answer")
        if number:
            took.append(clock() - start)
    return took


def real(nodelay: bool, count: int) -> tuple[list[float], float]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        server = threading.Thread(target=lambda: serve(listener.accept()[0]))
        server.start()
        start = time.perf_counter()
        with socket.create_connection(listener.getsockname()) as client:
            if nodelay:
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            took = requests_on(client, count, time.perf_counter)
        server.join()
        return took, time.perf_counter() - start


def simulated(nodelay: bool, count: int) -> tuple[list[float], float]:
    start = time.perf_counter()
    with SimNetwork(seed=1) as net:
        listener = net.socket()
        listener.bind(("127.0.0.1", 7000))
        listener.listen()
        server = net.thread(lambda: serve(listener.accept()[0]))  # type: ignore[arg-type]
        server.start()
        client = net.create_connection(("127.0.0.1", 7000))
        if nodelay:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        took = requests_on(client, count, lambda: net.now)  # type: ignore[arg-type]
        client.close()
        server.join()
        listener.close()
    return took, time.perf_counter() - start


def spread(values: list[float], scale: float, unit: str) -> str:
    return (f"{statistics.median(values) * scale:.2f} {unit} "
            f"({min(values) * scale:.2f}-{max(values) * scale:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=6, help="requests per connection")
    args = parser.parse_args()
    print(f"write-write-read, {args.rounds} rounds of one connection of {args.requests} "
          f"requests each; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    contenders: dict[str, Callable[[bool, int], tuple[list[float], float]]] = {
        "real loopback": real, "simulation": simulated,
    }
    per_request: dict[tuple[str, bool], list[float]] = {}
    wall: dict[tuple[str, bool], list[float]] = {}
    order = [(name, nodelay) for name in contenders for nodelay in (False, True)]
    for round_number in range(args.rounds):
        for name, nodelay in order if round_number % 2 == 0 else order[::-1]:
            took, seconds = contenders[name](nodelay, args.requests)
            per_request.setdefault((name, nodelay), []).extend(took)
            wall.setdefault((name, nodelay), []).append(seconds / args.requests)
    for name, nodelay in order:
        mode = "TCP_NODELAY" if nodelay else "Nagle on   "
        line = f"  {name:13} {mode}: {spread(per_request[(name, nodelay)], 1e3, 'ms')} per request"
        if name == "simulation":
            line += (f" of virtual time; costs {spread(wall[(name, nodelay)], 1e6, 'us')} "
                     "of real time per request")
        print(line)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()

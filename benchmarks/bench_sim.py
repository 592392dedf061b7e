"""Simulated-network benchmark: cost, time compression, scale and determinism in one run.

    python benchmarks/bench_sim.py [--quick]

Prints, side by side where a comparison applies:
- per-message cost: a round trip on the simulated network against a real loopback
  round trip, same server class and handler (target: sim within 2x of real);
- virtual-time compression: a UDP client with a 1 s retry timer under 30 % loss
  completing 1,000 exchanges (target: >= 1000 virtual seconds per wall second);
- 1,000 concurrent simulated clients against a ThreadingTCPServer (completes; wall
  time and peak memory);
- determinism: the trace digests of two runs of one seed (equal).
"""

from __future__ import annotations

import argparse
import resource
import socket
import statistics
import sys
import threading
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sockfake  # noqa: E402
from sockfake.network import REAL_NETWORK, Network  # noqa: E402
from sockfake.sim import SimNetwork  # noqa: E402


class Echo(sockfake.BaseRequestHandler):
    def handle(self) -> None:
        while True:
            data = self.request.recv(4096)
            if not data:
                return
            self.request.sendall(data)


class UpperUDP(sockfake.DatagramRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.read().upper())


def round_trips(network: Network, count: int) -> float:
    """Seconds per echo round trip over one persistent connection."""
    server = sockfake.ThreadingTCPServer(("127.0.0.1", 0), Echo, network=network)
    thread = network.thread(target=server.serve_forever, args=(0.5,), daemon=True)
    thread.start()
    try:
        conn = network.create_connection(server.server_address)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        message = b"x" * 64
        for _ in range(50):  # warm up
            conn.sendall(message)
            conn.recv(4096)
        started = time.perf_counter()
        for _ in range(count):
            conn.sendall(message)
            received = 0
            while received < len(message):
                received += len(conn.recv(4096))
        elapsed = time.perf_counter() - started
        conn.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    return elapsed / count


def per_message(count: int, repeats: int) -> tuple[float, float]:
    sim_costs, real_costs = [], []
    for _ in range(repeats):
        real_costs.append(round_trips(REAL_NETWORK, count))
        net = SimNetwork(seed=1)
        try:
            sim_costs.append(round_trips(net, count))
        finally:
            net.close()
    return statistics.median(sim_costs), statistics.median(real_costs)


def compression(exchanges: int) -> tuple[float, float, int]:
    """Virtual seconds, wall seconds and sends for a retrying UDP client under 30 % loss."""
    net = SimNetwork(seed=2, loss=0.3, latency=0.01)
    try:
        server = sockfake.UDPServer(("127.0.0.1", 0), UpperUDP, network=net)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        sends = 0
        started = time.perf_counter()
        with net.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(1.0)
            for number in range(exchanges):
                message = b"ping %d" % number
                while True:
                    sends += 1
                    client.sendto(message, server.server_address)
                    try:
                        reply, _ = client.recvfrom(1024)
                    except TimeoutError:
                        continue
                    if reply == message.upper():
                        break
        wall = time.perf_counter() - started
        virtual = net.time()
        server.shutdown()
        server.server_close()
        thread.join()
    finally:
        net.close()
    return virtual, wall, sends


def many_clients(clients: int) -> tuple[float, float, int]:
    """Wall seconds, peak traced MiB and answers for concurrent clients on the sim."""
    tracemalloc.start()
    started = time.perf_counter()
    net = SimNetwork(seed=3, latency=0.001)
    answers: list[bytes] = []
    try:
        server = sockfake.ThreadingTCPServer(("127.0.0.1", 0), Echo, network=net)
        server.request_queue_size = clients
        server.socket.listen(clients)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        go = net.event()

        def client(number: int) -> None:
            with net.create_connection(server.server_address) as conn:
                go.wait()
                conn.sendall(b"hello %d" % number)
                answers.append(conn.recv(100))

        threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
        for each in threads:
            each.start()
        net.sleep(0.5)  # every client connected and waiting: all concurrent
        go.set()
        for each in threads:
            each.join()
        server.shutdown()
        server.server_close()
        thread.join()
    finally:
        net.close()
    wall = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return wall, peak / 2**20, len(answers)


def determinism(seed: int) -> tuple[str, str]:
    digests = []
    for _ in range(2):
        net = SimNetwork(seed=seed, loss=0.2, duplicate=0.05, latency=0.01, jitter=0.02)
        try:
            server = sockfake.ThreadingUDPServer(("127.0.0.1", 0), UpperUDP, network=net)
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            with net.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                client.settimeout(0.2)
                for number in range(200):
                    client.sendto(b"m%d" % number, server.server_address)
                    try:
                        client.recvfrom(100)
                    except TimeoutError:
                        pass
            server.shutdown()
            server.server_close()
            thread.join()
            digests.append(net.digest())
        finally:
            net.close()
    return digests[0], digests[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    args = parser.parse_args()
    count, repeats = (500, 1) if args.quick else (3000, 3)
    exchanges = 200 if args.quick else 1000
    clients = 200 if args.quick else 1000

    sim_cost, real_cost = per_message(count, repeats)
    virtual, wall, sends = compression(exchanges)
    crowd_wall, crowd_peak, answered = many_clients(clients)
    first, second = determinism(seed=42)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"sockfake simulated network benchmark (Python {sys.version.split()[0]})")
    print(f"{'scenario':<46} {'sim':>14} {'real':>14} {'ratio':>8}  target")
    print(
        f"{'echo round trip, persistent connection (us)':<46} {sim_cost * 1e6:>14.1f} "
        f"{real_cost * 1e6:>14.1f} {sim_cost / real_cost:>8.2f}  sim/real <= 2.0"
    )
    print(
        f"{f'UDP, 1 s retry, 30 % loss, {exchanges} exchanges':<46} "
        f"{virtual:>12.1f} s {'':>14} {virtual / wall:>8.0f}x virtual s per wall s >= 1000"
        f" ({wall:.3f} s wall, {sends} sends)"
    )
    print(
        f"{f'{clients} concurrent clients, ThreadingTCPServer':<46} {crowd_wall:>12.2f} s "
        f"{'':>14} {'':>8}  completes: {answered}/{clients} answered; "
        f"peak traced {crowd_peak:.1f} MiB, max RSS {rss:.0f} MiB"
    )
    print(f"{'determinism, seed 42, two runs':<46} {'equal' if first == second else 'DIFFERENT'}")
    print(f"  {first}\n  {second}")


if __name__ == "__main__":
    main()

"""How often an acknowledge-before-replicate primary would lose an acknowledged write to a
crash, with Nagle's algorithm and delayed ACKs (Linux's defaults) and with TCP_NODELAY.

The primary acknowledges each client write at once, then replicates it to its backup
over one persistent connection as a header and a body (two small writes) and waits for
the backup's answer: the write-write-read pattern. Writes come every 0-50 ms (seeded).
Each run picks a crash moment (seeded) and asks whether a write acknowledged before it
had not reached the backup by then (it would be lost). Issue 23 saw this kind of bug in
44 of 100 runs on the real loopback with the defaults and 1 of 40 with TCP_NODELAY;
the simulation gives the same direction, in virtual time (the numbers depend on the
write rate and the link):

    python benchmarks/bench_replication_lag.py [--runs 100] [--latency 0.0001]
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sockfake.sim import SimNetwork  # noqa: E402

WRITES = 40


def lost_on_crash(seed: int, nodelay: bool, latency: float) -> bool:
    """One run: would a crash at the seed's moment lose an acknowledged write?"""
    with SimNetwork(seed=seed, latency=latency) as net:
        net.add_host("primary")
        net.add_host("backup")
        rng = net.random
        acknowledged: list[float] = []
        replicated: list[float] = []
        listener = net.host("backup").socket()
        listener.bind(("0.0.0.0", 7000))
        listener.listen()

        def backup() -> None:
            conn, _ = listener.accept()
            with conn:
                for _ in range(WRITES):
                    header = b""
                    while len(header) < 4:
                        header += conn.recv(4 - len(header))
                    size = struct.unpack("!I", header)[0]
                    body = b""
                    while len(body) < size:
                        body += conn.recv(size - len(body))
                    replicated.append(net.now)
                    conn.sendall(b"k")

        server = net.host("backup").thread(backup)
        server.start()
        with net.host("primary").running():
            link = net.host("primary").create_connection(("backup", 7000))
            if nodelay:
                link.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for number in range(WRITES):
                net.sleep(rng.uniform(0.0, 0.05))
                acknowledged.append(net.now)  # the bug: the client hears "ok" now
                body = b"write %d" % number
                link.sendall(struct.pack("!I", len(body)))
                link.sendall(body)
                link.recv(1)
            link.close()
        server.join()
        listener.close()
        crash = rng.uniform(acknowledged[0], acknowledged[-1])
        pairs = zip(acknowledged, replicated, strict=True)
        return any(ack <= crash < done for ack, done in pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.0001, help="one-way, seconds")
    args = parser.parse_args()
    start = time.perf_counter()
    for nodelay in (False, True):
        lost = sum(lost_on_crash(seed, nodelay, args.latency) for seed in range(args.runs))
        mode = "TCP_NODELAY" if nodelay else "Nagle + delayed ACKs (defaults)"
        print(f"  {mode}: an acknowledged write lost in {lost} of {args.runs} runs")
    print(f"{time.perf_counter() - start:.1f} s real; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()

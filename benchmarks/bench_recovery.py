"""How soon service resumes once descriptors are free again, against the stdlib.

A server process runs under a low descriptor limit (``RLIMIT_NOFILE``); this process
opens connections to it (each one costs the server a descriptor) until one is not
accepted: the server is out of descriptors (EMFILE on accept), and that connection,
the probe, waits in the listen backlog with a request sent. After a pause (long
enough for sockfake's back-off to reach ``accept_backoff_max``), every other
connection is closed at once: the server's handlers see EOF and close theirs. The
figure is the time from that close to the probe's reply. Also: the server's CPU use
while it was out of descriptors (the stdlib retries accept() in a busy loop).

Contenders alternate round by round, in one process; medians, spread (min-max) and
the load average. Only 127.0.0.1; every wait is bounded.

    python benchmarks/bench_recovery.py             # 7 rounds, about 40 s
    python benchmarks/bench_recovery.py --rounds 3
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import socket
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
LIMIT = 64  # the server's RLIMIT_NOFILE
EXHAUSTED_FOR = 1.5  # seconds out of descriptors before they are freed
ACCEPT_WAIT = 0.3  # a connection not greeted within this is not accepted

SERVER = textwrap.dedent(
    """
    import resource, sys
    lib = sys.argv[1]
    if lib == "stdlib":
        import socketserver as lib
    else:
        import sockfake as lib

    class Handler(lib.StreamRequestHandler):
        def handle(self):
            self.wfile.write(b"+")
            for line in self.rfile:
                self.wfile.write(line.upper())

    class Server(lib.ThreadingTCPServer):
        daemon_threads = True
        def handle_error(self, request, client_address):
            pass

    server = Server(("127.0.0.1", 0), Handler)
    resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[2]), resource.getrlimit(
        resource.RLIMIT_NOFILE)[1]))
    print(server.server_address[1], flush=True)
    server.serve_forever()
    """
)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def greeted(sock: socket.socket) -> bool:
    sock.settimeout(ACCEPT_WAIT)
    try:
        return sock.recv(1) == b"+"
    except TimeoutError:
        return False


def trial(lib: str) -> tuple[float, float, int]:
    """(seconds from freeing descriptors to the probe's reply, CPU share while out, hogs)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, lib, str(LIMIT)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    hogs: list[socket.socket] = []
    probe = None
    try:
        assert proc.stdout is not None
        address = (HOST, int(proc.stdout.readline()))
        for _ in range(LIMIT + 8):  # bounded: the limit is reached well before
            sock = socket.create_connection(address, timeout=5)
            if greeted(sock):
                hogs.append(sock)
                continue
            probe = sock
            break
        if probe is None:
            raise RuntimeError("the server never ran out of descriptors")
        probe.sendall(b"ping\n")
        before = cpu_seconds(proc.pid)
        started = time.monotonic()
        time.sleep(EXHAUSTED_FOR)
        cpu = (cpu_seconds(proc.pid) - before) / (time.monotonic() - started)
        freed = time.monotonic()
        for sock in hogs:
            sock.close()
        probe.settimeout(10)
        reply = b""
        while not reply.endswith(b"PING\n"):
            chunk = probe.recv(64)
            if not chunk:
                raise RuntimeError(f"the probe was closed, reply {reply!r}")
            reply += chunk
        return time.monotonic() - freed, cpu, len(hogs)
    finally:
        for sock in hogs:
            sock.close()
        if probe is not None:
            probe.close()
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, choices=range(1, 51), metavar="N")
    args = parser.parse_args()
    contenders = ["stdlib", "sockfake"]
    print(
        f"sockfake bench_recovery: Python {platform.python_version()}, {platform.system()} "
        f"{platform.machine()}, {os.cpu_count()} CPUs; ThreadingTCPServer with "
        f"RLIMIT_NOFILE={LIMIT}, {EXHAUSTED_FOR:g} s out of descriptors; {args.rounds} "
        "rounds, contenders alternated",
        flush=True,
    )
    results: dict[str, list[tuple[float, float, int]]] = {name: [] for name in contenders}
    for number in range(args.rounds):
        order = contenders if number % 2 == 0 else contenders[::-1]
        for name in order:
            got = trial(name)
            results[name].append(got)
            print(
                f"  round {number + 1} {name:8} resumed {got[0] * 1000:7.1f} ms after the "
                f"close, CPU {got[1] * 100:5.1f} % while out ({got[2]} connections), load "
                f"{os.getloadavg()[0]:.2f}",
                flush=True,
            )
    print()
    print("| `ThreadingTCPServer` | resumed after, median | spread | CPU while out, median |")
    print("|---|---|---|---|")
    for name in contenders:
        waits = [r[0] * 1000 for r in results[name]]
        cpus = [r[1] * 100 for r in results[name]]
        print(
            f"| {name} | {statistics.median(waits):.1f} ms | {min(waits):.1f}-{max(waits):.1f} ms "
            f"| {statistics.median(cpus):.0f} % |"
        )
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()

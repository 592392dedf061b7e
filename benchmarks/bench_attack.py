"""A well-behaved client's latency while the server is under a slow-client attack.

Three attacks, each against four servers, alternating which server goes first round
by round:

- **slowloris**: connections that trickle a request one byte at a time (a byte every
  0.5 s, well under any idle timeout) and never finish it, reconnecting when cut;
- **stalled readers**: connections that ask for a 10 MiB response and never read it,
  each held for 5 s, then replaced;
- **churn**: fresh slowloris connections at a fixed rate (300 a second), each kept
  1 s, then dropped by the attacker.

The servers: the stdlib's ``socketserver.ThreadingTCPServer``, sockfake's
``ThreadingTCPServer``, sockfake's ``ThreadPoolTCPServer`` with its defaults (nothing
set), and the pool with ``max_slow_requests = 0`` (every request counts against
``max_workers``, the defaults before this release). The attack runs in a separate
process; the good client (connect, one line, read the reply, close, again) runs in
this one, for a fixed window, and reports its median and p99 latency and its longest
gap (the longest time without a completed request, the window's start included).
The server's threads are sampled during the window (peak, over the count before the
server started). Everything binds 127.0.0.1; every loop is bounded in count and time.

    python benchmarks/bench_attack.py            # 3 rounds, about 5 minutes
    python benchmarks/bench_attack.py --quick    # 1 round, smaller attacks, ~1 minute
    python benchmarks/bench_attack.py --only slowloris --pool-slow 256 --rounds 1
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import platform
import selectors
import socket
import socketserver
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sockfake  # noqa: E402

HOST = "127.0.0.1"
BIG = b"x" * (10 * 1024 * 1024)
SLOWLORIS_INTERVAL = 0.5  # seconds between the bytes of a slowloris request
STALL_HOLD = 5.0  # seconds a stalled reader keeps its connection
CHURN_LIFE = 1.0  # seconds a churning slowloris connection lives
ATTACKS = ("slowloris", "stalled", "churn")


# --- the server side: the same handler on both libraries ----------------------------


def handler(lib: Any) -> type:
    class Handler(lib.StreamRequestHandler):  # type: ignore[misc]
        def handle(self) -> None:
            line = self.rfile.readline(1024)
            if line.startswith(b"BIG"):
                self.wfile.write(BIG)
            else:
                self.wfile.write(line.upper())

    return Handler


def quiet(cls: type) -> type:
    """The class, with handle_error silent (cut connections are expected here)."""
    return type(cls.__name__, (cls,), {"handle_error": lambda self, request, address: None})


@dataclass
class Contender:
    name: str
    build: Callable[[], Any]


def contenders(pool_slow: int | None = None) -> list[Contender]:
    """The four servers; ``pool_slow`` overrides the default pool's max_slow_requests."""
    stdlib_cls = quiet(socketserver.ThreadingTCPServer)
    stdlib_cls.daemon_threads = True  # type: ignore[attr-defined]
    threading_cls = quiet(sockfake.ThreadingTCPServer)
    threading_cls.daemon_threads = True  # type: ignore[attr-defined]
    pool_cls = quiet(sockfake.ThreadPoolTCPServer)  # the defaults, nothing set
    pool_name = "sockfake ThreadPoolTCPServer (defaults)"
    if pool_slow is not None:
        pool_cls.max_slow_requests = pool_slow  # type: ignore[attr-defined]
        pool_name = f"sockfake ThreadPoolTCPServer (slow {pool_slow})"
    strict_cls = quiet(sockfake.ThreadPoolTCPServer)
    strict_cls.max_slow_requests = 0  # type: ignore[attr-defined]
    return [
        Contender(
            "stdlib ThreadingTCPServer", lambda: stdlib_cls((HOST, 0), handler(socketserver))
        ),
        Contender(
            "sockfake ThreadingTCPServer", lambda: threading_cls((HOST, 0), handler(sockfake))
        ),
        Contender(pool_name, lambda: pool_cls((HOST, 0), handler(sockfake))),
        Contender(
            "sockfake ThreadPoolTCPServer (slow 0)",
            lambda: strict_cls((HOST, 0), handler(sockfake)),
        ),
    ]


# --- the attack (runs in its own process) -------------------------------------------


def attack(kind: str, address: tuple[str, int], connections: int, stop: Any, ready: Any) -> None:
    """Keep ``connections`` hostile connections open until ``stop`` is set (bounded).

    For ``churn``, ``connections`` is a rate: that many fresh slowloris connections a
    second, each dropped after ``CHURN_LIFE`` seconds.
    """
    limit = time.monotonic() + 120  # never outlive a stuck benchmark
    sel = selectors.DefaultSelector()
    born: dict[socket.socket, float] = {}
    next_byte: dict[socket.socket, float] = {}

    def open_one() -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(2.0)
        try:
            if kind == "stalled":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(address)
            sock.setblocking(False)
            if kind == "stalled":
                sock.sendall(b"BIG\n")
            else:
                sock.send(b"G")
        except OSError:
            sock.close()
            return
        born[sock] = time.monotonic()
        next_byte[sock] = born[sock] + SLOWLORIS_INTERVAL
        if kind != "stalled":
            sel.register(sock, selectors.EVENT_READ)

    def drop(sock: socket.socket) -> None:
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(sock)
        born.pop(sock, None)
        next_byte.pop(sock, None)
        sock.close()

    churn_start = time.monotonic()
    opened = 0
    if kind != "churn":
        for _ in range(connections):
            open_one()
    ready.set()
    while not stop.is_set() and time.monotonic() < limit:
        if kind == "churn":
            due = int((time.monotonic() - churn_start) * connections)
            for _ in range(min(due - opened, 50)):  # bounded per tick
                open_one()
                opened += 1
            now = time.monotonic()
            for sock in [s for s, t in born.items() if now - t >= CHURN_LIFE]:
                drop(sock)
        while kind != "churn" and len(born) < connections and not stop.is_set():
            before = len(born)
            open_one()
            if len(born) == before:
                break  # the server is not accepting: retry on the next tick
        if kind != "stalled":
            tick = 0.005 if kind == "churn" else 0.05
            for key, _ in sel.select(tick) if sel.get_map() else ():
                drop(key.fileobj)  # type: ignore[arg-type]  # cut (EOF or reset)
            if not sel.get_map():
                time.sleep(tick)
            now = time.monotonic()
            for sock in [s for s, t in next_byte.items() if t <= now]:
                try:
                    sock.send(b"E")
                    next_byte[sock] = now + SLOWLORIS_INTERVAL
                except OSError:
                    drop(sock)
        else:
            time.sleep(0.05)
            now = time.monotonic()
            for sock in [s for s, t in born.items() if now - t >= STALL_HOLD]:
                drop(sock)
    for sock in list(born):
        drop(sock)
    sel.close()


# --- the good client ------------------------------------------------------------------


@dataclass
class Latencies:
    samples: list[float] = field(default_factory=list)
    longest_gap: float = 0.0
    failures: int = 0
    threads: int = 0  # the most threads the server added, sampled during the window


def good_client(address: tuple[str, int], window: float) -> Latencies:
    result = Latencies()
    start = last = time.monotonic()
    end = start + window
    while time.monotonic() < end:
        began = time.monotonic()
        try:
            with socket.create_connection(address, timeout=max(0.1, end - began + 1)) as sock:
                sock.sendall(b"ping\n")
                reply = sock.makefile("rb").readline()
            if reply != b"PING\n":
                raise OSError(f"bad reply {reply!r}")
        except OSError:
            result.failures += 1
            time.sleep(0.01)
            continue
        done = time.monotonic()
        result.samples.append(done - began)
        result.longest_gap = max(result.longest_gap, done - last)
        last = done
        time.sleep(0.01)  # about 100 requests a second at most
    result.longest_gap = max(result.longest_gap, time.monotonic() - last)
    return result


# --- driver ---------------------------------------------------------------------------


def run_one(
    contender: Contender, kind: str, connections: int, window: float, ctx: Any
) -> Latencies:
    baseline = threading.active_count()
    server = contender.build()
    serving = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    serving.start()
    stop, ready = ctx.Event(), ctx.Event()
    attacker = ctx.Process(
        target=attack, args=(kind, server.server_address, connections, stop, ready), daemon=True
    )
    attacker.start()
    peak = [0]
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(0.02):  # bounded: the window ends it
            # The serving thread, the good client and this sampler are not the server's.
            peak[0] = max(peak[0], threading.active_count() - baseline - 3)

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        ready.wait(30)
        time.sleep(0.5)  # let the attack settle in
        sampler.start()
        result = good_client(server.server_address, window)
        result.threads = peak[0]
        return result
    finally:
        sampling.set()
        if sampler.is_alive():
            sampler.join(5)
        stop.set()
        attacker.join(10)
        if attacker.is_alive():
            attacker.kill()
        server.shutdown()
        if isinstance(server, sockfake.BaseServer):
            server.server_close(timeout=1.0)  # type: ignore[call-arg]
        else:
            server.server_close()  # daemon threads: the stdlib does not wait for them
        serving.join(5)


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one short round, smaller attacks")
    parser.add_argument(
        "--only", choices=ATTACKS, action="append", help="run this attack (repeatable)"
    )
    parser.add_argument(
        "--pool-slow", type=int, choices=range(4097), metavar="N",
        help="the default pool's max_slow_requests instead of its default",
    )
    parser.add_argument("--rounds", type=int, choices=range(1, 21), metavar="N")
    args = parser.parse_args()
    rounds, window = (1, 3.0) if args.quick else (3, 5.0)
    rounds = args.rounds or rounds
    sizes = {
        "slowloris": 100 if args.quick else 300,
        "stalled": 30 if args.quick else 50,
        "churn": 300,
    }
    attacks = [kind for kind in ATTACKS if not args.only or kind in args.only]
    ctx = multiprocessing.get_context("spawn")
    players = contenders(args.pool_slow)
    results: dict[tuple[str, str], list[Latencies]] = {}
    print(
        f"sockfake bench_attack: Python {platform.python_version()}, {platform.system()} "
        f"{platform.machine()}, {os.cpu_count()} CPUs, pool max_workers="
        f"{sockfake.ThreadPoolTCPServer.max_workers}; {rounds} round(s) of {window:g} s "
        f"windows; slowloris {sizes['slowloris']} connections, stalled readers "
        f"{sizes['stalled']}, churn {sizes['churn']} fresh slow connections/s "
        f"(each {CHURN_LIFE:g} s)",
        flush=True,
    )
    for number in range(rounds):
        order = players[number % len(players):] + players[: number % len(players)]
        for kind in attacks:
            for contender in order:
                got = run_one(contender, kind, sizes[kind], window, ctx)
                results.setdefault((kind, contender.name), []).append(got)
                median = statistics.median(got.samples) * 1000 if got.samples else float("nan")
                print(
                    f"  round {number + 1} {kind:9} {contender.name:40} "
                    f"{len(got.samples):4} ok, median {median:7.1f} ms, gap "
                    f"{got.longest_gap:6.2f} s, threads {got.threads:4}, "
                    f"load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
    print()
    header = (
        f"| {'attack':32} | {'server':40} | requests | failed | median ms | medians per round "
        f"| p99 ms | longest gap s | threads |"
    )
    print(header)
    print("|" + "|".join("-" * (len(part)) for part in header.split("|")[1:-1]) + "|")
    labels = {
        "slowloris": f"slowloris x{sizes['slowloris']}",
        "stalled": f"stalled readers x{sizes['stalled']}",
        "churn": f"churn {sizes['churn']}/s",
    }
    for kind in attacks:
        for contender in players:
            runs = results[(kind, contender.name)]
            samples = [s for run in runs for s in run.samples]
            median = statistics.median(samples) * 1000 if samples else float("nan")
            per_round = ", ".join(
                f"{statistics.median(run.samples) * 1000:.1f}" if run.samples else "-"
                for run in runs
            )
            p99 = percentile(samples, 0.99) * 1000 if samples else float("nan")
            gap = max(run.longest_gap for run in runs)
            failed = sum(run.failures for run in runs)
            threads = max(run.threads for run in runs)
            print(
                f"| {labels[kind]:32} | {contender.name:40} | {len(samples):8} | {failed:6} "
                f"| {median:9.1f} | {per_round:17} | {p99:6.1f} | {gap:13.2f} | {threads:7} |"
            )
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()

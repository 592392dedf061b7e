"""A well-behaved client's latency while the server is under a slow-client attack.

Two attacks, each against three servers, alternating which server goes first round by
round:

- **slowloris**: connections that trickle a request one byte at a time (a byte every
  0.5 s, well under any idle timeout) and never finish it, reconnecting when cut;
- **stalled readers**: connections that ask for a 10 MiB response and never read it,
  each held for 5 s, then replaced.

The servers: the stdlib's ``socketserver.ThreadingTCPServer``, sockfake's
``ThreadingTCPServer`` and sockfake's ``ThreadPoolTCPServer`` with its defence
(``request_deadline``, ``request_timeout``; default ``max_workers``). The attack runs
in a separate process; the good client (connect, one line, read the reply, close,
again) runs in this one, for a fixed window, and reports its median and p99 latency
and its longest gap (the longest time without a completed request, the window's start
included). Everything binds 127.0.0.1; every loop is bounded in count and time.

    python benchmarks/bench_attack.py            # 3 rounds, about 2 minutes
    python benchmarks/bench_attack.py --quick    # 1 round, smaller attacks, ~30 s
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
POOL_SLOW = 512  # the pool's max_slow_requests: the defence
POOL_DEADLINE = 30.0  # the pool's request_deadline
POOL_TIMEOUT = 2.0  # the pool's request_timeout (the setting: alone it did not help)


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


def contenders() -> list[Contender]:
    stdlib_cls = quiet(socketserver.ThreadingTCPServer)
    stdlib_cls.daemon_threads = True  # type: ignore[attr-defined]
    threading_cls = quiet(sockfake.ThreadingTCPServer)
    threading_cls.daemon_threads = True  # type: ignore[attr-defined]
    pool_cls = quiet(sockfake.ThreadPoolTCPServer)
    pool_cls.max_slow_requests = POOL_SLOW  # type: ignore[attr-defined]
    pool_cls.request_deadline = POOL_DEADLINE  # type: ignore[attr-defined]
    pool_cls.request_timeout = POOL_TIMEOUT  # type: ignore[attr-defined]
    return [
        Contender(
            "stdlib ThreadingTCPServer", lambda: stdlib_cls((HOST, 0), handler(socketserver))
        ),
        Contender(
            "sockfake ThreadingTCPServer", lambda: threading_cls((HOST, 0), handler(sockfake))
        ),
        Contender(
            f"sockfake ThreadPoolTCPServer (slow {POOL_SLOW})",
            lambda: pool_cls((HOST, 0), handler(sockfake)),
        ),
    ]


# --- the attack (runs in its own process) -------------------------------------------


def attack(kind: str, address: tuple[str, int], connections: int, stop: Any, ready: Any) -> None:
    """Keep ``connections`` hostile connections open until ``stop`` is set (bounded)."""
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
        if kind == "slowloris":
            sel.register(sock, selectors.EVENT_READ)

    def drop(sock: socket.socket) -> None:
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(sock)
        born.pop(sock, None)
        next_byte.pop(sock, None)
        sock.close()

    for _ in range(connections):
        open_one()
    ready.set()
    while not stop.is_set() and time.monotonic() < limit:
        while len(born) < connections and not stop.is_set():
            before = len(born)
            open_one()
            if len(born) == before:
                break  # the server is not accepting: retry on the next tick
        if kind == "slowloris":
            for key, _ in sel.select(0.05) if sel.get_map() else ():
                drop(key.fileobj)  # type: ignore[arg-type]  # cut (EOF or reset)
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
    server = contender.build()
    serving = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    serving.start()
    stop, ready = ctx.Event(), ctx.Event()
    attacker = ctx.Process(
        target=attack, args=(kind, server.server_address, connections, stop, ready), daemon=True
    )
    attacker.start()
    try:
        ready.wait(30)
        time.sleep(0.5)  # let the attack settle in
        return good_client(server.server_address, window)
    finally:
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
    args = parser.parse_args()
    rounds, window = (1, 3.0) if args.quick else (3, 5.0)
    sizes = {"slowloris": 100 if args.quick else 300, "stalled": 30 if args.quick else 50}
    ctx = multiprocessing.get_context("spawn")
    players = contenders()
    results: dict[tuple[str, str], list[Latencies]] = {}
    print(
        f"sockfake bench_attack: Python {platform.python_version()}, {platform.system()} "
        f"{platform.machine()}, {os.cpu_count()} CPUs, pool max_workers="
        f"{sockfake.ThreadPoolTCPServer.max_workers}; {rounds} round(s) of {window:g} s "
        f"windows; slowloris {sizes['slowloris']} connections, stalled readers "
        f"{sizes['stalled']}",
        flush=True,
    )
    for number in range(rounds):
        order = players[number % len(players):] + players[: number % len(players)]
        for kind in ("slowloris", "stalled"):
            for contender in order:
                got = run_one(contender, kind, sizes[kind], window, ctx)
                results.setdefault((kind, contender.name), []).append(got)
                print(
                    f"  round {number + 1} {kind:9} {contender.name:42} "
                    f"{len(got.samples):4} ok, gap {got.longest_gap:6.2f} s, "
                    f"load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
    print()
    header = (
        f"| {'attack':32} | {'server':42} | requests | failed | median ms | p99 ms "
        f"| longest gap s |"
    )
    print(header)
    print("|" + "|".join("-" * (len(part)) for part in header.split("|")[1:-1]) + "|")
    for kind in ("slowloris", "stalled"):
        label = (
            f"slowloris x{sizes['slowloris']}"
            if kind == "slowloris"
            else f"stalled readers x{sizes['stalled']}"
        )
        for contender in players:
            runs = results[(kind, contender.name)]
            samples = [s for run in runs for s in run.samples]
            median = statistics.median(samples) * 1000 if samples else float("nan")
            p99 = percentile(samples, 0.99) * 1000 if samples else float("nan")
            gap = max(run.longest_gap for run in runs)
            failed = sum(run.failures for run in runs)
            print(
                f"| {label:32} | {contender.name:42} | {len(samples):8} | {failed:6} "
                f"| {median:9.1f} | {p99:6.1f} | {gap:13.2f} |"
            )
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()

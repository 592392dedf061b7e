"""sockfake against the stdlib's socketserver on real loopback sockets, side by side.

Servers run in this process; clients run in separate worker processes (so the client's
Python does not share a GIL with the server under test). Each measurement is repeated,
alternating which library goes first; the median of each is reported, with the spread.

    python benchmarks/bench_real.py            # full run (about a minute)
    python benchmarks/bench_real.py --quick    # short run

Targets (DESIGN.md, "Performance targets"): every throughput ratio >= 1.0;
shutdown() median under 5 ms; the pool mix-in >= 1.3x thread-per-request.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import socket
import socketserver
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sockfake  # noqa: E402

LINE = b"x" * 31 + b"\n"


# --- handlers, the same code on both libraries ----------------------------------------


def handlers(lib: Any) -> dict[str, type]:
    """The benchmark's handlers, subclassing ``lib``'s request handlers."""

    class LineEcho(lib.StreamRequestHandler):  # type: ignore[misc]
        def handle(self) -> None:
            for line in self.rfile:
                self.wfile.write(line)

    class OneLine(lib.StreamRequestHandler):  # type: ignore[misc]
        def handle(self) -> None:
            self.wfile.write(self.rfile.readline())

    class DatagramEcho(lib.DatagramRequestHandler):  # type: ignore[misc]
        def handle(self) -> None:
            self.wfile.write(self.rfile.read())

    return {"line_echo": LineEcho, "one_line": OneLine, "datagram_echo": DatagramEcho}


# --- client side (runs in worker processes) -------------------------------------------


def _recv_line(sock: socket.socket) -> None:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the reply")
        data += chunk


def _persistent(address: Any, count: int) -> None:
    with socket.create_connection(address) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(count):
            sock.sendall(LINE)
            _recv_line(sock)


def _per_request(address: Any, count: int) -> None:
    for _ in range(count):
        with socket.create_connection(address) as sock:
            sock.sendall(LINE)
            _recv_line(sock)


def _udp(address: Any, count: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1.0)
        done = 0
        while done < count:
            sock.sendto(LINE, address)
            try:
                sock.recvfrom(4096)
            except TimeoutError:
                continue  # lost on loopback (rare): send again
            done += 1


CLIENTS: dict[str, Callable[[Any, int], None]] = {
    "persistent": _persistent,
    "per_request": _per_request,
    "udp": _udp,
}


def _client_thread(
    run: Callable[[Any, int], None],
    address: Any,
    count: int,
    barrier: threading.Barrier,
    errors: list[BaseException],
) -> None:
    barrier.wait()
    try:
        run(address, count)
    except BaseException as exc:  # reported to the parent
        errors.append(exc)


def _client_worker(conn: Any) -> None:
    """Serve measurement commands from the parent: (kind, address, threads, count)."""
    while True:
        command = conn.recv()
        if command is None:
            return
        kind, address, threads, count = command
        run = CLIENTS[kind]
        barrier = threading.Barrier(threads + 1)
        errors: list[BaseException] = []

        args = (run, address, count, barrier, errors)
        workers = [threading.Thread(target=_client_thread, args=args) for _ in range(threads)]
        for worker in workers:
            worker.start()
        barrier.wait()
        start = time.monotonic()
        for worker in workers:
            worker.join()
        end = time.monotonic()
        conn.send((start, end, threads * count, repr(errors[0]) if errors else None))


class Clients:
    """A few client processes; ``run`` drives them all at once and returns requests/s."""

    def __init__(self, processes: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conns = []
        self._procs = []
        for _ in range(processes):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_client_worker, args=(child,), daemon=True)
            proc.start()
            self._conns.append(parent)
            self._procs.append(proc)

    def run(self, kind: str, address: Any, threads: int, count: int) -> float:
        for conn in self._conns:
            conn.send((kind, address, threads, count))
        results = [conn.recv() for conn in self._conns]
        for *_, error in results:
            if error:
                raise RuntimeError(f"client failed: {error}")
        start = min(r[0] for r in results)
        end = max(r[1] for r in results)
        return sum(r[2] for r in results) / (end - start)

    def close(self) -> None:
        for conn in self._conns:
            conn.send(None)
        for proc in self._procs:
            proc.join(5)


# --- server side ----------------------------------------------------------------------


def serving(server_class: type, handler: type, **attrs: Any) -> Any:
    """Start ``server_class`` on 127.0.0.1:0 with serve_forever in a thread."""
    cls = type(server_class.__name__, (server_class,), attrs) if attrs else server_class
    server = cls(("127.0.0.1", 0), handler)
    # poll_interval only bounds how late the stdlib notices shutdown(); a short one
    # keeps its stops quick between runs and does not change throughput.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return server, thread


def stop(server: Any, thread: threading.Thread) -> None:
    server.shutdown()
    thread.join()
    server.server_close()


def throughput(
    clients: Clients,
    kind: str,
    server_class: type,
    handler: type,
    threads: int,
    count: int,
    **attrs: Any,
) -> float:
    server, thread = serving(server_class, handler, **attrs)
    try:
        return clients.run(kind, server.server_address, threads, count)
    finally:
        stop(server, thread)


def shutdown_latency_ms(server_class: type, handler: type) -> float:
    """Start serve_forever, prove it is serving with one request, time shutdown()."""
    server = server_class(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with socket.create_connection(server.server_address, timeout=5) as sock:
            sock.sendall(LINE)
            _recv_line(sock)
        time.sleep(0.005)  # let the loop go back to waiting (idle)
        start = time.perf_counter()
        server.shutdown()
        return (time.perf_counter() - start) * 1000
    finally:
        thread.join()
        server.server_close()


# --- the scenarios --------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    unit: str
    a_name: str
    a: float
    b_name: str
    b: float
    target: str
    ok: bool
    noise: float = 0.0

    @property
    def ratio(self) -> float:
        return self.a / self.b if self.b else float("inf")


def alternate(
    reps: int,
    measure_a: Callable[[], float],
    measure_b: Callable[[], float],
) -> tuple[float, float, float]:
    """Run A and B ``reps`` times each, alternating who goes first.

    Returns the median of each and the noise: the larger relative spread (max - min
    over the median) of the two series, a yardstick for how far apart two equal
    servers can look.
    """
    a: list[float] = []
    b: list[float] = []
    for rep in range(reps):
        order = [(measure_a, a), (measure_b, b)]
        if rep % 2:
            order.reverse()
        for measure, results in order:
            results.append(measure())
    noise = max((max(xs) - min(xs)) / statistics.median(xs) for xs in (a, b))
    return statistics.median(a), statistics.median(b), noise


def run(quick: bool, processes: int) -> list[Row]:
    reps = 2 if quick else 7
    scale = 0.25 if quick else 1.0
    sf, std = handlers(sockfake), handlers(socketserver)
    clients = Clients(processes)
    rows: list[Row] = []

    def n(count: int) -> int:
        return max(50, int(count * scale) // processes)

    def versus(
        scenario: str, kind: str, cls_name: str, handler: str, threads: int, count: int
    ) -> None:
        a, b, noise = alternate(
            reps,
            lambda: throughput(
                clients, kind, getattr(sockfake, cls_name), sf[handler], threads, n(count)
            ),
            lambda: throughput(
                clients, kind, getattr(socketserver, cls_name), std[handler], threads, n(count)
            ),
        )
        rows.append(Row(scenario, "req/s", "sockfake", a, "stdlib", b, ">= 1.0", a >= b, noise))
        print(f"  {scenario}: {a:,.0f} vs {b:,.0f}", file=sys.stderr)

    try:
        versus(
            "persistent echo, 2 conns (ThreadingTCPServer)",
            "persistent",
            "ThreadingTCPServer",
            "line_echo",
            2,
            100000,
        )
        versus(
            "connection per request, 4 clients (ThreadingTCPServer)",
            "per_request",
            "ThreadingTCPServer",
            "one_line",
            4,
            8000,
        )
        versus(
            "UDP round trips, 2 clients (UDPServer)", "udp", "UDPServer", "datagram_echo", 2, 40000
        )
        versus(
            "UDP round trips, 2 clients (ThreadingUDPServer)",
            "udp",
            "ThreadingUDPServer",
            "datagram_echo",
            2,
            8000,
        )

        # Pool mix-in against thread-per-request, both sockfake, many concurrent clients.
        pool_threads = 8
        a, b, noise = alternate(
            reps,
            lambda: throughput(
                clients,
                "per_request",
                sockfake.ThreadPoolTCPServer,
                sf["one_line"],
                pool_threads,
                n(4000),
            ),
            lambda: throughput(
                clients,
                "per_request",
                sockfake.ThreadingTCPServer,
                sf["one_line"],
                pool_threads,
                n(4000),
            ),
        )
        rows.append(
            Row(
                f"connection per request, {pool_threads} clients: pool vs "
                "thread-per-request (sockfake)",
                "req/s",
                "ThreadPoolTCPServer",
                a,
                "ThreadingTCPServer",
                b,
                ">= 1.3",
                a >= 1.3 * b,
                noise,
            )
        )
        print(f"  pool: {a:,.0f} vs {b:,.0f}", file=sys.stderr)
    finally:
        clients.close()

    sf_cycles, std_cycles = (10, 3) if quick else (20, 5)
    sf_ms = statistics.median(
        shutdown_latency_ms(sockfake.ThreadingTCPServer, sf["one_line"]) for _ in range(sf_cycles)
    )
    std_ms = statistics.median(
        shutdown_latency_ms(socketserver.ThreadingTCPServer, std["one_line"])
        for _ in range(std_cycles)
    )
    rows.append(
        Row(
            f"shutdown() latency, median of {sf_cycles} / {std_cycles} cycles",
            "ms",
            "sockfake",
            sf_ms,
            "stdlib",
            std_ms,
            "< 5 ms",
            sf_ms < 5.0,
        )
    )
    return rows


def _verdict(row: Row) -> str:
    if row.ok:
        return "yes"
    if row.target == ">= 1.0" and row.ratio >= 1.0 - row.noise:
        return "no (within noise)"
    return "NO"


def table(rows: list[Row]) -> str:
    head = ("scenario", "unit", "A", "B", "A/B", "noise", "target", "met")
    body = []
    for r in rows:
        fmt = "{:,.2f}" if r.unit == "ms" else "{:,.0f}"
        body.append(
            (
                r.scenario,
                r.unit,
                f"{r.a_name}: {fmt.format(r.a)}",
                f"{r.b_name}: {fmt.format(r.b)}",
                f"{r.ratio:.2f}" if r.unit != "ms" else f"{r.ratio:.4f}",
                f"{r.noise:.0%}" if r.noise else "",
                r.target,
                _verdict(r),
            )
        )
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines.extend(
        "| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in body
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run")
    parser.add_argument(
        "--client-processes",
        type=int,
        default=1,
        metavar="N",
        help="client processes (default 1; the machine has "
        f"{os.cpu_count()} CPUs, the server needs one)",
    )
    parser.add_argument(
        "--markdown", metavar="PATH", help="also write the table, command and date to PATH"
    )
    args = parser.parse_args(argv)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    load = os.getloadavg()[0]
    rows = run(args.quick, args.client_processes)
    header = (
        f"sockfake {sockfake.__version__} vs socketserver, Python "
        f"{platform.python_version()}, {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs, {started}, load average {load:.2f}"
    )
    missed = [r.scenario for r in rows if not r.ok]
    verdict = "all targets met" if not missed else f"targets missed: {'; '.join(missed)}"
    print(header, table(rows), verdict, sep="\n")
    if args.markdown:
        command = " ".join(["python", "benchmarks/bench_real.py", *(argv or sys.argv[1:])])
        Path(args.markdown).write_text(
            f"# Real-network benchmark\n\n{header}\n\nCommand: `{command}`\n\n"
            f"Median of the alternated runs per side; noise is the larger relative spread\n"
            f"(max - min over the median) of the two series (how far apart two runs of the\n"
            f"same server landed). Load average at the start: {load:.2f}.\n\n"
            f"{table(rows)}\n\n{verdict}\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

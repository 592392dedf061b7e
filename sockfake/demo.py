"""``python -m sockfake demo``: the socketserver documentation's examples, simulated.

Runs the upper-casing TCP server (with a slow, trickling client beside a prompt one),
the UDP example under 30 % datagram loss with a retrying client, and the
``ThreadingMixIn`` example, all on one ``SimNetwork``. Prints what each client saw,
a readable excerpt of the trace, what the simulation did (virtual seconds run in how
few real ones, the faults injected), the trace files if asked for (``trace_dir``),
and the trace digest as the last line: the same seed prints the same output, byte for
byte, but for the one line that measures real time.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from pathlib import Path
from typing import TextIO

import sockfake
from sockfake.failure_report import write_trace_files
from sockfake.sim import SimNetwork
from sockfake.sim.scenarios import TrickleWriter

_TRACE_KINDS = (
    "connect", "accept", "send", "sendto", "deliver", "drop", "duplicate", "reset",
    "timeout", "fin", "jump",
)


class MyTCPHandler(sockfake.StreamRequestHandler):
    """The documentation's StreamRequestHandler example: upper-case one line."""

    def handle(self) -> None:
        self.data = self.rfile.readline().strip()
        self.wfile.write(self.data.upper() + b"\n")


class MyUDPHandler(sockfake.DatagramRequestHandler):
    """The documentation's UDP example: answer with the upper-cased datagram."""

    def handle(self) -> None:
        self.wfile.write(self.rfile.read().strip().upper())


class ThreadedTCPRequestHandler(sockfake.BaseRequestHandler):
    """The documentation's ThreadingMixIn example: reply with the handler thread's name."""

    def handle(self) -> None:
        data = str(self.request.recv(1024), "ascii")
        response = bytes(f"{threading.current_thread().name}: {data}", "ascii")
        self.request.sendall(response)


def _serve(server: sockfake.BaseServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


def _stop(server: sockfake.BaseServer, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join()


# The link conditions the demo sets (and so reports as injected faults).
LATENCY, JITTER, LOSS = 0.02, 0.01, 0.3
TRICKLE_INTERVAL = 1.0  # seconds between the slow client's bytes
# The line that measures real time: the one line two runs of a seed may differ in.
REAL_TIME_MARK = "real seconds"


def run_demo(seed: int, out: TextIO, trace_dir: Path | None = None) -> str:
    """Run the demo on ``SimNetwork(seed)``, writing to ``out``; return the digest.

    ``trace_dir``: also write the trace there as ``demo.pcapng`` (Wireshark),
    ``demo.html`` (the sequence diagram) and ``demo.jsonl``.
    """
    started = time.perf_counter()
    net = SimNetwork(seed=seed, latency=LATENCY, jitter=JITTER)
    try:
        _tcp_with_slow_client(net, out)
        udp_from = len(net.trace.events)
        _udp_under_loss(net, out)
        udp_events = net.trace.events[udp_from:]
        _threading_example(net, out)
        drops = sum(1 for event in udp_events if event[2] == "drop")
        out.write(f"\ntrace of the UDP example ({drops} datagrams dropped):\n")
        for event in udp_events:
            if event.kind in ("sendto", "drop", "deliver", "timeout"):
                out.write(
                    f"{event.time:12.6f}  {event.actor:<28} {event.kind:<12} "
                    f"{event.details}".rstrip() + "\n"
                )
        out.write("\ntrace, last events:\n")
        out.write(net.trace.format(kinds=_TRACE_KINDS, last=25) + "\n")
        out.write(f"{len(net.trace)} events in {net.time():.3f} virtual seconds\n")
        virtual = net.time()
        digest = net.digest()
        _summary(net, virtual, time.perf_counter() - started, seed, out)
        if trace_dir is not None:
            for line in write_trace_files(net, trace_dir, "demo", "sockfake demo"):
                out.write(line + "\n")
    finally:
        net.close()
    out.write(f"trace digest: {digest}\n")
    return digest


def _summary(net: SimNetwork, virtual: float, real: float, seed: int, out: TextIO) -> None:
    """What the run gained: time, the faults it met, and that it can be had again."""
    fates = Counter(event.kind for event in net.trace.events
                    if event.kind in ("drop", "duplicate", "corrupt", "reset", "retry"))
    speed = f"{virtual / real:.0f} times faster" if real > 0 else "no real time at all"
    out.write("\n== what the simulation did\n")
    out.write(f"  {virtual:.3f} virtual seconds ran in {real:.2f} {REAL_TIME_MARK} ({speed}):\n"
              f"    the slow client's {TRICKLE_INTERVAL:g} s pauses and the retries' timeouts "
              "cost no waiting\n")
    injected = [f"{fates['drop']} datagrams dropped ({LOSS:.0%} loss on the UDP example)"]
    injected += [f"{count} {name}" for name, count in (
        ("datagrams duplicated", fates["duplicate"]), ("datagrams corrupted", fates["corrupt"]),
        ("connections reset", fates["reset"]), ("SYNs retransmitted", fates["retry"]),
    ) if count]
    injected.append(f"{LATENCY * 1000:.0f} ms latency +/- {JITTER * 1000:.0f} ms jitter on "
                    "every packet")
    injected.append(f"1 client trickling 1 byte every {TRICKLE_INTERVAL:g} s")
    out.write("  faults injected:\n")
    for line in injected:
        out.write(f"    {line}\n")
    out.write("  the same seed gives the same run and the same trace digest, in any process:\n"
              f"    python -m sockfake demo --seed {seed}\n")


def _tcp_with_slow_client(net: SimNetwork, out: TextIO) -> None:
    out.write("== TCP echo (ThreadingTCPServer), a client trickling 1 byte/s beside a quick one\n")
    server = sockfake.ThreadingTCPServer(("127.0.0.1", 0), MyTCPHandler, network=net)
    thread = _serve(server)
    slow = TrickleWriter(net, server.server_address, b"slow poke\n", chunk=1,
                         interval=TRICKLE_INTERVAL)
    slow.start()
    with net.create_connection(server.server_address) as sock:
        sock.sendall(b"hello world\n")
        reply = sock.makefile("rb").readline()
    out.write(f"  quick client got {reply!r} at t={net.time():.3f}\n")
    slow.wait()
    out.write(f"  slow client got {slow.reply!r} at t={slow.finished_at:.3f}\n")
    _stop(server, thread)


def _udp_under_loss(net: SimNetwork, out: TextIO) -> None:
    out.write("== UDP echo under 30 % loss, client retrying every 0.5 s\n")
    net.set_conditions(loss=LOSS)
    server = sockfake.UDPServer(("127.0.0.1", 0), MyUDPHandler, network=net)
    thread = _serve(server)
    with net.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        for word in (b"alpha", b"bravo", b"charlie", b"delta", b"echo"):
            tries = 0
            while tries < 20:
                tries += 1
                sock.sendto(word, server.server_address)
                try:
                    reply, _ = sock.recvfrom(1024)
                except TimeoutError:
                    continue
                plural = "y" if tries == 1 else "ies"
                out.write(f"  {word!r} -> {reply!r} after {tries} tr{plural}\n")
                break
    net.set_conditions(loss=0.0)
    _stop(server, thread)


def _threading_example(net: SimNetwork, out: TextIO) -> None:
    out.write("== ThreadingMixIn example\n")
    server = sockfake.ThreadingTCPServer(("127.0.0.1", 0), ThreadedTCPRequestHandler, network=net)
    thread = _serve(server)
    for message in ("Hello World 1", "Hello World 2", "Hello World 3"):
        with net.create_connection(server.server_address) as sock:
            sock.sendall(bytes(message, "ascii"))
            response = str(sock.recv(1024), "ascii")
        out.write(f"  Received: {response}\n")
    _stop(server, thread)

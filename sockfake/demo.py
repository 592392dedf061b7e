"""``python -m sockfake demo``: the socketserver documentation's examples, simulated.

Runs the upper-casing TCP server (with a slow, trickling client beside a prompt one),
the UDP example under 30 % datagram loss with a retrying client, and the
``ThreadingMixIn`` example, all on one ``SimNetwork``. Prints what each client saw,
a readable excerpt of the trace, and the trace digest as the last line: the same
seed prints the same output, byte for byte.
"""

from __future__ import annotations

import socket
import threading
from typing import TextIO

import sockfake
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


def run_demo(seed: int, out: TextIO) -> str:
    """Run the demo on ``SimNetwork(seed)``, writing to ``out``; return the digest."""
    net = SimNetwork(seed=seed, latency=0.02, jitter=0.01)
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
        digest = net.digest()
    finally:
        net.close()
    out.write(f"trace digest: {digest}\n")
    return digest


def _tcp_with_slow_client(net: SimNetwork, out: TextIO) -> None:
    out.write("== TCP echo (ThreadingTCPServer), a client trickling 1 byte/s beside a quick one\n")
    server = sockfake.ThreadingTCPServer(("127.0.0.1", 0), MyTCPHandler, network=net)
    thread = _serve(server)
    slow = TrickleWriter(net, server.server_address, b"slow poke\n", chunk=1, interval=1.0)
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
    net.set_conditions(loss=0.3)
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

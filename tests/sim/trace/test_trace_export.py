"""Trace exports: the pcapng capture a real parser reads, JSONL, the HTML diagram."""

from __future__ import annotations

import json
import shutil
import socket
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers import DatagramEchoHandler, EchoHandler, recv_exactly, serving

import sockfake as socketserver
from sockfake.sim import SimNetwork
from sockfake.sim.net.faults import FaultPlan

dpkt = pytest.importorskip("dpkt")


def _run_traffic(net: SimNetwork) -> None:
    """Two TCP connections with data both ways, a refused one, a reset, and UDP with a
    dropped and a duplicated datagram."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), EchoHandler, network=net)
    with serving(server):
        for message in (b"hello world", b"second connection " * 5):
            with net.create_connection(server.server_address) as client:
                client.sendall(message)
                assert recv_exactly(client, len(message)) == message
        probe = net.socket()
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()
        probe.close()
        with pytest.raises(ConnectionRefusedError):
            net.create_connection(closed)
        client = net.create_connection(server.server_address)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
    FaultPlan(drops=frozenset({0}), duplicates=frozenset({1})).apply(net)
    udp = socketserver.UDPServer(("127.0.0.1", 0), DatagramEchoHandler, network=net)
    with serving(udp), net.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1.0)
        for _attempt in range(5):
            sock.sendto(b"ping", udp.server_address)
            try:
                assert sock.recv(10) == b"ping"
                break
            except TimeoutError:
                continue


def _comments(path: Path) -> list[list[str]]:
    """Each enhanced packet block's comments, read from the file's bytes (pcapng spec)."""
    data = path.read_bytes()
    found, offset = [], 0
    while offset < len(data):
        block_type, total = struct.unpack_from("<II", data, offset)
        if block_type == 6:
            captured = struct.unpack_from("<I", data, offset + 20)[0]
            option = offset + 28 + captured + (-captured % 4)
            comments = []
            while option < offset + total - 4:
                code, length = struct.unpack_from("<HH", data, option)
                if code == 0:
                    break
                if code == 1:
                    comments.append(data[option + 4 : option + 4 + length].decode())
                option += 4 + length + (-length % 4)
            found.append(comments)
        offset += total
    return found


def test_the_pcapng_capture_holds_exactly_the_packets_the_trace_sent(tmp_path: Path) -> None:
    with SimNetwork(seed=4, latency=0.01) as net:
        _run_traffic(net)
        events = list(net.trace)
        path = net.trace.write_pcap(tmp_path / "run.pcapng")
    with path.open("rb") as capture:
        parsed = [(ts, dpkt.ip.IP(raw)) for ts, raw in dpkt.pcapng.Reader(capture)]
    tcp = [(ts, ip) for ts, ip in parsed if isinstance(ip.data, dpkt.tcp.TCP)]
    udp = [(ts, ip) for ts, ip in parsed if isinstance(ip.data, dpkt.udp.UDP)]

    syns = [e for e in events if e.kind in ("connect", "retry")]
    flags = [ip.data.flags for _, ip in tcp]
    assert sum(1 for f in flags if f == dpkt.tcp.TH_SYN) == len(syns)
    assert sum(1 for f in flags if f == dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK) == len(
        [e for e in events if e.kind == "syn"]
    )
    assert sum(1 for f in flags if f & dpkt.tcp.TH_FIN) == len(
        [e for e in events if e.kind == "fin"]
    )
    assert sum(1 for f in flags if f & dpkt.tcp.TH_RST) == len(
        [e for e in events if e.kind in ("rst", "refused")]
    )
    # Every data segment is a send() of the trace, with its bytes, in order.
    sends = [e for e in events if e.kind == "send"]
    data = [ip.data for _, ip in tcp if ip.data.data]
    assert [segment.data for segment in data] == [e.payload for e in sends]
    assert [segment.sport for segment in data] == [e.src[1] for e in sends]
    # Sequence numbers follow each direction's bytes (SYN and FIN count one).
    first = data[0]
    assert first.seq == 1 and len(first.data) == len(b"hello world")
    reply = next(s for s in data if s.sport == first.dport and s.dport == first.sport)
    assert reply.ack == 1 + len(first.data) and reply.seq == 1
    # Timestamps are the events' virtual times.
    assert [round(ts, 6) for ts, ip in tcp if ip.data.data] == [round(e.time, 6) for e in sends]

    sendtos = [e for e in events if e.kind == "sendto"]
    assert [bytes(ip.data.data) for _, ip in udp] == [e.payload for e in sendtos]
    comments = _comments(path)
    udp_comments = [c for c, (_, ip) in zip(comments, parsed, strict=True)
                    if isinstance(ip.data, dpkt.udp.UDP)]
    assert udp_comments[0] == ["dropped: fault plan"]
    assert "duplicated: delivered twice" in udp_comments[1]
    assert any("reset: SO_LINGER 0" in c for c in comments)


def test_unix_sockets_appear_as_pseudo_addresses_named_in_comments(tmp_path: Path) -> None:
    with SimNetwork(seed=1) as net:
        server = socketserver.ThreadingUnixStreamServer("/srv.sock", EchoHandler, network=net)
        with serving(server), net.socket(socket.AF_UNIX) as client:
            client.connect("/srv.sock")
            client.sendall(b"over unix")
            assert recv_exactly(client, 9) == b"over unix"
        path = net.trace.write_pcap(tmp_path / "unix.pcapng")
    with path.open("rb") as capture:
        parsed = [dpkt.ip.IP(raw) for _, raw in dpkt.pcapng.Reader(capture)]
    assert all(socket.inet_ntoa(ip.dst).startswith("127.88.") for ip in parsed)
    assert [bytes(ip.data.data) for ip in parsed if ip.data.data] == [b"over unix"] * 2
    assert any("/srv.sock" in " ".join(c) for c in _comments(path))


def test_jsonl_has_one_object_per_event_with_its_fields(tmp_path: Path) -> None:
    with SimNetwork(seed=2) as net:
        _run_traffic(net)
        events = list(net.trace)
        path = net.trace.write_jsonl(tmp_path / "run.jsonl")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == len(events)
    sends = [line for line in lines if line["kind"] == "send"]
    assert bytes.fromhex(sends[0]["payload_hex"]) == b"hello world"
    assert sends[0]["src"] == ["127.0.0.1", sends[0]["src"][1]] and sends[0]["conn"] == 1
    drops = [line for line in lines if line["kind"] == "drop"]
    assert drops and drops[0]["reason"] == "fault plan" and drops[0]["seq"] == 0


def test_payloads_kept_in_the_trace_are_bounded() -> None:
    with SimNetwork(seed=1, trace_payload_limit=16) as net:
        a, b = net.socket(), net.socket()
        b.bind(("127.0.0.1", 0))
        b.listen()
        a.connect(b.getsockname())
        conn, _ = b.accept()
        a.sendall(b"x" * 1000)
        send = next(e for e in net.trace if e.kind == "send")
        assert send.length == 1000 and send.payload == b"x" * 16
        for sock in (a, b, conn):
            sock.close()


def test_the_html_diagram_has_a_lifeline_per_endpoint_and_an_arrow_per_packet(
    tmp_path: Path,
) -> None:
    with SimNetwork(seed=3, latency=0.01) as net:
        _run_traffic(net)
        path = net.trace.write_html(tmp_path / "run.html", title="two echoes")
        from sockfake.sim.trace.export import packets

        found = packets(net.trace)
    page = path.read_text()
    assert page.count('class="p"') == len(found)
    assert "<svg" in page and "two echoes" in page
    assert "127.0.0.1:" in page and "✗" in page  # a dropped datagram is crossed
    assert "http" not in page.replace("http://www.w3.org/2000/svg", "")  # self-contained


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return name
    return None


@pytest.mark.skipif(_browser() is None, reason="no headless Chromium installed")
def test_the_html_diagram_renders_in_a_browser(tmp_path: Path) -> None:
    with SimNetwork(seed=3, latency=0.01) as net:
        _run_traffic(net)
        page = net.trace.write_html(tmp_path / "run.html")
    shot = tmp_path / "shot.png"
    browser: Any = _browser()
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
         "--window-size=1400,900", page.as_uri()],
        check=True, capture_output=True, timeout=60,
    )
    assert shot.stat().st_size > 10_000  # a rendered diagram, not a blank page

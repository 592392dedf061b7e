"""Trace exports: the pcapng capture a real parser reads, JSONL, the HTML diagram."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import socket
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

import pytest
from helpers import DatagramEchoHandler, EchoHandler, recv_exactly, serving

import sockfake as socketserver
from sockfake.sim import SimNetwork
from sockfake.sim.net.faults import FaultPlan
from sockfake.sim.trace.diagram import FATE_MARKS
from sockfake.sim.trace.packets import FATES, packets
from sockfake.sim.trace.pcapng import DELIVERED_INTERFACE, FATES_INTERFACE, NOTES_ADDRESS

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


class Captured(NamedTuple):
    """One packet of the capture: its interface, time, IP packet and comments."""

    interface: int
    time: float
    ip: Any
    comments: list[str]


def _capture(path: Path) -> list[Captured]:
    """The packets dpkt reads, each with its interface and comments, which dpkt does
    not give: read from the enhanced packet blocks' bytes (pcapng spec)."""
    with path.open("rb") as capture:
        parsed = list(dpkt.pcapng.Reader(capture))
    data = path.read_bytes()
    blocks, offset = [], 0
    while offset < len(data):
        block_type, total = struct.unpack_from("<II", data, offset)
        if block_type == 6:
            interface = struct.unpack_from("<I", data, offset + 8)[0]
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
            blocks.append((interface, comments))
        offset += total
    return [Captured(interface, ts, dpkt.ethernet.Ethernet(raw).data, comments)
            for (ts, raw), (interface, comments) in zip(parsed, blocks, strict=True)]


def _delivered(captured: list[Captured]) -> list[Captured]:
    return [c for c in captured if c.interface == DELIVERED_INTERFACE]


def _notes(captured: list[Captured]) -> list[str]:
    """The fate notes' texts (syslog messages on the fates interface)."""
    notes = [c for c in captured if c.interface == FATES_INTERFACE]
    assert all(socket.inet_ntoa(c.ip.src) == NOTES_ADDRESS for c in notes)
    assert all(c.ip.data.dport == 514 for c in notes)
    return [bytes(c.ip.data.data).decode().split(">", 1)[1] for c in notes]


def test_the_pcapng_capture_holds_exactly_the_packets_the_trace_sent(tmp_path: Path) -> None:
    with SimNetwork(seed=4, latency=0.01) as net:
        _run_traffic(net)
        events = list(net.trace)
        path = net.trace.write_pcap(tmp_path / "run.pcapng")
    captured = _capture(path)
    delivered = _delivered(captured)
    tcp = [(c.time, c.ip) for c in delivered if isinstance(c.ip.data, dpkt.tcp.TCP)]
    udp = [c for c in delivered if isinstance(c.ip.data, dpkt.udp.UDP)]

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
    assert any("reset: SO_LINGER 0" in c for c in (x for p in delivered for x in p.comments))

    # UDP: the datagrams that arrived, at their arrival, once per arrival; the IP id
    # is the datagram's index. Datagram 0 was dropped, datagram 1 duplicated.
    arrivals = [e for e in events if e.kind == "deliver" and e.conn is None]
    assert [c.ip.id for c in udp] == [e.seq for e in arrivals]
    assert [round(c.time, 6) for c in udp] == [round(e.time, 6) for e in arrivals]
    assert 0 not in [c.ip.id for c in udp]  # the dropped one is not shown delivered
    assert [c.ip.id for c in udp].count(1) == 2
    duplicate = [c for c in udp if c.ip.id == 1][1]
    assert any(c.startswith("duplicated") for c in duplicate.comments)
    notes = _notes(captured)
    assert any(n.startswith("sockfake: dropped (fault plan): UDP ") and " #0 4B b'ping'" in n
               for n in notes)
    assert any(n.startswith("sockfake: duplicated (arrival 2 of datagram #1)") for n in notes)


def _reordering_traffic(net: SimNetwork) -> list[bytes]:
    """Twenty numbered datagrams on a link that reorders and duplicates some and loses
    a few: what the receiving socket read, in order."""
    net.set_conditions(latency=0.05, reorder=0.3, duplicate=0.2, loss=0.1)
    receiver = net.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(1.0)
    got = []
    with receiver, net.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for number in range(20):
            sender.sendto(b"datagram %02d" % number, receiver.getsockname())
        for _ in range(40):
            try:
                got.append(receiver.recv(100))
            except TimeoutError:
                break
    return got


def test_the_capture_shows_reordering_and_duplicates_as_the_receiver_saw_them(
    tmp_path: Path,
) -> None:
    with SimNetwork(seed=2) as net:
        got = _reordering_traffic(net)
        events = list(net.trace)
        path = net.trace.write_pcap(tmp_path / "reorder.pcapng")
    captured = _capture(path)
    shown = [bytes(c.ip.data.data) for c in _delivered(captured)]
    # The packet list is what the socket read: in its order, copies and all.
    assert shown == got
    assert len(set(got)) < len(got) and got != sorted(got)  # this seed does both
    lost = {b"datagram %02d" % (e.seq or 0) for e in events if e.kind == "drop"}
    assert lost and not lost & set(shown)
    notes = _notes(captured)
    assert sum(1 for n in notes if n.startswith("sockfake: dropped")) == len(lost)
    assert any("reordered (#" in n for n in notes)
    for earlier, later in itertools.pairwise(got):
        if later < earlier:  # arrived after one sent later: its packet says so
            packet = next(c for c in _delivered(captured) if bytes(c.ip.data.data) == later)
            assert any(c.startswith("reordered") for c in packet.comments)


def _tool(name: str) -> str | None:
    return shutil.which(name)


@pytest.mark.skipif(_tool("tshark") is None, reason="tshark is not installed "
                    "(apt-get install tshark)")
def test_tsharks_default_view_agrees(tmp_path: Path) -> None:
    with SimNetwork(seed=2) as net:
        got = _reordering_traffic(net)
        dropped = [e.seq for e in net.trace if e.kind == "drop"]
        path = net.trace.write_pcap(tmp_path / "reorder.pcapng")
    tshark: Any = _tool("tshark")
    lines = subprocess.run([tshark, "-r", str(path)], capture_output=True, text=True,
                           check=True, timeout=60).stdout.splitlines()
    # The protocol column, then the length: "UDP 53 32769 → 32768 Len=11".
    udp = [line for line in lines if re.search(r" UDP \d+ \d+ → \d+ Len=", line)]
    notes = [line for line in lines if re.search(r" Syslog \d+ ", line)]
    assert len(udp) == len(got)  # one line per datagram the socket read
    for seq in dropped:  # each lost datagram is a line that says so, with its payload
        assert sum(1 for line in notes if "sockfake: dropped" in line
                   and f" #{seq} " in line) == 1
    assert any("sockfake: duplicated" in line for line in notes)
    assert any("sockfake: reordered" in line for line in notes)


@pytest.mark.skipif(_tool("tcpdump") is None, reason="tcpdump is not installed")
def test_tcpdump_reads_the_capture_and_tells_notes_from_packets(tmp_path: Path) -> None:
    with SimNetwork(seed=2) as net:
        got = _reordering_traffic(net)
        dropped = [e.seq for e in net.trace if e.kind == "drop"]
        path = net.trace.write_pcap(tmp_path / "reorder.pcapng")
    tcpdump: Any = _tool("tcpdump")
    result = subprocess.run([tcpdump, "-n", "-r", str(path)], capture_output=True,
                            text=True, check=True, timeout=60)
    lines = result.stdout.splitlines()
    assert sum(1 for line in lines if "UDP, length" in line) == len(got)
    assert sum(1 for line in lines if "SYSLOG user.warning" in line) == len(dropped)


def test_unix_sockets_appear_as_pseudo_addresses_named_in_comments(tmp_path: Path) -> None:
    with SimNetwork(seed=1) as net:
        server = socketserver.ThreadingUnixStreamServer("/srv.sock", EchoHandler, network=net)
        with serving(server), net.socket(socket.AF_UNIX) as client:
            client.connect("/srv.sock")
            client.sendall(b"over unix")
            assert recv_exactly(client, 9) == b"over unix"
        path = net.trace.write_pcap(tmp_path / "unix.pcapng")
    captured = _capture(path)
    assert all(c.interface == DELIVERED_INTERFACE for c in captured)
    assert all(socket.inet_ntoa(c.ip.dst).startswith("127.88.") for c in captured)
    assert [bytes(c.ip.data.data) for c in captured if c.ip.data.data] == [b"over unix"] * 2
    assert any("/srv.sock" in " ".join(c.comments) for c in captured)


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


def _every_fate(net: SimNetwork) -> None:
    """Traffic the network drops, duplicates, reorders, corrupts, holds and resets, and
    two threads handing a lock to each other."""
    _run_traffic(net)  # dropped, duplicated, reset
    a, b = net.add_host("a"), net.add_host("b")
    net.set_conditions(latency=0.05, reorder=0.5, corrupt=0.3)
    receiver = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind((b.ipv4[0], 7000))
    receiver.settimeout(1.0)
    with receiver, a.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        net.hold("a", "b")
        sender.sendto(b"held </script><!--", receiver.getsockname())
        net.release("a", "b")
        for number in range(10):
            sender.sendto(b"<b>&amp;</b> %d" % number, receiver.getsockname())
        for _ in range(11):
            receiver.recv(100)
    net.set_conditions(latency=0.0, reorder=0.0, corrupt=0.0)
    lock = net.lock()

    def worker() -> None:
        for _ in range(2):
            with lock:
                net.sleep(0.01)

    threads = [net.thread(target=worker, name=f"worker-{n}") for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


class _Text(HTMLParser):
    """The text of each element with a given class (nested text included)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = []
        self.texts: list[str] = []
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if self._depth:
            self._depth += tag not in ("line", "path", "input")
        elif tag == "div" and "row" in (found.get("class") or "").split():
            self.rows.append({**found, "text": ""})
            self._depth = 1

    def handle_endtag(self, tag: str) -> None:
        if self._depth and tag not in ("line", "path", "input"):
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        self.texts.append(data)
        if self._depth:
            self.rows[-1]["text"] += data


def _parse(page: str) -> _Text:
    parser = _Text()
    parser.feed(page)
    return parser


def _rows_with(parser: _Text, css: str) -> list[dict[str, Any]]:
    return [row for row in parser.rows if css in (row.get("class") or "").split()]


def test_the_html_diagram_has_a_lifeline_per_endpoint_and_a_row_per_packet(
    tmp_path: Path,
) -> None:
    with SimNetwork(seed=3, latency=0.01) as net:
        _run_traffic(net)
        path = net.trace.write_html(tmp_path / "run.html", title="two echoes")
        found = packets(net.trace)
    page = path.read_text()
    parsed = _parse(page)
    assert len(_rows_with(parsed, "pkt")) == len(found)
    assert "two echoes" in page and "127.0.0.1:" in page
    assert "http" not in page.replace("http://www.w3.org/2000/svg", "")  # self-contained


def test_the_diagram_marks_every_fate_and_each_thread_hand_off(tmp_path: Path) -> None:
    with SimNetwork(seed=3, latency=0.01) as net:
        _every_fate(net)
        path = net.trace.write_html(tmp_path / "fates.html", title="fates")
        found = packets(net.trace)
    parsed = _parse(path.read_text())
    assert set(FATE_MARKS) == set(FATES)  # every fate a packet can have has its mark
    for fate in ("dropped", "duplicated", "reordered", "corrupted", "held", "reset"):
        rows = _rows_with(parsed, f"fate-{fate}")
        assert len(rows) == sum(1 for p in found if fate in p.fates), fate
        assert rows and all(f"{FATE_MARKS[fate]} {fate}" in row["text"] for row in rows)
    # Thread switches and the lock handed from one worker to the other.
    assert _rows_with(parsed, "kind-switch")
    waits = _rows_with(parsed, "kind-lock-wait")
    assert waits and any("worker-" in row["text"] for row in waits)
    assert _rows_with(parsed, "kind-lock-acquire")


def test_the_diagram_shows_short_payloads_inline_escaped_once(tmp_path: Path) -> None:
    with SimNetwork(seed=3) as net:
        _every_fate(net)
        path = net.trace.write_html(tmp_path / "fates.html", title='a<b> & "c"')
    parsed = _parse(path.read_text())
    assert 'a<b> & "c"' in parsed.texts  # the title, as given
    inline = [row["text"] for row in _rows_with(parsed, "pkt")]
    assert any("'<b>&amp;</b> 3'" in text for text in inline)
    # A payload cannot end the page's script early (the browser test sees it run).
    assert any("'held </script><!--'" in text for text in inline)
    assert not any("&lt;" in text or "&amp;lt;" in text for text in parsed.texts)


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return name
    return None


def _browse(tmp_path: Path, url: str, *options: str) -> str:
    """What headless Chromium made of ``url``: its DOM after the page's script ran."""
    browser: Any = _chromium()
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", *options, url],
        capture_output=True, text=True, timeout=120, check=True,
    )
    return result.stdout


needs_chromium = pytest.mark.skipif(
    _chromium() is None,
    reason="no headless Chromium installed (Debian: apt-get install chromium)",
)


@needs_chromium
def test_the_diagram_renders_in_a_browser_with_a_mark_for_each_fate(tmp_path: Path) -> None:
    with SimNetwork(seed=3, latency=0.01) as net:
        _every_fate(net)
        page = net.trace.write_html(tmp_path / "fates.html", title="fates")
        found = packets(net.trace)
    dom = _parse(_browse(tmp_path, page.as_uri(), "--dump-dom"))
    # The page's script ran: it counted the rows it shows.
    rows = _rows_with(dom, "row")
    shown = [row for row in rows if "display: none" not in (row.get("style") or "")]
    assert f"{len(shown)} rows shown" in dom.texts
    for fate in ("dropped", "duplicated", "reordered", "corrupted", "held", "reset"):
        marked = _rows_with(dom, f"fate-{fate}")
        assert marked and all(FATE_MARKS[fate] in row["text"] for row in marked), fate
    assert len(_rows_with(dom, "pkt")) == len(found)
    shot = tmp_path / "shot.png"
    _browse(tmp_path, page.as_uri(), f"--screenshot={shot}", "--window-size=1400,900")
    assert shot.stat().st_size > 10_000  # a rendered diagram, not a blank page


@needs_chromium
def test_the_diagram_follows_one_connection_host_or_thread_in_a_browser(
    tmp_path: Path,
) -> None:
    with SimNetwork(seed=3, latency=0.01) as net:
        _every_fate(net)
        page = net.trace.write_html(tmp_path / "fates.html", title="fates")
        found = packets(net.trace)

    def visible(fragment: str) -> list[dict[str, Any]]:
        dom = _parse(_browse(tmp_path, page.as_uri() + "#" + fragment, "--dump-dom"))
        return [row for row in _rows_with(dom, "row")
                if "display: none" not in (row.get("style") or "")]

    one = visible("conn=" + quote("TCP connection 2"))
    assert len(one) == sum(1 for p in found if p.conn == 2)
    assert all(row["data-conn"] == "TCP connection 2" for row in one)
    host_b = visible("host=10.0.0.2&threads=off")
    assert host_b and all("10.0.0.2" in row["data-hosts"].split() for row in host_b)
    worker = visible("thread=worker-1")
    assert worker and all(row["data-thread"] == "worker-1" for row in worker)

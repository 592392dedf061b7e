"""Exports of a trace: JSONL, a pcapng capture, an HTML sequence diagram.

All three derive from the trace's ``TraceEvent`` records. The capture and the diagram
show *packets*, reconstructed from the events that put something on the wire:

- TCP: ``connect``/``retry`` is a SYN, ``syn`` (queued at the listener) the SYN-ACK,
  ``established`` the client's ACK, ``send`` a data segment, ``fin`` a FIN, ``rst`` a
  RST, ``refused`` the listener's RST. Sequence numbers start at 0 in each direction
  (SYN and FIN count one), so Wireshark's "Follow TCP Stream" reads each connection.
  Packets are captured at the sender, when they leave: a segment's arrival (latency,
  re-chunking into short reads) is in the trace, not in the capture.
- UDP: every ``sendto`` is one datagram, whatever became of it; its fate is a pcapng
  packet comment ("dropped: loss", "duplicated: delivered twice", "corrupted: bit 17",
  "answered by ICMP port unreachable"), and so is a SYN's ("dropped: accept queue full").
- Unix sockets have no IP header of their own: each path (and each unnamed socket of a
  connection) stands for an address in 127.88.0.0/16, stream sockets as TCP, datagram
  sockets as UDP, port 1 for a path; the packet comment names the paths.

Payloads are the first ``payload_limit`` bytes the trace kept (the packet's original
length is the full one, as with a snap length). Timestamps are virtual seconds since
the network started (so the capture begins at the epoch).
"""

from __future__ import annotations

import html
import ipaddress
import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sockfake.sim.trace.recorder import TraceEvent

__all__ = ["Packet", "packets", "write_html", "write_jsonl", "write_pcapng"]

# TCP flags.
_FIN, _SYN, _RST, _PSH, _ACK = 0x01, 0x02, 0x04, 0x08, 0x10
_LINKTYPE_RAW = 101  # raw IPv4/IPv6, the version nibble tells which


@dataclass
class Packet:
    """One packet as the capture and the diagram show it."""

    time: float
    proto: str  # "tcp" or "udp"
    src: Any
    dst: Any
    payload: bytes = b""
    length: int = 0  # payload length on the wire (payload may be cut)
    flags: int = 0  # TCP flags
    seq: int = 0  # TCP sequence number
    ack: int = 0  # TCP acknowledgement number
    conn: int | None = None
    datagram: int | None = None  # the datagram's index on the network
    comments: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        if self.proto == "udp":
            return f"UDP {self.length}B"
        names = [name for bit, name in ((_SYN, "SYN"), (_FIN, "FIN"), (_RST, "RST"),
                                        (_PSH, "PSH"), (_ACK, "ACK")) if self.flags & bit]
        text = ",".join(names)
        return f"{text} {self.length}B" if self.length else text

    @property
    def failed(self) -> bool:
        """Dropped, or a reset: marked in the diagram."""
        return bool(self.flags & _RST) or any(c.startswith("dropped") for c in self.comments)


def _stream(event: TraceEvent) -> bool:
    return event.conn is not None


def packets(events: Iterable[TraceEvent]) -> list[Packet]:
    """The packets the events put on the wire, in order (see the module docstring)."""
    result: list[Packet] = []
    next_seq: dict[tuple[int, str], int] = {}  # (connection, sender) -> next sequence
    ends: dict[int, tuple[Any, Any]] = {}  # connection -> (client, server) addresses
    last_syn: dict[int, Packet] = {}
    datagrams: dict[int, Packet] = {}

    def tcp(event: TraceEvent, src: Any, dst: Any, flags: int, payload: bytes = b"",
            length: int = 0, advance: int = 0) -> Packet:
        conn = event.conn
        assert conn is not None
        me, other = (conn, repr(src)), (conn, repr(dst))
        seq = next_seq.get(me, 0)
        ack = next_seq.get(other, 0) if flags & _ACK else 0
        next_seq[me] = seq + length + advance
        packet = Packet(event.time, "tcp", src, dst, payload, length, flags, seq, ack, conn)
        result.append(packet)
        return packet

    for event in events:
        kind = event.kind
        if kind in ("connect", "retry") and _stream(event) and event.src is not None:
            assert event.conn is not None
            ends[event.conn] = (event.src, event.dst)
            next_seq.pop((event.conn, repr(event.src)), None)  # a retransmission: same seq
            packet = tcp(event, event.src, event.dst, _SYN, advance=1)
            if kind == "retry":
                packet.comments.append("retransmission")
            last_syn[event.conn] = packet
        elif kind == "syn" and _stream(event):
            tcp(event, event.dst, event.src, _SYN | _ACK, advance=1)
        elif kind == "established" and _stream(event):
            tcp(event, event.src, event.dst, _ACK)
        elif kind == "send" and _stream(event):
            tcp(event, event.src, event.dst, _PSH | _ACK, event.payload or b"",
                event.length or 0)
        elif kind == "fin" and _stream(event):
            tcp(event, event.src, event.dst, _FIN | _ACK, advance=1)
        elif kind == "rst" and _stream(event):
            packet = tcp(event, event.src, event.dst, _RST | _ACK)
            if event.reason:
                packet.comments.append(f"reset: {event.reason}")
        elif kind == "refused" and _stream(event) and event.conn in ends:
            client, server = ends[event.conn]
            tcp(event, server, client, _RST | _ACK)
        elif kind in ("backlog-full", "drop") and _stream(event):
            syn = last_syn.get(event.conn) if event.conn is not None else None
            if syn is not None:
                syn.comments.append(f"dropped: {event.reason}")
        elif kind == "sendto" and event.seq is not None:
            packet = Packet(event.time, "udp", event.src, event.dst, event.payload or b"",
                            event.length or 0, datagram=event.seq)
            datagrams[event.seq] = packet
            result.append(packet)
        elif event.seq is not None and event.seq in datagrams:
            packet = datagrams[event.seq]
            if kind == "drop":
                packet.comments.append(f"dropped: {event.reason}")
            elif kind == "duplicate":
                packet.comments.append("duplicated: delivered twice")
            elif kind == "corrupt":
                packet.comments.append(f"corrupted: {event.reason}")
            elif kind == "icmp":
                packet.comments.append("answered by ICMP port unreachable")
    return result


# -- JSONL -------------------------------------------------------------------------------


def write_jsonl(events: Iterable[TraceEvent], path: str | Path) -> Path:
    path = Path(path)
    with path.open("w", encoding="utf-8") as out:
        for event in events:
            out.write(json.dumps(event.to_json(), sort_keys=True) + "\n")
    return path


# -- pcapng ------------------------------------------------------------------------------


class _Addresses:
    """IP addresses and ports for the packet headers; Unix paths get pseudo addresses."""

    def __init__(self) -> None:
        self._unix: dict[str, int] = {}

    def resolve(self, address: Any, conn: int | None, datagram: int | None
                ) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int, str | None]:
        """(ip, port, the Unix path it stands for, if any)."""
        if isinstance(address, tuple):
            return ipaddress.ip_address(address[0].split("%")[0]), int(address[1]), None
        path = address if isinstance(address, str) else ""
        key = path or f"unnamed {'connection' if conn is not None else 'datagram'} " \
                      f"{conn if conn is not None else datagram}"
        number = self._unix.setdefault(key, len(self._unix) + 1)
        ip = ipaddress.IPv4Address(f"127.88.{number // 250}.{number % 250 + 1}")
        return ip, 1, key


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ip_packet(packet: Packet, addresses: _Addresses) -> tuple[bytes, int, list[str]]:
    """The packet's bytes as captured, its original length, and the Unix paths in it."""
    src_ip, src_port, src_path = addresses.resolve(packet.src, packet.conn, packet.datagram)
    dst_ip, dst_port, dst_path = addresses.resolve(packet.dst, packet.conn, packet.datagram)
    if src_ip.version != dst_ip.version:  # an IPv4-mapped peer: show both as IPv6
        src_ip = ipaddress.IPv6Address(f"::ffff:{src_ip}") if src_ip.version == 4 else src_ip
        dst_ip = ipaddress.IPv6Address(f"::ffff:{dst_ip}") if dst_ip.version == 4 else dst_ip
    if packet.proto == "tcp":
        protocol = 6
        header = struct.pack("!HHIIBBHHH", src_port, dst_port, packet.seq & 0xFFFFFFFF,
                             packet.ack & 0xFFFFFFFF, 5 << 4, packet.flags, 65535, 0, 0)
    else:
        protocol = 17
        header = struct.pack("!HHHH", src_port, dst_port, 8 + packet.length, 0)
    body_length = len(header) + packet.length
    if src_ip.version == 4:
        pseudo = src_ip.packed + dst_ip.packed + struct.pack("!BBH", 0, protocol, body_length)
    else:
        pseudo = src_ip.packed + dst_ip.packed + struct.pack("!I3xB", body_length, protocol)
    # The checksum covers the payload as captured (a cut payload cannot be summed whole).
    check = _checksum(pseudo + header + packet.payload)
    offset = 16 if protocol == 6 else 6
    header = header[:offset] + struct.pack("!H", check or 0xFFFF) + header[offset + 2:]
    if src_ip.version == 4:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + body_length, 0, 0x4000, 64, protocol,
                         0, src_ip.packed, dst_ip.packed)
        ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    else:
        ip = struct.pack("!IHBB16s16s", 6 << 28, body_length, protocol, 64, src_ip.packed,
                         dst_ip.packed)
    paths = [p for p in (src_path, dst_path) if p is not None]
    data = ip + header + packet.payload
    return data, len(ip) + body_length, paths


def _block(block_type: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    total = len(body) + 12
    return struct.pack("<II", block_type, total) + body + struct.pack("<I", total)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def write_pcapng(events: Iterable[TraceEvent], path: str | Path) -> Path:
    path = Path(path)
    addresses = _Addresses()
    with path.open("wb") as out:
        # Section header: byte-order magic, version 1.0, section length unknown.
        out.write(_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
                         + _option(4, b"sockfake simulated network") + _option(0, b"")))
        # One interface: raw IP, timestamps in microseconds (the default resolution).
        out.write(_block(0x00000001, struct.pack("<HHI", _LINKTYPE_RAW, 0, 0)
                         + _option(2, b"sim") + _option(0, b"")))
        for packet in packets(events):
            data, original, paths = _ip_packet(packet, addresses)
            comments = list(packet.comments)
            if paths:
                comments.append("unix: " + " -> ".join(paths))
            micros = round(packet.time * 1_000_000)
            body = struct.pack("<IIIII", 0, micros >> 32, micros & 0xFFFFFFFF, len(data),
                               original) + data + b"\0" * (-len(data) % 4)
            options = b"".join(_option(1, c.encode()) for c in comments)
            if options:
                body += options + _option(0, b"")
            out.write(_block(0x00000006, body))
    return path


# -- HTML sequence diagram ---------------------------------------------------------------

_ROW = 26
_COLUMN = 190
_LEFT = 110
_TOP = 60


def _name(address: Any) -> str:
    if isinstance(address, tuple):
        ip, port = address[0], address[1]
        return f"[{ip}]:{port}" if ":" in str(ip) else f"{ip}:{port}"
    return address or "(unnamed)"


def write_html(events: Iterable[TraceEvent], path: str | Path, title: str) -> Path:
    """One lifeline per endpoint, an arrow per packet, virtual time down the left.

    Drops and resets are red (a drop ends in a cross); clicking an arrow shows the
    packet's details and payload below the diagram. No external resources.
    """
    path = Path(path)
    found = packets(events)
    lifelines: dict[str, int] = {}
    for packet in found:
        for address in (packet.src, packet.dst):
            lifelines.setdefault(_name(address), len(lifelines))
    width = _LEFT + max(1, len(lifelines)) * _COLUMN
    height = _TOP + (len(found) + 1) * _ROW
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="monospace" font-size="11">']
    svg.append('<defs><marker id="a" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
               'markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z"/>'
               '</marker><marker id="r" viewBox="0 0 10 10" refX="10" refY="5" '
               'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
               '<path d="M0,0L10,5L0,10z" fill="#c00"/></marker></defs>')
    for name, index in lifelines.items():
        x = _LEFT + index * _COLUMN + _COLUMN // 2
        svg.append(f'<text x="{x}" y="20" text-anchor="middle" font-weight="bold">'
                   f'{html.escape(name)}</text>')
        svg.append(f'<line x1="{x}" y1="30" x2="{x}" y2="{height - 10}" stroke="#999" '
                   'stroke-dasharray="4 3"/>')
    svg.append('<text x="8" y="20" font-weight="bold">virtual s</text>')
    details = []
    for row, packet in enumerate(found):
        y = _TOP + row * _ROW
        x1 = _LEFT + lifelines[_name(packet.src)] * _COLUMN + _COLUMN // 2
        x2 = _LEFT + lifelines[_name(packet.dst)] * _COLUMN + _COLUMN // 2
        if x1 == x2:
            x2 = x1 + 40  # to itself: a short arrow to the right
        dropped = any(c.startswith("dropped") for c in packet.comments)
        colour = "#c00" if packet.failed else "#036"
        dash = ' stroke-dasharray="5 3"' if dropped else ""
        end = (x1 + x2) // 2 if dropped else x2
        marker = "" if dropped else f' marker-end="url(#{"r" if packet.failed else "a"})"'
        svg.append(f'<g class="p" data-i="{row}" style="cursor:pointer">'
                   f'<text x="8" y="{y + 4}">{packet.time:.6f}</text>'
                   f'<line x1="{x1}" y1="{y}" x2="{end}" y2="{y}" stroke="{colour}" '
                   f'stroke-width="1.6"{dash}{marker}/>')
        if dropped:
            svg.append(f'<path d="M{end - 5},{y - 5}L{end + 5},{y + 5}M{end - 5},{y + 5}'
                       f'L{end + 5},{y - 5}" stroke="#c00" stroke-width="2"/>')
        label = packet.summary + (" ✗" if dropped else "")
        svg.append(f'<text x="{(x1 + x2) // 2}" y="{y - 4}" text-anchor="middle" '
                   f'fill="{colour}">{html.escape(label)}</text>'
                   f'<rect x="{min(x1, x2)}" y="{y - 12}" width="{abs(x2 - x1) or 40}" '
                   'height="16" fill="transparent"/></g>')
        details.append({
            "time": packet.time, "summary": packet.summary, "src": _name(packet.src),
            "dst": _name(packet.dst), "comments": packet.comments,
            "payload": packet.payload.decode("latin-1"), "length": packet.length,
        })
    svg.append("</svg>")
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:16px}} #d{{white-space:pre-wrap;
background:#f4f4f4;padding:8px;border:1px solid #ccc;min-height:3em}}
.p:hover text{{font-weight:bold}}</style></head>
<body><h2>{html.escape(title)}</h2>
<p>{len(found)} packets between {len(lifelines)} endpoints; red: dropped (cross) or reset.
Click an arrow for its payload.</p>
{"".join(svg)}
<h3>Packet</h3><div id="d">(click an arrow)</div>
<script>
const packets = {json.dumps(details)};
function show(i) {{
  const p = packets[i];
  const text = p.time.toFixed(6) + " s  " + p.src + " -> " + p.dst + "  " + p.summary +
    (p.comments.length ? "\\n" + p.comments.join("\\n") : "") +
    "\\n\\n" + JSON.stringify(p.payload);
  document.getElementById("d").textContent = text;
}}
document.querySelectorAll(".p").forEach(g =>
  g.addEventListener("click", () => show(Number(g.dataset.i))));
</script></body></html>
"""
    path.write_text(page, encoding="utf-8")
    return path

"""A trace as a pcapng capture: what the network delivered, and what it did to packets.

Two capture interfaces, both Ethernet with zero MAC addresses, as Linux captures its
loopback (libpcap, so tcpdump, reads a file only when every interface has one link
type, and refuses a second raw-IP one):

- interface 0, ``sim``: the packets that reached their destination (``packets``:
  TCP segments when they leave, UDP datagrams at each arrival). A dropped packet is
  not here. A duplicated datagram is here twice, a reordered one after the later one
  it let pass, a corrupted one with its bit flipped; each with a packet comment.
- interface 1, ``sockfake-fates``: one note per packet the network did something to
  (every fate but a SYN's retransmission and a reset, which show in the packet
  itself), as a syslog message (UDP port
  514, from and to ``NOTES_ADDRESS``), so tshark's and Wireshark's packet lists show
  its text without any option: ``dropped (loss): UDP 127.0.0.1:40000 -> ... #3 4B
  b'ping'``. tcpdump prints each as ``SYSLOG user.notice``, and its text with ``-v``.
  Display filters: ``syslog`` (or ``frame.interface_id == 1``) for the notes, ``not
  syslog`` for the delivered packets alone; see docs/how-to/traces.md.

Unix sockets have no IP header of their own: each path (and each unnamed socket of a
connection) stands for an address in 127.88.0.0/16, stream sockets as TCP, datagram
sockets as UDP, port 1 for a path; the packet comment names the paths. The IPv4
identification of a datagram is its index on the network (send order, modulo 65536),
so ``ip.id`` tells a reordered or duplicated one apart. Payloads are the first
``payload_limit`` bytes the trace kept (the packet's original length is the full one,
as with a snap length). Timestamps are virtual seconds since the network started.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sockfake.sim.trace.packets import Packet, packets
from sockfake.sim.trace.recorder import TraceEvent
from sockfake.sim.trace.texts import preview

__all__ = ["DELIVERED_INTERFACE", "FATES_INTERFACE", "NOTES_ADDRESS", "note_text",
           "write_pcapng"]

_LINKTYPE_ETHERNET = 1
_ETHER_IPV4 = b"\0" * 12 + b"\x08\x00"  # zero MACs, EtherType IPv4
_ETHER_IPV6 = b"\0" * 12 + b"\x86\xdd"
DELIVERED_INTERFACE = 0
FATES_INTERFACE = 1
# Where the fate notes come from: no simulated host or Unix pseudo address uses it.
NOTES_ADDRESS = "127.89.0.1"
_SYSLOG_PORT = 514
# Syslog priorities, facility user (1) * 8 + severity: warning (4) for a packet that
# never arrived, notice (5) for the rest (tcpdump prints "user.warning" without -v).
_USER_WARNING, _USER_NOTICE = 12, 13


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
    data, original = _datagram_or_segment(packet, src_ip, src_port, dst_ip, dst_port)
    paths = [p for p in (src_path, dst_path) if p is not None]
    return data, original, paths


def _datagram_or_segment(packet: Packet, src_ip: Any, src_port: int, dst_ip: Any,
                         dst_port: int) -> tuple[bytes, int]:
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
    ident = (packet.datagram or 0) & 0xFFFF
    if src_ip.version == 4:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + body_length, ident, 0x4000, 64,
                         protocol, 0, src_ip.packed, dst_ip.packed)
        ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    else:
        ip = struct.pack("!IHBB16s16s", 6 << 28, body_length, protocol, 64, src_ip.packed,
                         dst_ip.packed)
    ether = _ETHER_IPV4 if src_ip.version == 4 else _ETHER_IPV6
    return ether + ip + header + packet.payload, len(ether) + len(ip) + body_length


def _name(address: Any) -> str:
    if isinstance(address, tuple):
        ip, port = address[0], address[1]
        return f"[{ip}]:{port}" if ":" in str(ip) else f"{ip}:{port}"
    return address or "(unnamed)"


def note_text(packet: Packet) -> str:
    """The note for a packet's fates, as the fates interface carries it."""
    what = ", ".join(f"{fate} ({packet.fates[fate]})" if packet.fates[fate] else fate
                     for fate in _NOTED if fate in packet.fates)
    if packet.proto == "udp":
        item = f"UDP {_name(packet.src)} -> {_name(packet.dst)} #{packet.datagram}"
    else:
        item = f"TCP {_name(packet.src)} -> {_name(packet.dst)} {packet.summary} " \
               f"(connection {packet.conn})"
    text = f"{what}: {item} {packet.length}B"
    if packet.payload:
        text += f" {preview(packet.payload, 40)}"
    return text


# The fates that get a note; "retransmitted" and "reset" show in the packet itself.
_NOTED = ("dropped", "in flight", "duplicated", "reordered", "corrupted", "held")


def _note(text: str, priority: int) -> bytes:
    """A syslog message in UDP in IPv4, from and to ``NOTES_ADDRESS``."""
    message = f"<{priority}>sockfake: {text}".encode("utf-8", "replace")
    address = ipaddress.IPv4Address(NOTES_ADDRESS)
    note = Packet(0.0, "udp", None, None, message, len(message))
    data, _ = _datagram_or_segment(note, address, _SYSLOG_PORT, address, _SYSLOG_PORT)
    return data


def _block(block_type: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    total = len(body) + 12
    return struct.pack("<II", block_type, total) + body + struct.pack("<I", total)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _interface(name: str, description: str) -> bytes:
    # Ethernet, timestamps in microseconds (the default resolution).
    return _block(0x00000001, struct.pack("<HHI", _LINKTYPE_ETHERNET, 0, 0)
                  + _option(2, name.encode()) + _option(3, description.encode())
                  + _option(0, b""))


def _packet_block(interface: int, time: float, data: bytes, original: int,
                  comments: list[str]) -> bytes:
    micros = round(time * 1_000_000)
    body = struct.pack("<IIIII", interface, micros >> 32, micros & 0xFFFFFFFF, len(data),
                       original) + data + b"\0" * (-len(data) % 4)
    options = b"".join(_option(1, c.encode()) for c in comments)
    if options:
        body += options + _option(0, b"")
    return _block(0x00000006, body)


def write_pcapng(events: Iterable[TraceEvent], path: str | Path, omitted: str = "") -> Path:
    """Write the capture; ``omitted`` (``Trace.omitted()``), when given, is the section's
    comment (Wireshark: Statistics > Capture File Properties)."""
    path = Path(path)
    comment = _option(1, omitted.encode()) if omitted else b""
    addresses = _Addresses()
    with path.open("wb") as out:
        # Section header: byte-order magic, version 1.0, section length unknown.
        out.write(_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
                         + comment + _option(4, b"sockfake simulated network")
                         + _option(0, b"")))
        out.write(_interface("sim", "packets the simulated network delivered"))
        out.write(_interface("sockfake-fates", "what the network did to packets (dropped, "
                             "duplicated, reordered, corrupted, held): syslog notes"))
        for packet in packets(events):
            data, original, paths = _ip_packet(packet, addresses)
            comments = list(packet.comments)
            if paths:
                comments.append("unix: " + " -> ".join(paths))
            if packet.delivered:
                out.write(_packet_block(DELIVERED_INTERFACE, packet.time, data, original,
                                        comments))
            if any(fate in packet.fates for fate in _NOTED):
                priority = _USER_NOTICE if packet.delivered else _USER_WARNING
                note = _note(note_text(packet), priority)
                out.write(_packet_block(FATES_INTERFACE, packet.time, note, len(note),
                                        comments))
    return path

"""Packets from a trace's events, each with what the network did to it (its fates).

The capture (``pcapng``) and the diagram (``diagram``) show *packets*, reconstructed
from the events that put something on the wire:

- TCP: ``connect``/``retry`` is a SYN, ``syn`` (queued at the listener) the SYN-ACK,
  ``established`` the client's ACK, ``send`` a data segment, ``fin`` a FIN, ``rst`` a
  RST, ``refused`` the listener's RST. Sequence numbers start at 0 in each direction
  (SYN and FIN count one), so Wireshark's "Follow TCP Stream" reads each connection.
  The simulated TCP is reliable: a segment is shown when it leaves (its arrival,
  latency and re-chunking into short reads are in the trace). A SYN the listener
  dropped (accept queue full, host unreachable) is a dropped packet.
- UDP: a datagram is shown where it *arrived*, once per arrival, at the arrival's
  virtual time: a duplicated datagram is two packets, a reordered one comes after a
  later one of its flow, a corrupted one carries the flipped bit. A datagram the
  network dropped (loss, partition, no socket...) never arrived: it is a dropped
  packet, at the moment it was lost. One still in flight when the trace ends is
  "in flight".

Every packet's ``fates`` name what the network did (``FATES``); ``delivered`` is
false for a dropped (or never arrived) one. ``comments`` are the same facts as text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sockfake.sim.trace.recorder import TraceEvent

__all__ = ["FATES", "Packet", "flow_name", "packets"]

# TCP flags.
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

# What the network can do to a packet, as the capture, the diagram and their docs
# name it. "reset" is a RST segment; "retransmitted" a SYN sent again.
FATES = ("dropped", "duplicated", "reordered", "corrupted", "held", "reset",
         "retransmitted", "in flight")


@dataclass
class Packet:
    """One packet as the capture and the diagram show it."""

    time: float  # when it is shown: sent (TCP), arrived (UDP), or lost
    proto: str  # "tcp" or "udp"
    src: Any
    dst: Any
    payload: bytes = b""
    length: int = 0  # payload length on the wire (payload may be cut)
    flags: int = 0  # TCP flags
    seq: int = 0  # TCP sequence number
    ack: int = 0  # TCP acknowledgement number
    conn: int | None = None
    datagram: int | None = None  # the datagram's index on the network (send order)
    sent: float | None = None  # when a UDP datagram left (None: at ``time``)
    actor: str = ""  # the thread that sent it ("net": the network itself)
    fates: dict[str, str] = field(default_factory=dict)  # fate -> its detail ("" if none)
    comments: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        if self.proto == "udp":
            return f"UDP {self.length}B"
        names = [name for bit, name in ((SYN, "SYN"), (FIN, "FIN"), (RST, "RST"),
                                        (PSH, "PSH"), (ACK, "ACK")) if self.flags & bit]
        text = ",".join(names)
        return f"{text} {self.length}B" if self.length else text

    @property
    def delivered(self) -> bool:
        """Reached its destination (false: dropped, or still in flight at the end)."""
        return "dropped" not in self.fates and "in flight" not in self.fates

    @property
    def failed(self) -> bool:
        """Dropped, or a reset: marked red in the diagram."""
        return not self.delivered or "reset" in self.fates

    def mark(self, fate: str, detail: str = "") -> None:
        """Record a fate (and its comment: "dropped: loss", "duplicated")."""
        self.fates[fate] = detail
        self.comments.append(f"{fate}: {detail}" if detail else fate)


def flow_name(packet: Packet) -> str:
    """The connection or datagram flow a packet belongs to, for filters."""
    if packet.conn is not None:
        return f"TCP connection {packet.conn}"
    ends = sorted((_text(packet.src), _text(packet.dst)))
    return f"UDP {ends[0]} <-> {ends[1]}"


def _text(address: Any) -> str:
    if isinstance(address, tuple):
        ip, port = address[0], address[1]
        return f"[{ip}]:{port}" if ":" in str(ip) else f"{ip}:{port}"
    return address or "(unnamed)"


def _flip(payload: bytes, reason: str | None) -> bytes:
    """The payload with the bit a ``corrupt`` event names ("bit 17") flipped."""
    try:
        bit = int((reason or "").split()[-1])
    except (ValueError, IndexError):
        return payload
    if not 0 <= bit < len(payload) * 8:
        return payload  # beyond the bytes the trace kept
    mutable = bytearray(payload)
    mutable[bit // 8] ^= 1 << (bit % 8)
    return bytes(mutable)


class _Datagram:
    """A UDP datagram between its ``sendto`` and its arrivals or loss."""

    def __init__(self, event: TraceEvent) -> None:
        self.sent = event
        self.payload = event.payload or b""
        self.arrivals = 0
        self.ended = False  # dropped, or arrived at least once
        self.fates: dict[str, str] = {}  # corrupted, held: on every arrival


def packets(events: Iterable[TraceEvent]) -> list[Packet]:
    """The packets the events put on the wire, in order (see the module docstring)."""
    result: list[Packet] = []
    next_seq: dict[tuple[int, str], int] = {}  # (connection, sender) -> next sequence
    ends: dict[int, tuple[Any, Any]] = {}  # connection -> (client, server) addresses
    last_syn: dict[int, Packet] = {}
    # The connection's last SYN-ACK and handshake ACK, which loss may take.
    last_handshake: dict[tuple[int, str], Packet] = {}
    datagrams: dict[int, _Datagram] = {}
    newest: dict[tuple[str, str], int] = {}  # UDP flow -> highest index arrived

    def tcp(event: TraceEvent, src: Any, dst: Any, flags: int, payload: bytes = b"",
            length: int = 0, advance: int = 0) -> Packet:
        conn = event.conn
        assert conn is not None
        me, other = (conn, repr(src)), (conn, repr(dst))
        seq = next_seq.get(me, 0)
        ack = next_seq.get(other, 0) if flags & ACK else 0
        next_seq[me] = seq + length + advance
        packet = Packet(event.time, "tcp", src, dst, payload, length, flags, seq, ack, conn,
                        actor=event.actor)
        result.append(packet)
        return packet

    def datagram(gram: _Datagram, time: float, payload: bytes) -> Packet:
        sent = gram.sent
        packet = Packet(time, "udp", sent.src, sent.dst, payload, sent.length or 0,
                        datagram=sent.seq, sent=sent.time, actor=sent.actor)
        for fate, detail in gram.fates.items():
            packet.mark(fate, detail)
        result.append(packet)
        return packet

    last = 0.0
    for event in events:
        last = event.time
        kind = event.kind
        stream = event.conn is not None
        if kind in ("connect", "retry") and stream and event.src is not None:
            assert event.conn is not None
            ends[event.conn] = (event.src, event.dst)
            next_seq.pop((event.conn, repr(event.src)), None)  # a retransmission: same seq
            packet = tcp(event, event.src, event.dst, SYN, advance=1)
            if kind == "retry":
                packet.mark("retransmitted")
            last_syn[event.conn] = packet
        elif kind == "syn" and event.conn is not None:
            packet = tcp(event, event.dst, event.src, SYN | ACK, advance=1)
            last_handshake[(event.conn, "synack")] = packet
        elif kind == "synack-retry" and event.conn is not None:
            next_seq.pop((event.conn, repr(event.dst)), None)  # a retransmission: same seq
            packet = tcp(event, event.dst, event.src, SYN | ACK, advance=1)
            packet.mark("retransmitted")
            last_handshake[(event.conn, "synack")] = packet
            # An established client's answer to it is no packet of the trace's.
            last_handshake.pop((event.conn, "ack"), None)
        elif kind == "established" and event.conn is not None:
            last_handshake[(event.conn, "ack")] = tcp(event, event.src, event.dst, ACK)
        elif kind in ("synack-lost", "ack-lost") and event.conn is not None:
            lost = last_handshake.get((event.conn, kind.removesuffix("-lost")))
            if lost is not None:
                lost.mark("dropped", event.reason or "loss")
        elif kind == "send" and stream:
            tcp(event, event.src, event.dst, PSH | ACK, event.payload or b"",
                event.length or 0)
        elif kind == "fin" and stream:
            tcp(event, event.src, event.dst, FIN | ACK, advance=1)
        elif kind == "rst" and stream:
            tcp(event, event.src, event.dst, RST | ACK).mark("reset", event.reason or "")
        elif kind == "refused" and stream and event.conn in ends:
            client, server = ends[event.conn]
            tcp(event, server, client, RST | ACK).mark("reset", "connection refused")
        elif kind in ("backlog-full", "drop") and stream:
            syn = last_syn.get(event.conn) if event.conn is not None else None
            if syn is not None:
                syn.mark("dropped", event.reason or kind)
        elif kind == "sendto" and event.seq is not None:
            datagrams[event.seq] = _Datagram(event)
        elif event.seq is not None and not stream and event.seq in datagrams:
            gram = datagrams[event.seq]
            if kind == "deliver":
                gram.arrivals += 1
                gram.ended = True
                payload = gram.payload
                if "corrupted" in gram.fates:
                    payload = _flip(payload, gram.fates["corrupted"])
                packet = datagram(gram, event.time, payload)
                if gram.arrivals > 1:
                    packet.mark("duplicated", f"arrival {gram.arrivals} of datagram "
                                              f"#{event.seq}")
                flow = (repr(gram.sent.src), repr(gram.sent.dst))
                ahead = newest.get(flow, -1)
                if ahead > event.seq:
                    packet.mark("reordered", f"#{event.seq} arrived after #{ahead}")
                newest[flow] = max(ahead, event.seq)
            elif kind == "drop":
                gram.ended = True
                packet = datagram(gram, event.time, gram.payload)
                packet.mark("dropped", event.reason or "")
            elif kind == "corrupt":
                gram.fates["corrupted"] = event.reason or ""
            elif kind == "held":
                gram.fates["held"] = f"link held, sent at {gram.sent.time:.6f}"
            elif kind == "icmp":
                for packet in reversed(result):
                    if packet.datagram == event.seq:
                        packet.comments.append("answered by ICMP port unreachable")
                        break
    for gram in datagrams.values():
        if not gram.ended:  # in flight (or its link still held) when the trace ended
            datagram(gram, last, gram.payload).mark("in flight")
    result.sort(key=lambda packet: packet.time)  # stable: same-time packets keep order
    return result

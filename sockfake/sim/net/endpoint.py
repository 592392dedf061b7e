"""The seam between simulated sockets and the transport under them.

An ``Endpoint`` is what the transport knows of one socket: its addresses, state,
buffers and the errors waiting for it. The socket (``sockfake.sim.net.sockets``) owns
one and turns the user's calls into changes of it and calls on the ``Transport``;
the transport (``tcp``, ``udp``, ``addressing``) moves data between endpoints and
changes their state as packets arrive, then notifies ``changed`` so that threads
blocked on the socket look again. Neither side reaches into the other's privates:
the endpoint's fields are its public surface, the ``Transport`` protocol is the
transport's.
"""

from __future__ import annotations

import select
import selectors
import socket
import struct
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

from sockfake.sim.kernel.threads import WaitQueue
from sockfake.sim.net.selectors import Selectable
from sockfake.sim.net.socket_state import State

if TYPE_CHECKING:
    from sockfake.sim.net.topology import Host
    from sockfake.sim.trace.recorder import Lazy

__all__ = ["DEFAULT_BUFFER", "Endpoint", "Transport"]

DEFAULT_BUFFER = 65536
_NEVER = float("inf")
_SNDBUF = (socket.SOL_SOCKET, socket.SO_SNDBUF)
_RCVBUF = (socket.SOL_SOCKET, socket.SO_RCVBUF)
_AF_UNIX = getattr(socket, "AF_UNIX", -1)


class Endpoint:
    """One socket as the transport sees it. Fields are read and written by both sides."""

    __slots__ = (
        "host", "family", "type", "fd", "state", "local", "remote", "options", "closed",
        "changed", "peer", "connection_id", "rx", "rx_segments", "rx_eof", "shut_rd",
        "shut_wr", "pending_error", "dead", "outstanding", "accept_queue", "backlog",
        "syn_queue", "syn_listener",
        "syn_attempts", "syn_retry", "inflight", "datagrams", "datagram_bytes", "owner",
        "link_out", "datagram_route", "host_local", "autobound", "port_fixed",
        "nodelay", "tx_sent", "tx_acked", "tx_small_end", "tx_held", "release_timer",
        "rx_received", "rx_acked", "ack_value", "ack_sent_at", "ack_due", "ack_quick",
        "ack_pingpong", "ack_started", "ack_pushed", "last_received_at",
    )

    def __init__(self, host: Host, family: int, sock_type: int, fd: int) -> None:
        self.host = host
        self.family = family
        # Host-local IPC (a Unix socket, either end of a socket pair) crosses no link:
        # no latency, never held, partitioned or reset by host_down.
        self.host_local = family == _AF_UNIX
        self.type = sock_type
        self.fd = fd  # -1 once the descriptor is released
        self.state = State.FRESH
        self.local: Any = None
        self.remote: Any = None
        self.options: dict[tuple[int, int], Any] = {}
        self.closed = False  # the application called close()
        self.changed = WaitQueue()
        self.owner: Any = None  # the SimSocket of this endpoint, for accept()
        # Streams.
        self.peer: Endpoint | None = None
        self.connection_id = 0
        self.rx = bytearray()
        # Segment sizes in rx: [size, kept apart]. Re-chunked segments stay apart so a
        # recv() never returns more than one of them (short reads, as the link model asks).
        self.rx_segments: deque[list[Any]] = deque()
        self.rx_eof = False
        self.shut_rd = False
        self.shut_wr = False
        self.pending_error = 0
        self.dead = False  # reset: reads give EOF after the error, writes EPIPE
        self.outstanding = 0  # bytes sent and not yet read by the peer's application
        self.accept_queue: deque[Endpoint] = deque()
        self.backlog = 0
        # A listener's half-open connections (Linux's SYN queue): their SYN came and was
        # answered with a SYN-ACK, the handshake's final ACK has not arrived yet; and on
        # such a connection's server side, the listener whose SYN queue holds it.
        self.syn_queue: list[Endpoint] = []
        self.syn_listener: Endpoint | None = None
        self.syn_attempts = 0
        self.autobound = False  # connect() chose the port (so it is not the remote's)
        # bind() named the port (Linux's SOCK_BINDPORT_LOCK): a TCP socket that closes
        # (a failed attempt, a stopped listener) keeps it; any other port goes back.
        self.port_fixed = False
        # The handshake's retransmission timer: the SYN's while connecting, the
        # SYN-ACK's on a half-open server side (``syn_attempts`` counts either's tries).
        self.syn_retry: Any = None
        self.inflight = 0  # segments on their way, so later ones never overtake them
        self.link_out: Any = None  # the Link to the peer's host, found on the first send
        # Nagle's algorithm and delayed ACKs (``tcp``), in byte counts as TCP's sequence
        # numbers: what this end sent (snd_nxt), what the peer acknowledged (snd_una),
        # the end of the last small segment sent (snd_sml, Minshall's rule), the bytes
        # Nagle holds back, and the timer that sends them when the ACK comes.
        self.nodelay = False  # TCP_NODELAY
        self.tx_sent = 0
        self.tx_acked = 0
        self.tx_small_end = 0
        self.tx_held = bytearray()
        self.release_timer: Any = None
        # The receiving side: bytes received (rcv_nxt) and acknowledged (rcv_wup); the
        # last ACK sent (its value and when), when the delayed ACK is due (inf: none
        # pending), quick ACKs left, interactive ("pingpong") mode, and Linux's flags.
        self.rx_received = 0
        self.rx_acked = 0
        self.ack_value = 0
        self.ack_sent_at = 0.0
        self.ack_due = _NEVER
        self.ack_quick = 0
        self.ack_pingpong = False
        self.ack_started = False  # the first data came (Linux initialises its ATO then)
        self.ack_pushed = 0  # small segments received since the last ACK (ICSK_ACK_PUSHED/2)
        self.last_received_at = 0.0
        # Datagrams.
        self.datagrams: deque[tuple[bytes, Any]] = deque()
        self.datagram_bytes = 0
        # The last datagram's route: (remote, local, receiving host, source, link).
        self.datagram_route: tuple[Any, ...] | None = None

    # What this endpoint's operations touch, for systematic exploration's partial-order
    # reduction. Objects, not ids: an id is reused once an object is freed, which would
    # make two sockets one resource, depending on memory layout.

    @property
    def resource(self) -> tuple[str, object]:
        """A close, a ``select``: the whole connection (both ends share it), or this
        endpoint when unconnected."""
        if self.connection_id:
            return ("connection", self.connection_id)
        return ("endpoint", self)

    @property
    def sending(self) -> tuple[str, object] | tuple[str, int, object]:
        """A send: its direction of the connection (the peer's receive of it touches the
        same; the other direction is independent)."""
        if self.connection_id:
            return ("connection", self.connection_id, self)
        return self.resource

    @property
    def receiving(self) -> tuple[str, object] | tuple[str, int, object]:
        """A receive: the peer's direction towards this endpoint."""
        peer = self.peer
        if self.connection_id and peer is not None:
            return ("connection", self.connection_id, peer)
        return self.resource

    def closed_both_ways(self) -> bool:
        """A TCP connection whose FINs both went through (this side's reached the peer,
        the peer's reached this side): Linux's socket is TCP_CLOSE then (TIME_WAIT or
        LAST_ACK done)."""
        if self.family == _AF_UNIX or not (self.shut_wr and self.rx_eof):
            return False
        peer = self.peer
        return self.state is State.CONNECTED and peer is not None and peer.rx_eof

    def describe(self) -> str:
        """Short name for the trace: the local address, or the descriptor."""
        return str(self.local if self.local is not None else f"fd{self.fd}")

    def __repr__(self) -> str:
        closed = " [closed]" if self.closed else ""
        kind = "stream" if self.type == socket.SOCK_STREAM else "dgram"
        where = self.local if self.local is not None else "unbound"
        peer = f" -> {self.remote}" if self.remote is not None else ""
        return f"<SimSocket fd={self.fd} {kind} {where}{peer}{closed}>"

    # -- options ----------------------------------------------------------------------

    def buffer_size(self, option: int) -> int:
        return int(self.options.get((socket.SOL_SOCKET, option), DEFAULT_BUFFER))

    def linger_zero(self) -> bool:
        """SO_LINGER (1, 0): close() resets instead of sending FIN."""
        value = self.options.get((socket.SOL_SOCKET, socket.SO_LINGER))
        if isinstance(value, (bytes, bytearray)) and len(value) >= 8:
            onoff, seconds = struct.unpack("ii", bytes(value)[:8])
            return bool(onoff) and seconds == 0
        return False

    def capacity(self) -> int:
        """Bytes that may be outstanding: our send buffer plus the peer's receive buffer."""
        # buffer_size() written out: this runs on every send.
        peer = self.peer
        receive = int(peer.options.get(_RCVBUF, DEFAULT_BUFFER)) if peer is not None else 0
        return int(self.options.get(_SNDBUF, DEFAULT_BUFFER)) + receive

    # -- the receive buffer -------------------------------------------------------------

    def append_rx(self, segment: bytes, apart: bool) -> None:
        """Queue received bytes; ``apart`` keeps a segment from merging with its neighbours."""
        if not segment:
            return
        self.rx += segment
        segments = self.rx_segments
        if not apart and segments and not segments[-1][1]:
            segments[-1][0] += len(segment)
        else:
            segments.append([len(segment), apart])

    def readable_now(self, bufsize: int) -> int:
        """How much one recv(bufsize) returns: never more than one kept-apart segment."""
        if self.rx_segments:
            return min(bufsize, int(self.rx_segments[0][0]))
        return bufsize

    def read_rx(self, bufsize: int, peek: bool) -> bytes:
        """What one recv(bufsize) returns, taken from the buffer unless ``peek``."""
        rx = self.rx
        if not peek and len(self.rx_segments) == 1 and bufsize >= len(rx):
            # The common case: one segment, read whole.
            data = bytes(rx)
            rx.clear()
            self.rx_segments.clear()
            return data
        data = bytes(rx[: self.readable_now(bufsize)])
        if not peek:
            self.take_rx(len(data))
        return data

    def take_rx(self, count: int) -> None:
        """The application read ``count`` bytes from the front."""
        del self.rx[:count]
        segments = self.rx_segments
        while count and segments:
            head = segments[0]
            taken = min(count, head[0])
            head[0] -= taken
            count -= taken
            if head[0] == 0:
                segments.popleft()

    def clear_rx(self) -> None:
        self.rx.clear()
        self.rx_segments.clear()

    # -- readiness, for selectors --------------------------------------------------------

    def ready_mask(self) -> int:
        if self.fd < 0:
            return selectors.EVENT_READ | selectors.EVENT_WRITE
        mask = 0
        if self.type == socket.SOCK_DGRAM:
            if self.datagrams or self.pending_error or self.shut_rd:
                mask |= selectors.EVENT_READ
            return mask | selectors.EVENT_WRITE
        state = self.state
        if state is State.LISTENING:
            # Never writable; readable with a connection to accept, or once marked
            # SHUT_RD (a Unix listener: accept() then fails at once; a TCP listener
            # stops listening instead).
            return selectors.EVENT_READ if self.accept_queue or self.shut_rd else 0
        if self.rx or self.rx_eof or self.shut_rd or self.dead or self.pending_error:
            mask |= selectors.EVENT_READ
        if state is State.CONNECTED:
            if self.capacity() > self.outstanding or self.shut_wr or self.dead:
                mask |= selectors.EVENT_WRITE
        elif state is not State.CONNECTING:
            # Linux: a stream socket with no connection (TCP_CLOSE) polls POLLOUT and
            # POLLHUP, which select() counts as readable: a read fails at once.
            mask |= selectors.EVENT_READ | selectors.EVENT_WRITE
        return mask


_POLLIN = select.POLLIN | getattr(select, "POLLRDNORM", 0)
_POLLOUT = select.POLLOUT | getattr(select, "POLLWRNORM", 0)


def poll_events(ep: Endpoint) -> int:
    """The bits Linux's ``poll()`` reports for this socket (``POLLHUP`` and
    ``POLLERR`` included, which ``ready_mask`` folds into readable)."""
    if ep.fd < 0:
        return select.POLLNVAL
    mask = select.POLLERR if ep.pending_error else 0
    ready = ep.ready_mask()
    state = ep.state
    if ep.type == socket.SOCK_DGRAM or state is State.CONNECTED:
        hung_up = (ep.shut_wr and (ep.shut_rd or ep.rx_eof)) or ep.dead
        if ep.datagrams or ep.rx or ep.rx_eof or ep.shut_rd or ep.dead:
            mask |= _POLLIN
    else:
        # A stream socket with no connection (Linux's TCP_CLOSE) is hung up; a listener
        # is readable with a connection to accept; a connecting one is nothing yet.
        # A failed attempt shut both ways; a (Unix) listener marked SHUT_RD is readable,
        # and hung up only once marked both ways.
        closed = ep.shut_rd or state is State.FAILED or state is State.DISCONNECTING
        if state is State.LISTENING:
            hung_up = ep.shut_rd and ep.shut_wr
        else:
            hung_up = closed or state is not State.CONNECTING
        if ep.accept_queue or closed:
            mask |= _POLLIN
    if ready & selectors.EVENT_WRITE:
        mask |= _POLLOUT
    return mask | select.POLLHUP if hung_up else mask


class Transport(Protocol):
    """What a simulated socket asks of the network under it."""

    def register_fd(self, obj: Selectable) -> int:
        """A descriptor number for a new socket (or waker)."""
        ...

    def release_fd(self, fd: int) -> None: ...

    def release_address(self, endpoint: Endpoint) -> None:
        """Free the endpoint's port or path (it stays open)."""
        ...

    def trace(self, kind: str, details: str | Lazy = "", *, src: Any = None, dst: Any = None,
              conn: int | None = None, seq: int | None = None, length: int | None = None,
              payload: bytes | None = None, reason: str | None = None) -> None:
        """Record an event of the calling thread (fields: see ``TraceEvent``)."""
        ...

    def unbound_name(self, family: int) -> Any: ...

    def any_address(self, family: int) -> Any: ...

    def bind(self, endpoint: Endpoint, address: Any) -> Any:
        """Check and take ``address``; returns the local address as getsockname() says."""
        ...

    def resolve_remote(self, endpoint: Endpoint, address: Any) -> Any: ...

    def autobind(self, endpoint: Endpoint, remote: Any, *, wildcard: bool = False) -> Any: ...

    def pin_source(self, endpoint: Endpoint, remote: Any) -> None: ...

    def unix_peer(self, path: str, sock_type: int, connected: bool = False) -> Endpoint: ...

    def check_unix_path_free(self, path: str) -> int:
        """Raise what binding ``path`` meets (ENOENT, ENOTDIR, EADDRINUSE)."""
        ...

    def start_connect(self, endpoint: Endpoint) -> None: ...

    def send_stream(self, endpoint: Endpoint, data: bytes) -> None: ...

    def send_fin(self, endpoint: Endpoint) -> None: ...

    def stop_listening(self, endpoint: Endpoint) -> None: ...

    def push(self, endpoint: Endpoint) -> None:
        """Send at once what Nagle's algorithm holds (``TCP_NODELAY`` was set)."""
        ...

    def consumed(self, endpoint: Endpoint, count: int) -> None:
        """The application read ``count`` bytes: the sender's window opens."""
        ...

    def send_datagram(self, endpoint: Endpoint, payload: bytes, remote: Any) -> None: ...

    def close(self, endpoint: Endpoint) -> None:
        """The descriptor closes: release the address, send FIN or RST, reset the queue."""
        ...

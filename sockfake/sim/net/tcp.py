"""The stream transport: handshake, backlog, segments, FIN and reset between endpoints.

Streams are reliable and ordered. A connect sends a SYN along the link; Linux's
retransmission schedule (1, 2, 4 ... 64 s, then ``ETIMEDOUT``) applies when it is
lost (a partition, a host down, the link's loss) or dropped at a full accept queue (``backlog + 1``
connections, as Linux). Only a completed handshake is accepted: the SYN makes a
half-open connection in the listener's SYN queue, answered by a SYN-ACK (retransmitted
until the client's ACK comes), on which the client is connected; the ACK, or any
segment of the client's, moves it to the accept queue. A Unix stream
(``socketpair()`` included) is host-local IPC: it crosses no link
(``Topology.carry``'s ``local``), so it is instant and no fault on the network
reaches it. Data is cut into segments (``LinkConditions.chunk``) and
carried in order; a close with unread data, ``SO_LINGER`` (1, 0), or data arriving
at a closed socket resets the connection. Every state change goes through the table
in ``socket_state``.

Timing as Linux's TCP gives it (``docs/concepts/simulation.md``, "TCP timing"): Nagle's algorithm
with Minshall's rule (a small segment waits while an earlier small one is not yet
acknowledged; off with ``TCP_NODELAY``) and delayed ACKs (the first segments of a
connection are acknowledged at once; an interactive connection, one that answers what
it receives, holds its ACK up to 40 ms to send it with its answer). ACKs are not
packets here: each end keeps the last ACK it sent and when, and a sender held by Nagle
reads it, so the common path (nothing held) costs a few counters, and a delayed ACK
that nobody waits for moves no clock. A lost segment (``LinkConditions.loss``) is
retransmitted by ``Topology.carry``; the stream is only delayed, unless the
segment is lost ``TCP_RETRIES2`` more times: then the connection times out.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from typing import Any

import sockfake.sim.trace.texts as texts
from sockfake.sim.kernel.core import Kernel
from sockfake.sim.net.addressing import Addressing, as_seen_by
from sockfake.sim.net.endpoint import Endpoint
from sockfake.sim.net.links import stream_chunks
from sockfake.sim.net.socket_state import Event, State, advance
from sockfake.sim.net.topology import Host, Topology
from sockfake.sim.trace.recorder import Lazy

__all__ = ["StreamTransport"]

_AF_UNIX = getattr(socket, "AF_UNIX", -1)
# Linux: initial SYN retransmission timeout 1 s, doubling, tcp_syn_retries = 6.
SYN_RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
# A half-open connection's SYN-ACK: the same timeouts, tcp_synack_retries = 5 (the
# last one is the wait after the fifth retransmission, then the attempt expires).
SYNACK_RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
# Linux's TCP timing (include/net/tcp.h).
DELAYED_ACK = 0.040  # TCP_DELACK_MIN and TCP_ATO_MIN (HZ/25): a delayed ACK's wait
MAX_QUICKACKS = 16  # TCP_MAX_QUICKACKS: segments acknowledged at once on a new connection
QUICKACK_AFTER = 0.200  # a silence longer than the RTO (TCP_RTO_MIN) re-enters quick ACKs
LOOPBACK_MSS = 65483  # lo's MTU (65536) less the IP and TCP headers with timestamps
ETHERNET_MSS = 1448  # an MTU of 1500, the same
_NEVER = float("inf")


class StreamTransport:
    """Moves stream segments between endpoints and drives their connection states."""

    def __init__(
        self,
        kernel: Kernel,
        topology: Topology,
        addressing: Addressing,
        new_endpoint: Callable[[Host, int, int], Endpoint],
        release_fd: Callable[[int], None],
        fault_plan: Callable[[], Any],
    ) -> None:
        self.kernel = kernel
        self.topology = topology
        self.addressing = addressing
        self._new_endpoint = new_endpoint  # a socket of the network's, for accept()
        self._release_fd = release_fd
        self._fault_plan = fault_plan
        self.connections = 0

    # -- connecting ----------------------------------------------------------------------

    def start_connect(self, ep: Endpoint) -> None:
        src, dst = self.addressing.route(ep, ep.remote)
        ep.autobound = ep.local is None
        if ep.local is None:
            ep.local = self.addressing.autobind(ep, ep.remote)
        else:
            self.addressing.pin_source(ep, ep.remote)
        ep.state = advance(ep.state, Event.CONNECT)
        self.connections += 1
        ep.connection_id = self.connections
        ep.syn_attempts = 0
        self.kernel.record("connect", Lazy((texts.PAIR, ep.local, ep.remote)),
                           src=ep.local, dst=ep.remote, conn=ep.connection_id)
        if dst is None:
            self._fail_connect(ep, errno.ENETUNREACH)
            return
        plan = self._fault_plan()
        if plan is not None and plan.refuses_connection(ep.connection_id - 1):
            self.kernel.record_net("fault", f"connection {ep.connection_id - 1} refused "
                                   "(fault plan)", conn=ep.connection_id, reason="fault plan")
            self._fail_connect(ep, errno.ECONNREFUSED)
            return
        self._send_syn(ep, dst)

    def _send_syn(self, ep: Endpoint, dst: Host) -> None:
        src = ep.host
        attempt = ep.syn_attempts
        local = ep.host_local
        if not local and (self.topology.link(src, dst).cut or not dst.up or not src.up):
            self.kernel.record_net("drop", f"SYN {ep.local} -> {ep.remote} (unreachable)",
                                   src=ep.local, dst=ep.remote, conn=ep.connection_id,
                                   reason="unreachable")
        else:
            self.topology.carry(src, dst, ep.connection_id, 0,
                                lambda: self._syn_arrive(ep, dst, attempt), "stream",
                                reliable=False, immediate_ok=True, local=local,
                                lost=lambda why: self.kernel.record_net(
                                    "drop", f"SYN {ep.local} -> {ep.remote} lost ({why})",
                                    src=ep.local, dst=ep.remote, conn=ep.connection_id,
                                    reason=why))
        self._schedule_syn_retry(ep, dst, attempt)

    def _schedule_syn_retry(self, ep: Endpoint, dst: Host, attempt: int) -> None:
        if ep.state is not State.CONNECTING or attempt >= len(SYN_RETRY_DELAYS):
            # On an instant link the SYN's answer comes within _send_syn(): the attempt
            # is already over (established or refused), and a retry timer left behind
            # would be the next event the clock jumps to.
            return
        delay = SYN_RETRY_DELAYS[attempt]

        def retry() -> None:
            if ep.state is not State.CONNECTING or ep.syn_attempts != attempt:
                return
            ep.syn_attempts += 1
            if ep.syn_attempts >= len(SYN_RETRY_DELAYS):
                self._fail_connect(ep, errno.ETIMEDOUT)
                return
            self.kernel.record_net("retry", f"SYN {ep.local} -> {ep.remote}",
                                   src=ep.local, dst=ep.remote, conn=ep.connection_id)
            self._send_syn(ep, dst)

        ep.syn_retry = self.kernel.call_at(self.kernel.now + delay, retry)

    @staticmethod
    def _drop_held(ep: Endpoint) -> None:
        """What Nagle held dies with the connection (its timer too)."""
        ep.tx_held.clear()
        if ep.release_timer is not None:
            ep.release_timer.cancel()
            ep.release_timer = None

    @staticmethod
    def _stop_syn_retry(ep: Endpoint) -> None:
        """The attempt is over (established, failed, closed): as a TCP stack stops its
        SYN retransmission timer, so it neither moves the clock nor keeps ``ep`` alive."""
        if ep.syn_retry is not None:
            ep.syn_retry.cancel()
            ep.syn_retry = None

    def _attempt_failed(self, ep: Endpoint) -> None:
        """The attempt is over, failed: as Linux's TCP_CLOSE, the port goes back unless
        bind() named it (``getsockname()`` still shows it until connect() reports
        the failure)."""
        ep.state = advance(ep.state, Event.FAIL)
        if not ep.port_fixed and ep.family != _AF_UNIX:
            self.addressing.release(ep)

    def _fail_connect(self, ep: Endpoint, code: int) -> None:
        if ep.state is not State.CONNECTING:
            return
        self._stop_syn_retry(ep)
        self._attempt_failed(ep)
        ep.pending_error = code
        name = errno.errorcode.get(code, str(code))
        self.kernel.record_net("refused" if code == errno.ECONNREFUSED else "connect-failed",
                               f"{ep.local} -> {ep.remote}: {name}", src=ep.local,
                               dst=ep.remote, conn=ep.connection_id, reason=name)
        ep.changed.notify_all()

    def _syn_arrive(self, client: Endpoint, dst: Host, attempt: int) -> None:
        if client.state is not State.CONNECTING or client.syn_attempts != attempt:
            return
        listener = self.addressing.find_endpoint(
            dst, socket.SOCK_STREAM, client.family, client.remote
        )
        if listener is client and not client.autobound and client.family != _AF_UNIX:
            # (An autobound port equal to the remote one is the per-host port counters
            # meeting, not a program connecting a bound socket to itself.)
            self._self_connect(client, dst)
            return
        if listener is client:
            listener = None
        if listener is None or listener.state is not State.LISTENING or listener.shut_rd:
            self.topology.carry(dst, client.host, client.connection_id, 0,
                                lambda: self._fail_connect(client, errno.ECONNREFUSED),
                                "stream", reliable=False, immediate_ok=True,
                                local=client.host_local)
            return
        server_side = client.peer
        if server_side is not None and server_side.syn_listener is listener:
            # A retransmitted SYN of a connection in the SYN queue (its SYN-ACK was
            # lost): Linux answers it with the SYN-ACK again.
            self.kernel.record_net("synack-retry", f"SYN-ACK {server_side.local} -> "
                                   f"{server_side.remote} (the SYN came again)",
                                   src=client.local, dst=client.remote,
                                   conn=client.connection_id)
            self._send_synack(server_side)
            return
        if len(listener.accept_queue) >= listener.backlog:
            # Linux drops the SYN when the accept queue is full; the client retries.
            self.kernel.record_net("backlog-full", f"{listener.local} drops SYN from "
                                   f"{client.local}", src=client.local, dst=client.remote,
                                   conn=client.connection_id, reason="accept queue full")
            return
        server_side = self._new_endpoint(dst, listener.family, socket.SOCK_STREAM)
        server_side.state = advance(server_side.state, Event.PASSIVE_OPEN)
        if listener.family == _AF_UNIX:
            server_side.local = listener.local
            server_side.remote = client.local or ""
        else:
            # A dual-stack IPv6 listener sees an IPv4 client as IPv4-mapped.
            server_side.local = as_seen_by(listener.family, client.remote)
            server_side.remote = as_seen_by(listener.family, client.local)
        server_side.peer = client
        server_side.connection_id = client.connection_id
        server_side.nodelay = listener.nodelay  # Linux: inherited from the listener
        client.peer = server_side
        # Half-open until the client's ACK comes (Linux's SYN queue; it has no limit
        # here, as SYN cookies take over from Linux's when it is full): only then is
        # the connection queued for accept() and the listener readable.
        server_side.syn_listener = listener
        listener.syn_queue.append(server_side)
        self.kernel.record_net("syn", f"{listener.local} answers SYN from {client.local}",
                               src=client.local, dst=client.remote, conn=client.connection_id)
        self._send_synack(server_side)

    def _send_synack(self, server_side: Endpoint) -> None:
        """The SYN-ACK of a half-open connection, retransmitted until the client's ACK
        comes (Linux: 1, 2, 4, 8, 16 s; tcp_synack_retries = 5) or the attempt
        expires (32 s after the last)."""
        client = server_side.peer
        assert client is not None
        attempt = server_side.syn_attempts
        self.topology.carry(server_side.host, client.host, client.connection_id, 0,
                            lambda: self._synack_arrive(client, server_side), "stream",
                            reliable=False, immediate_ok=True, local=client.host_local,
                            lost=lambda why: self.kernel.record_net(
                                "synack-lost", f"SYN-ACK {server_side.local} -> "
                                f"{server_side.remote} lost ({why})", src=client.local,
                                dst=client.remote, conn=client.connection_id, reason=why))
        if server_side.syn_listener is None or server_side.syn_retry is not None:
            return  # completed within the call (an instant link), or its timer runs

        def retry() -> None:
            server_side.syn_retry = None
            if server_side.syn_listener is None or server_side.syn_attempts != attempt:
                return
            server_side.syn_attempts += 1
            if server_side.syn_attempts >= len(SYNACK_RETRY_DELAYS):
                self.kernel.record_net("half-open-expired", f"{server_side.local} gives up the "
                                       f"handshake with {server_side.remote}",
                                       src=server_side.remote, dst=server_side.local,
                                       conn=server_side.connection_id,
                                       reason="SYN-ACK retries exhausted")
                self._drop_half_open(server_side)
                return
            self.kernel.record_net("synack-retry", f"SYN-ACK {server_side.local} -> "
                                   f"{server_side.remote}", src=client.local,
                                   dst=client.remote, conn=server_side.connection_id)
            self._send_synack(server_side)

        server_side.syn_retry = self.kernel.call_at(
            self.kernel.now + SYNACK_RETRY_DELAYS[attempt], retry)

    def _synack_arrive(self, client: Endpoint, server_side: Endpoint) -> None:
        """The SYN-ACK reached the client: a connecting client is established (Linux's
        connect() returns now) and answers with the handshake's last ACK; so does an
        established one (its ACK was lost); a socket that no longer knows the
        connection resets it."""
        if client.peer is not server_side or client.fd < 0 or client.dead:
            self._send_reset(client, server_side)  # (lost if the client's host is down)
            return
        if client.state is State.CONNECTING:
            self._establish(client)
            plan = self._fault_plan()
            after = None if plan is None else plan.connection_reset_after(client.connection_id - 1)
            if after is not None:
                self.kernel.call_at(self.kernel.now + after, lambda: self._fault_reset(client))
        elif client.state is not State.CONNECTED:
            self._send_reset(client, server_side)
            return
        self.topology.carry(client.host, server_side.host, client.connection_id, 0,
                            lambda: self._handshake_completed(server_side), "stream",
                            reliable=False, immediate_ok=True, local=client.host_local,
                            lost=lambda why: self.kernel.record_net(
                                "ack-lost", f"ACK {client.local} -> {client.remote} lost "
                                f"({why})", src=client.local, dst=client.remote,
                                conn=client.connection_id, reason=why))

    def _handshake_completed(self, server_side: Endpoint) -> None:
        """The client's ACK (or a segment, which carries one) reached a half-open
        connection: it moves to the accept queue. A full queue drops the ACK, as
        Linux does: the client believes it is connected, the SYN-ACK is sent again
        and its answer may find room."""
        listener = server_side.syn_listener
        if listener is None:
            return
        if len(listener.accept_queue) >= listener.backlog:
            self.kernel.record_net("ack-dropped", f"{listener.local} drops the ACK from "
                                   f"{server_side.remote}", src=server_side.remote,
                                   dst=server_side.local, conn=server_side.connection_id,
                                   reason="accept queue full")
            return
        listener.syn_queue.remove(server_side)
        server_side.syn_listener = None
        server_side.syn_attempts = 0
        self._stop_syn_retry(server_side)
        listener.accept_queue.append(server_side)
        listener.changed.notify_all()
        self.kernel.record_net("queued", Lazy((texts.QUEUED, server_side.remote, listener.local)),
                               src=server_side.remote, dst=server_side.local,
                               conn=server_side.connection_id)

    def _drop_half_open(self, server_side: Endpoint) -> None:
        """A half-open connection leaves the SYN queue without being accepted (expired,
        reset, its listener gone): its descriptor goes back; a segment the client sends
        later meets a closed socket and is answered with a reset."""
        listener = server_side.syn_listener
        if listener is not None:
            listener.syn_queue.remove(server_side)
            server_side.syn_listener = None
        self._stop_syn_retry(server_side)
        if server_side.fd >= 0:
            self._release_fd(server_side.fd)
            server_side.fd = -1

    def _self_connect(self, client: Endpoint, dst: Host) -> None:
        """A SYN to the socket's own address: TCP's simultaneous open, as Linux does it
        (the socket is connected to itself and reads what it sends)."""

        def established() -> None:
            if client.state is not State.CONNECTING:
                return
            if client.shut_wr:
                # Linux: marked SHUT_WR before, it sends its FIN within the simultaneous
                # open and ends closed, with no error: connect() says ECONNABORTED.
                self._attempt_failed(client)
                client.changed.notify_all()
                return
            client.peer = client
            self._establish(client)

        self.topology.carry(dst, client.host, client.connection_id, 0, established, "stream",
                            reliable=False, immediate_ok=True)

    def _establish(self, client: Endpoint) -> None:
        """The SYN-ACK reached a connecting client: it is established, its SYN retries
        stop, and its waiters wake."""
        client.state = advance(client.state, Event.ESTABLISHED)
        self._stop_syn_retry(client)
        self.kernel.record_net("established", Lazy((texts.PAIR, client.local, client.remote)),
                               src=client.local, dst=client.remote, conn=client.connection_id)
        client.changed.notify_all()

    # -- data ----------------------------------------------------------------------------

    def send_stream(self, ep: Endpoint, data: bytes) -> None:
        peer = ep.peer
        assert peer is not None
        details = Lazy((texts.SENT, ep.local, ep.fd, peer.local, peer.fd, len(data), data[:25]))
        self.kernel.record("send", details, src=ep.local, dst=ep.remote,
                           conn=ep.connection_id, length=len(data), payload=data)
        if ep.host_local:
            # Host-local IPC crosses no link (nothing is ever in flight, no Nagle).
            self._deliver_segment(ep, peer, data, False)
            return
        if not ep.nodelay and (ep.tx_held or ep.tx_small_end > ep.tx_acked):
            data = self._nagle(ep, peer, data)
            if not data:
                return
        self._transmit(ep, peer, data)

    def _transmit(self, ep: Endpoint, peer: Endpoint, data: bytes) -> None:
        """Put ``data`` on the wire now, with the ACK this end owes its peer."""
        if ep.ack_started:
            now = self.kernel.now
            if ep.ack_due <= now:
                self._delayed_ack(ep)
            if now - ep.last_received_at < DELAYED_ACK:
                # Linux (tcp_event_data_sent): an answer within the ACK timeout makes
                # the connection interactive, whose ACKs wait to ride on answers.
                ep.ack_pingpong = True
            if ep.rx_received != ep.rx_acked:
                self._ack(ep, now)  # piggybacked on this data
        ep.tx_sent += len(data)
        if len(data) % (LOOPBACK_MSS if ep.host is peer.host else ETHERNET_MSS):
            ep.tx_small_end = ep.tx_sent  # Minshall's snd_sml: the last small segment's end
        src, dst = ep.host, peer.host
        topology = self.topology
        link = ep.link_out
        if link is None:
            link = ep.link_out = topology.link(src, dst)  # a Link is never replaced
        conditions = link.conditions or topology.default_conditions  # conditions(link)
        if (conditions.streams_immediate and not ep.inflight
                and not link.partitioned and not link.holding  # not link.cut
                and src.up and dst.up):
            # Fast path, the same events as carry() would give: one segment, nothing
            # ahead of it, an instant lossless link: it arrives within this call, with
            # the ACK it carries.
            if ep.rx_acked > peer.tx_acked:
                peer.tx_acked = ep.rx_acked
            self._deliver_segment(ep, peer, data, False)
            return
        offset = 0
        apart = conditions.chunk is not None
        ack = ep.rx_acked  # every segment carries the ACK (read by the peer's Nagle)
        gave_up = lambda: self._give_up(ep)  # noqa: E731 (one for all the segments)
        for size in stream_chunks(conditions, len(data), self.kernel.rng("chunk")):
            segment = data[offset : offset + size]
            offset += size
            ep.inflight += 1
            immediate = ep.inflight == 1

            def deliver(segment: bytes = segment) -> None:
                ep.inflight -= 1
                if ack > peer.tx_acked:
                    peer.tx_acked = ack
                self._deliver_segment(ep, peer, segment, apart)

            topology.carry(src, dst, ep.connection_id, size, deliver, "stream",
                           reliable=True, immediate_ok=immediate, gave_up=gave_up)

    # -- Nagle's algorithm and delayed ACKs ----------------------------------------------

    def _nagle(self, ep: Endpoint, peer: Endpoint, data: bytes) -> bytes:
        """What of ``data`` (after what Nagle holds already) may go now; the rest waits
        for the ACK of the last small segment (Linux: ``tcp_nagle_check`` with
        Minshall's rule): whole segments go, a partial one waits."""
        self._catch_up(ep, peer)
        held = ep.tx_held
        if held:
            held += data
            pending = bytes(held)
            held.clear()
        else:
            pending = data
        if ep.tx_small_end <= ep.tx_acked:
            return pending  # acknowledged: nothing holds it back
        mss = LOOPBACK_MSS if ep.host is peer.host else ETHERNET_MSS
        whole = len(pending) - len(pending) % mss
        held += pending[whole:]
        self.kernel.record_net("nagle", f"{ep.describe()} holds {len(held)} bytes until "
                               "the ACK of its last small segment", src=ep.local,
                               dst=ep.remote, conn=ep.connection_id, length=len(held))
        self._expect_ack(ep, peer)
        return pending[:whole]

    def push(self, ep: Endpoint) -> None:
        """Send what Nagle holds now (``TCP_NODELAY`` set, a FIN to send)."""
        peer = ep.peer
        if ep.tx_held and peer is not None and not ep.dead:
            data = bytes(ep.tx_held)
            ep.tx_held.clear()
            self._transmit(ep, peer, data)

    def _received(self, r: Endpoint, sender: Endpoint, size: int) -> None:
        """``size`` bytes reached ``r``: acknowledge them now, or delay the ACK (Linux:
        ``tcp_event_data_recv`` and ``__tcp_ack_snd_check``)."""
        now = self.kernel.now
        if r.ack_due <= now:
            self._delayed_ack(r)
        if not r.ack_started:
            r.ack_started = True
            r.ack_quick = MAX_QUICKACKS
        elif now - r.last_received_at > QUICKACK_AFTER:
            r.ack_quick = MAX_QUICKACKS
        r.last_received_at = now
        r.rx_received += size
        mss = LOOPBACK_MSS if r.host is sender.host else ETHERNET_MSS
        if size < mss and r.ack_pushed < 2:
            r.ack_pushed += 1
        if r.rx_received - r.rx_acked > mss or (r.ack_quick and not r.ack_pingpong):
            self._ack(r, now)
            return
        if r.ack_due == _NEVER:
            r.ack_due = now + DELAYED_ACK
        if sender.tx_held:
            self._expect_ack(sender, r)

    def _ack(self, r: Endpoint, at: float) -> None:
        """``r`` acknowledges all it has received, at virtual time ``at``."""
        r.rx_acked = r.ack_value = r.rx_received
        r.ack_sent_at = at
        r.ack_due = _NEVER
        r.ack_pushed = 0
        if r.ack_quick:
            r.ack_quick -= 1
        sender = r.peer
        if sender is not None and sender.tx_held:
            self._expect_ack(sender, r)

    def _delayed_ack(self, r: Endpoint) -> None:
        """``r``'s delayed-ACK timer has fired (at ``r.ack_due``, now or earlier): it
        acknowledges, and leaves interactive mode (Linux: ``tcp_delack_timer_handler``)."""
        at = r.ack_due
        r.ack_due = _NEVER
        if r.rx_received != r.rx_acked:
            r.ack_pingpong = False
            self._ack(r, at)

    def _catch_up(self, s: Endpoint, r: Endpoint) -> None:
        """``s`` learns of the ACKs of ``r`` that have reached it by now."""
        now = self.kernel.now
        if r.ack_due <= now:
            self._delayed_ack(r)
        if r.ack_value > s.tx_acked and r.ack_sent_at + self._latency(r.host, s.host) <= now:
            s.tx_acked = r.ack_value

    def _expect_ack(self, s: Endpoint, r: Endpoint) -> None:
        """``s`` holds data: wake it when the ACK of its last small segment arrives
        (sent, or due from ``r``'s delayed-ACK timer); if that segment is still on its
        way, its arrival at ``r`` calls this again."""
        if r.ack_value >= s.tx_small_end:
            sent = r.ack_sent_at
        elif r.ack_due != _NEVER and r.rx_received >= s.tx_small_end:
            sent = r.ack_due
        else:
            return
        when = sent + self._latency(r.host, s.host)
        timer = s.release_timer
        if timer is not None:
            if timer.when <= when and not timer.cancelled:
                return
            timer.cancel()
        s.release_timer = self.kernel.call_at(when, lambda: self._release(s))

    def _release(self, s: Endpoint) -> None:
        """The ACK ``s`` waited for is due: send what Nagle held."""
        s.release_timer = None
        peer = s.peer
        if peer is None or not s.tx_held or s.dead:
            return
        self._catch_up(s, peer)
        if s.tx_small_end > s.tx_acked:
            self._expect_ack(s, peer)
            return
        self.kernel.record_net("nagle", f"{s.describe()} sends the {len(s.tx_held)} bytes "
                               "it held", src=s.local, dst=s.remote, conn=s.connection_id,
                               length=len(s.tx_held))
        self.push(s)

    def _latency(self, src: Host, dst: Host) -> float:
        """How long an ACK takes from ``src`` to ``dst`` (the link's latency)."""
        topology = self.topology
        return topology.conditions(topology.link(src, dst)).latency

    def _deliver_segment(
        self, sender: Endpoint, receiver: Endpoint, segment: bytes, apart: bool
    ) -> None:
        if receiver.fd < 0:
            # Data for a closed socket: it answers with a reset.
            self.kernel.record_net("rst", f"{receiver.describe()} closed; resets "
                                   f"{sender.describe()}", src=receiver.local,
                                   dst=receiver.remote, conn=receiver.connection_id,
                                   reason="data for a closed socket")
            self._send_reset(receiver, sender)
            return
        if receiver.syn_listener is not None:
            # A segment carries the ACK a half-open connection waits for (its data is
            # kept: the client resends what a full accept queue drops, as TCP would).
            self._handshake_completed(receiver)
        if receiver.dead or (receiver.shut_rd and receiver.closed):
            return
        receiver.append_rx(segment, apart)
        if segment and not receiver.host_local:
            self._received(receiver, sender, len(segment))
        if segment:
            self.kernel.record_net("deliver", Lazy((texts.LENGTH, receiver.local, receiver.fd,
                                                    len(segment))),
                                   src=receiver.remote, dst=receiver.local,
                                   conn=receiver.connection_id, length=len(segment),
                                   payload=segment)
        receiver.changed.notify_all()

    def consumed(self, ep: Endpoint, count: int) -> None:
        if ep.rx_received != ep.rx_acked and count and not ep.rx:
            # The read emptied the buffer: Linux (tcp_cleanup_rbuf) acknowledges now what
            # ended in a small segment, unless the connection is interactive (then only
            # after two small segments).
            if ep.ack_due <= self.kernel.now:
                self._delayed_ack(ep)
            elif ep.ack_pushed > 1 or (ep.ack_pushed and not ep.ack_pingpong):
                self._ack(ep, self.kernel.now)
        peer = ep.peer
        if peer is not None:
            peer.outstanding = max(0, peer.outstanding - count)
            if peer.changed.waiters:  # (a writer rarely waits: no call when none does)
                peer.changed.notify_all()

    def send_fin(self, ep: Endpoint) -> None:
        peer = ep.peer
        if peer is None:
            return
        self.push(ep)  # a FIN takes what Nagle held along (Linux: tcp_nagle_test)
        self.kernel.record("fin", Lazy((texts.ENDS, ep.local, ep.fd, peer.local, peer.fd)),
                           src=ep.local, dst=ep.remote, conn=ep.connection_id)
        ep.inflight += 1
        immediate = ep.inflight == 1

        def deliver() -> None:
            ep.inflight -= 1
            if peer.syn_listener is not None:
                self._handshake_completed(peer)  # a FIN carries the ACK too
            if not peer.dead:
                peer.rx_eof = True
                peer.changed.notify_all()

        self.topology.carry(ep.host, peer.host, ep.connection_id, 0, deliver, "stream",
                            reliable=True, immediate_ok=immediate, local=ep.host_local,
                            gave_up=lambda: self._give_up(ep))

    # -- resets --------------------------------------------------------------------------

    def _fault_reset(self, client: Endpoint) -> None:
        """A fault plan resets this connection: both ends see ConnectionResetError."""
        ends = [client] if client.peer is None else [client, client.peer]
        if all(end.dead or end.fd < 0 for end in ends):
            return
        self.kernel.record_net("fault", f"connection {client.connection_id - 1} reset "
                               "(fault plan)", conn=client.connection_id, reason="fault plan")
        for end in ends:
            self.reset_now(end)

    def _give_up(self, ep: Endpoint) -> None:
        """A segment of ``ep``'s was lost ``TCP_RETRIES2`` + 1 times in a row: as Linux
        (tcp_write_timeout), the connection is aborted with ``ETIMEDOUT``; the peer is
        told nothing."""
        if ep.dead or ep.fd < 0:
            return
        ep.dead = True
        ep.clear_rx()
        self._drop_held(ep)
        ep.rx_eof = True
        ep.pending_error = errno.ETIMEDOUT
        self.kernel.record_net("gave-up", f"{ep.describe()}: retransmissions exhausted",
                               src=ep.local, dst=ep.remote, conn=ep.connection_id,
                               reason="tcp_retries2")
        ep.changed.notify_all()

    def _send_reset(self, ep: Endpoint, peer: Endpoint) -> None:
        self.topology.carry(ep.host, peer.host, ep.connection_id, 0,
                            lambda: self.reset_now(peer), "stream",
                            reliable=False, immediate_ok=True, local=ep.host_local)

    def reset_now(self, ep: Endpoint) -> None:
        if ep.syn_listener is not None:
            self._drop_half_open(ep)  # Linux: a reset ends a half-open one silently
            return
        if ep.dead or ep.fd < 0:
            return
        close_wait = ep.rx_eof and not ep.shut_wr  # the peer's FIN came, ours not sent
        ep.dead = True
        ep.clear_rx()
        self._drop_held(ep)
        ep.rx_eof = True
        if ep.state is State.CONNECTING:
            self._attempt_failed(ep)
            self._stop_syn_retry(ep)
            ep.pending_error = errno.ECONNREFUSED
        elif close_wait and ep.family != _AF_UNIX:
            ep.pending_error = errno.EPIPE  # Linux: a reset in CLOSE_WAIT is EPIPE
        else:
            ep.pending_error = errno.ECONNRESET
        self.kernel.record_net("reset", ep.describe(), src=ep.remote, dst=ep.local,
                               conn=ep.connection_id)
        ep.changed.notify_all()

    def host_down(self, host: Host, endpoints: list[Endpoint]) -> None:
        """``host`` went down: every stream connection to or from it resets at both ends
        (not a Unix stream or a socket pair: host-local IPC is no network connection)."""
        for ep in endpoints:
            if ep.type != socket.SOCK_STREAM or ep.host_local:
                continue
            if ep.host is not host and (ep.peer is None or ep.peer.host is not host):
                continue
            if ep.state is State.LISTENING:
                for pending in ep.accept_queue:
                    self.reset_now(pending)
                    if pending.peer is not None:
                        self.reset_now(pending.peer)
                continue
            if ep.peer is not None:
                self.reset_now(ep.peer)
            self.reset_now(ep)

    def vanish(self, ep: Endpoint) -> None:
        """``ep``'s host crashed: it is gone without a word (no FIN, no RST), as when a
        machine loses power. Its connections' peers hear nothing; what they send later
        reaches a closed socket and is answered with a reset (``_deliver_segment``)."""
        if ep.syn_listener is not None:
            self._drop_half_open(ep)
        self._stop_syn_retry(ep)
        self._drop_held(ep)
        if ep.state is State.LISTENING:
            for pending in list(ep.syn_queue):
                self._drop_half_open(pending)
            for pending in ep.accept_queue:
                self._release_fd(pending.fd)
                pending.fd = -1
            ep.accept_queue.clear()

    # -- close ---------------------------------------------------------------------------

    def _reset_queue(self, ep: Endpoint) -> None:
        """A listener stops: the connections waiting in its queue are reset; the half-open
        ones are forgotten (Linux sends them nothing: the client's next segment meets a
        closed socket and is reset)."""
        for pending in list(ep.syn_queue):
            self._drop_half_open(pending)
        for pending in ep.accept_queue:
            if pending.peer is not None:
                self.kernel.record("rst", f"{pending.describe()} -> "
                                   f"{pending.peer.describe()}", src=pending.local,
                                   dst=pending.remote, conn=pending.connection_id,
                                   reason="listener closed")
                self._send_reset(pending, pending.peer)
            self._release_fd(pending.fd)
            pending.fd = -1
        ep.accept_queue.clear()

    def stop_listening(self, ep: Endpoint) -> None:
        """shutdown(SHUT_RD) of a listener: as Linux's tcp_disconnect, it stops
        listening (its queue reset) and is an unconnected socket again."""
        self._reset_queue(ep)
        ep.state = advance(ep.state, Event.DISCONNECT)
        ep.changed.notify_all()

    def close(self, ep: Endpoint) -> None:
        """The descriptor of a stream endpoint closes: FIN, RST, or the queue reset."""
        self._stop_syn_retry(ep)
        if ep.state is State.LISTENING:
            self._reset_queue(ep)
        elif ep.state is State.CONNECTED and ep.peer is not None and not ep.dead:
            if ep.rx or (ep.linger_zero() and ep.family != _AF_UNIX):
                self.kernel.record("rst", f"{ep.describe()} -> {ep.peer.describe()}",
                                   src=ep.local, dst=ep.remote, conn=ep.connection_id,
                                   reason="unread data" if ep.rx else "SO_LINGER 0")
                self._send_reset(ep, ep.peer)
            elif not ep.shut_wr:
                ep.shut_wr = True
                self.send_fin(ep)
        ep.state = advance(ep.state, Event.CLOSE)

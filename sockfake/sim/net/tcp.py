"""The stream transport: handshake, backlog, segments, FIN and reset between endpoints.

Streams are reliable and ordered. A connect sends a SYN along the link; Linux's
retransmission schedule (1, 2, 4 ... 64 s, then ``ETIMEDOUT``) applies when it is
lost (a partition, a host down) or dropped at a full accept queue (``backlog + 1``
connections, as Linux). A Unix stream (``socketpair()`` included) is host-local IPC:
it crosses no link (``Topology.carry``'s ``local``), so it is instant and no fault
on the network reaches it. Data is cut into segments (``LinkConditions.chunk``) and
carried in order; a close with unread data, ``SO_LINGER`` (1, 0), or data arriving
at a closed socket resets the connection. Every state change goes through the table
in ``socket_state``.
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
                                reliable=False, immediate_ok=True, local=local)
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
    def _stop_syn_retry(ep: Endpoint) -> None:
        """The attempt is over (established, failed, closed): as a TCP stack stops its
        SYN retransmission timer, so it neither moves the clock nor keeps ``ep`` alive."""
        if ep.syn_retry is not None:
            ep.syn_retry.cancel()
            ep.syn_retry = None

    def _fail_connect(self, ep: Endpoint, code: int) -> None:
        if ep.state is not State.CONNECTING:
            return
        self._stop_syn_retry(ep)
        ep.state = advance(ep.state, Event.FAIL)
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
        client.peer = server_side
        listener.accept_queue.append(server_side)
        listener.changed.notify_all()
        self.kernel.record_net("syn", Lazy((texts.QUEUED, client.local, listener.local)),
                               src=client.local, dst=client.remote, conn=client.connection_id)

        def established() -> None:
            if client.state is not State.CONNECTING:
                if not server_side.dead:
                    self.reset_now(server_side)
                return
            self._establish(client)
            plan = self._fault_plan()
            after = None if plan is None else plan.connection_reset_after(client.connection_id - 1)
            if after is not None:
                self.kernel.call_at(self.kernel.now + after, lambda: self._fault_reset(client))

        self.topology.carry(dst, client.host, client.connection_id, 0, established, "stream",
                            reliable=False, immediate_ok=True, local=client.host_local)

    def _self_connect(self, client: Endpoint, dst: Host) -> None:
        """A SYN to the socket's own address: TCP's simultaneous open, as Linux does it
        (the socket is connected to itself and reads what it sends)."""

        def established() -> None:
            if client.state is not State.CONNECTING:
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
        src, dst = ep.host, peer.host
        topology = self.topology
        link = ep.link_out
        if link is None:
            link = ep.link_out = topology.link(src, dst)  # a Link is never replaced
        conditions = link.conditions or topology.default_conditions  # conditions(link)
        details = Lazy((texts.SENT, ep.local, ep.fd, peer.local, peer.fd, len(data), data[:25]))
        self.kernel.record("send", details, src=ep.local, dst=ep.remote,
                           conn=ep.connection_id, length=len(data), payload=data)
        if ep.host_local or (conditions.streams_immediate and not ep.inflight
                                     and not link.cut and src.up and dst.up):
            # Fast path, the same events as carry() would give: one segment, nothing
            # ahead of it, an instant link: it arrives within this call. Host-local
            # IPC always takes it: it crosses no link (nothing is ever in flight).
            self._deliver_segment(ep, peer, data, False)
            return
        offset = 0
        apart = conditions.chunk is not None
        for size in stream_chunks(conditions, len(data), self.kernel.rng("chunk")):
            segment = data[offset : offset + size]
            offset += size
            ep.inflight += 1
            immediate = ep.inflight == 1

            def deliver(segment: bytes = segment) -> None:
                ep.inflight -= 1
                self._deliver_segment(ep, peer, segment, apart)

            topology.carry(src, dst, ep.connection_id, size, deliver, "stream",
                           reliable=True, immediate_ok=immediate)

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
        if receiver.dead or (receiver.shut_rd and receiver.closed):
            return
        receiver.append_rx(segment, apart)
        if segment:
            self.kernel.record_net("deliver", Lazy((texts.LENGTH, receiver.local, receiver.fd,
                                                    len(segment))),
                                   src=receiver.remote, dst=receiver.local,
                                   conn=receiver.connection_id, length=len(segment),
                                   payload=segment)
        receiver.changed.notify_all()

    def consumed(self, ep: Endpoint, count: int) -> None:
        peer = ep.peer
        if peer is not None:
            peer.outstanding = max(0, peer.outstanding - count)
            peer.changed.notify_all()

    def send_fin(self, ep: Endpoint) -> None:
        peer = ep.peer
        if peer is None:
            return
        self.kernel.record("fin", Lazy((texts.ENDS, ep.local, ep.fd, peer.local, peer.fd)),
                           src=ep.local, dst=ep.remote, conn=ep.connection_id)
        ep.inflight += 1
        immediate = ep.inflight == 1

        def deliver() -> None:
            ep.inflight -= 1
            if not peer.dead:
                peer.rx_eof = True
                peer.changed.notify_all()

        self.topology.carry(ep.host, peer.host, ep.connection_id, 0, deliver, "stream",
                            reliable=True, immediate_ok=immediate, local=ep.host_local)

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

    def _send_reset(self, ep: Endpoint, peer: Endpoint) -> None:
        self.topology.carry(ep.host, peer.host, ep.connection_id, 0,
                            lambda: self.reset_now(peer), "stream",
                            reliable=False, immediate_ok=True, local=ep.host_local)

    def reset_now(self, ep: Endpoint) -> None:
        if ep.dead or ep.fd < 0:
            return
        close_wait = ep.rx_eof and not ep.shut_wr  # the peer's FIN came, ours not sent
        ep.dead = True
        ep.clear_rx()
        ep.rx_eof = True
        if ep.state is State.CONNECTING:
            ep.state = advance(ep.state, Event.FAIL)
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
        self._stop_syn_retry(ep)
        if ep.state is State.LISTENING:
            for pending in ep.accept_queue:
                self._release_fd(pending.fd)
                pending.fd = -1
            ep.accept_queue.clear()

    # -- close ---------------------------------------------------------------------------

    def close(self, ep: Endpoint) -> None:
        """The descriptor of a stream endpoint closes: FIN, RST, or the queue reset."""
        self._stop_syn_retry(ep)
        if ep.state is State.LISTENING:
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

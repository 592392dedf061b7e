"""The datagram transport: each datagram's fate, its delivery, and ICMP port unreachable.

Every ``sendto()`` on the network gets the next datagram index (from 0), which a
fault plan (``sockfake.sim.net.faults.FaultPlan``) may use to decide that datagram's fate
exactly; otherwise the link model decides from its own random stream. Datagrams are
lost during a partition, held with ``hold()``, dropped at a full receive buffer (an
empty one takes a datagram of any size, as Linux), and truncated by a short
``recvfrom`` buffer (the socket's part). A Unix datagram is host-local IPC: it crosses
no link, so it arrives at once and no condition, fault plan or fault reaches it.
"""

from __future__ import annotations

import errno
import functools
import socket
from collections.abc import Callable
from typing import Any

import sockfake.sim.trace.texts as texts
from sockfake.sim.kernel.core import Kernel
from sockfake.sim.net.addressing import Addressing, as_seen_by
from sockfake.sim.net.endpoint import Endpoint
from sockfake.sim.net.links import corrupted, datagram_fate
from sockfake.sim.net.topology import Host, Link, Topology
from sockfake.sim.trace.recorder import Lazy

__all__ = ["DatagramTransport"]

_AF_UNIX = getattr(socket, "AF_UNIX", -1)


class DatagramTransport:
    """Decides and delivers datagrams between endpoints."""

    def __init__(
        self,
        kernel: Kernel,
        topology: Topology,
        addressing: Addressing,
        fault_plan: Callable[[], Any],
    ) -> None:
        self.kernel = kernel
        self.topology = topology
        self.addressing = addressing
        self._fault_plan = fault_plan
        self.datagrams = 0  # sent so far: the next datagram's index

    def send(self, ep: Endpoint, payload: bytes, remote: Any) -> None:
        index = self.datagrams
        self.datagrams += 1
        # A socket sends to one address again and again: its route, source address and
        # link are those of the last datagram while the destination and the local
        # address are the same objects (hosts and links are never removed, addresses
        # never move; a Unix path can be bound again elsewhere, so not for those). The
        # same source object also lets the receiver's reply hit its sendto() memo.
        route = ep.datagram_route
        if route is not None and route[0] is remote and route[1] is ep.local:
            _, _, dst, source, link = route
            src = ep.host
        else:
            src, dst = self.addressing.route(ep, remote)
            source = self.addressing.source_address(ep, remote)
            link = None if dst is None else self.topology.link(src, dst)
            if ep.family != _AF_UNIX:
                ep.datagram_route = (remote, ep.local, dst, source, link)
        kernel = self.kernel
        details = Lazy((texts.DATAGRAM_SENT, ep.local, ep.fd, remote, len(payload), payload[:25]))
        kernel.record("sendto", details,
                      src=source, dst=remote, seq=index,
                      length=len(payload), payload=payload)
        if dst is None:
            kernel.record_net("drop", f"no route to {remote}", src=source, dst=remote,
                              seq=index, reason="no route")
            return
        assert link is not None
        if ep.family == _AF_UNIX:
            self._deliver(dst, ep, source, remote, payload, index, local=True)
            return
        if link.partitioned or not src.up or not dst.up:
            kernel.record_net("drop", f"{ep.describe()} -> {remote} (partition)", src=source,
                              dst=remote, seq=index, reason="partition")
            return

        if link.holding:
            # Decided when the link lets it go: by the conditions and plan of then.
            kernel.record_net("held", f"{ep.describe()} -> {remote} (link held)", src=source,
                              dst=remote, seq=index, reason="link held")
            link.held.append(lambda: self._launch(ep, payload, remote, dst, link, source, index))
            return
        self._launch(ep, payload, remote, dst, link, source, index)

    def _launch(self, ep: Endpoint, payload: bytes, remote: Any, dst: Host, link: Link,
                source: Any, index: int) -> None:
        """The datagram leaves: its fate (plan or link model), then its arrivals."""
        kernel = self.kernel
        conditions = self.topology.conditions(link)
        plan = self._fault_plan()
        if plan is None and conditions.datagrams_untouched:
            # The fast path: datagram_fate() would say "arrives now, unchanged".
            self._deliver(dst, ep, source, remote, payload, index)
            return
        fate = None if plan is None else plan.datagram_fate(index, kernel.now, conditions)
        if fate is None:
            fate, link.state = datagram_fate(
                conditions, link.state, len(payload), kernel.now, kernel.rng("datagram")
            )
        if fate.dropped is not None:
            details = Lazy((texts.DATAGRAM_DROPPED, source, remote, len(payload), fate.dropped))
            kernel.record_net("drop", details, src=source, dst=remote, seq=index,
                              reason=fate.dropped)
            return
        data = corrupted(payload, fate)
        if fate.flip_bit is not None:
            kernel.record_net("corrupt", f"{source} -> {remote} bit {fate.flip_bit}",
                              src=source, dst=remote, seq=index, reason=f"bit {fate.flip_bit}")
        for copy, arrival in enumerate(fate.arrivals):
            if copy:
                kernel.record_net("duplicate", f"{source} -> {remote}", src=source,
                                  dst=remote, seq=index)
            if arrival <= kernel.now:
                self._deliver(dst, ep, source, remote, data, index)
            else:
                kernel.call_at(arrival, functools.partial(self._deliver, dst, ep, source,
                                                          remote, data, index))

    def _deliver(self, dst: Host, sender: Endpoint, source: Any, remote: Any, data: bytes,
                 index: int, local: bool = False) -> None:
        if not dst.up and not local:
            return
        record_net = self.kernel.record_net
        target = self.addressing.find_endpoint(dst, socket.SOCK_DGRAM, sender.family, remote)
        if target is None or target.closed:
            record_net("drop", f"{source} -> {remote} (no socket)", src=source, dst=remote,
                       seq=index, reason="no socket")
            self._unreachable(dst, sender, remote, index)
            return
        source = as_seen_by(target.family, source)  # IPv4-mapped for a dual-stack socket
        peer = target.remote
        # A connected socket takes its peer's datagrams only (Linux: a peer port 0
        # matches any port of the peer's address); to Linux's lookup it is no socket
        # for the others, so they get a port unreachable.
        if peer is not None and peer != source and (
            target.family == _AF_UNIX or peer[1] or peer[0] != source[0]
        ):
            record_net("drop", f"{source} -> {remote} (not the connected peer)", src=source,
                       dst=remote, seq=index, reason="not the connected peer")
            self._unreachable(dst, sender, remote, index)
            return
        # Linux admits a datagram while the queue is within the buffer size, so an
        # empty queue takes one of any size.
        if target.datagram_bytes and (target.datagram_bytes + len(data)
                                      > target.buffer_size(socket.SO_RCVBUF)):
            record_net("drop", f"{source} -> {remote} (receive buffer full)", src=source,
                       dst=remote, seq=index, reason="receive buffer full")
            return
        # A Unix datagram carries its sender, not a name: Linux's recvfrom() reads the
        # sender's address when it returns (a sender that binds after sending is seen
        # by its new name).
        target.datagrams.append((data, sender if sender.family == _AF_UNIX else source))
        target.datagram_bytes += len(data)
        record_net("deliver", Lazy((texts.DATAGRAM_DELIVERED, source, remote, len(data))),
                   src=source, dst=remote, seq=index, length=len(data))
        target.changed.notify_all()

    def _unreachable(self, dst: Host, sender: Endpoint, remote: Any, index: int) -> None:
        """No socket took the datagram: Linux gives the ICMP error to the socket its
        lookup finds, a connected one whose peer the datagram went to (a peer port 0
        matches any port)."""
        peer = sender.remote
        if sender.family != _AF_UNIX and peer is not None and (
            peer == remote or (not peer[1] and peer[0] == remote[0])
        ):
            self._port_unreachable(dst, sender, index)

    def _port_unreachable(self, dst: Host, sender: Endpoint, index: int) -> None:
        """ICMP port unreachable back to a connected UDP socket: its next call raises
        ``ConnectionRefusedError`` (Linux reports it to connected sockets only)."""

        if _unseen_by_ipv4(sender):
            return

        def arrive() -> None:
            if sender.fd >= 0 and sender.remote is not None:
                sender.pending_error = errno.ECONNREFUSED
                self.kernel.record_net("icmp", f"port unreachable -> {sender.describe()}",
                                       src=sender.remote, dst=sender.local, seq=index,
                                       reason="port unreachable")
                sender.changed.notify_all()

        self.topology.carry(dst, sender.host, 0, 0, arrive, "icmp",
                            reliable=False, immediate_ok=True)


def _unseen_by_ipv4(sender: Endpoint) -> bool:
    """An IPv6 socket with an IPv6 address of its own (``::1``, taken by an earlier
    connect) that then connected to an IPv4-mapped peer: Linux's IPv4 lookups never
    find it (its IPv4 receive address is the placeholder 127.0.0.6), so an ICMP error
    for its datagrams reaches nobody."""
    if sender.family != socket.AF_INET6 or sender.local is None or sender.remote is None:
        return False
    local, remote = str(sender.local[0]), str(sender.remote[0])
    return (remote.startswith("::ffff:") and local not in ("::", "")
            and not local.startswith("::ffff:"))

"""The datagram transport: each datagram's fate, its delivery, and ICMP port unreachable.

Every ``sendto()`` on the network gets the next datagram index (from 0), which a
fault plan (``sockfake.sim.faults.FaultPlan``) may use to decide that datagram's fate
exactly; otherwise the link model decides from its own random stream. Datagrams are
lost during a partition, held with ``hold()``, dropped at a full receive buffer, and
truncated by a short ``recvfrom`` buffer (the socket's part).
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from typing import Any

from sockfake.sim.addressing import Addressing
from sockfake.sim.endpoint import Endpoint
from sockfake.sim.kernel import Kernel
from sockfake.sim.links import corrupted, datagram_fate
from sockfake.sim.tcp import preview
from sockfake.sim.topology import Host, Topology

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

    def _net_trace(self, kind: str, details: str) -> None:
        self.kernel.trace.add(self.kernel.now, "net", kind, details)

    def send(self, ep: Endpoint, payload: bytes, remote: Any) -> None:
        src, dst = self.addressing.route(ep, remote)
        index = self.datagrams
        self.datagrams += 1
        self.kernel.record("sendto", f"{ep.describe()} -> {remote} {len(payload)}B "
                           f"{preview(payload)}")
        if dst is None:
            self._net_trace("drop", f"no route to {remote}")
            return
        link = self.topology.link(src, dst)
        if link.partitioned or not src.up or not dst.up:
            self._net_trace("drop", f"{ep.describe()} -> {remote} (partition)")
            return
        source = self.addressing.source_address(ep, remote)
        kernel = self.kernel

        def send() -> None:
            conditions = self.topology.conditions(link)
            plan = self._fault_plan()
            fate = None if plan is None else plan.datagram_fate(index, kernel.now, conditions)
            if fate is None:
                fate, link.state = datagram_fate(
                    conditions, link.state, len(payload), kernel.now, kernel.rng("datagram")
                )
            if fate.dropped is not None:
                self._net_trace("drop", f"{source} -> {remote} {len(payload)}B ({fate.dropped})")
                return
            data = corrupted(payload, fate)
            if fate.flip_bit is not None:
                self._net_trace("corrupt", f"{source} -> {remote} bit {fate.flip_bit}")
            for copy, arrival in enumerate(fate.arrivals):
                if copy:
                    self._net_trace("duplicate", f"{source} -> {remote}")

                def deliver(data: bytes = data) -> None:
                    self._deliver(dst, ep, source, remote, data)

                if arrival <= kernel.now:
                    deliver()
                else:
                    kernel.call_at(arrival, deliver)

        if link.holding:
            link.held.append(send)
            return
        send()

    def _deliver(self, dst: Host, sender: Endpoint, source: Any, remote: Any, data: bytes
                 ) -> None:
        if not dst.up:
            return
        target = self.addressing.find_endpoint(dst, socket.SOCK_DGRAM, sender.family, remote)
        if target is None or target.closed:
            self._net_trace("drop", f"{source} -> {remote} (no socket)")
            if sender.remote == remote and sender.family != _AF_UNIX:
                self._port_unreachable(dst, sender)
            return
        if target.remote is not None and target.remote != source:
            self._net_trace("drop", f"{source} -> {remote} (not the connected peer)")
            return
        if target.datagram_bytes + len(data) > target.buffer_size(socket.SO_RCVBUF):
            self._net_trace("drop", f"{source} -> {remote} (receive buffer full)")
            return
        target.datagrams.append((data, source))
        target.datagram_bytes += len(data)
        self._net_trace("deliver", f"{source} -> {remote} {len(data)}B")
        target.changed.notify_all()

    def _port_unreachable(self, dst: Host, sender: Endpoint) -> None:
        """ICMP port unreachable back to a connected UDP socket: its next call raises
        ``ConnectionRefusedError`` (Linux reports it to connected sockets only)."""

        def arrive() -> None:
            if sender.fd >= 0 and sender.remote is not None:
                sender.pending_error = errno.ECONNREFUSED
                self._net_trace("icmp", f"port unreachable -> {sender.describe()}")
                sender.changed.notify_all()

        self.topology.carry(dst, sender.host, 0, 0, arrive, "icmp",
                            reliable=False, immediate_ok=True)

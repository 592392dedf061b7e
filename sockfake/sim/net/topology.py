"""Topology: hosts, the links between them, and what a link does to a packet on its way.

A ``Host`` is a machine: names, addresses, its ports, up or down. A ``Link`` is one
direction between two hosts: its conditions, the link model's state, and the faults
on it (partitioned, held). ``Topology.carry`` moves one packet along a link: it asks
the link model (``sockfake.sim.net.links``, pure) when the packet arrives and schedules
the delivery on the kernel's clock, or holds the packet while the link is cut.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from sockfake.errors import SockfakeTypeError, SockfakeValueError
from sockfake.sim.kernel.core import Kernel
from sockfake.sim.net.clocks import HostClock
from sockfake.sim.net.links import (
    TCP_RETRIES2,
    LinkConditions,
    LinkState,
    is_instant,
    packet_loss,
    retransmission_timeout,
    stream_arrival,
)
from sockfake.sim.net.oserror import os_error

if TYPE_CHECKING:
    from sockfake.sim.kernel.queues import SimQueue
    from sockfake.sim.kernel.sync import SimEvent, SimLock
    from sockfake.sim.net.endpoint import Endpoint
    from sockfake.sim.net.selectors import SimSelector, SimWaker
    from sockfake.sim.net.sockets import SimSocket

__all__ = ["Host", "HostNetwork", "Link", "Topology"]

# Simulated ephemeral ports (and the ports that bind(("", 0)) hands out): above Linux's
# own ephemeral range (/proc/sys/net/ipv4/ip_local_port_range, 32768-60999 by default),
# so no real connection of this machine has one, and above the ports services are
# configured on (databases, brokers, dev servers, gRPC's 50051). A simulated address
# that leaks into C code which makes its own system calls (libcurl, libpq, gRPC) then
# finds nothing listening on the real loopback and fails at once (ECONNREFUSED) rather
# than landing on a real process. See docs/concepts/boundary.md.
EPHEMERAL_FIRST = 61000
EPHEMERAL_LAST = 65535


class HostNetwork(Protocol):
    """What a ``Host`` forwards to the network it is on (``SimNetwork`` is one).

    The seam that keeps this layer below the façade: a host is a ``Network`` view, but
    everything except its own sockets (one clock, one scheduler, one process table) is
    the network's, reached through this protocol instead of an import of ``SimNetwork``.
    """

    def socket_on(self, host: Host, family: int, type: int, proto: int = 0) -> SimSocket: ...
    def selector(self) -> SimSelector: ...
    def waker(self) -> SimWaker: ...
    def time(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...
    def thread(self, target: Callable[..., object], args: tuple[Any, ...] = (),
               name: str | None = None, daemon: bool | None = None) -> Any: ...
    def event(self) -> SimEvent: ...
    def lock(self) -> SimLock: ...
    def queue(self, maxsize: int = 0) -> SimQueue: ...
    def fork(self) -> int: ...
    def check_fork(self) -> None: ...
    def waitpid(self, pid: int, options: int) -> tuple[int, int]: ...
    def exit_child(self, status: int) -> NoReturn: ...
    def unix_file_identity(self, path: Any) -> object | None: ...
    def remove_stale_unix_socket(self, path: Any, socket_type: int) -> None: ...
    def remove_unix_socket(self, path: Any, identity: object) -> None: ...
    def chmod_unix_socket(self, path: Any, mode: int) -> None: ...
    def running_on(self, host: Host) -> AbstractContextManager[None]: ...


class Host:
    """One machine on a simulated network: addresses, ports, and a ``Network`` view.

    A host is itself a network boundary: ``TCPServer(addr, Handler, network=host)``
    binds on that host; ``host.socket()`` makes a client there. Everything but
    ``socket`` and ``create_connection`` is the network's own (one clock, one
    scheduler).
    """

    def __init__(self, network: HostNetwork, name: str, ipv4: list[str], ipv6: list[str]) -> None:
        self.network = network
        self.name = name
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.up = True
        # Its own clock (offset, drift, steps: net.set_clock); None: the network's time.
        self.clock: HostClock | None = None
        # Crashed (SimNetwork.crash) until restarted; boots counts the restarts.
        self.crashed = False
        self.boots = 0
        # What the host keeps across a crash: a dict standing for its disk.
        self.disk: dict[Any, Any] = {}
        # (socket type, port) -> endpoints bound there, in bind order.
        self.ports: dict[tuple[int, int], list[Endpoint]] = {}
        self._next_ephemeral = EPHEMERAL_FIRST

    def __repr__(self) -> str:
        return f"<Host {self.name} {' '.join(self.ipv4 + self.ipv6)}>"

    def ephemeral_port(self, sock_type: int) -> int:
        """The next free ephemeral port (deterministic: counting up from 61000)."""
        span = EPHEMERAL_LAST - EPHEMERAL_FIRST + 1
        for _ in range(span):
            port = self._next_ephemeral
            self._next_ephemeral = EPHEMERAL_FIRST + (port - EPHEMERAL_FIRST + 1) % span
            if not self.ports.get((sock_type, port)):
                return port
        raise os_error(errno.EADDRNOTAVAIL)

    # -- the Network protocol, on this host ------------------------------------------

    def socket(
        self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0
    ) -> SimSocket:
        return self.network.socket_on(self, family, type, proto)

    def create_connection(
        self,
        address: tuple[str, int],
        timeout: float | None = None,
        source_address: tuple[str, int] | None = None,
    ) -> SimSocket:
        """Like ``socket.create_connection``: connect a TCP socket from this host."""
        host, port = address[0], address[1]
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = self.socket(family, socket.SOCK_STREAM)
        try:
            if timeout is not None:
                sock.settimeout(timeout)
            if source_address is not None:
                sock.bind(source_address)
            sock.connect((host, port))
        except BaseException:
            sock.close()
            raise
        return sock

    def selector(self) -> SimSelector:
        return self.network.selector()

    def waker(self) -> SimWaker:
        return self.network.waker()

    def time(self) -> float:
        return self.network.time()

    def sleep(self, seconds: float) -> None:
        self.network.sleep(seconds)

    def thread(self, target: Callable[..., object], args: tuple[Any, ...] = (),
               name: str | None = None, daemon: bool | None = None) -> Any:
        """A thread that runs on this host: under interception the sockets it (and
        every thread it starts) makes with ``socket.socket()`` are this host's."""
        thread = self.network.thread(target, args, name, daemon)
        thread._sockfake_host = self  # read by the kernel when the thread starts
        return thread

    def event(self) -> SimEvent:
        return self.network.event()

    def lock(self) -> SimLock:
        return self.network.lock()

    def queue(self, maxsize: int = 0) -> SimQueue:
        return self.network.queue(maxsize)

    def fork(self) -> int:
        return self.network.fork()

    def check_fork(self) -> None:
        self.network.check_fork()

    def waitpid(self, pid: int, options: int) -> tuple[int, int]:
        return self.network.waitpid(pid, options)

    def exit_child(self, status: int) -> NoReturn:
        self.network.exit_child(status)

    def unix_file_identity(self, path: Any) -> object | None:
        return self.network.unix_file_identity(path)

    def remove_stale_unix_socket(self, path: Any, socket_type: int) -> None:
        self.network.remove_stale_unix_socket(path, socket_type)

    def remove_unix_socket(self, path: Any, identity: object) -> None:
        self.network.remove_unix_socket(path, identity)

    def chmod_unix_socket(self, path: Any, mode: int) -> None:
        self.network.chmod_unix_socket(path, mode)

    def running(self) -> AbstractContextManager[None]:
        """``with host.running():`` the calling thread runs on this host meanwhile: under
        interception its sockets are the host's, its clock is the host's clock."""
        return self.network.running_on(self)


class Link:
    """One direction between two hosts: its conditions, the model's state, its faults."""

    def __init__(self) -> None:
        self.conditions: LinkConditions | None = None  # None: follow the network default
        self.state = LinkState()
        # Per connection, the arrival time of its last segment: streams stay ordered.
        self.last_stream_arrival: dict[int, float] = {}
        self.partitioned = False
        self.holding = False
        self.held: list[Callable[[], None]] = []
        # Per connection whose segment is being retransmitted, the segments sent after
        # it, which wait behind it (a stream is delayed by a loss, never reordered).
        self.retransmitting: dict[int, list[Callable[[], None]]] = {}

    @property
    def cut(self) -> bool:
        """Nothing gets through right now (partitioned or held)."""
        return self.partitioned or self.holding


class Topology:
    """The hosts, their addresses, and the links between them (created on first use)."""

    def __init__(self, kernel: Kernel, default_conditions: LinkConditions) -> None:
        self.kernel = kernel
        self.default_conditions = default_conditions
        self.hosts: dict[str, Host] = {}
        self.ip_owner: dict[str, Host] = {}
        self._links: dict[tuple[str, str], Link] = {}

    # -- hosts ------------------------------------------------------------------------

    # Checked here: ``object``, so a compiled build (mypyc) raises these clear errors too.
    def add_host(self, network: HostNetwork, name: object, ipv4: object, ipv6: object) -> Host:
        if not isinstance(name, str) or not name:
            raise SockfakeTypeError(f"host name must be a non-empty str, not {name!r}")
        if name in self.hosts:
            raise SockfakeValueError(f"host {name!r} already exists")
        number = len(self.hosts) + 1
        v4 = [_checked_ip(a, 4) for a in _addresses("ipv4", ipv4, f"10.0.0.{number}")]
        v6 = [_checked_ip(a, 6) for a in _addresses("ipv6", ipv6, f"fd00::{number:x}")]
        for address in v4 + v6:
            if address in self.ip_owner:
                raise SockfakeValueError(
                    f"address {address} already belongs to host {self.ip_owner[address].name!r}"
                )
        host = Host(network, name, v4, v6)
        self.hosts[name] = host
        for address in v4 + v6:
            self.ip_owner[address] = host
        return host

    def host(self, name: object, network: HostNetwork) -> Host:
        """A host by name (or the host itself, checked to be on this network)."""
        if isinstance(name, Host):
            if name.network is not network:
                raise SockfakeValueError(f"{name!r} belongs to another network")
            return name
        if not isinstance(name, str):
            raise SockfakeTypeError(f"a host is a Host or a host name, not {name!r}")
        try:
            return self.hosts[name]
        except KeyError:
            raise SockfakeValueError(
                f"unknown host {name!r}; hosts: {', '.join(self.hosts)}"
            ) from None

    # -- links ------------------------------------------------------------------------

    def link(self, src: Host, dst: Host) -> Link:
        key = (src.name, dst.name)
        link = self._links.get(key)
        if link is None:
            link = self._links[key] = Link()
        return link

    def links(self) -> list[tuple[tuple[str, str], Link]]:
        return list(self._links.items())

    def conditions(self, link: Link) -> LinkConditions:
        return link.conditions or self.default_conditions

    def flush(self, link: Link) -> None:
        """Send what a cut link held back, once it is whole again."""
        if link.cut:
            return
        held, link.held = link.held, []
        for send in held:
            send()

    def carry(
        self,
        src: Host,
        dst: Host,
        connection: int,
        size: int,
        deliver: Callable[[], None],
        rng_concern: str,
        *,
        reliable: bool,
        immediate_ok: bool,
        local: bool = False,
        attempt: int = 0,
        lost: Callable[[str], None] | None = None,
        gave_up: Callable[[], None] | None = None,
    ) -> None:
        """Move one stream segment (or control packet) from src to dst, in order.

        While the link is cut or either host is down, a reliable packet waits for
        the heal (TCP would retransmit) and an unreliable one is lost. ``immediate_ok``
        lets a packet on an instant link be delivered within the sender's call
        (nothing of the same connection is in flight ahead of it).

        ``local``: host-local IPC (a Unix socket, ``socketpair()``), which crosses no
        link: delivered at once, never delayed, held, cut or lost, whatever the links'
        conditions and faults and whether the hosts are up.

        A reliable packet that the link's ``loss`` or ``burst_loss`` takes is sent
        again after TCP's retransmission timeout (``attempt`` counts the tries, for
        the backoff); the connection's later segments wait behind it. After
        ``TCP_RETRIES2`` retransmissions lost as well, TCP gives up: ``gave_up`` is
        called when the last one's timeout ends (the connection's waiting segments
        are dropped).

        ``lost``: an unreliable packet that TCP recovers with a timer of its own (a
        SYN, a SYN-ACK, the handshake's ACK) is lost to the link's ``loss`` and
        ``burst_loss`` too, and ``lost`` is told why (any other unreliable packet,
        a reset, is never lost to them).
        """
        if local:
            if immediate_ok:
                deliver()
            else:
                self.kernel.call_at(self.kernel.now, deliver)
            return
        link = self.link(src, dst)
        if link.cut or not src.up or not dst.up:
            if reliable:
                link.held.append(
                    lambda: self.carry(src, dst, connection, size, deliver, rng_concern,
                                       reliable=reliable, immediate_ok=False, gave_up=gave_up)
                )
            return
        conditions = self.conditions(link)
        if reliable:
            waiting = link.retransmitting.get(connection) if link.retransmitting else None
            if waiting is not None:
                waiting.append(
                    lambda: self.carry(src, dst, connection, size, deliver, rng_concern,
                                       reliable=True, immediate_ok=False, gave_up=gave_up)
                )
                return
            if conditions.loss or conditions.burst_loss is not None:
                why, link.state = packet_loss(conditions, link.state,
                                              self.kernel.rng("stream-loss"))
                if why is not None:
                    self._retransmit(
                        link, connection, size, attempt, f"{src.name} -> {dst.name} lost ({why})",
                        lambda: self.carry(src, dst, connection, size, deliver, rng_concern,
                                           reliable=True, immediate_ok=False,
                                           attempt=attempt + 1, gave_up=gave_up),
                        gave_up,
                    )
                    return
        elif lost is not None and (conditions.loss or conditions.burst_loss is not None):
            why, link.state = packet_loss(conditions, link.state, self.kernel.rng("stream-loss"))
            if why is not None:
                lost(why)
                return
        if immediate_ok and is_instant(conditions):
            deliver()
            return
        kernel = self.kernel
        arrival, link.state = stream_arrival(
            conditions,
            link.state,
            link.last_stream_arrival.get(connection, 0.0),
            size,
            kernel.now,
            kernel.rng(rng_concern),
        )
        link.last_stream_arrival[connection] = arrival
        if arrival <= kernel.now and immediate_ok:
            deliver()
        else:
            kernel.call_at(arrival, deliver)

    def _retransmit(self, link: Link, connection: int, size: int, attempt: int, what: str,
                    send_again: Callable[[], None], gave_up: Callable[[], None] | None) -> None:
        """A stream segment was lost: TCP sends it again after its retransmission
        timeout; until it is through, the connection's later segments wait. The
        ``TCP_RETRIES2``-th retransmission lost too, TCP gives up when its timeout ends."""
        link.retransmitting.setdefault(connection, [])
        delay = retransmission_timeout(self.conditions(link), attempt)
        kernel = self.kernel
        if attempt >= TCP_RETRIES2 and gave_up is not None:
            kernel.record_net("loss", f"stream segment of {size} bytes {what}; the "
                              f"{attempt}th retransmission: TCP gives up in {delay:.3f} s",
                              conn=connection, length=size, reason="loss")

            def give_up() -> None:
                link.retransmitting.pop(connection, None)  # the connection's rest is dropped
                gave_up()

            kernel.call_at(kernel.now + delay, give_up)
            return
        kernel.record_net("loss", f"stream segment of {size} bytes {what}; sent again in "
                          f"{delay:.3f} s", conn=connection, length=size, reason="loss")

        def again() -> None:
            waiting = link.retransmitting.pop(connection, [])
            send_again()
            for send in waiting:  # behind it again if it was lost again
                send()

        kernel.call_at(kernel.now + delay, again)


def _checked_ip(address: str, version: int) -> str:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        raise SockfakeValueError(f"{address!r} is not an IPv{version} address") from None
    if parsed.version != version or parsed.is_loopback or parsed.is_unspecified:
        raise SockfakeValueError(f"{address!r} is not a routable IPv{version} address")
    return str(parsed)


def _addresses(name: str, value: object, default: str) -> list[str]:
    if value is None:
        return [default]
    if isinstance(value, str):
        return [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(a, str) for a in value):
        raise SockfakeTypeError(f"{name} must be an address or a list of addresses, not {value!r}")
    return list(value) or [default]

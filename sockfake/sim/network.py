"""``SimNetwork``: hosts, addresses, links and faults on one kernel.

The network is the transport between simulated sockets: it routes a send to the host
that owns the destination address, asks the link model (``sockfake.sim.links``) what
happens to it, and schedules the arrival on the kernel's clock. Streams stay reliable
and ordered: a partition or a hold delays their segments until it heals; datagrams
may be lost, duplicated, reordered, corrupted or dropped at a full receive buffer.
"""

from __future__ import annotations

import atexit
import errno
import ipaddress
import socket
import weakref
from collections.abc import Callable
from typing import Any, NoReturn

from sockfake.network import SockfakeRuntimeError, SockfakeTypeError, SockfakeValueError
from sockfake.sim import _checks
from sockfake.sim.kernel import Kernel, Trace
from sockfake.sim.links import (
    LinkConditions,
    LinkState,
    datagram_fate,
    stream_arrival,
    stream_chunks,
)
from sockfake.sim.sockets import SimSocket, os_error
from sockfake.sim.sync import SimEvent, SimLock, SimQueue, SimSelector, SimWaker

__all__ = ["SimNetwork", "Host"]

_AF_UNIX = getattr(socket, "AF_UNIX", -1)
_EPHEMERAL_FIRST = 32768
_EPHEMERAL_LAST = 60999
# Linux: initial SYN retransmission timeout 1 s, doubling, tcp_syn_retries = 6.
_SYN_RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
_FIRST_FD = 1 << 20  # above any real descriptor (Linux caps them at nr_open, 2**20)
# A virtual day: a run whose clock only advances through idle polling (a server's
# serve_forever(poll_interval) while the test waits forever) fails in about a second
# of real time instead of spinning. Pass time_limit=None for longer simulations.
DEFAULT_TIME_LIMIT = 86400.0

_open_networks: weakref.WeakSet[SimNetwork] = weakref.WeakSet()


def _close_open_networks() -> None:
    # Parked simulated threads would keep a non-daemon interpreter from exiting.
    for network in list(_open_networks):
        try:
            network.close()
        except Exception:  # pragma: no cover - best effort at exit
            pass


atexit.register(_close_open_networks)
try:  # Runs before threading joins non-daemon threads at interpreter exit.
    import threading as _threading

    _threading._register_atexit(_close_open_networks)  # type: ignore[attr-defined]
except (AttributeError, RuntimeError):  # pragma: no cover
    pass


class Host:
    """One machine on a simulated network: addresses, ports, and a ``Network`` view.

    A host is itself a network boundary: ``TCPServer(addr, Handler, network=host)``
    binds on that host; ``host.socket()`` makes a client there.
    """

    def __init__(self, network: SimNetwork, name: str, ipv4: list[str], ipv6: list[str]) -> None:
        self.network = network
        self.name = name
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.up = True
        self._ports: dict[tuple[int, int], list[SimSocket]] = {}
        self._next_ephemeral = _EPHEMERAL_FIRST

    def __repr__(self) -> str:
        return f"<Host {self.name} {' '.join(self.ipv4 + self.ipv6)}>"

    # The Network protocol, on this host.

    def socket(
        self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0
    ) -> SimSocket:
        self.network._check_usable()
        return SimSocket(self, family, type, proto)

    def create_connection(
        self,
        address: tuple[str, int],
        timeout: float | None = None,
        source_address: tuple[str, int] | None = None,
    ) -> SimSocket:
        """Like ``socket.create_connection``: connect a TCP socket from this host."""
        host, port = address[0], address[1]
        family = socket.AF_INET6 if self.network._is_ipv6_name(host, self) else socket.AF_INET
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
        return self.network.thread(target, args, name, daemon)

    def event(self) -> SimEvent:
        return self.network.event()

    def lock(self) -> SimLock:
        return self.network.lock()

    def queue(self, maxsize: int = 0) -> SimQueue:
        return self.network.queue(maxsize)

    def fork(self) -> int:
        return self.network.fork()

    def refuse_fork(self) -> NoReturn:
        self.network.refuse_fork()

    def waitpid(self, pid: int, options: int) -> tuple[int, int]:
        return self.network.waitpid(pid, options)

    def exit_child(self, status: int) -> NoReturn:
        self.network.exit_child(status)

    def _ephemeral_port(self, sock_type: int) -> int:
        span = _EPHEMERAL_LAST - _EPHEMERAL_FIRST + 1
        for _ in range(span):
            port = self._next_ephemeral
            self._next_ephemeral = _EPHEMERAL_FIRST + (port - _EPHEMERAL_FIRST + 1) % span
            if not self._ports.get((sock_type, port)):
                return port
        raise os_error(errno.EADDRNOTAVAIL)


class _Link:
    """One direction between two hosts: its conditions and the model's state."""

    def __init__(self, conditions: LinkConditions | None) -> None:
        self.conditions = conditions  # None: follow the network default
        self.state = LinkState()
        self.partitioned = False
        self.held: list[Callable[[], None]] = []
        self.holding = False


class SimNetwork:
    """A deterministic, simulated network on virtual time.

    ``SimNetwork(seed=1)`` has one host, ``"local"`` (10.0.0.1, fd00::1, and its
    loopback 127.0.0.1 / ::1). Add more with :meth:`add_host`. Keyword link conditions
    (``loss=0.3, latency=0.05``...) set the default for every link, loopback included.

    The thread that creates the network is its main simulated thread; threads it
    starts join the simulation. Use ``net.time()``/``net.sleep()`` for time in
    handler code: they are virtual; ``time.sleep`` is real and is reported as a stall.
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        scheduling: str = "fifo",
        time_limit: float | None = DEFAULT_TIME_LIMIT,
        stall_timeout: float = 10.0,
        conditions: LinkConditions | None = None,
        trace_limit: int | None = None,
        **link_conditions: Any,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise SockfakeTypeError(f"seed must be an int, not {seed!r}")
        if time_limit is not None:
            _checks.number("time_limit", time_limit, positive=True)
        _checks.number("stall_timeout", stall_timeout, positive=True)
        if trace_limit is not None:
            _checks.integer("trace_limit", trace_limit, minimum=1)
        _check_conditions(conditions)
        base = conditions if conditions is not None else LinkConditions()
        self.default_conditions = base.replace(**link_conditions) if link_conditions else base
        self.kernel = Kernel(
            seed,
            scheduling=scheduling,
            time_limit=time_limit,
            stall_timeout=stall_timeout,
            trace_limit=trace_limit,
        )
        self.seed = seed
        self._hosts: dict[str, Host] = {}
        self._ip_owner: dict[str, Host] = {}
        self._links: dict[tuple[str, str], _Link] = {}
        self._unix_paths: dict[str, SimSocket] = {}
        # Paths whose socket closed: as a socket file left behind, connecting to one
        # is refused (ECONNREFUSED), where a path never bound does not exist (ENOENT).
        self._stale_unix_paths: set[str] = set()
        self._fds: dict[int, Any] = {}
        self._next_fd = _FIRST_FD
        self._connections = 0
        # Deterministic faults chosen by index (see ``sockfake.sim.faults.FaultPlan``):
        # every sendto() gets the next datagram index, counted from 0 on this network;
        # a plan's ``datagram_fate(index, now, conditions)`` may return a DatagramFate
        # that replaces the link model's random one for that datagram (None: the link
        # model decides, from its own random stream as without a plan).
        self.fault_plan: Any = None
        self._datagram_index = 0
        self.default_host = self.add_host("local")
        _open_networks.add(self)

    # -- topology -----------------------------------------------------------------

    def add_host(
        self, name: str, ipv4: str | list[str] | None = None, ipv6: str | list[str] | None = None
    ) -> Host:
        """Add a host; addresses default to 10.0.0.N and fd00::N."""
        if not isinstance(name, str) or not name:
            raise SockfakeTypeError(f"host name must be a non-empty str, not {name!r}")
        if name in self._hosts:
            raise SockfakeValueError(f"host {name!r} already exists")
        number = len(self._hosts) + 1
        v4 = _addresses("ipv4", ipv4, f"10.0.0.{number}")
        v6 = _addresses("ipv6", ipv6, f"fd00::{number:x}")
        normalized4 = [self._check_ip(a, 4) for a in v4]
        normalized6 = [self._check_ip(a, 6) for a in v6]
        for address in normalized4 + normalized6:
            if address in self._ip_owner:
                raise SockfakeValueError(
                    f"address {address} already belongs to host {self._ip_owner[address].name!r}"
                )
        host = Host(self, name, normalized4, normalized6)
        self._hosts[name] = host
        for address in normalized4 + normalized6:
            self._ip_owner[address] = host
        return host

    @staticmethod
    def _check_ip(address: str, version: int) -> str:
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            raise SockfakeValueError(f"{address!r} is not an IPv{version} address") from None
        if parsed.version != version or parsed.is_loopback or parsed.is_unspecified:
            raise SockfakeValueError(f"{address!r} is not a routable IPv{version} address")
        return str(parsed)

    def host(self, name: str) -> Host:
        if not isinstance(name, str):
            raise SockfakeTypeError(f"a host is a Host or a host name, not {name!r}")
        try:
            return self._hosts[name]
        except KeyError:
            raise SockfakeValueError(
                f"unknown host {name!r}; hosts: {', '.join(self._hosts)}"
            ) from None

    @property
    def hosts(self) -> list[Host]:
        return list(self._hosts.values())

    def _host_of(self, host: str | Host) -> Host:
        if isinstance(host, Host):
            if host.network is not self:
                raise SockfakeValueError(f"{host!r} belongs to another network")
            return host
        return self.host(host)

    # -- link conditions and faults -------------------------------------------------

    def _link(self, src: Host, dst: Host) -> _Link:
        key = (src.name, dst.name)
        link = self._links.get(key)
        if link is None:
            link = self._links[key] = _Link(None)
        return link

    def set_conditions(
        self,
        src: str | Host | None = None,
        dst: str | Host | None = None,
        *,
        both_ways: bool = True,
        conditions: LinkConditions | None = None,
        **fields: Any,
    ) -> None:
        """Change link conditions; applies to what is sent from now on.

        With no hosts, changes the default of every link. With ``src`` and ``dst``,
        changes that link (both directions unless ``both_ways=False``).
        """
        if (src is None) != (dst is None):
            raise SockfakeTypeError("set_conditions needs both src and dst, or neither")
        _check_conditions(conditions)
        if src is None or dst is None:
            base = conditions or self.default_conditions
            self.default_conditions = base.replace(**fields) if fields else base
            self._trace("conditions", f"default {self.default_conditions}")
            return
        a, b = self._host_of(src), self._host_of(dst)
        pairs = [(a, b), (b, a)] if both_ways and a is not b else [(a, b)]
        for one, other in pairs:
            link = self._link(one, other)
            base = conditions or link.conditions or self.default_conditions
            link.conditions = base.replace(**fields) if fields else base
            self._trace("conditions", f"{one.name}->{other.name} {link.conditions}")

    def conditions(self, src: str | Host, dst: str | Host) -> LinkConditions:
        link = self._link(self._host_of(src), self._host_of(dst))
        return link.conditions or self.default_conditions

    def partition(self, a: str | Host, b: str | Host, *, oneway: bool = False) -> None:
        """Cut traffic from a to b (and b to a unless ``oneway``) until :meth:`heal`."""
        ha, hb = self._host_of(a), self._host_of(b)
        self._link(ha, hb).partitioned = True
        if not oneway:
            self._link(hb, ha).partitioned = True
        self._trace("partition", f"{ha.name} {'->' if oneway else '<->'} {hb.name}")

    def heal(self, a: str | Host | None = None, b: str | Host | None = None) -> None:
        """End partitions (all, or between a and b); held stream segments move on."""
        if (a is None) != (b is None):
            raise SockfakeTypeError("heal needs both hosts a and b, or neither")
        for (src, dst), link in list(self._links.items()):
            if a is not None and b is not None:
                names = {self._host_of(a).name, self._host_of(b).name}
                if {src, dst} != names:
                    continue
            if link.partitioned:
                link.partitioned = False
                self._trace("heal", f"{src} -> {dst}")
                self._flush(link)

    def hold(self, a: str | Host, b: str | Host) -> None:
        """Hold everything sent from a to b (datagrams too) until :meth:`release`."""
        ha, hb = self._host_of(a), self._host_of(b)
        self._link(ha, hb).holding = True
        self._trace("hold", f"{ha.name} -> {hb.name}")

    def release(self, a: str | Host, b: str | Host) -> None:
        ha, hb = self._host_of(a), self._host_of(b)
        link = self._link(ha, hb)
        link.holding = False
        self._trace("release", f"{ha.name} -> {hb.name} ({len(link.held)} held)")
        self._flush(link)

    def _flush(self, link: _Link) -> None:
        if link.partitioned or link.holding:
            return
        held, link.held = link.held, []
        for send in held:
            send()

    def host_down(self, name: str | Host) -> None:
        """Take a host off the network: its connections reset, nothing reaches it.

        Its stream connections are reset at both ends (pending ones in accept queues
        too); while it is down, SYNs and datagrams to and from it are dropped, so a
        connect to it retries and times out. Its sockets stay open: listeners and
        datagram sockets work again after :meth:`host_up` (a network outage or a
        reboot of the interface, not a crash of the processes on it).
        """
        host = self._host_of(name)
        host.up = False
        self._trace("host-down", host.name)
        for sock in [s for s in self._fds.values() if isinstance(s, SimSocket)]:
            if sock.type != socket.SOCK_STREAM:
                continue
            if sock._host is not host and (sock._peer is None or sock._peer._host is not host):
                continue
            if sock._state == "listening":
                for pending in sock._accept_queue:
                    self._reset_now(pending)
                    if pending._peer is not None:
                        self._reset_now(pending._peer)
                continue
            if sock._peer is not None:
                self._reset_now(sock._peer)
            self._reset_now(sock)

    def host_up(self, name: str | Host) -> None:
        host = self._host_of(name)
        host.up = True
        self._trace("host-up", host.name)

    # -- the Network protocol (on the default host) ----------------------------------

    def socket(
        self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0
    ) -> SimSocket:
        return self.default_host.socket(family, type, proto)

    def create_connection(
        self,
        address: tuple[str, int],
        timeout: float | None = None,
        source_address: tuple[str, int] | None = None,
    ) -> SimSocket:
        return self.default_host.create_connection(address, timeout, source_address)

    def selector(self) -> SimSelector:
        self._check_usable()
        return SimSelector(self.kernel, self._fds.get)

    def waker(self) -> SimWaker:
        self._check_usable()
        waker = SimWaker(self.kernel, 0, self._release_fd)
        waker._fd = self._register_fd(waker)
        return waker

    def time(self) -> float:
        """The virtual clock, in seconds since the network started."""
        return self.kernel.now

    @property
    def now(self) -> float:
        return self.kernel.now

    def sleep(self, seconds: float) -> None:
        self.kernel.sleep(_checks.number("sleep seconds", seconds))

    def thread(self, target: Callable[..., object], args: tuple[Any, ...] = (),
               name: str | None = None, daemon: bool | None = None) -> Any:
        import threading

        return threading.Thread(target=target, args=args, name=name, daemon=daemon)

    def event(self) -> SimEvent:
        return SimEvent(self.kernel)

    def lock(self) -> SimLock:
        return SimLock(self.kernel)

    def queue(self, maxsize: int = 0) -> SimQueue:
        return SimQueue(self.kernel, _checks.integer("queue maxsize", maxsize))

    def fork(self) -> int:
        self.refuse_fork()

    def refuse_fork(self) -> NoReturn:
        """ForkingMixIn servers call this when they activate: refuse before serving."""
        raise NotImplementedError(
            "ForkingMixIn on a SimNetwork: processes are not simulated (a fork would "
            "escape the simulation); use ThreadingMixIn or ThreadPoolMixIn"
        )

    def waitpid(self, pid: int, options: int) -> tuple[int, int]:
        raise ChildProcessError(errno.ECHILD, "no simulated child processes")

    def exit_child(self, status: int) -> NoReturn:
        raise NotImplementedError("processes are not simulated")

    # -- run state, trace ---------------------------------------------------------

    @property
    def trace(self) -> Trace:
        return self.kernel.trace

    def digest(self) -> str:
        """A digest of the trace so far: equal seeds and code give equal digests."""
        return self.kernel.trace.digest()

    def dump(self) -> str:
        """Every simulated thread and what it waits on."""
        return self.kernel.dump()

    def intercept(self) -> Any:
        """The stdlib's entry points give this network to its threads (sockfake.sim.intercept)."""
        from sockfake.sim.intercept import intercept

        return intercept(self)

    def close(self) -> None:
        """Unwind all simulated threads and release everything; idempotent."""
        if self.kernel.closed:
            return
        self.kernel.close()
        _open_networks.discard(self)

    @property
    def closed(self) -> bool:
        return self.kernel.closed

    def __enter__(self) -> SimNetwork:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SimNetwork(seed={self.seed}, time={self.kernel.now:.6f})"

    def _check_usable(self) -> None:
        if self.kernel.closed:
            raise SockfakeRuntimeError("the simulated network is closed")
        self.kernel.thread_for_caller()

    def _trace(self, kind: str, details: str) -> None:
        self.kernel.record(kind, details)

    def _net_trace(self, kind: str, details: str) -> None:
        self.kernel.trace.add(self.kernel.now, "net", kind, details)

    # -- descriptors --------------------------------------------------------------

    def _register_fd(self, obj: Any) -> int:
        fd = self._next_fd
        self._next_fd += 1
        self._fds[fd] = obj
        return fd

    def _release_fd(self, fd: int) -> None:
        self._fds.pop(fd, None)

    def _adopt_fd(self, sock: SimSocket) -> None:
        """An accepted socket already has its descriptor (taken when the SYN arrived)."""

    def open_sockets(self) -> list[SimSocket]:
        """Sockets not yet closed (for leak checks)."""
        return [s for s in self._fds.values() if isinstance(s, SimSocket) and not s._closed]

    # -- addresses ----------------------------------------------------------------

    def _unbound_name(self, family: int) -> Any:
        if family == socket.AF_INET6:
            return ("::", 0, 0, 0)
        if family == _AF_UNIX:
            return ""
        return ("0.0.0.0", 0)

    def _any_address(self, family: int) -> Any:
        if family == socket.AF_INET6:
            return ("::", 0)
        if family == _AF_UNIX:
            return ""
        return ("0.0.0.0", 0)

    def _is_ipv6_name(self, name: str, host: Host) -> bool:
        if ":" in name:
            return True
        return False

    def _resolve_ip(self, name: Any, family: int, host: Host, *, for_bind: bool) -> str:
        if not isinstance(name, str):
            raise TypeError(f"str, bytes or bytearray expected, not {type(name).__name__}")
        if name == "":
            return "0.0.0.0" if family == socket.AF_INET else "::"
        if name == "localhost":
            return "127.0.0.1" if family == socket.AF_INET else "::1"
        try:
            parsed = ipaddress.ip_address(name.split("%")[0])
        except ValueError:
            target = self._hosts.get(name)
            if target is None:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
            addresses = target.ipv4 if family == socket.AF_INET else target.ipv6
            if not addresses:
                raise _family_not_supported()
            return addresses[0]
        if (parsed.version == 4) != (family == socket.AF_INET):
            raise _family_not_supported()
        return str(parsed)

    def _parse_ip_address(
        self, sock: SimSocket, address: Any, *, for_bind: bool
    ) -> tuple[str, int]:
        family_name = "AF_INET6" if sock.family == socket.AF_INET6 else "AF_INET"
        if not isinstance(address, tuple):
            raise TypeError(f"{family_name} address must be tuple, not {type(address).__name__}")
        expected = "2-4" if sock.family == socket.AF_INET6 else "2"
        if not (len(address) == 2 or sock.family == socket.AF_INET6 and 2 <= len(address) <= 4):
            raise TypeError(
                f"{family_name} address must be a tuple of {expected} items, not {len(address)}"
            )
        port = address[1]
        if isinstance(port, bool) or not isinstance(port, int):
            raise TypeError(f"'{type(port).__name__}' object cannot be interpreted as an integer")
        if not 0 <= port <= 65535:
            raise OverflowError(f"{'bind' if for_bind else 'connect'}(): port must be 0-65535.")
        ip = self._resolve_ip(address[0], sock.family, sock._host, for_bind=for_bind)
        return ip, port

    def _format(self, family: int, ip: str, port: int) -> Any:
        if family == socket.AF_INET6:
            return (ip, port, 0, 0)
        return (ip, port)

    def _is_local_ip(self, host: Host, ip: str) -> bool:
        parsed = ipaddress.ip_address(ip)
        return parsed.is_loopback or parsed.is_unspecified or self._ip_owner.get(ip) is host

    def _bind(self, sock: SimSocket, address: Any) -> Any:
        if sock.family == _AF_UNIX:
            return self._bind_unix(sock, address)
        ip, port = self._parse_ip_address(sock, address, for_bind=True)
        host = sock._host
        if not self._is_local_ip(host, ip):
            raise os_error(errno.EADDRNOTAVAIL)
        if port == 0:
            port = host._ephemeral_port(sock.type)
        for other in host._ports.get((sock.type, port), []):
            if other.family != sock.family:
                continue
            if other._local[0] == ip or ipaddress.ip_address(ip).is_unspecified or (
                ipaddress.ip_address(other._local[0]).is_unspecified
            ):
                raise os_error(errno.EADDRINUSE)
        host._ports.setdefault((sock.type, port), []).append(sock)
        return self._format(sock.family, ip, port)

    def _bind_unix(self, sock: SimSocket, address: Any) -> str:
        if isinstance(address, bytes):
            address = address.decode()
        if not isinstance(address, str):
            raise TypeError(
                f"a bytes-like object is required, not '{type(address).__name__}'"
            )
        if address in self._unix_paths:
            raise os_error(errno.EADDRINUSE)
        if address:
            self._unix_paths[address] = sock
            self._stale_unix_paths.discard(address)
        return address

    def _unix_peer(self, path: str, sock_type: int) -> SimSocket:
        """The socket bound at ``path``, or the error connect()/sendto() get on Linux."""
        target = self._unix_paths.get(path)
        if target is None:
            if path in self._stale_unix_paths:
                raise os_error(errno.ECONNREFUSED, ConnectionRefusedError)
            raise os_error(errno.ENOENT, FileNotFoundError)
        if target.type != sock_type:
            raise os_error(errno.EPROTOTYPE)
        return target

    def _source_ip(self, host: Host, family: int, target_ip: str) -> str:
        """The address a packet from ``host`` to ``target_ip`` leaves from (the route's)."""
        if ipaddress.ip_address(target_ip).is_loopback:
            return target_ip
        addresses = host.ipv4 if family == socket.AF_INET else host.ipv6
        loopback = "127.0.0.1" if family == socket.AF_INET else "::1"
        return addresses[0] if addresses else loopback

    def _autobind(self, sock: SimSocket, remote: Any, *, wildcard: bool = False) -> Any:
        """Bind to an ephemeral port: on the route's source address (connect), or on
        the wildcard address (an unconnected ``sendto``, as Linux: ``getsockname()``
        then says ``0.0.0.0``, and each datagram leaves from its route's address)."""
        if sock.family == _AF_UNIX:
            return ""
        host = sock._host
        if wildcard:
            ip = "0.0.0.0" if sock.family == socket.AF_INET else "::"
        else:
            ip = self._source_ip(host, sock.family, remote[0])
        port = host._ephemeral_port(sock.type)
        host._ports.setdefault((sock.type, port), []).append(sock)
        return self._format(sock.family, ip, port)

    def _pin_source(self, sock: SimSocket, remote: Any) -> None:
        """connect() on a socket bound to the wildcard address fixes its source address."""
        if sock.family == _AF_UNIX or sock._local is None:
            return
        if ipaddress.ip_address(sock._local[0]).is_unspecified:
            ip = self._source_ip(sock._host, sock.family, remote[0])
            sock._local = self._format(sock.family, ip, sock._local[1])

    def _resolve_remote(self, sock: SimSocket, address: Any) -> Any:
        if sock.family == _AF_UNIX:
            if isinstance(address, bytes):
                address = address.decode()
            if not isinstance(address, str):
                raise TypeError(
                    f"a bytes-like object is required, not '{type(address).__name__}'"
                )
            return address
        ip, port = self._parse_ip_address(sock, address, for_bind=False)
        if ipaddress.ip_address(ip).is_unspecified:
            ip = "127.0.0.1" if sock.family == socket.AF_INET else "::1"
        return self._format(sock.family, ip, port)

    def _route(self, src: Host, ip: str) -> Host | None:
        if ipaddress.ip_address(ip).is_loopback:
            return src
        return self._ip_owner.get(ip)

    def _find_endpoint(
        self, dst: Host, sock_type: int, family: int, remote: Any
    ) -> SimSocket | None:
        if family == _AF_UNIX:
            target = self._unix_paths.get(remote)
            return target if target is not None and target.type == sock_type else None
        ip, port = remote[0], remote[1]
        wildcard = None
        for candidate in dst._ports.get((sock_type, port), []):
            if candidate._closed or candidate.family != family:
                continue
            bound_ip = candidate._local[0]
            if bound_ip == ip:
                return candidate
            if ipaddress.ip_address(bound_ip).is_unspecified and wildcard is None:
                wildcard = candidate
        return wildcard

    # -- transport ----------------------------------------------------------------

    def _hosts_for(self, sock: SimSocket, remote: Any) -> tuple[Host, Host | None]:
        if sock.family == _AF_UNIX:
            target = self._unix_paths.get(remote)
            return sock._host, (target._host if target is not None else sock._host)
        return sock._host, self._route(sock._host, remote[0])

    def _carry(
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
    ) -> None:
        """Move one stream segment (or control packet) from src to dst in order."""
        link = self._link(src, dst)
        if link.partitioned or link.holding or not src.up or not dst.up:
            if reliable:
                link.held.append(
                    lambda: self._carry(src, dst, connection, size, deliver, rng_concern,
                                        reliable=reliable, immediate_ok=False)
                )
            return
        conditions = link.conditions or self.default_conditions
        if immediate_ok and conditions.latency == 0 and conditions.jitter == 0 and (
            conditions.bandwidth is None
        ):
            deliver()
            return
        arrival = stream_arrival(
            conditions, link.state, connection, size, self.kernel.now, self.kernel.rng(rng_concern)
        )
        if arrival <= self.kernel.now and immediate_ok:
            deliver()
        else:
            self.kernel.call_at(arrival, deliver)

    def _start_connect(self, sock: SimSocket) -> None:
        src, dst = self._hosts_for(sock, sock._remote)
        if sock._local is None:
            sock._local = self._autobind(sock, sock._remote)
        else:
            self._pin_source(sock, sock._remote)
        sock._state = "connecting"
        self._connections += 1
        sock._connection_id = self._connections
        sock._syn_attempts = 0
        self._trace("connect", f"{sock._local} -> {sock._remote}")
        if dst is None:
            self._fail_connect(sock, errno.ENETUNREACH)
            return
        plan = self.fault_plan
        if plan is not None and plan.refuses_connection(sock._connection_id - 1):
            self._net_trace("fault", f"connection {sock._connection_id - 1} refused (fault plan)")
            self._fail_connect(sock, errno.ECONNREFUSED)
            return
        self._send_syn(sock, dst)

    def _send_syn(self, sock: SimSocket, dst: Host) -> None:
        src = sock._host
        link = self._link(src, dst)
        attempt = sock._syn_attempts
        lost = link.partitioned or link.holding or not dst.up or not src.up
        if lost:
            self._net_trace("drop", f"SYN {sock._local} -> {sock._remote} (unreachable)")
        else:
            self._carry(src, dst, sock._connection_id, 0,
                        lambda: self._syn_arrive(sock, dst, attempt), "stream",
                        reliable=False, immediate_ok=True)
        self._schedule_syn_retry(sock, dst, attempt)

    def _schedule_syn_retry(self, sock: SimSocket, dst: Host, attempt: int) -> None:
        if attempt >= len(_SYN_RETRY_DELAYS):
            return
        delay = _SYN_RETRY_DELAYS[attempt]

        def retry() -> None:
            if sock._state != "connecting" or sock._syn_attempts != attempt:
                return
            sock._syn_attempts += 1
            if sock._syn_attempts >= len(_SYN_RETRY_DELAYS):
                self._fail_connect(sock, errno.ETIMEDOUT)
                return
            self._net_trace("retry", f"SYN {sock._local} -> {sock._remote}")
            self._send_syn(sock, dst)

        self.kernel.call_at(self.kernel.now + delay, retry)

    def _fail_connect(self, sock: SimSocket, code: int) -> None:
        if sock._state != "connecting":
            return
        sock._state = "failed"
        sock._pending_error = code
        self._net_trace("refused" if code == errno.ECONNREFUSED else "connect-failed",
                        f"{sock._local} -> {sock._remote}: {errno.errorcode.get(code, code)}")
        sock._changed.notify_all()

    def _syn_arrive(self, client: SimSocket, dst: Host, attempt: int) -> None:
        if client._state != "connecting" or client._syn_attempts != attempt:
            return
        listener = self._find_endpoint(dst, socket.SOCK_STREAM, client.family, client._remote)
        if listener is None or listener._state != "listening" or listener._shut_rd:
            self._carry(dst, client._host, client._connection_id, 0,
                        lambda: self._fail_connect(client, errno.ECONNREFUSED), "stream",
                        reliable=False, immediate_ok=True)
            return
        if len(listener._accept_queue) >= listener._backlog:
            # Linux drops the SYN when the accept queue is full; the client retries.
            self._net_trace("backlog-full", f"{listener._local} drops SYN from {client._local}")
            return
        server_side = SimSocket(dst, listener.family, socket.SOCK_STREAM)
        server_side._state = "connected"
        if listener.family == _AF_UNIX:
            server_side._local = listener._local
            server_side._remote = client._local or ""
        else:
            server_side._local = self._format(listener.family, client._remote[0], client._remote[1])
            server_side._remote = client._local
        server_side._peer = client
        server_side._connection_id = client._connection_id
        client._peer = server_side
        listener._accept_queue.append(server_side)
        listener._changed.notify_all()
        self._net_trace("syn", f"{client._local} -> {listener._local} queued")

        def established() -> None:
            if client._state != "connecting":
                if not server_side._dead:
                    self._reset_now(server_side)
                return
            client._state = "connected"
            self._net_trace("established", f"{client._local} -> {client._remote}")
            client._changed.notify_all()
            plan = self.fault_plan
            after = None if plan is None else plan.connection_reset_after(client._connection_id - 1)
            if after is not None:
                self.kernel.call_at(self.kernel.now + after, lambda: self._fault_reset(client))

        self._carry(dst, client._host, client._connection_id, 0, established, "stream",
                    reliable=False, immediate_ok=True)

    def _send_stream(self, sock: SimSocket, data: bytes) -> None:
        peer = sock._peer
        assert peer is not None
        src, dst = sock._host, peer._host
        conditions = self._link(src, dst).conditions or self.default_conditions
        self._trace(
            "send", f"{sock._describe()} -> {peer._describe()} {len(data)}B {_preview(data)}"
        )
        offset = 0
        apart = conditions.chunk is not None
        for size in stream_chunks(conditions, len(data), self.kernel.rng("chunk")):
            segment = data[offset : offset + size]
            offset += size
            sock._inflight += 1
            immediate = sock._inflight == 1

            def deliver(segment: bytes = segment) -> None:
                sock._inflight -= 1
                self._deliver_segment(sock, peer, segment, apart)

            self._carry(src, dst, sock._connection_id, size, deliver, "stream",
                        reliable=True, immediate_ok=immediate)

    def _deliver_segment(
        self, sender: SimSocket, receiver: SimSocket, segment: bytes, apart: bool
    ) -> None:
        if receiver._fd < 0 or receiver._closed and receiver._io_refs <= 0:
            # Data for a closed socket: it answers with a reset.
            self._net_trace("rst", f"{receiver._describe()} closed; resets {sender._describe()}")
            self._send_reset(receiver, sender)
            return
        if receiver._dead or receiver._shut_rd and receiver._closed:
            return
        receiver._append_rx(segment, apart)
        if segment:
            self._net_trace("deliver", f"{receiver._describe()} {len(segment)}B")
        receiver._changed.notify_all()

    def _send_fin(self, sock: SimSocket) -> None:
        peer = sock._peer
        if peer is None:
            return
        self._trace("fin", f"{sock._describe()} -> {peer._describe()}")
        sock._inflight += 1
        immediate = sock._inflight == 1

        def deliver() -> None:
            sock._inflight -= 1
            if not peer._dead:
                peer._rx_eof = True
                peer._changed.notify_all()

        self._carry(sock._host, peer._host, sock._connection_id, 0, deliver, "stream",
                    reliable=True, immediate_ok=immediate)

    def _fault_reset(self, client: SimSocket) -> None:
        """A fault plan resets this connection: both ends see ConnectionResetError."""
        ends = [client, client._peer] if client._peer is not None else [client]
        if all(end._dead or end._fd < 0 for end in ends):
            return
        self._net_trace("fault", f"connection {client._connection_id - 1} reset (fault plan)")
        for end in ends:
            if end is not None:
                self._reset_now(end)

    def _send_reset(self, sock: SimSocket, peer: SimSocket) -> None:
        self._carry(sock._host, peer._host, sock._connection_id, 0,
                    lambda: self._reset_now(peer), "stream", reliable=False, immediate_ok=True)

    def _reset_now(self, sock: SimSocket) -> None:
        if sock._dead or sock._fd < 0:
            return
        sock._dead = True
        sock._clear_rx()
        sock._rx_eof = True
        if sock._state == "connecting":
            sock._state = "failed"
            sock._pending_error = errno.ECONNREFUSED
        else:
            sock._pending_error = errno.ECONNRESET
        self._net_trace("reset", sock._describe())
        sock._changed.notify_all()

    def _consumed(self, sock: SimSocket, count: int) -> None:
        peer = sock._peer
        if peer is not None:
            peer._outstanding = max(0, peer._outstanding - count)
            peer._changed.notify_all()

    def _send_datagram(self, sock: SimSocket, payload: bytes, remote: Any) -> None:
        src, dst = self._hosts_for(sock, remote)
        index = self._datagram_index
        self._datagram_index += 1
        self._trace("sendto", f"{sock._describe()} -> {remote} {len(payload)}B {_preview(payload)}")
        if dst is None:
            self._net_trace("drop", f"no route to {remote}")
            return
        link = self._link(src, dst)
        if link.partitioned or not src.up or not dst.up:
            self._net_trace("drop", f"{sock._describe()} -> {remote} (partition)")
            return
        if sock.family == _AF_UNIX:
            source = sock._local or None
        elif ipaddress.ip_address(sock._local[0]).is_unspecified:
            ip = self._source_ip(src, sock.family, remote[0])
            source = self._format(sock.family, ip, sock._local[1])
        else:
            source = sock._local

        def send() -> None:
            conditions = link.conditions or self.default_conditions
            plan = self.fault_plan
            fate = None if plan is None else plan.datagram_fate(index, self.kernel.now, conditions)
            if fate is None:
                fate = datagram_fate(conditions, link.state, len(payload), self.kernel.now,
                                     self.kernel.rng("datagram"))
            if fate.dropped is not None:
                self._net_trace("drop", f"{source} -> {remote} {len(payload)}B ({fate.dropped})")
                return
            data = payload
            if fate.flip_bit is not None:
                mutable = bytearray(payload)
                mutable[fate.flip_bit // 8] ^= 1 << (fate.flip_bit % 8)
                data = bytes(mutable)
                self._net_trace("corrupt", f"{source} -> {remote} bit {fate.flip_bit}")
            for copy, arrival in enumerate(fate.arrivals):
                if copy:
                    self._net_trace("duplicate", f"{source} -> {remote}")

                def deliver(data: bytes = data) -> None:
                    self._deliver_datagram(dst, sock, source, remote, data)

                if arrival <= self.kernel.now:
                    deliver()
                else:
                    self.kernel.call_at(arrival, deliver)

        if link.holding:
            link.held.append(send)
            return
        send()

    def _deliver_datagram(
        self, dst: Host, sender: SimSocket, source: Any, remote: Any, data: bytes
    ) -> None:
        if not dst.up:
            return
        target = self._find_endpoint(dst, socket.SOCK_DGRAM, sender.family, remote)
        if target is None or target._closed:
            self._net_trace("drop", f"{source} -> {remote} (no socket)")
            if sender._remote == remote and sender.family != _AF_UNIX:
                self._port_unreachable(dst, sender)
            return
        if target._remote is not None and target._remote != source:
            self._net_trace("drop", f"{source} -> {remote} (not the connected peer)")
            return
        if target._datagram_bytes + len(data) > target._buffer_size(socket.SO_RCVBUF):
            self._net_trace("drop", f"{source} -> {remote} (receive buffer full)")
            return
        target._datagrams.append((data, source))
        target._datagram_bytes += len(data)
        self._net_trace("deliver", f"{source} -> {remote} {len(data)}B")
        target._changed.notify_all()

    def _port_unreachable(self, dst: Host, sender: SimSocket) -> None:
        """ICMP port unreachable back to a connected UDP socket: its next call raises
        ``ConnectionRefusedError`` (Linux reports it to connected sockets only)."""

        def arrive() -> None:
            if sender._fd >= 0 and sender._remote is not None:
                sender._pending_error = errno.ECONNREFUSED
                self._net_trace("icmp", f"port unreachable -> {sender._describe()}")
                sender._changed.notify_all()

        self._carry(dst, sender._host, 0, 0, arrive, "icmp", reliable=False, immediate_ok=True)

    def _close_socket(self, sock: SimSocket) -> None:
        self._release_fd(sock._fd)
        if self.kernel.closed:
            return
        if sock.family == _AF_UNIX:
            if sock._local and self._unix_paths.get(sock._local) is sock:
                del self._unix_paths[sock._local]
                self._stale_unix_paths.add(sock._local)
        elif sock._local is not None:
            entries = sock._host._ports.get((sock.type, sock._local[1]), [])
            if sock in entries:
                entries.remove(sock)
        if sock.type != socket.SOCK_STREAM:
            self._trace("close", sock._describe())
            return
        if sock._state == "listening":
            for pending in sock._accept_queue:
                if pending._peer is not None:
                    self._send_reset(pending, pending._peer)
                self._release_fd(pending._fd)
                pending._fd = -1
            sock._accept_queue.clear()
        elif sock._state == "connected" and sock._peer is not None and not sock._dead:
            if sock._rx or sock._linger_zero():
                self._trace("rst", f"{sock._describe()} -> {sock._peer._describe()}")
                self._send_reset(sock, sock._peer)
            elif not sock._shut_wr:
                sock._shut_wr = True
                self._send_fin(sock)
        elif sock._state == "connecting":
            sock._state = "closed"
        self._trace("close", sock._describe())


def _check_conditions(conditions: object) -> None:
    if conditions is not None and not isinstance(conditions, LinkConditions):
        raise SockfakeTypeError(
            f"conditions must be a LinkConditions or None, not {conditions!r}"
        )


def _addresses(name: str, value: object, default: str) -> list[str]:
    if value is None:
        return [default]
    if isinstance(value, str):
        return [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(a, str) for a in value):
        raise SockfakeTypeError(f"{name} must be an address or a list of addresses, not {value!r}")
    return list(value) or [default]


def _family_not_supported() -> socket.gaierror:
    return socket.gaierror(socket.EAI_ADDRFAMILY, "Address family for hostname not supported")


def _preview(data: bytes, limit: int = 24) -> str:
    text = repr(data[:limit])
    return text + ("..." if len(data) > limit else "")

"""``SimNetwork``: one simulated world, wiring the kernel, topology and transports together.

This is the façade users hold: hosts and link conditions, partitions and host
failures, the ``Network`` protocol servers take (on the default host), the trace, and
``close()``. The work is in the layers below, one concept a module: ``kernel/``
(scheduler, clock, locks and queues), ``net/topology`` (hosts, links, carrying a
packet), ``net/addressing`` (names, binds, routes), ``net/tcp`` and ``net/udp`` (the
transports), ``net/sockets`` (the socket surface), ``net/selectors``. Interception
(``sockfake.sim.intercept``) sits above this module and drives it. ``_SocketTransport``
below is the ``Transport`` seam sockets talk to.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import random
import socket
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

import sockfake.sim.kernel.thread_hooks as thread_hooks
import sockfake.sim.net.checks as _checks
from sockfake.errors import SockfakeRuntimeError, SockfakeTypeError
from sockfake.sim.kernel.core import DEFAULT_SPIN_BUDGET, Kernel
from sockfake.sim.kernel.queues import SimQueue
from sockfake.sim.kernel.sync import SimEvent, SimLock
from sockfake.sim.net.addressing import Addressing
from sockfake.sim.net.clocks import (
    EPOCH,
    MONOTONIC_BASE,
    HostClock,
    checked_drift,
    checked_seconds,
)
from sockfake.sim.net.crashes import crash_host, restart_host
from sockfake.sim.net.descriptors import Descriptors
from sockfake.sim.net.endpoint import Endpoint
from sockfake.sim.net.links import LinkConditions
from sockfake.sim.net.selectors import SimSelector, SimWaker
from sockfake.sim.net.sockets import SimSocket
from sockfake.sim.net.tcp import StreamTransport
from sockfake.sim.net.topology import Host, Topology
from sockfake.sim.net.udp import DatagramTransport
from sockfake.sim.net.unix_files import UnixFiles, is_filesystem_path
from sockfake.sim.trace.recorder import DEFAULT_PAYLOAD_LIMIT, DEFAULT_TRACE_LIMIT, Trace

__all__ = ["SimNetwork", "Host"]

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


class _SocketTransport:
    """The ``Transport`` seam of ``sockfake.sim.net.endpoint``: what sockets ask of the network."""

    def __init__(self, kernel: Kernel, descriptors: Descriptors, addressing: Addressing,
                 streams: StreamTransport, datagrams: DatagramTransport) -> None:
        self._kernel = kernel
        self._descriptors = descriptors
        self._addressing = addressing
        self._streams = streams
        self._datagrams = datagrams
        self.register_fd = descriptors.register
        self.release_fd = descriptors.release
        self.trace = kernel.record
        self.unbound_name = addressing.unbound_name
        self.any_address = addressing.any_address
        self.bind = addressing.bind
        self.resolve_remote = addressing.resolve_remote
        self.autobind = addressing.autobind
        self.pin_source = addressing.pin_source
        self.unix_peer = addressing.unix_peer
        self.check_unix_path_free = addressing.unix_files.check_free
        self.release_address = addressing.release
        self.start_connect = streams.start_connect
        self.send_stream = streams.send_stream
        self.send_fin = streams.send_fin
        self.stop_listening = streams.stop_listening
        self.push = streams.push
        self.consumed = streams.consumed
        self.send_datagram = datagrams.send

    def close(self, endpoint: Endpoint) -> None:
        self._descriptors.release(endpoint.fd)
        if self._kernel.closed:
            return
        self._addressing.release(endpoint)
        if endpoint.type == socket.SOCK_STREAM:
            self._streams.close(endpoint)
        self._kernel.record("close", endpoint.describe())


class SimNetwork:
    """A deterministic, simulated network on virtual time.

    ``SimNetwork(seed=1)`` has one host, ``"local"`` (10.0.0.1, fd00::1, and its
    loopback 127.0.0.1 / ::1). Add more with :meth:`add_host`. Keyword link conditions
    (``loss=0.3, latency=0.05``...) set the default for every link, loopback included.

    The thread that creates the network is its main simulated thread; threads it
    starts join the simulation. ``net.time()``/``net.sleep()`` are virtual time; under
    ``net.intercept()`` (the pytest plugin's default) so are ``time.time()``,
    ``time.monotonic()``, ``time.perf_counter()`` and ``time.sleep()``. Without
    interception the ``time`` module is real, and a real ``time.sleep`` in a simulated
    thread is reported as a stall.

    While it is open, the creating thread and the threads it starts run on one CPU
    (only one of them runs at a time, so a handoff is a same-core switch):
    ``pin_cpu=False`` leaves the affinity alone. It changes no simulated behaviour, only
    the speed.

    ``backend`` is what a simulated thread runs on: ``"threads"`` (the default, unless
    the pytest plugin's ``--sockfake-backend`` chose another for the session), an OS
    thread each; ``"greenlet"`` (``pip install 'sockfake[greenlet]'``), a greenlet
    each on the creating thread, with the same schedule, trace and digest for a seed,
    no OS thread or descriptor per simulated thread, and a cheaper handoff. See
    ``sockfake.sim.kernel.greenlets`` for what differs.

    ``spin_budget`` (virtual seconds, default 60): a thread that keeps reading the
    clock while nothing happens and nothing is scheduled (``while time.monotonic() <
    deadline``, an event loop on a selector that never blocks) is charged 1 ms of
    virtual time per read once it is seen to spin, so a bounded loop ends as on the
    OS; past this much charged time in a row it is reported as a spin
    (``SimDeadlockError`` naming its frame). 0 reports it at once.
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        scheduling: str = "fifo",
        time_limit: float | None = DEFAULT_TIME_LIMIT,
        stall_timeout: float = 10.0,
        spin_budget: float = DEFAULT_SPIN_BUDGET,
        conditions: LinkConditions | None = None,
        trace_limit: int | None = DEFAULT_TRACE_LIMIT,
        trace_payload_limit: int = DEFAULT_PAYLOAD_LIMIT,
        pct_depth: int | None = None,
        pct_steps: int | None = None,
        replay: list[str] | None = None,
        switch_points: str | None = None,
        switch_packages: Sequence[str] = (),
        pin_cpu: bool = True,
        backend: str | None = None,
        **link_conditions: Any,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise SockfakeTypeError(f"seed must be an int, not {seed!r}")
        if time_limit is not None:
            _checks.number("time_limit", time_limit, positive=True)
        _checks.number("stall_timeout", stall_timeout, positive=True)
        _checks.number("spin_budget", spin_budget)
        if trace_limit is not None:
            _checks.integer("trace_limit", trace_limit, minimum=1)
        _checks.integer("trace_payload_limit", trace_payload_limit, minimum=0)
        if not isinstance(pin_cpu, bool):
            raise SockfakeTypeError(f"pin_cpu must be True or False, not {pin_cpu!r}")
        _check_conditions(conditions)
        base = conditions if conditions is not None else LinkConditions()
        defaults = base.replace(**link_conditions) if link_conditions else base
        thread_hooks.install()
        self.kernel = Kernel(
            seed,
            scheduling=scheduling,
            time_limit=time_limit,
            stall_timeout=stall_timeout,
            spin_budget=float(spin_budget),
            trace_limit=trace_limit,
            trace_payload_limit=trace_payload_limit,
            pct_depth=pct_depth,
            pct_steps=pct_steps,
            replay=replay,
            switch_points=switch_points,
            switch_packages=switch_packages,
            pin_cpu=pin_cpu,
            backend=backend,
        )
        self.seed = seed
        # Deterministic faults chosen by index (see ``sockfake.sim.net.faults.FaultPlan``):
        # a plan's ``datagram_fate(index, now, conditions)`` may replace the link
        # model's random fate of a datagram (None: the link model decides, from its
        # own random stream as without a plan); connections are refused or reset by
        # their index in connect() order.
        self.fault_plan: Any = None
        self._topology = Topology(self.kernel, defaults)
        self._addressing = Addressing(self._topology)
        self._descriptors = Descriptors()
        self._streams = StreamTransport(
            self.kernel, self._topology, self._addressing, self._new_endpoint,
            self._descriptors.release, lambda: self.fault_plan,
        )
        self._datagrams = DatagramTransport(
            self.kernel, self._topology, self._addressing, lambda: self.fault_plan
        )
        self._transport = _SocketTransport(
            self.kernel, self._descriptors, self._addressing, self._streams, self._datagrams
        )
        # Has any host a clock of its own? (Clock reads look for the host only then.)
        self.clocks_skewed = False
        self.default_host = self.add_host("local")
        _open_networks.add(self)

    def _new_endpoint(self, host: Host, family: int, sock_type: int) -> Endpoint:
        return SimSocket(self._transport, self.kernel, host, family, sock_type).ep

    # -- topology -----------------------------------------------------------------

    @property
    def default_conditions(self) -> LinkConditions:
        return self._topology.default_conditions

    def add_host(
        self, name: str, ipv4: str | list[str] | None = None, ipv6: str | list[str] | None = None
    ) -> Host:
        """Add a host; addresses default to 10.0.0.N and fd00::N."""
        return self._topology.add_host(self, name, ipv4, ipv6)

    def host(self, name: str | Host) -> Host:
        """A host by name (a ``Host`` is checked to be this network's and returned)."""
        return self._topology.host(name, self)

    @property
    def hosts(self) -> list[Host]:
        return list(self._topology.hosts.values())

    # -- link conditions and faults -------------------------------------------------

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
        topology = self._topology
        if src is None or dst is None:
            base = conditions or topology.default_conditions
            topology.default_conditions = base.replace(**fields) if fields else base
            self.kernel.record("conditions", f"default {topology.default_conditions}")
            return
        a, b = self.host(src), self.host(dst)
        pairs = [(a, b), (b, a)] if both_ways and a is not b else [(a, b)]
        for one, other in pairs:
            link = topology.link(one, other)
            base = conditions or topology.conditions(link)
            link.conditions = base.replace(**fields) if fields else base
            self.kernel.record("conditions", f"{one.name}->{other.name} {link.conditions}")

    def conditions(self, src: str | Host, dst: str | Host) -> LinkConditions:
        return self._topology.conditions(self._topology.link(self.host(src), self.host(dst)))

    def partition(self, a: str | Host, b: str | Host, *, oneway: bool = False) -> None:
        """Cut traffic from a to b (and b to a unless ``oneway``) until :meth:`heal`."""
        ha, hb = self.host(a), self.host(b)
        self._topology.link(ha, hb).partitioned = True
        if not oneway:
            self._topology.link(hb, ha).partitioned = True
        self.kernel.record("partition", f"{ha.name} {'->' if oneway else '<->'} {hb.name}")

    def heal(self, a: str | Host | None = None, b: str | Host | None = None) -> None:
        """End partitions (all, or between a and b); held stream segments move on."""
        if (a is None) != (b is None):
            raise SockfakeTypeError("heal needs both hosts a and b, or neither")
        names = None if a is None or b is None else {self.host(a).name, self.host(b).name}
        for (src, dst), link in self._topology.links():
            if names is not None and {src, dst} != names:
                continue
            if link.partitioned:
                link.partitioned = False
                self.kernel.record("heal", f"{src} -> {dst}")
                self._topology.flush(link)

    def hold(self, a: str | Host, b: str | Host) -> None:
        """Hold everything sent from a to b (datagrams too) until :meth:`release`."""
        ha, hb = self.host(a), self.host(b)
        self._topology.link(ha, hb).holding = True
        self.kernel.record("hold", f"{ha.name} -> {hb.name}")

    def release(self, a: str | Host, b: str | Host) -> None:
        ha, hb = self.host(a), self.host(b)
        link = self._topology.link(ha, hb)
        link.holding = False
        self.kernel.record("release", f"{ha.name} -> {hb.name} ({len(link.held)} held)")
        self._topology.flush(link)

    def host_down(self, name: str | Host) -> None:
        """Take a host off the network: its connections reset, nothing reaches it.

        Its stream connections are reset at both ends (pending ones in accept queues
        too); while it is down, SYNs and datagrams to and from it are dropped, so a
        connect to it retries and times out. Its sockets stay open: listeners and
        datagram sockets work again after :meth:`host_up` (a network outage or a
        reboot of the interface, not a crash of the processes on it).
        """
        host = self.host(name)
        host.up = False
        self.kernel.record("host-down", host.name)
        self._streams.host_down(host, [sock.ep for sock in self._descriptors.sockets()])

    def host_up(self, name: str | Host) -> None:
        host = self.host(name)
        if host.crashed:
            raise SockfakeRuntimeError(
                f"host {host.name!r} crashed: bring it back with restart(), not host_up()"
            )
        host.up = True
        self.kernel.record("host-up", host.name)

    def crash(self, name: str | Host) -> None:
        """Crash a host: its threads unwind (``HostCrashed``, a ``BaseException``, at
        their next simulated call), its sockets vanish without a FIN or a reset, it is
        off the network until :meth:`restart`. What it kept in memory is gone; what is
        in ``host.disk`` stays. Recorded as a ``crash`` event. See ``sim/net/crashes.py``."""
        crash_host(self.kernel, self._topology, self._addressing, self._streams,
                   self._descriptors, self.host(name), self.default_host)

    def restart(self, name: str | Host, start: Callable[[], object] | None = None) -> Any:
        """Bring a crashed host back; ``start`` (no arguments; it finds ``host.disk``)
        runs in a new thread on it, as its service at boot, and that thread is returned.
        Peers' segments sent to it meanwhile meet closed sockets and are reset."""
        return restart_host(self.kernel, self._topology, self.host(name), start)

    # -- randomness and clocks ----------------------------------------------------------

    @property
    def random(self) -> random.Random:
        """The seeded random stream for the test's own choices (a nemesis, workloads).

        Derived from the network's seed like the simulation's own streams, and
        independent of them: drawing from it shifts no datagram fate or scheduling
        choice, and the same seed gives the same draws."""
        return self.kernel.rng("user")

    def set_clock(self, name: str | Host, *, offset: float | None = None,
                  drift: float | None = None) -> None:
        """From now on, ``name``'s wall clock (``time.time()``, ``datetime.now()`` in its
        threads) is ``offset`` seconds from true time and its clocks run ``drift`` fast
        (a fraction: 1e-4 is 100 ppm; negative runs slow). ``time.monotonic()`` runs at
        the same rate but never steps, and ``time.sleep(s)`` on the host lasts ``s`` of
        its own seconds. Recorded in the trace as a ``clock`` event."""
        host = self.host(name)
        now = self.kernel.now
        if host.clock is None:
            host.clock = HostClock(now, checked_seconds("offset", offset or 0.0),
                                   checked_drift(drift or 0.0))
        else:
            host.clock.set(now, offset, drift)
        self._skew_clocks()
        self.kernel.record("clock", f"{host.name}: set, {host.clock.describe(now)}")

    def step_clock(self, name: str | Host, seconds: float) -> None:
        """``name``'s wall clock jumps by ``seconds`` (back when negative), as an NTP
        step does; its monotonic clock does not move."""
        host = self.host(name)
        now = self.kernel.now
        if host.clock is None:
            host.clock = HostClock(now)
        host.clock.step(now, seconds)
        self._skew_clocks()
        self.kernel.record("clock", f"{host.name}: step {seconds:+.6f} s, "
                                    f"{host.clock.describe(now)}")

    def _skew_clocks(self) -> None:
        """A host has a clock of its own from now on: clock reads and timeouts (the
        kernel's too: locks, conditions, events, queues, joins) look for the caller's."""
        self.clocks_skewed = True
        self.kernel.timeout_clock = self._timeout_seconds

    def _timeout_seconds(self, seconds: float) -> float:
        """How long a timeout of ``seconds`` on the calling thread's host clock takes in
        the network's time (a thread outside the simulation: true seconds)."""
        thread = self.kernel.simulated_thread(threading.get_ident())
        clock = None if thread is None else self._clock_of(thread.host)
        return seconds if clock is None else clock.local_seconds(seconds)

    def skew_clocks(self, max_offset: float = 0.5, max_drift: float = 1e-4) -> None:
        """Give every host a clock of its own, drawn from the seed: an offset within
        ±``max_offset`` seconds and a drift within ±``max_drift``."""
        max_offset = abs(checked_seconds("max_offset", max_offset))
        max_drift = abs(checked_drift(max_drift))
        stream = self.kernel.rng("clocks")
        for host in self.hosts:
            self.set_clock(host, offset=stream.uniform(-max_offset, max_offset),
                           drift=stream.uniform(-max_drift, max_drift))

    @contextlib.contextmanager
    def running_on(self, host: Host) -> Iterator[None]:
        """The calling simulated thread runs on ``host`` inside the block (``Host.running()``)."""
        host = self.host(host)
        thread = self.kernel.thread_for_caller()
        before = thread.host
        thread.host = host
        try:
            yield
        finally:
            thread.host = before

    def host_clock(self, name: str | Host) -> tuple[float, float]:
        """``(time.time(), time.monotonic())`` as read on ``name`` now."""
        from_time = self.kernel.now
        clock = self.host(name).clock
        if clock is None:
            return EPOCH + from_time, MONOTONIC_BASE + from_time
        return EPOCH + clock.wall(from_time), MONOTONIC_BASE + clock.monotonic(from_time)

    # -- the Network protocol (on the default host) ----------------------------------

    def socket(
        self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0
    ) -> SimSocket:
        return self.default_host.socket(family, type, proto)

    def socket_on(self, host: Host, family: int, type: int, proto: int = 0) -> SimSocket:
        """A new simulated socket on ``host`` (``host.socket()`` calls this)."""
        self._check_usable()
        return SimSocket(self._transport, self.kernel, host, family, type, proto)

    def create_connection(
        self,
        address: tuple[str, int],
        timeout: float | None = None,
        source_address: tuple[str, int] | None = None,
    ) -> SimSocket:
        return self.default_host.create_connection(address, timeout, source_address)

    def selector(self) -> SimSelector:
        self._check_usable()
        return SimSelector(self.kernel, self._descriptors.objects.get, self)

    def caller_clock(self) -> HostClock | None:
        """The clock of the host the calling simulated thread runs on (None: true time)."""
        return self._clock_of(self.kernel.thread_for_caller().host)

    def _clock_of(self, host: object) -> HostClock | None:
        """The clock of a thread's host (``SimThread.host``; None: the default host)."""
        return (host if isinstance(host, Host) else self.default_host).clock

    def waker(self) -> SimWaker:
        self._check_usable()
        return SimWaker(self.kernel, self._descriptors.register, self._descriptors.release)

    def time(self) -> float:
        """The virtual clock, in seconds since the network started."""
        return self.kernel.now

    @property
    def now(self) -> float:
        return self.kernel.now

    def record(self, kind: str, details: str = "", **fields: Any) -> None:
        """Add an event of the calling thread to the trace (a test's own marks, a
        handler error seen by the testbed)."""
        self.kernel.thread_for_caller()
        self.kernel.record(kind, details, **fields)

    def settle(self, timeout: float = 1.0) -> None:
        """Run the simulation until nothing more happens within ``timeout`` virtual
        seconds: what is in flight lands, threads it wakes run (see ``Kernel.settle``)."""
        self.kernel.thread_for_caller()
        self.kernel.settle(_checks.number("settle timeout", timeout))

    def sleep(self, seconds: float) -> None:
        self.kernel.sleep(_checks.number("sleep seconds", seconds))

    def thread(self, target: Callable[..., object], args: tuple[Any, ...] = (),
               name: str | None = None, daemon: bool | None = None) -> Any:
        import threading

        # The simulation's, even after an interception ended (thread_hooks).
        return thread_hooks.mark_simulated(
            threading.Thread(target=target, args=args, name=name, daemon=daemon))

    def event(self) -> SimEvent:
        return SimEvent(self.kernel)

    def lock(self) -> SimLock:
        return SimLock(self.kernel)

    def queue(self, maxsize: int = 0) -> SimQueue:
        return SimQueue(self.kernel, _checks.integer("queue maxsize", maxsize))

    def fork(self) -> int:
        self.check_fork()
        raise AssertionError("unreachable")  # check_fork() always raises here

    def check_fork(self) -> NoReturn:
        """ForkingMixIn servers call this when they activate: refuse before serving."""
        raise NotImplementedError(
            "ForkingMixIn on a SimNetwork: processes are not simulated (a fork would "
            "escape the simulation); use ThreadingMixIn or ThreadPoolMixIn"
        )

    def waitpid(self, pid: int, options: int) -> tuple[int, int]:
        raise ChildProcessError(errno.ECHILD, "no simulated child processes")

    # Unix socket files are the network's own, in memory (net/unix_files.py): they
    # outlive their sockets as Linux's do, so a server removes them as on Linux.

    @property
    def unix_files(self) -> UnixFiles:
        """The socket files of this network's Unix sockets bound to paths."""
        return self._addressing.unix_files

    def unix_file_identity(self, path: Any) -> object | None:
        if not isinstance(path, (str, bytes)) or not is_filesystem_path(os.fsdecode(path)):
            return None
        return self.unix_files.identity(path)

    def remove_stale_unix_socket(self, path: Any, socket_type: int) -> None:
        """A socket file nothing is bound to goes (a live one stays, as the real
        network's probe finds)."""
        if not isinstance(path, (str, bytes)) or not is_filesystem_path(os.fsdecode(path)):
            return
        found = self.unix_files.get(path)
        if found is not None and not self._addressing.holds_unix_name(found.endpoint):
            self.unix_files.unlink(path)

    def remove_unix_socket(self, path: Any, identity: object) -> None:
        if identity is not None and self.unix_file_identity(path) == identity:
            self.unix_files.unlink(path)

    def chmod_unix_socket(self, path: Any, mode: int) -> None:  # no files: no file modes
        return None  # no files, so no permission bits: anyone on the network may connect

    def exit_child(self, status: int) -> NoReturn:
        raise NotImplementedError("processes are not simulated")

    # -- run state, trace ---------------------------------------------------------

    @property
    def trace(self) -> Trace:
        return self.kernel.trace

    @property
    def schedule(self) -> list[str]:
        """The scheduler's decisions so far, where there was a choice; pass them as
        ``SimNetwork(seed, scheduling=..., replay=net.schedule)`` to run this schedule
        again (empty under FIFO, whose schedule follows from the code)."""
        return self.kernel.schedule

    def digest(self) -> str:
        """A digest of the trace so far: equal seeds and code give equal digests."""
        return self.kernel.trace.digest()

    def dump(self) -> str:
        """Every simulated thread and what it waits on."""
        return self.kernel.dump()

    def intercept(self, *, seed_entropy: bool = True, allow_real: Any = ()) -> Any:
        """The stdlib's entry points give this network to its threads (``sockfake.sim.intercept``).

        ``seed_entropy``: in its threads, ``os.urandom``, ``secrets``, ``uuid.uuid4``,
        ``random.SystemRandom`` and the ``random`` module's generator draw from this
        network's seed, so a seed replays library code's random bytes too; False: the
        OS's entropy (``sockfake.sim.intercept.entropy``).

        ``allow_real``: real endpoints the test uses on purpose through C code (a
        real PostgreSQL through psycopg2, a real gRPC server beside the test), which
        the stray-socket detector then does not report: ``[("127.0.0.1", 5432)]``
        (host ``""`` for any address; a Unix socket's path), or ``"all"`` to turn the
        detector off (``sockfake.sim.intercept.allow_real``).

        The one import upwards in the simulation's layers, made on first use: interception
        sits above this façade and drives it, and users enter it from here."""
        from sockfake.sim.intercept.install import intercept

        return intercept(self, seed_entropy, allow_real=allow_real)

    def close(self) -> None:
        """Unwind all simulated threads and release everything; idempotent."""
        if self.kernel.closed:
            return
        self.kernel.close()
        self.unix_files.clear()  # its socket files go with it: a next network starts clean
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
        self.kernel.thread_for_caller()  # a clear error if closed, or from a foreign thread

    def open_sockets(self) -> list[SimSocket]:
        """Sockets not yet closed (for leak checks)."""
        return [sock for sock in self._descriptors.sockets() if not sock.ep.closed]


def _check_conditions(conditions: object) -> None:
    if conditions is not None and not isinstance(conditions, LinkConditions):
        raise SockfakeTypeError(
            f"conditions must be a LinkConditions or None, not {conditions!r}"
        )

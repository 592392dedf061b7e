"""The differential fuzzer: random programs of socket operations, run on the real loopback
and on the simulation (under interception), their outcomes compared.

A program is a socket kind (TCP, UDP, Unix stream or datagram; IPv4 or IPv6) and a list
of operations on a few socket slots: ``socket``, ``bind``, ``listen``, ``connect``,
``connect_ex``, ``accept``, ``send``/``sendall``/``sendto``, ``recv``/``recv_into``/
``recvfrom`` with flags, ``shutdown``, ``close``, ``setsockopt``/``getsockopt``,
``settimeout``/``setblocking``, ``select``/``poll`` readiness and ``getsockname``/
``getpeername``. Operations name slots and addresses symbolically (slot numbers are taken
modulo the slots that exist; "the name of slot 1" is read when the operation runs), so
any list of operations is a valid program and Hypothesis can shrink it.

Each operation's outcome is its return value or its exception (type, errno, message),
normalised so that what Linux leaves to chance compares equal: ephemeral ports become
``P0``, ``P1``... in order of appearance, the temporary directory and the abstract-name
prefix become placeholders, an autobound Unix name becomes ``<autobind>``, and buffer
sizes (deliberately not doubled) become ``<size>``.

Real programs must be deterministic. Every blocking call is made only when it cannot
block for long: on a socket in blocking mode a ``recv``/``accept``/``send`` runs only if
``select`` says it is ready (otherwise the outcome is ``"blocks"`` on both networks), no
listen backlog can fill (so a blocking ``connect`` is answered at once on loopback),
payloads are small, and timeouts are 20 ms. Loopback moves data within the sending
call; the runner still lets a short while pass after every operation that sends
something (1 ms on the OS, 5 ms of virtual time on the simulation) so that the two
compare after the network is quiet.

``DELIBERATE`` in ``tests/differential.py`` (and docs/concepts/simulation.md) lists the
differences kept on purpose; the normalisation here drops exactly those (buffer sizes
and ``TCP_MAXSEG`` are not compared). Closing a Unix socket bound to a path also
removes its file, as a server does, so that later operations meet both a path that is
gone (``ENOENT``) and one bound again.

A ``bind`` that Linux refuses because a closed connection of the port is in
TIME_WAIT (read from ``/proc/net/tcp``) is DELIBERATE's TIME_WAIT difference: the
comparison of that program stops there, as agreed.

A program whose outcomes differ runs on Linux again (``compare``): where Linux then
answers otherwise, and one of its answers is the simulation's, the answer depended on
the real kernel's timing or on other processes (another process on the machine took
an ephemeral port a failed connect() gave back: ``bind`` is ``EADDRINUSE`` once), and
it is counted apart ("Linux varied"), not as a divergence.

Run ``python tests/fuzz_differential.py [PROGRAMS] [--seed N]`` (default 1000) for a
larger budget: it prints every divergence (the smallest program of each kind) and the
totals; the same seed draws the same programs. ``SOCKFAKE_FUZZ_PROGRAMS`` sets the CI
test's budget.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from differential import KINDS, _paths
from hypothesis import strategies as st

from sockfake.sim import SimNetwork

Op = tuple[Any, ...]
TIMEOUT = 0.02  # every timeout a program sets: a timed-out call costs this much real time
SLOTS = 4
CLOSED_PORT = 9  # discard: nothing listens there on loopback (_check_closed_port)
PAYLOADS = (b"", b"x", b"data", b"0123456789" * 6)
SIZES = (0, 1, 3, 64)
FLAGS = (0, socket.MSG_PEEK, socket.MSG_DONTWAIT, socket.MSG_PEEK | socket.MSG_DONTWAIT)
SHUTDOWNS = (socket.SHUT_RD, socket.SHUT_WR, socket.SHUT_RDWR)
TIMEOUTS = (None, 0.0, TIMEOUT)
BACKLOGS = (None, SLOTS - 2, 5)  # a full backlog makes connect() wait for seconds
# Addresses, by symbol: resolved against the program's kind when the operation runs.
BIND_TARGETS = ("loopback", "wildcard", "mapped", "path0", "path1", "abstract0", "autobind",
                "name_of")
CONNECT_TARGETS = ("name_of", "port0", "closed", "path0", "abstract1", "mapped_name_of")
OPTIONS: dict[str, tuple[int, int, tuple[int, ...]]] = {
    "SO_REUSEADDR": (socket.SOL_SOCKET, socket.SO_REUSEADDR, (0, 1)),
    "SO_KEEPALIVE": (socket.SOL_SOCKET, socket.SO_KEEPALIVE, (0, 1)),
    "SO_BROADCAST": (socket.SOL_SOCKET, socket.SO_BROADCAST, (0, 1)),
    "SO_RCVBUF": (socket.SOL_SOCKET, socket.SO_RCVBUF, (4096, 65536)),
    "SO_SNDBUF": (socket.SOL_SOCKET, socket.SO_SNDBUF, (4096, 65536)),
    "SO_ERROR": (socket.SOL_SOCKET, socket.SO_ERROR, (0,)),
    "SO_TYPE": (socket.SOL_SOCKET, socket.SO_TYPE, (0,)),
    "SO_ACCEPTCONN": (socket.SOL_SOCKET, socket.SO_ACCEPTCONN, (0,)),
    "TCP_NODELAY": (socket.IPPROTO_TCP, socket.TCP_NODELAY, (0, 1)),
    "TCP_MAXSEG": (socket.IPPROTO_TCP, socket.TCP_MAXSEG, (1000,)),
    "IPV6_V6ONLY": (socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, (0, 1)),
}
# Options whose value is deliberately not Linux's (DELIBERATE's rcvbuf_default_and_doubling
# and tcp4_maxseg_connected): what they read is not compared.
SIZE_OPTIONS = {"SO_RCVBUF", "SO_SNDBUF", "TCP_MAXSEG"}
ALL_SOCKET_KINDS = tuple(KINDS)

# -- programs ----------------------------------------------------------------------------

slot = st.integers(0, SLOTS - 1)
operations = st.one_of(
    st.tuples(st.just("socket")),
    st.tuples(st.just("bind"), slot, st.sampled_from(BIND_TARGETS), slot),
    st.tuples(st.just("listen"), slot, st.sampled_from(BACKLOGS)),
    st.tuples(st.sampled_from(("connect", "connect_ex")), slot,
              st.sampled_from(CONNECT_TARGETS), slot),
    st.tuples(st.just("accept"), slot),
    st.tuples(st.sampled_from(("send", "sendall")), slot, st.sampled_from(PAYLOADS),
              st.sampled_from(FLAGS[:1] + FLAGS[2:3])),
    st.tuples(st.just("sendto"), slot, st.sampled_from(PAYLOADS),
              st.sampled_from(CONNECT_TARGETS), slot),
    st.tuples(st.sampled_from(("recv", "recv_into", "recvfrom")), slot, st.sampled_from(SIZES),
              st.sampled_from(FLAGS)),
    st.tuples(st.just("shutdown"), slot, st.sampled_from(SHUTDOWNS)),
    st.tuples(st.just("close"), slot),
    st.tuples(st.just("setsockopt"), slot, st.sampled_from(sorted(OPTIONS)), st.integers(0, 1)),
    st.tuples(st.just("getsockopt"), slot, st.sampled_from(sorted(OPTIONS))),
    st.tuples(st.just("settimeout"), slot, st.sampled_from(TIMEOUTS)),
    st.tuples(st.just("setblocking"), slot, st.booleans()),
    st.tuples(st.sampled_from(("gettimeout", "getsockname", "getpeername", "select", "poll")),
              slot),
)


@dataclass(frozen=True)
class Program:
    kind: str
    operations: tuple[Op, ...]

    def __str__(self) -> str:
        lines = [f"kind {self.kind}"] + [f"  {op!r}" for op in self.operations]
        return "\n".join(lines)


def programs(kinds: tuple[str, ...] = ALL_SOCKET_KINDS, max_operations: int = 12
             ) -> st.SearchStrategy[Program]:
    """Programs: a socket first (most programs want one), then random operations."""
    return st.builds(
        lambda kind, ops: Program(kind, (("socket",), *ops)),
        st.sampled_from(kinds),
        st.lists(operations, max_size=max_operations),
    )


# -- running -----------------------------------------------------------------------------


@dataclass
class _Normaliser:
    """Labels what differs by chance between two runs: ports, paths, autobound names."""

    directory: str
    abstract: str
    ports: dict[int, str] = field(default_factory=dict)

    def port(self, number: int) -> str:
        return self.ports.setdefault(number, f"P{len(self.ports)}")

    def __call__(self, value: Any) -> Any:
        if isinstance(value, tuple):
            if len(value) in (2, 4) and isinstance(value[0], str) and isinstance(value[1], int):
                return (value[0], self.port(value[1]) if value[1] else 0, *value[2:])
            return tuple(self(item) for item in value)
        if isinstance(value, list):
            return [self(item) for item in value]
        if isinstance(value, str):
            return value.replace(self.directory, "<dir>").replace(self.abstract, "<abs>")
        if isinstance(value, bytes) and value.startswith(b"\0"):
            text = value.decode("latin-1")
            if self.abstract in text:
                return text.replace(self.abstract, "<abs>")
            return "<autobind>" if len(value) == 6 else value
        return value


# A bind() Linux refuses because a closed connection of that port is in TIME_WAIT:
# DELIBERATE's tcp4_rebind_after_close (no TIME_WAIT in the simulation, which binds).
TIME_WAIT = "<TIME_WAIT: deliberate>"


def _in_time_wait(address: Any) -> bool:
    """Does Linux hold a connection of ``address``'s port in TIME_WAIT?"""
    if not isinstance(address, tuple) or not address[1]:
        return False
    suffix = f":{address[1]:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as lines:
                next(lines)
                for line in lines:
                    fields = line.split()
                    if fields[1].endswith(suffix) and fields[3] == "06":
                        return True
        except OSError:
            continue
    return False


@dataclass
class _Run:
    """One program's run on one network (``S`` is the ``socket`` module the code sees)."""

    kind: str
    settle: Callable[[], None]
    path: Callable[[str], str]
    abstract: str
    real: bool
    slots: list[Any] = field(default_factory=list)

    @property
    def family(self) -> int:
        return KINDS[self.kind][0]

    def sock(self, index: int) -> Any:
        return self.slots[index % len(self.slots)]

    def address(self, target: str, other: int, binding: bool) -> Any:
        family = self.family
        if family == socket.AF_UNIX:
            if target in ("path0", "path1"):
                return self.path(target)
            if target in ("abstract0", "abstract1"):
                return "\0" + self.abstract + target
            if target == "autobind":
                return ""
            if target in ("name_of", "mapped_name_of") and self.slots:
                return self.sock(other).getsockname()
            return self.path("never-bound")
        loopback = "127.0.0.1" if family == socket.AF_INET else "::1"
        if target == "loopback":
            return (loopback, 0)
        if target == "wildcard":
            return ("0.0.0.0" if family == socket.AF_INET else "::", 0)
        if target == "mapped":
            return ("::ffff:127.0.0.1" if family == socket.AF_INET6 else loopback, 0)
        if target == "port0":
            return (loopback, 0)
        if target == "closed":
            return (loopback, self.closed_port())
        if target in ("name_of", "mapped_name_of") and self.slots:
            name = self.sock(other).getsockname()
            host = name[0]
            if host in ("0.0.0.0", "::"):
                host = loopback
            if target == "mapped_name_of" and family == socket.AF_INET6 and host == "::1":
                host = "::ffff:127.0.0.1"
            return (host, name[1])
        return (loopback, 0) if binding else (loopback, self.closed_port())

    @staticmethod
    def closed_port() -> int:
        """A loopback port nothing listens on, outside the ephemeral range: a port from
        that range could be the one Linux autobinds the connecting socket to, and a
        connect() to it would connect the socket to itself."""
        return CLOSED_PORT

    def ready(self, sock: Any, write: bool) -> bool:
        readable, writable, _ = select.select([sock], [sock], [], 0)
        return bool(writable if write else readable)

    def blocks(self, sock: Any, write: bool, flags: int = 0) -> bool:
        """Would this call block for good? (Only a socket in blocking mode can.)"""
        if sock.gettimeout() is not None or flags & socket.MSG_DONTWAIT:
            return False
        if sock.fileno() < 0:
            return False
        return not self.ready(sock, write)

    def listening(self, sock: Any) -> bool:
        """Only a listening socket's ``accept`` can wait: any other fails at once."""
        try:
            return bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
        except OSError:
            return False

    def run(self, op: Op) -> Any:
        name = op[0]
        if name == "socket":
            if len(self.slots) >= SLOTS:
                return "full"
            family, type_ = KINDS[self.kind]
            self.slots.append(socket.socket(family, type_))
            return len(self.slots) - 1
        s = self.sock(op[1])
        if name == "bind":
            address = self.address(op[2], op[3], binding=True)
            try:
                return s.bind(address)
            except OSError as exc:
                if self.real and exc.errno == errno.EADDRINUSE and _in_time_wait(address):
                    return TIME_WAIT
                raise
        if name == "listen":
            return s.listen() if op[2] is None else s.listen(op[2])
        if name in ("connect", "connect_ex"):
            # Never waits for long: loopback answers a SYN at once, and no backlog can
            # fill (BACKLOGS are at least the number of other slots).
            return getattr(s, name)(self.address(op[2], op[3], binding=False))
        if name == "accept":
            if self.listening(s) and self.blocks(s, write=False):
                return "blocks"
            conn, address = s.accept()
            if len(self.slots) < SLOTS:
                self.slots.append(conn)
            else:
                conn.close()
            return ("accepted", address)
        if name in ("send", "sendall"):
            if self.blocks(s, write=True, flags=op[3]):
                return "blocks"
            return getattr(s, name)(op[2], op[3])
        if name == "sendto":
            if self.blocks(s, write=True):
                return "blocks"
            return s.sendto(op[2], self.address(op[3], op[4], binding=False))
        if name in ("recv", "recv_into", "recvfrom"):
            size, flags = op[2], op[3]
            if self.blocks(s, write=False, flags=flags):
                return "blocks"
            if name == "recv_into":
                buffer = bytearray(size)
                count = s.recv_into(buffer, size, flags)
                return count, bytes(buffer[:count])
            return getattr(s, name)(size, flags)
        if name == "shutdown":
            return s.shutdown(op[2])
        if name == "close":
            self.unlink_path(s)
            return s.close()
        if name == "setsockopt":
            level, option, values = OPTIONS[op[2]]
            return s.setsockopt(level, option, values[op[3] % len(values)])
        if name == "getsockopt":
            level, option, _ = OPTIONS[op[2]]
            value = s.getsockopt(level, option)
            return "<size>" if op[2] in SIZE_OPTIONS and isinstance(value, int) else value
        if name == "settimeout":
            return s.settimeout(op[2])
        if name == "setblocking":
            return s.setblocking(op[2])
        if name == "gettimeout":
            return s.gettimeout()
        if name in ("getsockname", "getpeername"):
            return getattr(s, name)()
        if name == "select":
            if s.fileno() < 0:
                return "closed"
            readable, writable, exceptional = select.select([s], [s], [s], 0)
            return bool(readable), bool(writable), bool(exceptional)
        if name == "poll":
            if s.fileno() < 0:
                return "closed"
            poller = select.poll()
            poller.register(s, select.POLLIN | select.POLLOUT | select.POLLPRI)
            return [mask for _, mask in poller.poll(0)]
        raise AssertionError(f"unknown operation {op!r}")

    def unlink_path(self, sock: Any) -> None:
        """Closing a Unix socket bound to a path also removes its file, as a server
        does (the simulation's file, under interception: net/unix_files.py)."""
        if self.family != socket.AF_UNIX or sock.fileno() < 0:
            return
        name = sock.getsockname()
        if isinstance(name, str) and name.startswith("/") and name.startswith(self.path("")):
            try:
                os.unlink(name)
            except OSError:
                pass

    def close(self) -> None:
        for s in self.slots:
            s.close()


# Operations after which the runner lets the network settle before the next one.
_MOVES = {"connect", "connect_ex", "accept", "send", "sendall", "sendto", "shutdown", "close",
          "listen"}


def _outcomes(program: Program, settle: Callable[[], None]) -> list[Any]:
    abstract = f"sfz-{uuid.uuid4().hex[:12]}-"
    with _paths() as path:
        directory = path("")
        normalise = _Normaliser(directory, abstract)
        run = _Run(program.kind, settle, path, abstract, real=settle is _real_settle)
        results: list[Any] = []
        try:
            for op in program.operations:
                try:
                    result: Any = ("ok", normalise(run.run(op)))
                except Exception as exc:  # noqa: BLE001 - the outcome is the exception
                    result = ("raise", type(exc).__name__, _errno(exc), normalise(str(exc)))
                results.append(result)
                if op[0] in _MOVES:
                    settle()
        finally:
            run.close()
        return results


def _errno(exc: BaseException) -> Any:
    number = getattr(exc, "errno", None)
    return errno.errorcode.get(number, number) if isinstance(number, int) else number


def _real_settle() -> None:
    time.sleep(0.001)


def _sim_settle() -> None:
    time.sleep(0.005)  # virtual under interception: five link latencies


_closed_port_checked: list[bool] = []


def _check_closed_port() -> None:
    """Programs connect to CLOSED_PORT and expect a refusal: say so if it is taken."""
    if _closed_port_checked:
        return
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        with socket.socket(family) as probe:
            probe.settimeout(5)
            if probe.connect_ex((host, CLOSED_PORT)) != errno.ECONNREFUSED:
                raise RuntimeError(f"something listens on {host} port {CLOSED_PORT}: the "
                                   "differential fuzzer needs that port closed on loopback")
    _closed_port_checked.append(True)


def run_real(program: Program) -> list[Any]:
    _check_closed_port()
    return _outcomes(program, _real_settle)


def run_sim(program: Program, seed: int = 1) -> list[Any]:
    with SimNetwork(seed=seed, latency=0.001) as net, net.intercept():
        return _outcomes(program, _sim_settle)


@dataclass(frozen=True)
class Divergence:
    program: Program
    index: int  # the first operation whose outcome differs
    real: Any
    sim: Any

    @property
    def signature(self) -> tuple[Any, ...]:
        """What makes two divergences the same finding: the operation and both outcomes."""
        op = self.program.operations[self.index]
        return (self.program.kind, op[0], _shape(self.real), _shape(self.sim))

    def __str__(self) -> str:
        return (f"{self.program}\n  operation {self.index}: "
                f"{self.program.operations[self.index]!r}\n"
                f"    real: {self.real!r}\n    sim:  {self.sim!r}")


def _shape(outcome: Any) -> Any:
    if isinstance(outcome, tuple) and outcome and outcome[0] == "raise":
        return outcome[:3]
    return outcome if not isinstance(outcome, tuple) else (outcome[0], type(outcome[-1]).__name__)


def _first_difference(real: list[Any], sim: list[Any]) -> int | None:
    for index, (a, b) in enumerate(zip(real, sim, strict=True)):
        if a != b:
            return index
    return None


LINUX_RERUNS = 2


def compare(program: Program, on_linux_varies: Callable[[Program], None] | None = None
            ) -> Divergence | None:
    """Run ``program`` on both networks; the first differing outcome, if any.

    A program whose outcomes differ is run on Linux again (``LINUX_RERUNS`` times):
    where Linux gives another answer and one of its answers is the simulation's, the
    answer depended on the real kernel's timing or on other processes (another
    program on the machine took the port a failed connect() gave back), and the
    simulation, deterministic, gave one that Linux gives. That is no divergence
    (``on_linux_varies`` hears of it); a difference Linux repeats is."""
    real, sim = run_real(program), run_sim(program)
    index = _first_difference(real, sim)
    if index is None:
        return None
    if real[index] == ("ok", TIME_WAIT):
        return None  # a deliberate difference: the simulation has no TIME_WAIT
    for _ in range(LINUX_RERUNS):
        again = run_real(program)
        if again != real and _first_difference(again, sim) is None:
            if on_linux_varies is not None:
                on_linux_varies(program)
            return None
    return Divergence(program, index, real[index], sim[index])


def main(argv: list[str]) -> int:
    import argparse

    from hypothesis import HealthCheck, given, seed, settings

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("programs", type=int, nargs="?", default=1000)
    parser.add_argument("--seed", type=int, default=None,
                        help="Hypothesis's seed: the same seed draws the same programs")
    options = parser.parse_args(argv)
    count = options.programs
    found: dict[tuple[Any, ...], Divergence] = {}
    runs = [0]
    diverging = [0]
    linux_varied: list[Program] = []

    @settings(max_examples=count, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(programs())
    def fuzz(program: Program) -> None:
        runs[0] += 1
        divergence = compare(program, linux_varied.append)
        if divergence is not None:
            diverging[0] += 1
            known = found.get(divergence.signature)
            if known is None or len(program.operations) < len(known.program.operations):
                found[divergence.signature] = divergence

    if options.seed is not None:
        fuzz = seed(options.seed)(fuzz)
    started = time.monotonic()
    fuzz()
    for divergence in found.values():
        print(f"DIVERGENCE\n{divergence}\n")
    for program in linux_varied:
        print(f"LINUX VARIED (the simulation gave one of its answers)\n{program}\n")
    operations = sum(len(d.program.operations) for d in found.values())
    print(f"{runs[0]} programs in {time.monotonic() - started:.0f} s (seed {options.seed}): "
          f"{diverging[0]} diverged, {len(found)} distinct divergences ({operations} "
          f"operations in their smallest programs); Linux varied on {len(linux_varied)}; "
          f"load average {os.getloadavg()[0]:.2f}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

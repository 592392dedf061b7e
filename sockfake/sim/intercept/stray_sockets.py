"""Detected after the fact: a real socket that C code opened while a simulation ran.

C code that makes its own system calls (ctypes into libc, libcurl under pycurl, libpq
under psycopg2, gRPC's core, other C database drivers) cannot be intercepted: its
connections go to the real network whatever the simulation says. They can be seen:
every socket of the process is a ``socket:[inode]`` link in ``/proc/self/fd``, and
every socket Python makes raises the audit event ``socket.__new__``
(``sockfake.sim.intercept.audit`` notes them here). A socket that appears while an
interception is active, and that no Python socket object owns, was opened by C code.

``Watch`` is one interception's: the process's sockets when it began (the baseline),
and the strays seen since. They are looked for while it runs (a real thread, outside
every simulation, samples the process's descriptors every ``SAMPLE_INTERVAL`` seconds
of real time, and idles ``SAMPLER_IDLE_EXIT`` seconds after the last watch ends before
it exits, so the next test's watch finds it running) and when it ends; a stray is
reported once seen, unowned, in looks at least ``CONFIRM_AFTER`` seconds of real time
apart (a socket Python is making, or accepting, is briefly a descriptor before its
object owns it, and a loaded machine may deschedule the thread in between). A look
reads the descriptors, then takes the lock to compare: a listing read before the
newest one a watch has applied is ignored there (the sampler, descheduled between the
two, would otherwise undo what the interception's end had just seen), and the end
looks again until what it saw is confirmed or gone. Its description (protocol, local
and peer address, TCP state) comes from ``/proc/net/{tcp,tcp6,udp,udp6,unix}``.
``Interception.__exit__`` raises
``SockfakeRuntimeError`` naming them, which fails the test.

A Python socket object owns the socket its descriptor named when a look first read it:
a descriptor closed behind the object's back and given to C code's next socket stays
C code's.

What this cannot see: a socket that lives less than ``CONFIRM_AFTER`` (a short request
by a C client; the simulated ports and the past epoch make most such calls fail at
once instead); a C socket given the number of a Python socket object's descriptor
closed behind its back before any look read that object (looks are
``SAMPLE_INTERVAL`` apart). It cannot tell C code in the simulated thread from C code
in another thread of the process (a real gRPC server run beside a simulated test is
reported too, unless the test allows it). Without ``/proc`` (not Linux) it does nothing.

A test that uses real endpoints on purpose names them (``allow_real``, validated in
``allow_real``): a confirmed socket whose local or peer address is one of them is
expected, not reported; ``"all"`` starts no watch at all.
"""

from __future__ import annotations

import os
import socket
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

from sockfake.network import SockfakeRuntimeError
from sockfake.sim.intercept.allow_real import AllowReal, RealEndpoint, canonical_host
from sockfake.sim.intercept.dispatch import REAL as _real
from sockfake.sim.kernel.thread_hooks import _original_start

__all__ = [
    "CONFIRM_AFTER",
    "KNOWN_C_CLIENTS",
    "Listing",
    "SAMPLER_IDLE_EXIT",
    "SAMPLE_INTERVAL",
    "StraySocket",
    "Watch",
    "begin",
    "check_run",
    "describe",
    "end",
    "list_sockets",
    "look_now",
    "mark_delivered",
    "note_python_socket",
    "socket_inodes",
]

SAMPLE_INTERVAL = 0.05
CONFIRM_AFTER = 0.2
KNOWN_C_CLIENTS = (
    "ctypes calls into libc",
    "libcurl (pycurl)",
    "libpq (psycopg2, psycopg's C implementation)",
    "gRPC's core (grpcio)",
    "other C database and broker drivers (mysqlclient, librdkafka, hiredis-based clients)",
)
_FD_DIR = "/proc/self/fd"
_TCP_STATES = {
    "01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
    "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
    "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING",
}  # fmt: skip

# Socket objects Python made while a simulation was intercepted: weakly (when one is
# collected its descriptor is closed too), with the inode their descriptor had when a
# look first read it (None before): a descriptor closed behind its object's back
# (``os.close(sock.fileno())``, C code closing what it shared) leaves the object with
# a number the kernel may give C code's next socket, which the object does not own.
# The C type's own objects, which take no weak reference, are held strongly until a
# look has read their descriptor. Both are changed under ``_lock`` only: the audit
# hook adds from any thread while a look iterates.
_python_sockets: weakref.WeakKeyDictionary[Any, int | None] = weakref.WeakKeyDictionary()
_unreferenceable: list[Any] = []
# The inodes those objects had when a look read them: still Python's after the object
# lets go of its descriptor (``detach()``, as multiprocessing's pipes do).
_python_inodes: set[int] = set()
_watches: list[Watch] = []
_lock = _real["allocate_lock"]()
_sleeper = _real["allocate_lock"]()
_sleeper.acquire()  # never released: acquire(timeout=) on it is a real-time sleep
_sampler_running = False
# Some watch has seen a stray during its run: the clocks ask check_run() (one read of a
# module global on each clock read while nothing is seen).
alarmed = False


def check_run(kernel: Any) -> None:
    """Fail the run now if a stray was seen in it: raised once, in its main thread, at
    its next clock read (C code that blocks a simulated thread, such as gRPC's
    completion queue, would otherwise keep the test waiting)."""
    if kernel.thread_for_caller() is not kernel.root:
        return
    with _lock:
        for watch in _watches:
            if watch.kernel is kernel and watch.strays and watch.raised is None:
                error = watch.raised = watch.error()
                break
        else:
            return
    if error is not None:
        raise error


def note_python_socket(sock: Any) -> None:
    """A socket object Python is making (the audit hook's ``socket.__new__``)."""
    with _lock:
        try:
            _python_sockets[sock] = None
        except TypeError:  # the C type (socket.SocketType): held until a look reads it
            _unreferenceable.append(sock)


@dataclass(frozen=True)
class Listing:
    """The process's sockets as one read of ``/proc/self/fd`` saw them ({inode:
    descriptor}), and when the read began and ended (real monotonic seconds)."""

    inodes: dict[int, int]
    started: float
    finished: float


def list_sockets() -> Listing:
    started = _real["monotonic"]()
    inodes = socket_inodes()
    return Listing(inodes, started, _real["monotonic"]())


def socket_inodes() -> dict[int, int]:
    """The process's sockets: {inode: descriptor} from ``/proc/self/fd``."""
    found: dict[int, int] = {}
    try:
        names = os.listdir(_FD_DIR)
    except OSError:
        return found
    for name in names:
        try:
            target = os.readlink(f"{_FD_DIR}/{name}")
        except OSError:  # closed meanwhile, or the listing's own descriptor
            continue
        if target.startswith("socket:["):
            found[int(target[8:-1])] = int(name)
    return found


def _inode_of(sock: Any, by_fd: dict[int, int]) -> int | None:
    try:
        return by_fd.get(sock.fileno())
    except (OSError, ValueError, AttributeError):
        return None


def _python_owned(inodes: dict[int, int]) -> set[int]:
    """The inodes Python's socket objects own (called under ``_lock``)."""
    by_fd = {fd: inode for inode, fd in inodes.items()}
    owned = set()
    for sock, first in list(_python_sockets.items()):
        inode = _inode_of(sock, by_fd)
        if inode is None:
            continue
        if first is None:
            _python_sockets[sock] = inode
        elif inode != first:
            continue  # its number now names another socket: closed behind its back
        owned.add(inode)
    waiting = []
    for sock in _unreferenceable:
        inode = _inode_of(sock, by_fd)
        if inode is None:
            waiting.append(sock)  # no descriptor yet (or closed): looked at again
        else:
            _python_inodes.add(inode)
    _unreferenceable[:] = waiting
    _python_inodes.update(owned)
    return _python_inodes


@dataclass
class StraySocket:
    """A real socket no Python socket object owns, as the kernel describes it."""

    fd: int
    inode: int
    description: str = "a socket"

    def __str__(self) -> str:
        return f"descriptor {self.fd}: {self.description}"


def _ipv4(text: str) -> str:
    return socket.inet_ntop(socket.AF_INET, bytes.fromhex(text)[::-1])


def _ipv6(text: str) -> str:
    raw = bytes.fromhex(text)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)


def _address(text: str, family: str) -> RealEndpoint:
    """A /proc/net table's address; an IPv4 peer of an IPv6 socket (gRPC's, for one)
    reads as IPv4."""
    address, _, port = text.partition(":")
    host = _ipv4(address) if family == "4" else canonical_host(_ipv6(address))
    return RealEndpoint(host=host, port=int(port, 16))


def _shown(address: RealEndpoint) -> str:
    host = f"[{address.host}]" if ":" in address.host else address.host
    return f"{host}:{address.port}"


@dataclass(frozen=True)
class _Seen:
    """One socket as the kernel's tables list it: its text and its addresses."""

    text: str
    addresses: tuple[RealEndpoint, ...]


def _read_tables(inodes: set[int]) -> dict[int, _Seen]:
    found: dict[int, _Seen] = {}
    for table, protocol, family in (
        ("tcp", "TCP", "4"), ("tcp6", "TCP", "6"), ("udp", "UDP", "4"), ("udp6", "UDP", "6"),
    ):  # fmt: skip
        try:
            with open(f"/proc/net/{table}") as lines:
                next(lines, None)
                for line in lines:
                    fields = line.split()
                    if len(fields) < 10 or int(fields[9]) not in inodes:
                        continue
                    local = _address(fields[1], family)
                    peer = _address(fields[2], family)
                    state = _TCP_STATES.get(fields[3], fields[3]) if protocol == "TCP" else ""
                    text = f"{protocol} {_shown(local)} -> {_shown(peer)}"
                    found[int(fields[9])] = _Seen(
                        f"{text} ({state})" if state else text, (local, peer)
                    )
        except OSError:
            continue
    try:
        with open("/proc/net/unix") as lines:
            next(lines, None)
            for line in lines:
                fields = line.split()
                if len(fields) >= 7 and int(fields[6]) in inodes:
                    path = fields[7] if len(fields) > 7 else ""
                    if path.startswith("@"):
                        path = "\0" + path[1:]
                    # A connected client's peer is not listed: only a bound name is.
                    found[int(fields[6])] = _Seen(
                        f"Unix socket {(path or '(unnamed)').replace(chr(0), chr(92) + '0')}",
                        (RealEndpoint(path=path),) if path else (),
                    )
    except OSError:
        pass
    return found


def describe(inodes: set[int]) -> dict[int, str]:
    """{inode: 'TCP 127.0.0.1:40312 -> 127.0.0.1:5432 (ESTABLISHED)'} for those the
    kernel's tables list (this network namespace's)."""
    return {inode: seen.text for inode, seen in _read_tables(inodes).items()}


@dataclass
class Watch:
    """One interception's look-out for strays (see the module docstring)."""

    label: str
    kernel: Any = None  # the intercepted network's
    baseline: set[int] = field(default_factory=set)
    # When the newest listing applied began: a listing read before it and applied
    # after it (a sampler descheduled between its read and the lock) is older news.
    listed: float = float("-inf")
    # The error check_run raised in the run, and whether it is known to have reached
    # the test (its outcome, or the exception leaving the interception): a raise that
    # a finalizer or a broad ``except`` swallowed is raised again when the watch ends.
    raised: SockfakeRuntimeError | None = None
    delivered: bool = False
    # Seen unowned in every look since (inode: real time first seen), not yet confirmed.
    pending: dict[int, float] = field(default_factory=dict)
    strays: dict[int, StraySocket] = field(default_factory=dict)
    # Real endpoints the test expects C code to use (``allow_real``), and the confirmed
    # sockets that had one of them: not reported, not looked at again.
    allowed: AllowReal = field(default_factory=AllowReal)
    expected: set[int] = field(default_factory=set)

    def look(self, listing: Listing, owned: set[int]) -> None:
        if listing.started < self.listed:
            return  # it would reset what a newer listing saw
        self.listed = listing.started
        new = {
            inode: fd
            for inode, fd in listing.inodes.items()
            if inode not in self.baseline and inode not in owned and inode not in self.expected
        }
        # Seen unowned from a read's end to the next one's start, at the least.
        self.pending = {inode: self.pending.get(inode, listing.finished) for inode in new}
        confirmed = [
            inode
            for inode, first in self.pending.items()
            if listing.started - first >= CONFIRM_AFTER
        ]
        if confirmed:
            seen = _read_tables(set(confirmed))
            for inode in confirmed:
                if inode in self.strays:
                    continue
                found = seen.get(inode)
                if found is not None and self.allowed.allows(found.addresses):
                    self.expected.add(inode)
                    del self.pending[inode]
                    continue
                text = found.text if found is not None else "a socket"
                self.strays[inode] = StraySocket(new[inode], inode, text)

    def error(self) -> SockfakeRuntimeError | None:
        if not self.strays:
            return None
        listed = "; ".join(str(stray) for stray in self.strays.values())
        return SockfakeRuntimeError(
            f"a real socket was opened by C code while {self.label} was intercepted: "
            f"{listed}. Python's socket module did not make it (the simulation sees "
            "every socket Python makes), so C code made its own system calls, which "
            "no simulation can intercept: it reached the real network. Code known to "
            f"do this: {', '.join(KNOWN_C_CLIENTS)}. Run that client outside the "
            "simulation, or give the code under test a client on Python sockets; if the "
            "test uses that real endpoint on purpose, say so: net.intercept(allow_real="
            "[(host, port)]) or the marker's allow_real= (see docs/concepts/boundary.md)."
        )


def _look_all(only: Watch | None = None) -> None:
    global alarmed
    listing = list_sockets()
    with _lock:  # the sampler and an interception's end may look at once
        owned = _python_owned(listing.inodes)
        for watch in _watches if only is None else [only]:
            watch.look(listing, owned)
            if watch.strays and watch.raised is None:
                alarmed = True


# Looks after the first that _confirming_looks makes at most: a socket appears unowned
# afresh at each (a real server accepting in a real thread) is left to the sampler.
_CONFIRM_ROUNDS = 3


def _confirming_looks(only: Watch | None = None) -> None:
    """Look, and while anything is unowned and not yet confirmed, look again once it
    can be (a wait that ends early, or a sighting that began later, gets another look)."""
    _look_all(only)
    for _ in range(_CONFIRM_ROUNDS):
        with _lock:
            watches = _watches if only is None else [only]
            firsts = [
                first
                for watch in watches
                for inode, first in watch.pending.items()
                if inode not in watch.strays
            ]
        if not firsts:
            return
        wait = max(firsts) + CONFIRM_AFTER - _real["monotonic"]()
        if wait > 0:
            _sleeper.acquire(True, wait)
        _look_all(only)


def look_now() -> None:
    """The sampler's look, on demand, confirmed at once (a test that holds a C client's
    connection open calls this; it may take ``CONFIRM_AFTER`` seconds or a little more)."""
    _confirming_looks()


# The sampler thread's name (intercept/threading_names.py hides it).
SAMPLER_NAME = "sockfake-stray-sockets"


# How long the sampler outlives the last watch (real seconds): a run of intercepted
# tests, each its own watch, keeps one thread instead of starting one every few tests.
SAMPLER_IDLE_EXIT = 1.0


def _sample() -> None:
    global _sampler_running
    idle_since: float | None = None
    while True:
        with _lock:
            if _watches:
                idle_since = None
            else:
                now = _real["monotonic"]()
                if idle_since is None:
                    idle_since = now
                elif now - idle_since >= SAMPLER_IDLE_EXIT:
                    _sampler_running = False
                    return
        if idle_since is None:
            _look_all()
        _sleeper.acquire(True, SAMPLE_INTERVAL)


def begin(label: str, kernel: Any, allowed: AllowReal | None = None) -> Watch | None:
    """Start watching for strays (None where there is no ``/proc/self/fd``, or when
    ``allowed`` is everything: the detector is off)."""
    global _sampler_running
    allowed = allowed if allowed is not None else AllowReal()
    if allowed.everything or not os.path.isdir(_FD_DIR):
        return None
    baseline = list_sockets()
    watch = Watch(label, kernel, set(baseline.inodes), listed=baseline.started,
                  allowed=allowed)
    with _lock:
        _watches.append(watch)
        start = not _sampler_running
        _sampler_running = True
    if start:
        # A real thread, in no simulation, and one of sockfake's helpers that code under
        # test does not see (threading.enumerate, active_count, _thread._count hide it
        # by name, as the watchdog): a raw thread could not be told from the test's own.
        sampler = threading.Thread(target=_sample, name=SAMPLER_NAME, daemon=True)
        _original_start(sampler)
    return watch


def _in_chain(error: BaseException, exc: BaseException | None) -> bool:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if exc is error:
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def mark_delivered(exc: BaseException) -> None:
    """``exc`` reached the test's outcome: a stray error raised in the run that it is,
    or that it chains to, is not raised again when its watch ends."""
    with _lock:
        for watch in _watches:
            if watch.raised is not None and _in_chain(watch.raised, exc):
                watch.delivered = True


def end(watch: Watch, leaving: BaseException | None = None) -> SockfakeRuntimeError | None:
    """Stop watching; the error naming what was seen, if anything was, unless the one
    raised in the run reached the test (``mark_delivered``, or ``leaving``: the
    exception the interception is left with)."""
    if leaving is not None:
        mark_delivered(leaving)
    _confirming_looks(watch)
    with _lock:
        if watch in _watches:
            _watches.remove(watch)
        if not _watches:
            global alarmed
            alarmed = False
            _unreferenceable.clear()
            _python_inodes.clear()
    return None if watch.delivered else watch.error()

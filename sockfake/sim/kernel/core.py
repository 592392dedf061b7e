"""The simulation kernel: virtual clock, timers, and a deterministic scheduler for real threads.

Every simulated thread is a real ``threading.Thread``, but exactly one of them holds
the *turn* at any moment; the others are parked on their own semaphore. A thread gives
up the turn only where it would block on the simulation (``Kernel.wait``): the kernel
then runs due timers, picks the next ready thread (FIFO, or seeded random), and when
nothing is ready jumps the clock to the next timer. Nothing ready and no timer is a
deadlock, reported with a dump of every thread and what it waits on.

Threads started (``threading.Thread.start``) by a simulated thread are adopted by its
kernel before they run, so the documentation's ``threading.Thread(target=
server.serve_forever).start()`` just works.

Why this module passes 600 lines: who holds the turn, the ready queue, the clock and
the failure a run ends with change together on every switch, and the deadlock and
stall checks read them all, so the scheduler's state machine stays in one class.
What can live apart does: the timers (``timers``), the thread record and its states
(``threads``), policies (``scheduling``), reports (``reports``), the main thread's
watchdog (``watchdog``), the turn (``turn``), the CPU pin (``cpu_pin``), the trace's
texts (``sockfake.sim.trace.texts``), the thread hooks (``thread_hooks``) and line
switch points (``line_switches``).
"""

from __future__ import annotations

import hashlib
import random
import re
import signal as _signal
import sys
import threading
import time as _real_time
import warnings
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, NoReturn

import sockfake.sim.kernel.line_switches as line_switches
import sockfake.sim.kernel.reports as reports
import sockfake.sim.trace.texts as texts
from sockfake.errors import (
    SimDeadlockError,
    SimStallError,
    SimThreadKilled,
    SimTimeLimitError,
    SimulationError,
    SockfakeRuntimeError,
    SockfakeTypeError,
    SockfakeValueError,
    SockfakeWarning,
)
from sockfake.sim.kernel.backends import Backend, make_backend
from sockfake.sim.kernel.cpu_pin import CpuPin
from sockfake.sim.kernel.scheduling import (
    POLICIES,
    SWITCH_POINTS,
    Policy,
    Recorder,
    SwarmDraw,
    check_pct_knob,
    draw_swarm,
    make_policy,
)
from sockfake.sim.kernel.systematic import FOLLOWS, WAKES, Systematic
from sockfake.sim.kernel.threads import SimThread, WaitQueue
from sockfake.sim.kernel.timers import Timer, Timers
from sockfake.sim.kernel.watchdog import RootWatchdog
from sockfake.sim.trace.recorder import (
    DEFAULT_PAYLOAD_LIMIT,
    DEFAULT_TRACE_LIMIT,
    LAZY,
    Lazy,
    Trace,
)

__all__ = [
    "Kernel",
    "SimulationError",
    "SimDeadlockError",
    "SimStallError",
    "SimTimeLimitError",
    "SimThreadKilled",
]


# The stdlib's own Thread.start, captured before thread_hooks replaces it: the
# watchdog's thread must never be adopted by a simulation.
_os_thread_start = threading.Thread.start

_local = threading.local()
_get_ident = threading.get_ident
_getframe = sys._getframe
_main_thread = threading.main_thread


def _kernel_stack() -> list[Kernel]:
    stack: list[Kernel] | None = getattr(_local, "kernels", None)
    if stack is None:
        stack = _local.kernels = []
    return stack


def current_kernel() -> Kernel | None:
    """The innermost open kernel the calling thread takes part in, if any."""
    stack = _kernel_stack()
    while stack and stack[-1].closed:
        stack.pop()
    return stack[-1] if stack else None


# A bound on settle()'s rounds, so threads waking each other forever at one instant
# cannot keep it from returning.
_SETTLE_STEPS = 100_000

# Trace kinds that are no progress: a thread timing out and waiting again.
_IDLE_KINDS = frozenset({"timeout", "switch"})
# Clock jumps in a row with only polling between them before it is a deadlock.
_IDLE_JUMPS_LIMIT = 1000

# A busy loop or a spin? (idle_poll, read_clock.) A thread's operations that bring
# nothing, counted in a row while nothing else happens in the simulation (no event, no
# poll that finds work, no wait): past one of these bounds the thread is taken to wait
# for time to pass, and the clock moves to the next event (or, with none, it is a spin
# that can never end). Empty non-blocking polls (select(0), EAGAIN) with no clock read
# between them: a polling loop is plain.
_SPIN_POLLS = 64
# Clock reads with no poll between them (``while time.monotonic() < deadline: pass``);
# high, so a long computation that reads the clock (or logs) is not taken for one.
_SPIN_READS = 100_000
# Polls, clock reads and sleep(0)s together. An event loop with work reads the clock
# between its select(0)s (asyncio's ``_run_once``), so neither count above grows for
# it; only an endless one reaches this bound.
_SPIN_OPS = 500_000
# Once the clock has moved for a spinning thread and nothing has happened since: its
# operations before the clock moves again.
_SPIN_AGAIN = 64
# A thread that reads the clock with nothing happening and nothing scheduled (a
# deadline loop on a stand-in selector that never blocks, CPython's test_base_events)
# waits for time only it can see pass: past the bounds above, each of its reads is
# charged this much virtual time, so a bounded loop ends as on the OS, and the same
# code gives the same clock (the count of reads, not real time, moves it). Past the
# network's spin_budget of charged time in a row it is a spin, reported with its frame.
SPIN_QUANTUM = 0.001
DEFAULT_SPIN_BUDGET = 60.0  # virtual seconds (SimNetwork(spin_budget=...))

_AUTO_THREAD_NAME = re.compile(r"Thread-\d+(?P<suffix> \(.*\))?")


def _kill_error(thread: SimThread) -> BaseException:
    """What a killed thread raises: its crash's error, or SimThreadKilled (a close)."""
    return thread.kill_error if thread.kill_error is not None else SimThreadKilled()


class Kernel:
    """Clock, timers, scheduler and trace for one simulated network."""

    def __init__(
        self,
        seed: int,
        *,
        scheduling: str = "fifo",
        time_limit: float | None = None,
        stall_timeout: float = 10.0,
        spin_budget: float = DEFAULT_SPIN_BUDGET,
        trace_limit: int | None = DEFAULT_TRACE_LIMIT,
        trace_payload_limit: int = DEFAULT_PAYLOAD_LIMIT,
        pct_depth: int | None = None,
        pct_steps: int | None = None,
        replay: Sequence[str] | None = None,
        switch_points: str | None = None,
        switch_packages: Sequence[str] = (),
        pin_cpu: bool = True,
        backend: str | None = None,
    ) -> None:
        if switch_points is not None and switch_points not in SWITCH_POINTS:
            raise SockfakeValueError(
                f"switch_points must be one of {', '.join(SWITCH_POINTS)}, not {switch_points!r}"
            )
        if scheduling not in POLICIES:
            raise SockfakeValueError(
                f"scheduling must be one of {', '.join(POLICIES)}, not {scheduling!r}"
            )
        if isinstance(switch_packages, str) or not all(
                isinstance(name, str) for name in switch_packages):
            raise SockfakeTypeError(
                f"switch_packages must be a list of package names, not {switch_packages!r}")
        for label, value in (("pct_depth", pct_depth), ("pct_steps", pct_steps)):
            if value is not None:
                check_pct_knob(label, value)
        self.seed = seed
        self.scheduling = scheduling
        # What the simulated threads run on (OS threads, or greenlets): see backends.
        self.backend: Backend = make_backend(backend)
        self._rngs: dict[str, random.Random] = {}
        # Under a swarm, this seed's configuration (None otherwise): what it drew.
        self.swarm: SwarmDraw | None = None
        policy_name = scheduling
        if scheduling == "swarm":
            self.swarm = draw_swarm(
                self.rng("swarm"), switch_points=switch_points,
                pct_depth=pct_depth, pct_steps=pct_steps,
            )
            policy_name = self.swarm.policy
            switch_points = self.swarm.switch_points
            pct_depth = self.swarm.pct_depth
            if self.backend.one_os_thread and switch_points != "calls":
                # The swarm's draw, as far as greenlets go (below): said, since races
                # only line or opcode switch points find then go unexplored.
                warnings.warn(
                    f"the greenlet backend runs this swarm seed's switch_points="
                    f"{switch_points!r} as 'calls': races on plain Python objects are not "
                    "explored; use backend='threads' to explore them",
                    SockfakeWarning, stacklevel=2)
                switch_points = "calls"
        if self.backend.one_os_thread and switch_points not in (None, "calls"):
            # A switch inside a sys.monitoring callback leaves the OS thread's events
            # off (CPython counts the callback as running), for every greenlet after it.
            raise SockfakeValueError(
                f"switch_points={switch_points!r} needs backend='threads': line and "
                "opcode switch points do not reach simulated threads that are greenlets")
        policy = make_policy(policy_name, self.rng("schedule"),
                             pct_depth=3 if pct_depth is None else pct_depth,
                             pct_steps=pct_steps, replay=replay)
        # The policy itself, unwrapped (an explorer reads a Systematic policy's log).
        self.base_policy = policy
        # Systematic exploration's partial-order reduction: told what each switch
        # point touches (``Systematic.access``); None under every other policy.
        self.access_observer: Callable[[SimThread, Hashable | None], None] | None = (
            policy.access if isinstance(policy, Systematic) else None)
        # The thread operation a running timer follows from: (its thread, the number of
        # accesses recorded before it); None outside a timer or when not systematic.
        self._timer_cause: tuple[str, int] | None = None
        # FIFO needs no record: its schedule follows from the code alone.
        self._recorder = Recorder(policy) if policy_name != "fifo" or replay else None
        self.policy: Policy = self._recorder or policy
        # May preemption_point() switch at all? Hot paths read it before calling in.
        self.preempts = self._recorder is not None
        self.switch_points: str = switch_points or "calls"
        self._line_switches = (
            None if self.switch_points == "calls" else line_switches.Switches(
                self, opcodes=self.switch_points == "opcodes", packages=switch_packages)
        )
        self._settling = False  # in settle(): the others run before the main thread
        self._idle_jumps = 0  # clock jumps in a row with nothing but polling between
        # Progress, counted: every event that is not idle (see _IDLE_KINDS) and every
        # poll that finds work adds one. A thread's empty polls and clock reads count
        # as a spin only while this stands still (idle_poll, read_clock).
        self._epoch = 0
        self._jump_epoch = -1  # the progress count at the last clock jump (_only_polling)
        self.time_limit = time_limit
        self.stall_timeout = stall_timeout
        self.spin_budget = spin_budget
        # An interception of this network has ended and none is active (set by
        # sockfake.sim.intercept): its main thread is plain Python again, so a thread it
        # starts gets the OS, like any thread outside (thread_hooks). Without any
        # interception, threads still join (the non-intercepted API: net.sleep...).
        self.interception_ended = False
        self.now = 0.0
        # How long a timeout of the calling thread takes in the network's time, when
        # hosts have clocks of their own (the network sets it; None: one clock for all).
        self.timeout_clock: Callable[[float], float] | None = None
        self.closed = False
        self.closing = False
        self.failure: SimulationError | None = None
        # Timers and the deadlines of timed waits; a deadline becomes a timer only when
        # the clock must move (most waits end with a reply first): see timers.py.
        self._timers = Timers(self._make_ready)
        self._ready: deque[SimThread] = deque()
        # Live threads only (a dict: start order, O(1) removal): a finished thread
        # leaves, so a long run's per-connection cost stays flat.
        self._threads: dict[SimThread, None] = {}
        self._thread_names: set[str] = set()  # every name given so far (kept unique)
        self._finished = 0  # threads that have finished and left ``_threads``
        self._by_ident: dict[int, SimThread] = {}
        self._thread_numbers = 0
        self._names: dict[str, int] = {}
        # Progress, counted: every call into the simulation and every switch adds one.
        # The stall detectors sample it (no clock read on the hot path): the turn is
        # "held without calling in" only while this number stands still.
        self.calls = 0
        self._seen_calls = -1
        self._seen_at = _real_time.monotonic()
        self._watchdog: RootWatchdog | None = None
        # The main thread waits for its turn while the watchdog watches the holder.
        self.root_awaiting_turn = False
        # Where the main thread last called in: the watchdog reports a stall only
        # while that code is still running (not for a network left behind).
        self._root_call_frame: Any = None
        self.trace = Trace(trace_limit, trace_payload_limit)
        self._pending_signals: list[int] = []  # signals for the main thread (deliver_signal)
        # Told when a simulated thread dies of an exception (its name, the exception):
        # True takes it (a testbed reports it as a failure), False leaves it to
        # threading.excepthook, as without a listener.
        self.on_thread_error: Callable[[str, BaseException], bool] | None = None
        self._signal_target: SimThread | None = None
        # Events go straight onto the trace's list (a C call, no frame), and the ring is
        # trimmed when it passes its high-water mark: see Trace.raw_events.
        self._trace_events = self.trace.raw_events
        self._trace_high = self.trace.high_water
        self._payload_limit = trace_payload_limit
        root = SimThread(self, "main", threading.current_thread())
        root.state = "running"
        self.root = root
        self.current = root
        self._threads[root] = None
        self._thread_names.add("main")
        root.ident = threading.get_ident()
        self._by_ident[root.ident] = root
        self.policy.adopt(root)
        _kernel_stack().append(self)
        # One thread runs at a time: on one CPU a handoff is a context switch, not a
        # cross-core wakeup (see cpu_pin.py). Threads started later inherit the pin.
        self.cpu_pin = CpuPin()
        if pin_cpu and not self.backend.one_os_thread:
            self.cpu_pin.pin()

    def next_name(self, kind: str) -> str:
        """``lock-3``: a stable name for a simulated object, numbered per network."""
        number = self._names[kind] = self._names.get(kind, 0) + 1
        return f"{kind}-{number}"

    # -- randomness -------------------------------------------------------------------

    def rng(self, concern: str) -> random.Random:
        """An independent random stream per concern, so turning on loss leaves scheduling alone."""
        stream = self._rngs.get(concern)
        if stream is None:
            digest = hashlib.sha256(f"{self.seed}/{concern}".encode()).digest()
            stream = self._rngs[concern] = random.Random(int.from_bytes(digest[:8], "big"))
        return stream

    # -- the running thread -----------------------------------------------------------

    def thread_for_caller(self) -> SimThread:
        """The calling thread's record; a clear error if it is not part of this simulation."""
        if self.closed:
            raise SockfakeRuntimeError(
                "the simulated network is closed: something made on it (a socket, a selector, "
                "an event loop, a server) is used after net.close(), such as an object "
                "kept from an earlier test; make it in the test that uses it"
            )
        self.calls += 1
        thread = self._by_ident.get(_get_ident())
        if thread is self.root:
            # This frame (root_still_in_caller() skips sockfake's own frames): compiled
            # by mypyc, a function has no frame, and 0 is then the nearest caller's.
            # The old frame is let go after the store, not during it: mypyc releases an
            # attribute's old value before it stores the new one, and the old frame may
            # hold the last reference to a socket whose finalizer calls back in here.
            previous = self._root_call_frame
            self._root_call_frame = _getframe(0)
            if previous is not None:  # read after the store: it keeps the old frame alive
                previous = None
        elif thread is None:
            raise SockfakeRuntimeError(
                f"thread {threading.current_thread().name!r} is not part of this simulated "
                "network: simulated sockets are used from the thread that created the "
                "network and from threads it (or its threads) started"
            )
        return thread

    def is_simulated_caller(self) -> bool:
        """Is the calling thread one of this simulation's threads?"""
        return _get_ident() in self._by_ident

    def is_simulated_ident(self, ident: int) -> bool:
        """Is ``ident`` (a ``threading.get_ident()``) one of this simulation's threads?"""
        return ident in self._by_ident

    def simulated_thread(self, ident: int) -> SimThread | None:
        """The simulated thread whose ``threading.get_ident()`` is ``ident``, if any."""
        return self._by_ident.get(ident)

    def current_name(self) -> str:
        thread = self._by_ident.get(threading.get_ident())
        return thread.name if thread is not None else threading.current_thread().name

    # The fields are spelled out, not **fields: on the hot path a keyword dict built
    # here and unpacked again costs more than the event itself. The tuple goes straight
    # onto the trace's list (a C call), not through Trace.add or Trace.append: no frame
    # per event.
    def record(self, kind: str, details: str | Lazy = "", *, src: Any = None, dst: Any = None,
               conn: int | None = None, seq: int | None = None, length: int | None = None,
               payload: bytes | None = None, reason: str | None = None) -> None:
        """An event of the running thread (fields: see ``TraceEvent``)."""
        if kind not in _IDLE_KINDS:
            self._epoch += 1
        if payload is not None and len(payload) > self._payload_limit:
            payload = payload[: self._payload_limit]
        events = self._trace_events
        if details.__class__ is tuple and details:  # a Lazy: flat (see trace.LAZY)
            events.append((self.now, self.current.name, kind, LAZY, src, dst, conn, seq,
                           length, payload, reason) + details)
        else:
            events.append((self.now, self.current.name, kind, details, src, dst, conn, seq,
                           length, payload, reason))
        if len(events) > self._trace_high:
            self.trace.trim()

    def record_net(self, kind: str, details: str | Lazy = "", *, src: Any = None,
                   dst: Any = None, conn: int | None = None, seq: int | None = None,
                   length: int | None = None, payload: bytes | None = None,
                   reason: str | None = None) -> None:
        """An event of the network itself (a delivery, a drop, a reset)."""
        self._epoch += 1
        if payload is not None and len(payload) > self._payload_limit:
            payload = payload[: self._payload_limit]
        events = self._trace_events
        if details.__class__ is tuple and details:  # a Lazy: flat (see trace.LAZY)
            events.append((self.now, "net", kind, LAZY, src, dst, conn, seq, length, payload,
                           reason) + details)
        else:
            events.append((self.now, "net", kind, details, src, dst, conn, seq, length,
                           payload, reason))
        if len(events) > self._trace_high:
            self.trace.trim()

    @property
    def schedule(self) -> list[str]:
        """The decisions this run's scheduler made where there was a choice (replayable
        with ``replay=``); empty under FIFO, which needs none."""
        return list(self._recorder.decisions) if self._recorder is not None else []

    # -- timers (sockfake.sim.kernel.timers) ---------------------------------------------

    def call_at(self, when: float, callback: Callable[[], None],
                wakes: SimThread | None = None) -> Timer:
        """Run ``callback`` at virtual time ``when`` (now, if that has passed)."""
        if self.access_observer is not None:
            callback = self._with_cause(callback)
        return self._timers.call_at(max(when, self.now), callback, wakes)

    def _with_cause(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Systematic exploration: a timer asked for by a thread's operation (a
        packet's delivery after a send) runs after that operation, so a thread it wakes
        follows it (``FOLLOWS``); one asked for by a timer inherits that one's cause."""
        cause = self._timer_cause
        if not self._timers.running:
            policy = self.base_policy
            if not (isinstance(policy, Systematic) and _get_ident() in self._by_ident):
                return callback
            cause = (self.current.name, len(policy.accesses))
        if cause is None:
            return callback

        def caused() -> None:
            self._timer_cause = cause
            try:
                callback()
            finally:
                self._timer_cause = None

        return caused

    # -- blocking and switching -------------------------------------------------------

    def wait(
        self,
        queues: Iterable[WaitQueue],
        deadline: float | None,
        what: str | Callable[[], str],
        on: object | None = None,
    ) -> bool:
        """Give up the turn until a queue is notified (True) or the deadline passes (False).

        ``what`` says what the thread waits on, for deadlock dumps; a callable is only
        called if a dump needs it (a socket's repr on every blocking call adds up).
        ``on`` is the lock (with an ``owner``) or thread that must act before this one
        can go on: the dump follows these to name a wait-for cycle.
        """
        thread = self.thread_for_caller()
        queues = tuple(queues)
        while True:  # once, unless a signal interrupts a wait on time alone
            if thread.killed:
                raise _kill_error(thread)
            if self.failure is not None and not self.closing:
                raise self.failure
            if deadline is not None and deadline <= self.now:
                return False
            thread.idle_epoch = -1  # it waits: whatever it polled before was no spin
            for queue in queues:
                queue.waiters[thread] = None
            thread.wait_queues = queues
            thread.waiting_on = what
            thread.blocked_on = on
            if deadline is not None:
                self._timers.add_deadline(thread, deadline)
            thread.state = "blocked"
            self._switch_from(thread)
            # Read only while blocked (dumps); a description is often a closure over
            # the socket waited on, which the thread record would keep alive after the
            # socket is closed, and after the thread has finished (the Thread object
            # holds its record; threading holds that until the OS thread has unwound).
            thread.waiting_on = ""
            thread.blocked_on = None
            reason = thread.wake_reason
            if reason == "killed" or (thread.kill_error is not None and not self.closing):
                raise _kill_error(thread)
            if reason == "failed":
                assert self.failure is not None
                raise self.failure
            if self._pending_signals and thread is self._signal_target:
                self._run_signal_handlers()
            if reason != "signal":
                return reason == "notify"
            # A signal's handler ran and returned. A wait on queues ends as a spurious
            # wake-up: every caller looks at its condition again and waits on with the
            # same deadline (the handler may itself have made the condition true, and
            # the signal took the thread off its queues). A wait on time alone goes on
            # (PEP 475: sleep() and select() on nothing are retried).
            if queues:
                return True

    def yield_turn(self, what: str = "yield") -> None:
        """Let other ready threads run first (a scheduling point that does not block)."""
        thread = self.thread_for_caller()
        if thread.killed:
            raise _kill_error(thread)
        if not self._ready:
            return
        thread.state = "ready"
        thread.wake_reason = "yield"
        thread.waiting_on = what
        self._ready.append(thread)
        self._switch_from(thread)
        if thread.kill_error is not None and not self.closing:
            # A crash's kill (Kernel.kill) unwinds at once; close() lets a thread go on
            # to its next wait, as it always has (raising here during close left a
            # thread blocked in C code, gRPC's, and the interpreter's exit waiting).
            raise thread.kill_error
        if self._pending_signals and thread is self._signal_target:
            self._run_signal_handlers()

    def made_progress(self) -> None:
        """Something happened that no trace event shows (a poll found work): a thread
        polling around it is a busy loop, not a spin."""
        self._epoch += 1

    def found_ready(self, what: str) -> None:
        """A poll found a socket ready: work for the thread, so threads polling around
        it are in a busy loop, not a spin. Unless nothing at all has happened since
        the thread's last poll: a loop on readiness it does nothing with (a
        dispatcher that stays writable while it waits for its peer, as asyncore's
        TLS shutdown does) waits for time to pass, as one that finds nothing does
        (``idle_poll``): on Linux it would spin until a timer (a delayed ACK) fires."""
        thread = self.current  # (the caller: a poll runs in the thread with the turn)
        if thread.ready_epoch == self._epoch:
            self.idle_poll(what)
            return
        self._epoch += 1
        thread.ready_epoch = self._epoch

    def idle_poll(self, what: str) -> None:
        """A non-blocking call found nothing (select(0), EAGAIN): a thread may be spinning.

        Other ready threads run first. A busy loop (an event loop with work, reading
        the clock between its polls; polls separated by events) costs no virtual time.
        A thread that only polls, with nothing happening anywhere, waits for time to
        pass as a real one would: after ``_SPIN_POLLS`` such polls the clock moves to
        the next event. With nothing scheduled either, the poll can never succeed: a
        spin, reported with the thread's frame.
        """
        thread = self.thread_for_caller()
        if thread.idle_epoch != self._epoch:
            self._restart_idle(thread)
        thread.idle_reads = 0
        thread.idle_polls += 1
        thread.idle_ops += 1
        if self._ready:
            self.yield_turn(what)
            return
        if thread.spinning:
            if thread.idle_ops >= _SPIN_AGAIN:
                self._spin(thread, what)
        elif thread.idle_polls >= _SPIN_POLLS or thread.idle_ops >= _SPIN_OPS:
            self._spin(thread, what)

    def read_clock(self) -> float:
        """The virtual clock as a simulated thread's code reads it (``time.monotonic()``
        under interception). Reads in a row with nothing else happening are counted: a
        loop on a frozen clock (``while time.monotonic() < deadline: pass``) waits for
        time to pass, so past ``_SPIN_READS`` the clock moves on for it (or, with
        nothing scheduled, it is a spin, reported with its frame)."""
        thread = self._by_ident.get(_get_ident())
        if thread is None or thread is not self.current or self.closing:
            return self.now
        self.calls += 1
        if thread.idle_epoch != self._epoch:
            self._restart_idle(thread)
        thread.idle_polls = 0
        thread.idle_reads += 1
        thread.idle_ops += 1
        thread.idle_clock = True
        if thread.charged is not None:
            self._spin(thread, "the clock")  # each read is charged (_charge_read)
        elif thread.spinning:
            if thread.idle_ops >= _SPIN_AGAIN:
                self._spin(thread, "the clock")
        elif thread.idle_reads >= _SPIN_READS or thread.idle_ops >= _SPIN_OPS:
            self._spin(thread, "the clock")
        elif self._ready and thread.idle_reads % _SPIN_POLLS == 0:
            # Clock reads with nothing happening while others could run: it likely
            # waits for them (an event loop on a selector that returns at once), so
            # they run now, not after _SPIN_READS reads.
            self.yield_turn("the clock")
        return self.now

    def _yield_idle(self) -> None:
        """``sleep(0)``: others run first; with none ready, an operation that brought
        nothing (only ``_SPIN_OPS`` of them in a row make a spin: a computation may
        yield often)."""
        thread = self.thread_for_caller()
        if self._ready or thread.killed:
            self.yield_turn("sleep(0)")
            return
        if thread.idle_epoch != self._epoch:
            self._restart_idle(thread)
        thread.idle_ops += 1
        if thread.idle_ops >= (_SPIN_AGAIN if thread.spinning else _SPIN_OPS):
            self._spin(thread, "sleep(0)")

    def _restart_idle(self, thread: SimThread) -> None:
        """Something happened since ``thread`` last polled: its counts start again."""
        thread.idle_epoch = self._epoch
        thread.idle_polls = thread.idle_reads = thread.idle_ops = 0
        thread.spinning = False
        thread.spin_jumps = 0
        thread.idle_clock = False
        thread.charged = None

    def _spin(self, thread: SimThread, what: str) -> None:
        """``thread`` polls (or reads the clock) and nothing happens: it waits for time
        to pass. Ready threads run first; else the clock moves to the next event. With
        no event, or when the clock has moved ``_IDLE_JUMPS_LIMIT`` times for its polls
        alone and nothing came of it, the loop cannot end: the run fails, naming it."""
        if self.closing:
            return
        if self.failure is not None:
            self._stop_spinner(thread, self.failure)
        self._timers.run_due(self.now)
        if self._ready:
            # The others run first; what they do may be what it waits for (a result
            # handed over quietly, with no trace event), so its counts start again.
            self.yield_turn(what)
            thread.idle_polls = thread.idle_reads = thread.idle_ops = 0
            return
        if thread.idle_polls == thread.idle_ops and not thread.idle_clock:
            doing = f"busy-polls ({what})"
        elif thread.idle_reads == thread.idle_ops:
            doing = "reads the clock"
        else:
            doing = "busy-polls and reads the clock"
        first = self._timers.next_timer()
        if first is None and thread.idle_clock:
            self._charge_read(thread, doing)
            return
        if first is None:
            self._stop_spinner(thread, SimDeadlockError(reports.spin_message(
                self, thread, doing, "no other thread can run and nothing is scheduled")))
        thread.charged = None  # an event to wait for: the clock jumps to it
        next_time = first.when
        self._check_spin_time_limit(thread, next_time, doing)
        if thread.spinning and thread.idle_polls == thread.idle_ops:
            # Polls alone, and the clock moved for them before: does time help them?
            thread.spin_jumps += 1
            if thread.spin_jumps >= _IDLE_JUMPS_LIMIT:
                self._stop_spinner(thread, SimDeadlockError(reports.spin_message(
                    self, thread, doing, f"the clock has moved {_IDLE_JUMPS_LIMIT} times "
                    "for it and nothing came of it")))
        self.trace.add(next_time, "clock", "jump", Lazy((texts.JUMP, self.now, next_time)))
        self.now = next_time
        thread.spinning = True
        thread.idle_polls = thread.idle_reads = thread.idle_ops = 0
        self._timers.run_due(self.now)
        if self._ready:
            self.yield_turn(what)

    def _charge_read(self, thread: SimThread, doing: str) -> None:
        """``thread`` reads the clock, nothing else happens and nothing is scheduled:
        only its own reads can see time pass, so each is charged ``SPIN_QUANTUM`` of
        virtual time (no trace event: the count of reads, which the code fixes, moves
        the clock, so a seed still gives one digest). Past ``spin_budget`` charged in a
        row, or past the time limit, the loop is taken never to end: reported."""
        charged = (thread.charged or 0.0) + SPIN_QUANTUM
        if charged > self.spin_budget:
            self._stop_spinner(thread, SimDeadlockError(reports.spin_message(
                self, thread, doing, "no other thread can run, nothing is scheduled, and "
                f"its reads have been charged the spin budget of {self.spin_budget:g} s "
                "of virtual time")))
        next_time = self.now + SPIN_QUANTUM
        self._check_spin_time_limit(thread, next_time, doing)
        self.now = next_time
        thread.charged = charged
        thread.spinning = True
        thread.idle_polls = thread.idle_reads = thread.idle_ops = 0

    def _check_spin_time_limit(self, thread: SimThread, next_time: float, doing: str) -> None:
        """The clock is about to move to ``next_time`` for a spinning ``thread`` (a jump
        to the next event, or a charged read): past the time limit the run ends."""
        if self.time_limit is not None and next_time > self.time_limit:
            self._stop_spinner(thread, SimTimeLimitError(
                f"virtual time limit of {self.time_limit:g} s reached while "
                f"{thread.name!r} {doing}\n" + self.dump()
            ))

    def _stop_spinner(self, thread: SimThread, error: SimulationError) -> NoReturn:
        """The run ends with ``error``: raised in the main thread. Another thread
        that spins stays parked (close() unwinds it), so it cannot spin on."""
        # Its counts start again: the clean-up the error runs through (an event loop's
        # shutdown) may poll a few times, and must not raise a second report over it.
        thread.idle_epoch = -1
        if thread is self.root or self.closing:
            raise error
        if self.failure is None:
            self._fail(error)
        thread.state = "blocked"
        thread.waiting_on = "nothing: stopped, the run failed (see above)"
        self._switch_from(thread)
        if thread.killed:
            raise SimThreadKilled()
        raise error

    # -- signals ----------------------------------------------------------------------

    def deliver_signal(self, signum: int, from_timer: bool = False) -> bool:
        """A simulated thread signals the process (``net.intercept()``'s
        ``signal.pthread_kill``). Python runs a handler on the main thread only, so the
        handler runs there, on its next turn, in virtual time: deterministically, where
        a real signal would run it whenever the main thread next got the GIL. A wait
        it interrupts goes on afterwards. False when the main thread is not a simulated
        thread, or is the caller: the caller sends the real signal. ``from_timer``: a
        virtual interval timer's signal (``signal.setitimer``), sent by no thread, so
        the main thread gets it even while it holds the turn."""
        main = self._by_ident.get(_main_thread().ident or -1)
        if main is None or (main is self.current and not from_timer):
            return False
        signum = int(signum)  # a plain number: an enum's text differs between versions
        self._signal_target = main
        self._pending_signals.append(signum)
        self.record("signal", f"signal {signum} for {main.name}", reason=str(signum))
        self._make_ready(main, "signal")  # a no-op unless it is blocked
        return True

    def _run_signal_handlers(self) -> None:
        """The handlers of the signals sent to the main thread, in order (on it). One at
        a time: if a handler raises, the signals after it stay pending, as in CPython."""
        pending = self._pending_signals
        while pending:
            signum = pending.pop(0)
            handler = _signal.getsignal(signum)
            if callable(handler):  # it may have been reset since
                handler(signum, sys._getframe(0))

    def preemption_point(self, what: str, resource: Hashable | None = None,
                         before: bool = False) -> None:
        """A switch point: when exploring (random, pct, replay) the policy may hand the
        turn to another ready thread here. Every simulated operation is one; the
        per-message ones call it only ``if kernel.preempts`` (a call saved under FIFO).

        ``resource``: what the operation next to this point touches (a connection, a
        lock, a queue), for systematic exploration's partial-order reduction: two
        threads' operations on one resource are dependent; None: unknown, dependent
        with everything. The operation is the one just done (a send, a release), or
        with ``before=True`` the one about to be done (an acquire)."""
        # Only a simulated thread is switched: a thread outside the simulation may set
        # an event or release a lock of it, and must not give up a turn it never had.
        observer = self.access_observer
        if observer is not None and _get_ident() in self._by_ident:
            # The operation belongs to the stretch of code it is in: the one the
            # decision here ends, or (before=True) the one it starts.
            if not before:
                observer(self.current, resource)
            if self._ready and self.policy.preempt(self.current, self._ready):
                self.yield_turn(what)
            if before:
                observer(self.current, resource)
            return
        if (self.preempts and self._ready and _get_ident() in self._by_ident
                and self.policy.preempt(self.current, self._ready)):
            self.yield_turn(what)

    def _make_ready(self, thread: SimThread, reason: str) -> None:
        if thread.state != "blocked":
            return
        if reason != "timeout":
            # A waiter woken by another thread (an event set, a lock released) is
            # progress: a thread that spins meanwhile counts its operations again.
            self._epoch += 1
        thread.stop_waiting()
        thread.wake_reason = reason
        thread.state = "ready"
        self._ready.append(thread)
        if (self.access_observer is not None and reason == "notify"
                and not self._timers.running and _get_ident() in self._by_ident):
            # The running thread's operation woke it: what it does next follows that
            # operation (systematic exploration's happens-before).
            self.access_observer(self.current, (WAKES, thread.name))
        elif self._timer_cause is not None and self.access_observer is not None:
            self.access_observer(thread, (FOLLOWS, *self._timer_cause))

    def _pick_next(self) -> SimThread | None:
        while True:
            self._timers.run_due(self.now)
            if self._ready:
                if self.preempts and len(self._ready) > 1:
                    candidates: Sequence[SimThread] = self._ready
                    if self._settling and self.root in candidates:
                        # settle() waits for the others: a policy that prefers the main
                        # thread (PCT's priorities) would hand it straight back, and
                        # a thread about to finish would be taken for a leak.
                        candidates = [thread for thread in self._ready if thread is not self.root]
                    chosen = candidates[self.policy.pick(candidates)]
                    self._ready.remove(chosen)
                    return chosen
                if self.access_observer is not None:
                    # Systematic exploration: a turn given without a choice is a turn
                    # still (its accesses belong to it, not to the thread's last one).
                    self.policy.pick(self._ready)
                return self._ready.popleft()
            if self.closing:
                return None
            first = self._timers.next_timer()
            if first is None:
                return self._fail(SimDeadlockError(self._deadlock_message()))
            next_time = first.when
            if self.time_limit is not None and next_time > self.time_limit:
                return self._fail(
                    SimTimeLimitError(
                        f"virtual time limit of {self.time_limit:g} s reached "
                        f"(next event at {next_time:.6f} s)\n" + self.dump()
                    )
                )
            if self._only_polling():
                return self._fail(SimDeadlockError(
                    "deadlock: the main thread waits for good and the other threads only "
                    f"poll ({_IDLE_JUMPS_LIMIT} timeouts in a row with nothing else "
                    "happening)\n" + self.dump()
                ))
            self.trace.add(next_time, "clock", "jump", Lazy((texts.JUMP, self.now, next_time)))
            self.now = next_time

    def _only_polling(self) -> bool:
        """Has the clock only moved for threads that wake, find nothing, and wait again,
        while the main thread waits without a deadline? Then nothing can ever happen
        (a server in serve_forever(0.5) while the test waits on what never comes)."""
        if self._epoch != self._jump_epoch:
            self._jump_epoch = self._epoch
            self._idle_jumps = 0
            return False
        self._idle_jumps += 1
        if self._idle_jumps < _IDLE_JUMPS_LIMIT:
            return False
        root = self.root
        if root.state != "blocked" or root.timer is not None:
            return False
        return all(
            timer.wakes is not None and not timer.wakes.sleeping
            for timer in self._timers.live()
        )

    def _fail(self, error: SimulationError) -> SimThread | None:
        """Hand a fatal error to the root thread, which raises it in the test."""
        self.failure = error
        self.trace.add(self.now, "kernel", "fail", type(error).__name__)
        root = self.root
        if root.state == "blocked":
            root.stop_waiting()
            root.wake_reason = "failed"
            root.state = "ready"
            return root
        return None

    def _switch_from(self, thread: SimThread) -> None:
        """The running ``thread`` stops; run the next one and wait for the turn to return."""
        if self.failure is not None and thread is not self.root and not self.closing:
            # After a failure only the root thread runs; everyone else stays parked.
            nxt: SimThread | None = self.root if self.root.state == "ready" else None
            if nxt is not None and nxt in self._ready:
                self._ready.remove(nxt)
        else:
            nxt = self._pick_next()
        if nxt is thread:
            thread.state = "running"
            return
        if nxt is not None:
            self._hand_turn(nxt)
        self._await_turn(thread)

    def _hand_turn(self, nxt: SimThread) -> None:
        nxt.state = "running"
        if self.current is not nxt:
            # Why this thread runs now: notify, timeout, start, yield, failed, killed.
            reason = nxt.wake_reason
            events = self._trace_events
            events.append((self.now, nxt.name, "switch", reason, None, None, None, None, None,
                           None, reason))
            if len(events) > self._trace_high:
                self.trace.trim()
        self.current = nxt
        self.calls += 1
        nxt.go.release()

    def _await_turn(self, thread: SimThread) -> None:
        if thread is not self.root:
            thread.go.acquire()
            return
        watchdog = self._watchdog
        if watchdog is not None and watchdog.watching:
            # The watchdog's thread watches the holder while the main thread waits
            # (stall_from_outside); a plain wait saves a poll() and a clock read on
            # every handoff back to the main thread.
            self.root_awaiting_turn = True
            try:
                thread.go.acquire()
            finally:
                self.root_awaiting_turn = False
            return
        # No watchdog thread (none started yet, or none could be): the root thread
        # watches for a thread that holds the turn and never calls in: it is blocked
        # outside the simulation (time.sleep, queue.Queue.get, a lock). Only time with
        # no call and no switch counts: a thread busy in the simulation's own work
        # (starting thousands of threads in one turn) calls in all along and is never
        # taken for stalled.
        seen = self.calls
        since = _real_time.monotonic()
        while not thread.go.acquire(timeout=0.05):
            holder = self.current
            now = _real_time.monotonic()
            if self.calls != seen:
                seen = self.calls
                since = now
                continue
            held = now - since
            if held > self.stall_timeout and holder is not thread and holder.state == "running":
                self._fail_stalled(holder, held)
                return

    def stall_from_outside(self, holder: SimThread, held: float) -> None:
        """The watchdog's thread found ``holder`` keeping the turn for ``held`` real
        seconds without calling in while the main thread waits for it: fail the run
        and hand the main thread the turn, where ``wait()`` raises the failure."""
        if (self.failure is not None or self.current is not holder
                or holder.state != "running" or not self.root_awaiting_turn):
            return
        self._fail_stalled(holder, held)
        self.root.go.release()

    def _fail_stalled(self, holder: SimThread, held: float) -> None:
        """``holder`` stalled: the run fails, and the turn is the main thread's, woken
        as failed (its ``wait()`` raises the failure)."""
        root = self.root
        self.failure = SimStallError(self.stall_message(holder, held))
        self.current = root
        root.state = "running"
        root.wake_reason = "failed"
        root.stop_waiting()

    # -- threads ----------------------------------------------------------------------

    def adopt(self, thread: threading.Thread) -> SimThread:
        """Make a not-yet-started thread part of the simulation; it runs when scheduled.

        It runs on the host its creator runs on, unless ``Host.thread()`` made it for
        another (``_sockfake_host``)."""
        parent = self.thread_for_caller()
        self._thread_numbers += 1
        match = _AUTO_THREAD_NAME.fullmatch(thread.name)
        if match is not None:
            # Auto names count across the process; renumber per network for determinism.
            thread.name = f"Thread-{self._thread_numbers}{match.group('suffix') or ''}"
        name = thread.name
        if name in self._thread_names:
            name = f"{name}#{self._thread_numbers}"
        self._thread_names.add(name)
        sim_thread = SimThread(self, name, thread)
        placed: object | None = getattr(thread, "_sockfake_host", None)
        sim_thread.host = placed if placed is not None else parent.host
        self._threads[sim_thread] = None
        self.record("thread-start", name)
        run = thread.run

        def run_in_simulation() -> None:
            sim_thread.go.acquire()
            sim_thread.ident = threading.get_ident()
            self._by_ident[sim_thread.ident] = sim_thread
            stack = _kernel_stack()
            if not stack or stack[-1] is not self:  # greenlets share their OS thread's
                stack.append(self)
            try:
                if not sim_thread.killed:
                    run()
            except SimThreadKilled:
                pass
            except SystemExit:
                raise  # a thread's way to end itself: threading.excepthook ignores it
            except BaseException as exc:
                # Not while the simulation has failed or is closing: that is reported.
                listener = self.on_thread_error
                if (listener is None or self.failure is not None or self.closing
                        or not listener(sim_thread.name, exc)):
                    raise
            finally:
                self._thread_exit(sim_thread)
                sim_thread.go.close()  # the turn has moved on; nobody hands it back

        switches = self._line_switches
        if switches is not None:
            inner = run_in_simulation

            def run_in_simulation() -> None:
                switches.run(inner)

        thread.run = run_in_simulation  # type: ignore[method-assign]
        thread._sockfake_thread = sim_thread  # type: ignore[attr-defined]
        sim_thread.state = "ready"
        sim_thread.wake_reason = "start"
        self.policy.adopt(sim_thread)
        self._ready.append(sim_thread)
        if self._watchdog is None and not self.backend.one_os_thread:
            self._watchdog = RootWatchdog(self, _os_thread_start)
        return sim_thread

    def kill(self, thread: SimThread, error: BaseException) -> None:
        """Unwind ``thread`` with ``error`` at its next simulated call (a host's crash):
        a blocked thread wakes to raise it now; a ready one raises it when it resumes;
        one not yet run never runs its target."""
        if thread.state == "finished" or thread is self.root or thread.killed:
            return
        thread.killed = True
        thread.kill_error = error
        self._make_ready(thread, "killed")

    def forget(self, thread: SimThread) -> None:
        """Drop a thread that never started (its OS thread could not be created)."""
        thread.state = "finished"
        if thread in self._ready:
            self._ready.remove(thread)
        self._threads.pop(thread, None)
        thread.go.close()
        self.trace.add(self.now, thread.name, "thread-exit", "not started")

    def _thread_exit(self, thread: SimThread) -> None:
        thread.state = "finished"
        self._by_ident.pop(_get_ident(), None)
        self._threads.pop(thread, None)
        self._finished += 1
        self.policy.forget(thread)
        thread.exited.notify_all()
        self._epoch += 1  # an exit is progress (a spinning thread counts again)
        self.trace.add(self.now, thread.name, "thread-exit", "")
        if self.closing:
            self._hand_turn(self.root)
            return
        if self.failure is not None:
            return
        nxt = self._pick_next()
        if nxt is not None:
            self._hand_turn(nxt)

    def deadline(self, timeout: float) -> float:
        """When a timed wait of ``timeout`` seconds that starts now ends: its seconds are
        the calling thread's host clock's, as the OS counts a timeout (a host whose clock
        runs fast times out early), for every primitive as for sockets and sleep."""
        convert = self.timeout_clock
        return self.now + (timeout if convert is None else convert(timeout))

    def join(self, thread: SimThread, timeout: float | None) -> bool:
        deadline = None if timeout is None else self.deadline(timeout)
        while thread.state != "finished":
            if not self.wait((thread.exited,), deadline, f"join {thread.name}", on=thread):
                break  # timed out (it may have finished at that very instant)
        return thread.state == "finished"

    def settle(self, timeout: float) -> None:
        """Let every other thread run until nothing more happens by ``now + timeout``.

        Returns once no thread is ready and no timer is due by then (everything left
        is blocked for good, or waits past the horizon). What is in flight (a FIN on a
        slow link, a handler finishing after its client closed) lands first, so a leak
        check afterwards judges only what would really be left behind.
        """
        deadline = self.now + timeout
        self._settling = True
        try:
            for _ in range(_SETTLE_STEPS):
                if self._ready:
                    self.yield_turn("settle")
                    continue
                self._timers.schedule_deadlines()
                live = [timer.when for timer in self._timers.live()]
                if not live or min(live) > deadline:
                    return
                self.wait((), min(live), "settle")
        finally:
            self._settling = False

    def sleep(self, seconds: float) -> None:
        if seconds < 0:
            raise SockfakeValueError(f"sleep length must be non-negative, not {seconds!r}")
        if seconds == 0:
            self._yield_idle()
            return
        deadline = self.now + seconds
        thread = self.thread_for_caller()
        thread.sleeping = True
        try:
            while self.now < deadline:
                self.wait((), deadline, f"sleep until {deadline:.6f}")
        finally:
            thread.sleeping = False

    # -- close ------------------------------------------------------------------------

    def close(self) -> None:
        """Unwind every parked thread (SimThreadKilled in each), then refuse further use."""
        if self.closed:
            return
        caller = self._by_ident.get(threading.get_ident())
        if caller is not None and caller is not self.current and self.failure is None:
            # The caller does not hold the turn (an exception, such as pytest-timeout's,
            # reached it while it waited for one): the thread that holds it runs on, so
            # no thread can be unwound safely. The network is closed all the same: left
            # open, it would stay the calling thread's simulation, and every later test
            # in the process would have its threads adopted by it and hang.
            self._abandon()
            self.cpu_pin.restore()
            raise SockfakeRuntimeError(
                "SimNetwork.close() called while another thread runs "
                f"({self.current.name} holds the turn): the network is closed, its "
                "threads are left where they wait"
            )
        self.closing = True
        me = caller or self.root
        for thread in list(self._threads):
            if thread is me or thread.state in ("finished", "running"):
                continue
            if thread.state == "new":
                continue
            thread.killed = True
            if thread in self._ready:
                self._ready.remove(thread)
            thread.stop_waiting()
            thread.wake_reason = "killed"
            me.state = "blocked"
            me.waiting_on = f"close: unwinding {thread.name}"
            self._hand_turn(thread)
            deadline = _real_time.monotonic() + self.stall_timeout
            while not me.go.acquire(timeout=0.05):
                if _real_time.monotonic() > deadline:
                    break  # the thread is stuck outside the simulation: leave it
            me.state = "running"
            self.current = me
        self._abandon()
        if caller is None or caller is self.root:
            self.root.go.close()
        self.cpu_pin.restore()
        self.backend.close()

    def _abandon(self) -> None:
        """Closed, and no longer any thread's simulation."""
        self.closing = True
        self.closed = True
        self._root_call_frame = None
        # current_kernel() would drop it lazily; a closed network's trace and threads
        # must not stay alive meanwhile (a process running many networks).
        stack = _kernel_stack()
        if self in stack:
            stack.remove(self)
        if self._watchdog is not None:
            self._watchdog.stop()
        self._timers.clear()
        self._ready.clear()

    # -- for the main thread's watchdog --------------------------------------------------

    def real_seconds_since_last_call(self) -> float:
        """Real time since a simulated thread last called in or the turn last moved, as
        seen by the caller's samples (the watchdog asks at least 4 times a timeout)."""
        now = _real_time.monotonic()
        if self.calls != self._seen_calls:
            self._seen_calls = self.calls
            self._seen_at = now
        return now - self._seen_at

    def has_pending_work(self) -> bool:
        """Could anything happen if the running thread gave up the turn?"""
        # Read only (the watchdog's thread asks): a pending deadline counts as a timer.
        return bool(self._ready) or self._timers.pending()

    def root_still_in_caller(self) -> bool:
        """Is the code that last called into the simulation still on the main thread's stack?"""
        root = self.root
        caller = self._root_call_frame
        while caller is not None and caller.f_globals.get("__name__", "").startswith(
            ("sockfake.", "threading")
        ):
            caller = caller.f_back
        if caller is None or root.thread is None or root.thread.ident is None:
            return False
        frame = sys._current_frames().get(root.thread.ident)
        while frame is not None:
            if frame is caller:
                return True
            frame = frame.f_back
        return False

    # -- reports (sockfake.sim.kernel.reports) ------------------------------------------------

    @property
    def threads(self) -> list[SimThread]:
        """The simulated threads not yet finished, in start order (a finished thread
        leaves the kernel's records; ``finished_threads`` counts them)."""
        return list(self._threads)

    @property
    def finished_threads(self) -> int:
        """How many simulated threads have finished so far."""
        return self._finished

    def dump(self) -> str:
        """Every live simulated thread, what it waits on and where; see ``reports``."""
        return reports.dump(self)

    def _deadlock_message(self) -> str:
        return (
            "deadlock: every simulated thread is waiting and nothing is scheduled\n"
            + self.dump()
        )

    def stall_message(self, holder: SimThread, held: float) -> str:
        return reports.stall_message(self, holder, held)

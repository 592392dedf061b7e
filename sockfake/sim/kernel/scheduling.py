"""Scheduling policies: which ready thread runs next, and when a running one yields.

The kernel asks a policy two things. ``pick(ready)``: an index into the ready threads
(FIFO takes the one that waited longest). ``preempt(current, ready)``: at a switch point
(every simulated operation: send, recv, accept, connect, close, a lock, an event, a
queue, a thread start; and with ``switch_points="lines"`` or ``"opcodes"`` every line or
bytecode of handler code), should the running thread give the turn up now?

- ``fifo``: never preempts; the longest-waiting thread runs. Deterministic whatever
  the seed: the default, for tests that are not about races.
- ``random``: a seeded random walk: preempts at every switch point, picks uniformly.
- ``pct``: probabilistic concurrency testing (Burckhardt et al., ASPLOS 2010): every
  thread gets a random priority, the highest-priority ready thread always runs, and at
  ``depth - 1`` random steps (out of ``steps``) the running thread's priority drops
  below everyone's. A bug that needs ``d`` specific orderings is found with probability
  at least 1/(n * k^(d-1)) per run, far better than a random walk for deep bugs.
  ``steps`` is how many decisions the change points are spread over; by default
  (``pct_steps=None``) it is fitted to the run as it goes: the change points are
  fractions of an estimated length that doubles whenever the run outgrows it, so a
  run of any length gets its change points inside it (a fixed 2000 left most
  handler-sized runs, 57-233 decisions, without any).
- ``swarm`` (what ``explore=N`` uses unless told otherwise): each seed draws its own
  configuration (``draw_swarm``): the policy (``random`` or ``pct``), the switch points
  (``calls``, ``lines`` or ``opcodes``) and PCT's depth, so N schedules cover what
  would otherwise need a mode per bug. A knob set explicitly is kept, not drawn.
- ``systematic``: follows a given prefix of decisions, then never preempts, and writes
  down each decision's alternatives and what each thread touched
  (``sockfake.sim.kernel.systematic``); ``sockfake.exploration`` and the plugin's
  ``explore="systematic"`` enumerate schedules with it.
- replay: a recorded list of choices (thread names) is followed exactly; where the
  recorded thread is not ready (the code changed), the policy it wraps decides.

Every policy draws only from the kernel's ``schedule`` random stream, so a seed
reproduces the schedule.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, Protocol, get_args

from sockfake.errors import SockfakeTypeError, SockfakeValueError

if TYPE_CHECKING:
    from sockfake.sim.kernel.threads import SimThread

__all__ = [
    "POLICIES", "SWITCH_POINTS", "Policy", "SchedulingPolicy", "SwarmDraw", "SwitchPoints",
    "STAY", "YIELD", "draw_swarm", "make_policy",
]  # fmt: skip

# The scheduling policies by name (``scheduling=``), and where a thread may be switched
# (``switch_points=``: at calls into the simulation, or also at each line or opcode).
SchedulingPolicy = Literal["fifo", "random", "pct", "swarm", "systematic"]
SwitchPoints = Literal["calls", "lines", "opcodes"]
POLICIES: tuple[SchedulingPolicy, ...] = get_args(SchedulingPolicy)
SWITCH_POINTS: tuple[SwitchPoints, ...] = get_args(SwitchPoints)


class Policy(Protocol):
    name: str

    def adopt(self, thread: SimThread) -> None:
        """A thread joined the simulation."""
        ...

    def forget(self, thread: SimThread) -> None:
        """A thread finished: drop what the policy kept about it."""
        ...

    def pick(self, ready: Sequence[SimThread]) -> int:
        """The index of the ready thread to run next (``ready`` has at least one)."""
        ...

    def preempt(self, current: SimThread, ready: Sequence[SimThread]) -> bool:
        """At a switch point with ``ready`` threads waiting: yield the turn now?"""
        ...


class Fifo:
    name = "fifo"

    def adopt(self, thread: SimThread) -> None:
        pass

    def forget(self, thread: SimThread) -> None:
        pass

    def pick(self, ready: Sequence[SimThread]) -> int:
        return 0

    def preempt(self, current: SimThread, ready: Sequence[SimThread]) -> bool:
        return False


class RandomWalk:
    name = "random"

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def adopt(self, thread: SimThread) -> None:
        pass

    def forget(self, thread: SimThread) -> None:
        pass

    def pick(self, ready: Sequence[SimThread]) -> int:
        return self._rng.randrange(len(ready)) if len(ready) > 1 else 0

    def preempt(self, current: SimThread, ready: Sequence[SimThread]) -> bool:
        return True  # the yielding thread joins the ready ones; pick() chooses


class Pct:
    """Random priorities; ``depth - 1`` change points that demote the running thread.

    ``steps=None``: the change points are fractions ``u`` of an estimated run length
    (first ``_FIRST_ESTIMATE``, doubled whenever the run passes it); one fires at the
    first switch point at or past ``u * estimate``. The estimate only grows, so no
    point is skipped, and it ends within twice the run's length: each change point
    falls inside the run with probability at least 1/2, wherever the run ends.
    """

    name = "pct"

    def __init__(self, rng: random.Random, depth: int, steps: int | None) -> None:
        self._rng = rng
        self._priority: dict[SimThread, float] = {}
        self._step = 0
        self._depth = depth
        count = depth - 1
        if steps is None:
            self._estimate = _FIRST_ESTIMATE
            self._fractions: list[float] = sorted(rng.random() for _ in range(count))
            self._change_points: dict[int, float] = {}
        else:
            self._estimate = 0  # fixed steps: no estimate
            self._fractions = []
            points = rng.sample(range(1, steps + 1), min(count, steps))
            # Step -> the low priority the running thread drops to there (depth-1 ... 1).
            self._change_points = {step: float(count - i) for i, step in
                                   enumerate(sorted(points))}
        self._fired = 0

    def adopt(self, thread: SimThread) -> None:
        # Initial priorities are all above the change points' (depth .. depth + 1).
        self._priority[thread] = self._depth + self._rng.random()

    def forget(self, thread: SimThread) -> None:
        self._priority.pop(thread, None)

    def _priority_of(self, thread: SimThread) -> float:
        if thread not in self._priority:
            self.adopt(thread)
        return self._priority[thread]

    def _advance(self, running: SimThread | None) -> None:
        self._step += 1
        if self._estimate:
            self._advance_fitted(running)
            return
        low = self._change_points.get(self._step)
        if low is not None and running is not None:
            self._priority[running] = low

    def _advance_fitted(self, running: SimThread | None) -> None:
        if self._step > self._estimate:
            self._estimate *= 2
        fractions = self._fractions
        # A point due at a pick (nobody running) waits for the next switch point.
        if running is not None and fractions and self._step >= fractions[0] * self._estimate:
            fractions.pop(0)
            self._fired += 1
            self._priority[running] = float(self._depth - self._fired)

    def pick(self, ready: Sequence[SimThread]) -> int:
        self._advance(None)
        best = max(range(len(ready)), key=lambda i: self._priority_of(ready[i]))
        return best

    def preempt(self, current: SimThread, ready: Sequence[SimThread]) -> bool:
        self._advance(current)
        mine = self._priority_of(current)
        return any(self._priority_of(thread) > mine for thread in ready)


# The fitted PCT's first guess at a run's length, in decisions (doubled as needed).
_FIRST_ESTIMATE = 32


class SwarmDraw:
    """One seed's configuration under ``scheduling="swarm"`` (``draw_swarm``)."""

    __slots__ = ("policy", "switch_points", "pct_depth", "pct_steps")

    def __init__(self, policy: SchedulingPolicy, switch_points: SwitchPoints,
                 pct_depth: int, pct_steps: int | None) -> None:
        self.policy = policy
        self.switch_points = switch_points
        self.pct_depth = pct_depth
        self.pct_steps = pct_steps

    def __str__(self) -> str:
        text = f"scheduling={self.policy!r}, switch_points={self.switch_points!r}"
        if self.policy == "pct":
            steps = "fitted" if self.pct_steps is None else str(self.pct_steps)
            text += f", pct_depth={self.pct_depth}, pct_steps={steps}"
        return text


# What a swarm draws from (uniformly). Depth 1 is PCT's random priorities alone.
SWARM_POLICIES: tuple[SchedulingPolicy, ...] = ("random", "pct")
SWARM_DEPTHS = (1, 2, 3, 4)


def draw_swarm(rng: random.Random, *, switch_points: SwitchPoints | None,
               pct_depth: int | None, pct_steps: int | None) -> SwarmDraw:
    """This seed's configuration: every knob not given (None) drawn from ``rng``. The
    draws are made whether or not a knob is given, so giving one changes no other."""
    policy = SWARM_POLICIES[rng.randrange(len(SWARM_POLICIES))]
    points = SWITCH_POINTS[rng.randrange(len(SWITCH_POINTS))]
    depth = SWARM_DEPTHS[rng.randrange(len(SWARM_DEPTHS))]
    return SwarmDraw(
        policy,
        switch_points if switch_points is not None else points,
        pct_depth if pct_depth is not None else depth,
        pct_steps,
    )


# A schedule is the list of decisions where there was a choice: at a pick among several
# ready threads, the chosen thread's name; at a switch point with threads ready, YIELD
# or STAY. Names are the kernel's stable thread names, so a schedule means the same in
# another process.
YIELD, STAY = "+yield", "+stay"


class Recorder:
    """Wraps a policy and writes down every decision it makes (``decisions``)."""

    def __init__(self, policy: Policy) -> None:
        self.name = policy.name
        self._policy = policy
        self.decisions: list[str] = []

    def adopt(self, thread: SimThread) -> None:
        self._policy.adopt(thread)

    def forget(self, thread: SimThread) -> None:
        self._policy.forget(thread)

    def pick(self, ready: Sequence[SimThread]) -> int:
        index = self._policy.pick(ready)
        if len(ready) > 1:
            self.decisions.append(ready[index].name)
        return index

    def preempt(self, current: SimThread, ready: Sequence[SimThread]) -> bool:
        decision = self._policy.preempt(current, ready)
        self.decisions.append(YIELD if decision else STAY)
        return decision


class Replay:
    """Follow recorded decisions; from the first that no longer fits (the code changed:
    another thread is ready, a switch point moved), ``fallback`` decides."""

    def __init__(self, decisions: Sequence[str], fallback: Policy) -> None:
        self.name = f"replay({fallback.name})"
        self._decisions = list(decisions)
        self._next = 0
        self._fallback = fallback
        self.diverged_at: int | None = None  # index of the first decision not followed

    def adopt(self, thread: SimThread) -> None:
        self._fallback.adopt(thread)

    def forget(self, thread: SimThread) -> None:
        self._fallback.forget(thread)

    def _take(self) -> str | None:
        if self.diverged_at is not None or self._next >= len(self._decisions):
            return None
        decision = self._decisions[self._next]
        self._next += 1
        return decision

    def _diverge(self) -> None:
        if self.diverged_at is None:
            self.diverged_at = self._next - 1

    def pick(self, ready: Sequence[SimThread]) -> int:
        if len(ready) > 1:
            wanted = self._take()
            if wanted is not None:
                for index, thread in enumerate(ready):
                    if thread.name == wanted:
                        return index
                self._diverge()
        return self._fallback.pick(ready)

    def preempt(self, current: SimThread, ready: Sequence[SimThread]) -> bool:
        wanted = self._take()
        if wanted in (YIELD, STAY):
            return wanted == YIELD
        if wanted is not None:
            self._diverge()
        return self._fallback.preempt(current, ready)


def make_policy(
    name: str, rng: random.Random, *, pct_depth: int = 3, pct_steps: int | None = None,
    replay: Sequence[str] | None = None,
) -> Policy:
    if name == "systematic":
        from sockfake.sim.kernel.systematic import Systematic

        return Systematic(replay or ())
    if name == "swarm":
        raise SockfakeValueError("a swarm is a policy per seed: draw_swarm() picks it first")
    if name not in POLICIES:
        raise SockfakeValueError(f"scheduling must be one of {', '.join(POLICIES)}, not {name!r}")
    check_pct_knob("pct_depth", pct_depth)
    if pct_steps is not None:
        check_pct_knob("pct_steps", pct_steps)
    policy: Policy
    if name == "fifo":
        policy = Fifo()
    elif name == "random":
        policy = RandomWalk(rng)
    else:
        policy = Pct(rng, pct_depth, pct_steps)
    if replay is not None:
        if isinstance(replay, str) or not all(isinstance(c, str) for c in replay):
            raise SockfakeTypeError("replay must be a list of thread names (net.schedule)")
        return Replay(replay, policy)
    return policy


def check_pct_knob(label: str, value: object) -> None:
    """``pct_depth`` and ``pct_steps``: ints of at least 1, or a clear error."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise SockfakeTypeError(f"{label} must be an int, not {value!r}")
    if value < 1:
        raise SockfakeValueError(f"{label} must be at least 1, not {value!r}")

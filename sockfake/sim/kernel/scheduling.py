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
    "POLICIES", "SWITCH_POINTS", "Policy", "SchedulingPolicy", "SwitchPoints", "make_policy",
]  # fmt: skip

# The scheduling policies by name (``scheduling=``), and where a thread may be switched
# (``switch_points=``: at calls into the simulation, or also at each line or opcode).
SchedulingPolicy = Literal["fifo", "random", "pct"]
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
    """Random priorities; ``depth - 1`` change points that demote the running thread."""

    name = "pct"

    def __init__(self, rng: random.Random, depth: int, steps: int) -> None:
        self._rng = rng
        self._priority: dict[SimThread, float] = {}
        self._step = 0
        points = rng.sample(range(1, steps + 1), min(depth - 1, steps))
        # Step -> the low priority the running thread drops to there (depth-1 ... 1).
        self._change_points = {step: float(depth - 1 - i) for i, step in
                               enumerate(sorted(points))}
        self._depth = depth

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
        low = self._change_points.get(self._step)
        if low is not None and running is not None:
            self._priority[running] = low

    def pick(self, ready: Sequence[SimThread]) -> int:
        self._advance(None)
        best = max(range(len(ready)), key=lambda i: self._priority_of(ready[i]))
        return best

    def preempt(self, current: SimThread, ready: Sequence[SimThread]) -> bool:
        self._advance(current)
        mine = self._priority_of(current)
        return any(self._priority_of(thread) > mine for thread in ready)


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
    name: str, rng: random.Random, *, pct_depth: int = 3, pct_steps: int = 2000,
    replay: Sequence[str] | None = None,
) -> Policy:
    if name not in POLICIES:
        raise SockfakeValueError(f"scheduling must be one of {', '.join(POLICIES)}, not {name!r}")
    for label, value in (("pct_depth", pct_depth), ("pct_steps", pct_steps)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise SockfakeTypeError(f"{label} must be an int, not {value!r}")
        if value < 1:
            raise SockfakeValueError(f"{label} must be at least 1, not {value!r}")
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

"""A nemesis: a seeded schedule of faults applied to a ``SimNetwork`` over virtual time.

A schedule is data: a tuple of ``Fault``s, each a kind, a start (virtual seconds
after the nemesis starts), a duration, the hosts it hits and an amount. Kinds:

- ``partition``: the hosts in ``hosts`` are cut from every other host of the network
  (both ways) for ``duration``; one host alone isolates it, several make a split;
- ``crash``: the host crashes (``SimNetwork.crash``) and restarts after ``duration``
  with the nemesis's ``boot(host)`` as its service at boot;
- ``clock``: the host's wall clock steps by ``amount`` seconds (no duration);
- ``loss``: the links to and from the host lose ``amount`` of their packets for
  ``duration`` (datagrams are gone; a lost stream segment is retransmitted after TCP's
  timeout, so a stream stalls and resumes, whole and in order);
- ``latency``: the links to and from the host take ``amount`` more seconds.

``random_schedule(rng, ...)`` draws one from a random stream (``net.random`` ties it
to the seed); ``schedules(...)`` is the Hypothesis strategy, so a failing schedule
shrinks to fewer, shorter, later faults. ``Nemesis(schedule, boot=...).start(net)``
runs it in a simulated thread on the network's default host; ``stop()`` ends it and
undoes what is still in force (heals, restarts, restores conditions), so the system
can be checked whole afterwards. Each fault is a trace event (``nemesis``).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sockfake.errors import SockfakeRuntimeError, SockfakeTypeError, SockfakeValueError
from sockfake.sim.net.links import LinkConditions
from sockfake.sim.network import SimNetwork

__all__ = ["FAULT_KINDS", "Fault", "Nemesis", "nemesis_options", "random_schedule", "schedules"]

# What the marker's nemesis= may set: random_schedule's keywords.
OPTION_KEYS = ("duration", "faults", "kinds", "crashable", "max_fault")

FaultKind = Literal["partition", "crash", "clock", "loss", "latency"]
FAULT_KINDS: tuple[FaultKind, ...] = ("partition", "crash", "clock", "loss", "latency")


@dataclass(frozen=True, order=True)
class Fault:
    """One fault of a schedule (see the module docstring)."""

    at: float
    kind: FaultKind
    hosts: tuple[str, ...]
    duration: float = 0.0
    amount: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise SockfakeValueError(
                f"unknown fault kind {self.kind!r}; kinds: {', '.join(FAULT_KINDS)}"
            )
        if not isinstance(self.hosts, tuple) or not self.hosts or \
                not all(isinstance(h, str) for h in self.hosts):
            raise SockfakeTypeError(f"a fault's hosts are a non-empty tuple of names, not "
                                    f"{self.hosts!r}")
        for name in ("at", "duration", "amount"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or \
                    (name != "amount" and value < 0):
                raise SockfakeValueError(f"a fault's {name} must be a finite number"
                                         f"{' >= 0' if name != 'amount' else ''}, not {value!r}")

    def describe(self) -> str:
        hosts = " ".join(self.hosts)
        what = {
            "partition": f"partition {hosts} from the rest",
            "crash": f"crash {hosts}",
            "clock": f"clock of {hosts} steps {self.amount:+.3f} s",
            "loss": f"loss {self.amount:.0%} on {hosts}'s links",
            "latency": f"latency +{self.amount * 1000:.0f} ms on {hosts}'s links",
        }[self.kind]
        span = f" for {self.duration:.3f} s" if self.kind != "clock" else ""
        return f"at {self.at:.3f} s{span}: {what}"


def describe(schedule: Sequence[Fault]) -> str:
    """A schedule, one fault a line (what a failure report prints)."""
    return "\n".join(fault.describe() for fault in sorted(schedule)) or "(no faults)"


def random_schedule(
    rng: random.Random,
    hosts: Sequence[str],
    *,
    duration: float = 20.0,
    faults: int = 6,
    kinds: Sequence[FaultKind] = FAULT_KINDS,
    crashable: Sequence[str] | None = None,
    max_fault: float = 6.0,
) -> tuple[Fault, ...]:
    """``faults`` faults drawn from ``rng`` over ``duration`` virtual seconds, on
    ``hosts`` (crashes and clock steps only on ``crashable``, by default all)."""
    _check_kinds(kinds)
    hosts = list(hosts)
    targets = list(crashable) if crashable is not None else hosts
    result = []
    for _ in range(faults):
        kind = rng.choice(list(kinds))
        at = round(rng.uniform(0, duration), 3)
        length = round(rng.uniform(0.5, max_fault), 3)
        if kind == "partition":
            side: tuple[str, ...]
            if rng.random() < 0.5 or len(hosts) < 3:
                side = (rng.choice(hosts),)
            else:
                side = tuple(sorted(rng.sample(hosts, rng.randint(1, len(hosts) - 1))))
            result.append(Fault(at, kind, side, length))
        elif kind == "crash":
            result.append(Fault(at, kind, (rng.choice(targets),), length))
        elif kind == "clock":
            result.append(Fault(at, kind, (rng.choice(targets),), 0.0,
                                round(rng.uniform(-5.0, 5.0), 3)))
        elif kind == "loss":
            result.append(Fault(at, kind, (rng.choice(hosts),), length,
                                round(rng.uniform(0.1, 0.5), 3)))
        else:
            result.append(Fault(at, kind, (rng.choice(hosts),), length,
                                round(rng.uniform(0.05, 1.0), 3)))
    return tuple(sorted(result))


def schedules(hosts: Sequence[str], *, duration: float = 20.0, max_faults: int = 8,
              kinds: Sequence[FaultKind] = FAULT_KINDS,
              crashable: Sequence[str] | None = None, max_fault: float = 6.0) -> Any:
    """A Hypothesis strategy of schedules: it shrinks towards fewer faults, shorter and
    earlier ones, smaller amounts (Hypothesis is imported only here)."""
    from hypothesis import strategies as st

    _check_kinds(kinds)
    names = list(hosts)
    targets = list(crashable) if crashable is not None else names
    order = list(kinds)
    # Every side a partition may cut off, one host alone first (the simplest): one
    # choice per fault part, so deleting a fault deletes a block of fixed shape.
    sides = [combo for size in range(1, max(2, len(names)))
             for combo in itertools.combinations(sorted(names), size)]

    def seconds(draw: Any, low: float, high: float) -> float:
        # Whole milliseconds: they shrink to the low end exactly (floats shrink to 1.0).
        return float(draw(st.integers(round(low * 1000), round(high * 1000)))) / 1000

    @st.composite
    def faults(draw: Any) -> Fault:
        kind = draw(st.sampled_from(order))
        at = seconds(draw, 0.0, duration)
        if kind == "clock":
            return Fault(at, kind, (draw(st.sampled_from(targets)),), 0.0,
                         seconds(draw, -5.0, 5.0))
        length = seconds(draw, 0.5, max_fault)
        if kind == "crash":
            return Fault(at, kind, (draw(st.sampled_from(targets)),), length)
        if kind == "partition":
            return Fault(at, kind, draw(st.sampled_from(sides)), length)
        host = (draw(st.sampled_from(names)),)
        if kind == "loss":
            return Fault(at, kind, host, length, seconds(draw, 0.1, 0.5))
        return Fault(at, kind, host, length, seconds(draw, 0.05, 1.0))

    return st.lists(faults(), max_size=max_faults).map(tuple)


def nemesis_options(value: object) -> dict[str, Any] | None:
    """The marker's ``nemesis=``, checked: True (the defaults), False or None (no
    nemesis), or a dict of ``random_schedule``'s keywords."""
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if not isinstance(value, dict):
        raise SockfakeTypeError(
            f"nemesis={value!r} must be True, False, or a dict of "
            f"{', '.join(OPTION_KEYS)}"
        )
    unknown = sorted(set(value) - set(OPTION_KEYS))
    if unknown:
        raise SockfakeValueError(
            f"nemesis has no key {unknown[0]!r}; keys: {', '.join(OPTION_KEYS)}"
        )
    options = dict(value)
    for key in ("duration", "max_fault"):
        if key in options:
            number = options[key]
            if isinstance(number, bool) or not isinstance(number, (int, float)) or \
                    not 0 < number < math.inf:
                raise SockfakeValueError(f"nemesis {key}={number!r} must be a positive number")
    faults = options.get("faults", 1)
    if isinstance(faults, bool) or not isinstance(faults, int) or not 0 <= faults <= 10_000:
        raise SockfakeValueError(f"nemesis faults={faults!r} must be an int from 0 to 10000")
    _check_kinds(options.get("kinds", ()))
    return options


def _check_kinds(kinds: Iterable[str]) -> None:
    for kind in kinds:
        if kind not in FAULT_KINDS:
            raise SockfakeValueError(
                f"unknown fault kind {kind!r}; kinds: {', '.join(FAULT_KINDS)}"
            )


def start_nemesis(net: SimNetwork, options: dict[str, Any],
                  boot: Callable[[str], object] | None = None,
                  hosts: Sequence[str] | None = None,
                  schedule: Iterable[Fault] | None = None) -> Nemesis:
    """A nemesis started on ``net``: ``schedule``, or one drawn from ``net.random`` with
    ``options`` (``random_schedule``'s keywords) over ``hosts`` (default: every host;
    crashes and clock steps on all but the default host, where the test runs)."""
    if schedule is None:
        names = list(hosts) if hosts is not None else [h.name for h in net.hosts]
        drawn = dict(options)
        drawn.setdefault("crashable", [n for n in names if n != net.default_host.name])
        if not drawn["crashable"]:
            drawn["kinds"] = [k for k in drawn.get("kinds", FAULT_KINDS)
                              if k not in ("crash", "clock")]
        schedule = random_schedule(net.random, names, **drawn)
    return Nemesis(schedule, boot=boot).start(net)


class Nemesis:
    """Runs a schedule on a network (see the module docstring).

    ``boot(host_name)`` is what a crashed host runs when it restarts (its service);
    without it a crash leaves the host empty after its restart.
    """

    def __init__(self, schedule: Iterable[Fault],
                 boot: Callable[[str], object] | None = None) -> None:
        self.schedule = tuple(sorted(schedule))
        for fault in self.schedule:
            if not isinstance(fault, Fault):
                raise SockfakeTypeError(f"a schedule holds Faults, not {fault!r}")
        self.boot = boot
        self.net: SimNetwork | None = None
        self._thread: Any = None
        self._stop: Any = None
        self._undo: dict[int, Callable[[], None]] = {}  # active faults' undo, by number
        self._cuts: dict[tuple[str, str], int] = {}  # partitions in force, per host pair
        # Per impaired link: its conditions before, and the faults on it in force.
        self._base: dict[tuple[str, str], tuple[LinkConditions, list[Fault]]] = {}
        self.applied: list[Fault] = []

    def start(self, net: SimNetwork) -> Nemesis:
        if self.net is not None:
            raise SockfakeRuntimeError("this nemesis has already started")
        for fault in self.schedule:
            for name in fault.hosts:
                net.host(name)  # an unknown host is named now, not mid-run
            if fault.kind == "crash" and fault.hosts[0] == net.default_host.name:
                raise SockfakeValueError(
                    f"the nemesis runs on host {net.default_host.name!r} (the test's): it "
                    f"cannot crash it ({fault.describe()}); crash the system's hosts only"
                )
        self.net = net
        net.record("nemesis", "schedule:\n" + self.describe())
        self._stop = net.event()
        start = net.now
        steps: list[tuple[float, int, bool]] = []
        for number, fault in enumerate(self.schedule):
            steps.append((start + fault.at, number, True))
            if fault.kind != "clock":
                steps.append((start + fault.at + fault.duration, number, False))
        steps.sort()

        def run() -> None:
            for when, number, begin in steps:
                if self._stop.wait(max(0.0, when - net.now)):
                    return
                if begin:
                    self._begin(number)
                else:
                    self._end(number)

        self._thread = net.default_host.thread(target=run, name="nemesis", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the schedule now and undo every fault still in force."""
        if self.net is None or self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        for number in sorted(self._undo, reverse=True):
            self._end(number)

    def describe(self) -> str:
        return describe(self.schedule)

    def _begin(self, number: int) -> None:
        net = self.net
        assert net is not None
        fault = self.schedule[number]
        net.record("nemesis", f"begin {fault.describe()}")
        hosts = fault.hosts
        if fault.kind == "partition":
            rest = [h.name for h in net.hosts if h.name not in hosts]
            pairs = [(a, b) for a in hosts for b in rest]
            for a, b in pairs:
                self._cut(a, b, 1)

            def heal() -> None:
                for a, b in pairs:
                    self._cut(a, b, -1)

            self._undo[number] = heal
        elif fault.kind == "crash":
            name = hosts[0]
            if net.host(name).crashed:
                return  # another crash has it down: that one restarts it
            net.crash(name)
            boot = self.boot

            def restart() -> None:
                net.restart(name, None if boot is None else (lambda: boot(name)))

            self._undo[number] = restart
        elif fault.kind == "clock":
            net.step_clock(hosts[0], fault.amount)
        else:
            name = hosts[0]
            links = [(a, b) for other in net.hosts if other.name != name
                     for a, b in ((name, other.name), (other.name, name))]
            for link in links:
                self._impair(link, fault, True)

            def restore() -> None:
                for link in links:
                    self._impair(link, fault, False)

            self._undo[number] = restore
        self.applied.append(fault)

    def _cut(self, a: str, b: str, change: int) -> None:
        """Partitions overlap: a pair is cut by the first fault on it, healed by the last."""
        assert self.net is not None
        pair = (a, b) if a < b else (b, a)
        before = self._cuts.get(pair, 0)
        self._cuts[pair] = before + change
        if before == 0 and change > 0:
            self.net.partition(a, b)
        elif before == 1 and change < 0:
            self.net.heal(a, b)
            del self._cuts[pair]

    def _impair(self, link: tuple[str, str], fault: Fault, begin: bool) -> None:
        """Loss bursts and latency spikes overlap: a link's conditions are what they were
        before the first one, worsened by every one still in force."""
        net = self.net
        assert net is not None
        src, dst = link
        if link not in self._base:
            self._base[link] = (net.conditions(src, dst), [])
        base, active = self._base[link]
        if begin:
            active.append(fault)
        else:
            active.remove(fault)
        conditions = base
        for one in active:
            conditions = _worse(conditions, one)
        net.set_conditions(src, dst, both_ways=False, conditions=conditions)
        if not active:
            del self._base[link]

    def _end(self, number: int) -> None:
        undo = self._undo.pop(number, None)
        if undo is None:
            return
        assert self.net is not None
        self.net.record("nemesis", f"end {self.schedule[number].describe()}")
        undo()


def _worse(conditions: LinkConditions, fault: Fault) -> LinkConditions:
    if fault.kind == "loss":
        return conditions.replace(loss=min(1.0, conditions.loss + fault.amount))
    return conditions.replace(latency=conditions.latency + fault.amount)

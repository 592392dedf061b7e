"""Systematic exploration: the policy that follows a prefix of decisions, and the search
that enumerates schedules with it, up to a preemption bound, with or without
partial-order reduction.

A schedule is the list of decisions where there was a choice (as ``Recorder`` writes
them): at a switch point with other threads ready, ``STAY`` (free) or ``YIELD`` (one
preemption); when the running thread blocks, finishes or yields, which ready thread
runs (free). A run follows its prefix and then never preempts. ``ScheduleSearch``
takes the runs fewest preemptions first (iterative context bounding, as CHESS does).

Without reduction every decision past a run's prefix branches into each alternative.
With it (the default), a run branches only where two threads' operations are
dependent (dynamic partial-order reduction, after Flanagan and Godefroid, POPL 2005,
and tokio-rs/loom): the kernel tells the policy what each switch point touches (one
direction of a connection, which a send and the peer's receive of it share; a whole
connection, for a close; a lock; a queue; a listening socket's backlog), and for each
operation the search finds, per other thread, its latest operation on the same
resource that is not already ordered before this one (a race). It reverses each race
once: at the decision that let the earlier one run, a thread that can start the
reversed order runs instead (source sets, Abdulla et al., POPL 2014: the later
operation's thread, or the thread that started or woke it), unless one already does;
a race already reversed from an equivalent run is not reversed again unless with
fewer preemptions (the effect of sleep sets, in the bound's terms); a reversal over
the bound is tried at the last free switch before it instead (Coons, Musuvathi and
McKinley, OOPSLA 2013). A turn given without a choice (one thread ready) starts a
stretch of its own, so its operations are not taken for the thread's earlier ones.

What the reduction cannot see: Python objects two threads share without a simulated
operation between (a dict, an attribute, ``+=``): the code between two switch points
is one step, and two steps are dependent only through what the switch points name.
Line and opcode switch points touch plain memory (``line_switches.MEMORY``), as does a
thread's last step (from its last switch point to its end): with them, races on plain
objects are reordered. Two operations are ordered (happens-before, as vector clocks)
by the dependencies seen so far, a thread's start (its starter's past comes first), a
wake-up (a waiter woken by a release, a put, a send comes after it), and a wake-up by a
timer a thread's operation asked for (a delivery comes after its send, ``FOLLOWS``).
With the bound the search is not complete relative to the unreduced bounded search.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

from sockfake.sim.kernel.scheduling import STAY, YIELD

if TYPE_CHECKING:
    from sockfake.sim.kernel.threads import SimThread

__all__ = [
    "FOLLOWS", "STARTS", "WAKES", "Access", "Decision", "Race", "ScheduleSearch", "Systematic",
]

# Not resources but orderings, recorded as accesses: a thread start (STARTS, the new
# thread's name) and a wake-up (WAKES, the woken thread's name): what the thread does
# next follows what the starter or waker did so far.
STARTS = "starts"
WAKES = "wakes"
# A thread woken by a timer another thread's operation asked for (a packet's delivery
# after a send): (FOLLOWS, that thread, how many accesses came before the operation).
FOLLOWS = "follows"
# What a thread's last stretch of code (after its last switch point) touches: plain
# memory, as a line or opcode switch point does (``line_switches.MEMORY``).
ENDS = ("memory", 0)


class Decision(NamedTuple):
    """One logged decision. ``current``: the thread at a switch point (a STAY/YIELD
    decision), "" at a pick; ``ready``: the other threads ready at a switch point."""

    options: tuple[str, ...]
    chosen: str
    current: str
    ready: tuple[str, ...]


class Access(NamedTuple):
    """A thread touched ``resource`` (None: unknown, dependent with everything) in the
    stretch of code it was given the turn for at decision ``turn`` (-1: before any)."""

    thread: str
    resource: Hashable | None
    turn: int


class Systematic:
    """Follows ``prefix``, then runs without preempting (``STAY``; the longest-waiting
    ready thread); writes down every decision with its alternatives (``log``) and every
    access to a resource at a switch point (``accesses``), so a search can branch.

    After a ``YIELD`` the yielding thread is not among the alternatives of the pick
    that follows: choosing it again is the ``STAY`` branch's schedule.
    """

    name = "systematic"

    def __init__(self, prefix: Sequence[str]) -> None:
        self._prefix = list(prefix)
        self.log: list[Decision] = []
        self.accesses: list[Access] = []
        # Thread name -> the decision that last gave it the turn.
        self._turn: dict[str, int] = {}
        self._yielded: SimThread | None = None
        self.diverged = False  # the prefix did not fit (the run is not deterministic)

    def adopt(self, thread: SimThread) -> None:
        pass

    def forget(self, thread: SimThread) -> None:
        # A thread's last stretch of code (after its last switch point) may have written
        # anything a thread reads after it ends (a result, a flag): dependent with
        # everything. Without it, an order violation on a plain attribute (a value
        # published by a thread with no switch point) would never be reversed.
        self.access(thread, ENDS)

    def _choose(self, options: tuple[str, ...], default: str, current: str,
                ready: tuple[str, ...]) -> str:
        index = len(self.log)
        chosen = default
        if index < len(self._prefix):
            wanted = self._prefix[index]
            if wanted in options:
                chosen = wanted
            else:
                self.diverged = True
        self.log.append(Decision(options, chosen, current, ready))
        return chosen

    def pick(self, ready: Sequence[SimThread]) -> int:
        yielded, self._yielded = self._yielded, None
        candidates = [i for i, thread in enumerate(ready) if thread is not yielded] or [0]
        index = candidates[0]
        if len(candidates) > 1:
            names = tuple(ready[i].name for i in candidates)
            index = candidates[names.index(self._choose(names, names[0], "", ()))]
        self._turn[ready[index].name] = len(self.log) - 1
        return index

    def preempt(self, current: SimThread, ready: Sequence[SimThread]) -> bool:
        others = tuple(thread.name for thread in ready)
        if self._choose((STAY, YIELD), STAY, current.name, others) == YIELD:
            self._yielded = current
            return True
        self._turn[current.name] = len(self.log) - 1
        return False

    def access(self, thread: SimThread, resource: Hashable | None) -> None:
        """The kernel's ``access_observer``: ``thread`` is at a switch point that
        touches ``resource``."""
        name = thread.name
        self.accesses.append(Access(name, resource, self._turn.get(name, -1)))


Clock = dict[str, int]  # a vector clock: thread -> how many of its accesses are known


def _join(into: Clock, other: Clock) -> None:
    for thread, count in other.items():
        if count > into.get(thread, 0):
            into[thread] = count


class Race(NamedTuple):
    """Two dependent accesses not ordered by what came before: the later one's thread
    (``thread``) could have run first had another thread been chosen at decision
    ``turn`` (the one that gave the earlier access's thread its turn). ``initials``:
    the threads that could start such a reversed run (source sets, Abdulla et al., POPL
    2014): those whose first access after the earlier one follows nothing else there
    (``thread`` among them, unless something in between orders it)."""

    turn: int
    thread: str
    initials: tuple[str, ...]
    # The two accesses by what they are in any run of the same partial order: (thread,
    # its access count, its turn count) each.
    pair: tuple[tuple[str, int, int], tuple[str, int, int]] = (("", 0, 0), ("", 0, 0))


def races(accesses: Sequence[Access]) -> Iterator[Race]:
    """For each access, the latest earlier access of another thread it depends on (the
    same resource, or an unknown one) and does not already follow from (vector clocks
    over the dependencies seen so far, and a thread's start)."""
    return iter(_analyse(accesses)[0])


Ordered = list["tuple[str, int, Clock] | None"]  # per access: thread, own count, clock


def _analyse(accesses: Sequence[Access]) -> tuple[list[Race], Ordered]:
    """The races of a run, and each access with what it follows (None: an ordering)."""
    found: list[Race] = []
    clocks: dict[str, Clock] = {}
    # Per access: (its thread, its own count, the clock after it); None for an ordering.
    seen_at: list[tuple[str, int, Clock] | None] = []
    # Per resource, per thread: its latest access (position, own count, turn); the
    # clock every access to the resource has joined.
    by_resource: dict[Hashable, dict[str, tuple[int, int, int]]] = {}
    resource_clocks: dict[Hashable, Clock] = {}
    unknown: dict[str, tuple[int, int, int]] = {}  # accesses to an unknown resource
    unknown_clock: Clock = {}
    latest: dict[str, tuple[int, int, int]] = {}  # every access
    every_clock: Clock = {}
    # Threads woken by a thread's operation, to order after it once its access (at the
    # switch point after the operation) is recorded.
    woken: dict[str, list[str]] = {}
    parts: dict[Hashable, list[Hashable]] = {}  # a whole's parts seen so far (_related)
    turns: dict[str, tuple[int, int]] = {}  # per thread: its turns so far, the last
    turn_counts: list[int] = []  # per access: its thread's turns so far
    for at, (thread, resource, turn) in enumerate(accesses):
        clock = clocks.setdefault(thread, {})
        turn_count, last_turn = turns.get(thread, (0, -2))
        if turn != last_turn:
            turn_count += 1
            turns[thread] = (turn_count, turn)
        turn_counts.append(turn_count)
        if isinstance(resource, tuple) and resource[0] == STARTS:
            # The started thread cannot have run a step before this.
            _join(clocks.setdefault(str(resource[1]), {}), clock)
            # For the initials: the start is the starter's, before its next access.
            seen_at.append((thread, clock.get(thread, 0), dict(clock)))
            continue
        if isinstance(resource, tuple) and resource[0] == FOLLOWS:
            # Woken by a timer a thread's operation asked for: after that operation
            # (the creator's first access from the position the timer was asked at).
            creator, since = str(resource[1]), int(resource[2])
            _join(clock, _clock_from(seen_at, creator, since, clocks))
            seen_at.append(None)
            continue
        if isinstance(resource, tuple) and resource[0] == WAKES:
            woken.setdefault(thread, []).append(str(resource[1]))
            seen_at.append(None)
            continue
        count = clock[thread] = clock.get(thread, 0) + 1
        related = [] if resource is None else _related(resource, parts)
        tables = ([latest] if resource is None
                  else [by_resource.get(key, {}) for key in related] + [unknown])
        # Per other thread, its latest dependent access this one does not follow. Only
        # the latest of all would do without a bound (the earlier ones come up in the
        # runs that reverse it); within one, each reversal costs a preemption, so each
        # thread's is reversed here directly.
        racing: dict[str, tuple[int, int, int]] = {}
        for table in tables:
            for other, seen in table.items():
                if (other != thread and clock.get(other, 0) < seen[1]
                        and seen > racing.get(other, (-1, 0, -1))):
                    racing[other] = seen
        if resource is None:
            _join(clock, every_clock)
            unknown[thread] = (at, count, turn)
            _join(unknown_clock, clock)
        else:
            for key in related:
                _join(clock, resource_clocks.get(key, {}))
            _join(clock, unknown_clock)
            by_resource.setdefault(resource, {})[thread] = (at, count, turn)
            _join(resource_clocks.setdefault(resource, {}), clock)
        latest[thread] = (at, count, turn)
        _join(every_clock, clock)
        # With its clock (what it follows), to tell which accesses between a race's
        # two follow which (``_initials``).
        seen_at.append((thread, count, dict(clock)))
        for other, (earlier_at, _, earlier_turn) in sorted(racing.items(),
                                                           key=lambda item: item[1]):
            if earlier_turn >= 0:
                earlier_count = racing[other][1]
                found.append(Race(earlier_turn, thread, _initials(
                    seen_at, earlier_at, at, other, earlier_count),
                    ((other, earlier_count, turn_counts[earlier_at]),
                     (thread, count, turn_count))))
        for other in woken.pop(thread, ()):
            _join(clocks.setdefault(other, {}), clock)
    return found, seen_at


def _related(resource: Hashable, parts: dict[Hashable, list[Hashable]]) -> list[Hashable]:
    """The resources an access to ``resource`` is dependent with: itself, the whole it
    is part of, and its parts. A connection's direction, ``("connection", id, sender)``,
    is part of the connection, ``("connection", id)``: a send and the peer's receive
    of it touch that direction, a close the whole; the two directions are independent
    (a request on its way does not race the reply to an earlier one)."""
    if isinstance(resource, tuple) and len(resource) == 3 and resource[0] == "connection":
        whole = resource[:2]
        known = parts.setdefault(whole, [])
        if resource not in known:
            known.append(resource)
        return [resource, whole]
    return [resource, *parts.get(resource, ())]


def _clock_from(seen_at: Sequence[tuple[str, int, Clock] | None], thread: str,
                since: int, clocks: dict[str, Clock]) -> Clock:
    """``thread``'s clock at its first access from position ``since`` on (its current
    one if it has none yet)."""
    for position in range(since, len(seen_at)):
        entry = seen_at[position]
        if entry is not None and entry[0] == thread:
            return entry[2]
    return clocks.get(thread, {})


def _initials(seen_at: Sequence[tuple[str, int, Clock] | None], earlier: int, later: int,
              earlier_thread: str, earlier_count: int) -> tuple[str, ...]:
    """The threads that can start a run in which the access at ``later`` comes before
    the one at ``earlier``: of the accesses between them that do not follow the
    earlier one, then the later one, the threads whose first such access follows none
    of the others' (first come first)."""
    between: list[tuple[str, int, Clock]] = []
    for position in range(earlier + 1, later + 1):
        entry = seen_at[position]
        if entry is None:
            continue
        if position < later and entry[2].get(earlier_thread, 0) >= earlier_count:
            continue  # follows the earlier access: it moves with it
        between.append(entry)
    initials: list[str] = []
    for index, (thread, _, clock) in enumerate(between):
        if thread in initials or any(other == thread for other, _, _ in between[:index]):
            continue
        if not any(other != thread and clock.get(other, 0) >= count
                   for other, count, _ in between[:index]):
            initials.append(thread)
    return tuple(initials)


def _enabled(decision: Decision, thread: str) -> bool:
    """Could ``thread`` have been chosen instead at ``decision``?"""
    if not decision.current:
        return thread in decision.options and thread != decision.chosen
    if thread == decision.current:
        return decision.chosen == YIELD
    return thread in decision.ready


def alternatives(decision: Decision, thread: str) -> list[list[str]]:
    """The decisions that let ``thread`` run instead of what ``decision`` chose; every
    other choice when it was not among the options (it may become ready through one)."""
    if not decision.current:  # a pick
        if thread == decision.chosen:
            return []
        if thread in decision.options:
            return [[thread]]
        return [[option] for option in decision.options if option != decision.chosen]
    if decision.chosen == YIELD and thread == decision.current:
        return [[STAY]]
    ready = decision.ready
    targets = [thread] if thread in ready else list(ready)
    paths = [[YIELD, target] if len(ready) > 1 else [YIELD] for target in targets]
    if decision.chosen == YIELD and thread not in ready:
        paths.append([STAY])
    return paths


class _Trie:
    """Every decision sequence run so far, to skip a prefix some run already covered."""

    def __init__(self) -> None:
        self._root: dict[str, dict[str, object]] = {}

    def add(self, decisions: Sequence[str]) -> None:
        node = self._root
        for decision in decisions:
            node = node.setdefault(decision, {})  # type: ignore[assignment]

    def covers(self, decisions: Sequence[str]) -> bool:
        node = self._root
        for decision in decisions:
            child = node.get(decision)
            if child is None:
                return False
            node = child  # type: ignore[assignment]
        return True


class ScheduleSearch:
    """The schedules still to run, fewest preemptions first: ``next_prefix()`` gives
    one, ``record()`` reads its run and adds the schedules it branches into."""

    def __init__(self, bound: int, *, reduction: bool = True, remember: bool = True) -> None:
        self.bound = bound
        self.reduction = reduction
        # Keep a race reversed from one run from being reversed again from an
        # equivalent one (``_add_reversal``); off only to measure what it saves.
        self.remember = remember
        self._pending: list[list[tuple[str, ...]]] = [[] for _ in range(bound + 1)]
        self._pending[0].append(())
        self._queued: set[tuple[str, ...]] = {()}
        self._ran = _Trie()
        # Races reversed so far (Race.pair, the choice), with the fewest preemptions.
        self._reversed: dict[tuple[object, int, str], int] = {}

    def next_prefix(self) -> list[str] | None:
        for level in self._pending:
            while level:
                prefix = level.pop()
                if not (self.reduction and self._ran.covers(prefix) and prefix):
                    return list(prefix)
        return None

    def record(self, prefix: Sequence[str], policy: Systematic) -> None:
        log = policy.log
        chosen = [decision.chosen for decision in log]
        if self.reduction:
            self._ran.add(chosen)
            found, _ = _analyse(policy.accesses)
            for race in found:
                self._reverse(chosen, log, race)
            return
        preemptions = sum(1 for decision in chosen[:len(prefix)] if decision == YIELD)
        # Branch at every decision past the prefix (each path is one schedule).
        for index in range(len(prefix), len(log)):
            options, taken = log[index].options, log[index].chosen
            for option in options:
                if option != taken:
                    cost = preemptions + (option == YIELD)
                    if cost <= self.bound:
                        self._pending[cost].append(tuple(chosen[:index] + [option]))
            if taken == YIELD:
                preemptions += 1

    def _reverse(self, chosen: list[str], log: Sequence[Decision], race: Race) -> None:
        """Schedule one run that reverses ``race``: one of its initials chosen at the
        decision of the earlier access, unless one already is (ran or queued); with no
        initial among the choices there, every other choice (as classic DPOR does)."""
        index = race.turn
        decision = log[index]
        # The later access's thread first, then the others that can start the reversal.
        candidates = [race.thread] + [t for t in race.initials if t != race.thread]
        paths = [path for thread in candidates if _enabled(decision, thread)
                 for path in alternatives(decision, thread)]
        if not paths:
            for path in alternatives(decision, race.thread):
                self._add_reversal(race, chosen[:index] + path)
            return
        prefixes = [chosen[:index] + path for path in paths]
        if any(self._known(prefix) for prefix in prefixes):
            return
        within = [prefix for prefix in prefixes if prefix.count(YIELD) <= self.bound]
        if within:
            self._add_reversal(race, within[0])
            return
        # Over the bound here: the reversal may still be reachable from an earlier
        # free switch (a pick, where the running thread blocked, ended or had yielded):
        # bounded partial-order reduction's conservative branch (Coons et al., 2013).
        for earlier in range(index - 1, -1, -1):
            if log[earlier].current:
                continue
            for thread in candidates:
                if thread in log[earlier].options and thread != chosen[earlier]:
                    self._add_reversal(race, chosen[:earlier] + [thread])
                    return
            return

    def _add_reversal(self, race: Race, prefix: list[str]) -> None:
        """Schedule ``prefix`` unless this race (its two accesses, what they are in any
        run of the same partial order) was already reversed with no more preemptions:
        a run equivalent to an earlier one reverses the same races again (what sleep
        sets keep DPOR from running twice)."""
        key = (race.pair, len(prefix) - race.turn, prefix[-1])
        cost = prefix.count(YIELD)
        if self.remember:
            if self._reversed.get(key, self.bound + 1) <= cost:
                return
            self._reversed[key] = cost
        self._add(prefix)

    def _known(self, prefix: list[str]) -> bool:
        key = tuple(prefix)
        return key in self._queued or self._ran.covers(key)

    def _add(self, prefix: list[str]) -> None:
        key = tuple(prefix)
        cost = key.count(YIELD)
        if cost > self.bound or key in self._queued or self._ran.covers(key):
            return
        self._queued.add(key)
        self._pending[cost].append(key)

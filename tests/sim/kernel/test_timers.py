"""The kernel's timers (``sockfake.sim.kernel.timers``), alone: order, cancellation,
equal times, and wait deadlines that become timers only when the clock must move."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from sockfake.sim.kernel.core import Kernel
from sockfake.sim.kernel.threads import SimThread
from sockfake.sim.kernel.timers import Timer, Timers


@pytest.fixture
def kernel() -> Iterator[Kernel]:
    """A kernel to own the threads (SimThread records need one); it runs nothing here."""
    kernel = Kernel(seed=0, pin_cpu=False)
    try:
        yield kernel
    finally:
        kernel.close()


@pytest.fixture
def log() -> list[str]:
    return []


@pytest.fixture
def timers(log: list[str]) -> Timers:
    return Timers(lambda thread, reason: log.append(f"{thread.name} {reason}"))


@pytest.fixture
def make_thread(kernel: Kernel) -> Iterator[Callable[[str], SimThread]]:
    made: list[SimThread] = []

    def make(name: str) -> SimThread:
        thread = SimThread(kernel, name, None)
        made.append(thread)
        return thread

    yield make
    for thread in made:
        thread.go.close()


def noting(log: list[str], text: str) -> Callable[[], None]:
    return lambda: log.append(text)


def test_timers_run_in_time_order_when_due(timers: Timers, log: list[str]) -> None:
    for when in (3.0, 1.0, 2.0):
        timers.call_at(when, noting(log, f"at {when:g}"))
    timers.run_due(0.5)
    assert log == []
    timers.run_due(2.0)
    assert log == ["at 1", "at 2"]
    timers.run_due(10.0)
    assert log == ["at 1", "at 2", "at 3"]
    assert len(timers) == 0 and timers.next_timer() is None


def test_equal_times_run_in_the_order_they_were_asked_for(timers: Timers, log: list[str]) -> None:
    for name in "abcde":
        timers.call_at(1.0, noting(log, name))
    timers.call_at(0.5, noting(log, "first"))
    timers.run_due(1.0)
    assert log == ["first", "a", "b", "c", "d", "e"]


def test_a_timer_a_callback_adds_for_now_runs_in_the_same_round(
    timers: Timers, log: list[str]
) -> None:
    def add() -> None:
        timers.call_at(1.0, noting(log, "added"))

    timers.call_at(1.0, add)
    timers.call_at(1.0, noting(log, "second"))
    timers.run_due(1.0)
    assert log == ["second", "added"]


def test_a_cancelled_timer_never_runs_and_lets_go_of_its_callback(
    timers: Timers, log: list[str], make_thread: Callable[[str], SimThread]
) -> None:
    thread = make_thread("t")
    keep = timers.call_at(1.0, noting(log, "kept"))
    drop = timers.call_at(0.5, noting(log, "dropped"), wakes=thread)
    drop.cancel()
    assert drop.cancelled and drop.wakes is None
    drop.callback()  # a no-op now: the original callback is released
    assert timers.next_timer() is keep  # the cancelled one at the top is skipped
    timers.run_due(5.0)
    assert log == ["kept"]


def test_next_timer_is_the_earliest_live_one(timers: Timers) -> None:
    assert timers.next_timer() is None
    late = timers.call_at(9.0, lambda: None)
    early = timers.call_at(2.0, lambda: None)
    assert timers.next_timer() is early
    early.cancel()
    assert timers.next_timer() is late
    assert isinstance(late, Timer) and (late.when, late.seq) == (9.0, 1)


def test_compaction_drops_cancelled_timers_and_keeps_the_order(
    timers: Timers, log: list[str]
) -> None:
    kept = []
    for number in range(3000):
        timer = timers.call_at(float(number % 7), noting(log, str(number)))
        if number % 3:
            timer.cancel()
        else:
            kept.append(number)
    assert len(timers) < 3000  # compacted along the way
    timers.run_due(100.0)
    assert log == [str(n) for n in sorted(kept, key=lambda n: (n % 7, n))]


def test_a_deadline_is_no_timer_until_the_clock_must_move(
    timers: Timers, log: list[str], make_thread: Callable[[str], SimThread]
) -> None:
    thread = make_thread("waiter")
    timers.add_deadline(thread, 5.0)
    assert thread.deadline_unscheduled()
    assert len(timers) == 0 and timers.pending()
    timers.run_due(1.0)  # not due yet: nothing moves into the heap
    assert len(timers) == 0 and log == []
    first = timers.next_timer()  # the clock must move: the deadline becomes a timer
    assert first is not None and first is thread.timer and first.wakes is thread
    assert (first.when, len(timers)) == (5.0, 1) and not thread.deadline_unscheduled()
    timers.run_due(5.0)
    assert log == ["waiter timeout"]


def test_a_due_deadline_wakes_its_thread_without_next_timer(
    timers: Timers, log: list[str], make_thread: Callable[[str], SimThread]
) -> None:
    thread = make_thread("waiter")
    timers.add_deadline(thread, 2.0)
    timers.run_due(2.0)
    assert log == ["waiter timeout"]


def test_a_wait_that_ends_first_leaves_nothing_behind(
    timers: Timers, log: list[str], make_thread: Callable[[str], SimThread]
) -> None:
    threads = [make_thread(f"t{n}") for n in range(3000)]
    for thread in threads:
        timers.add_deadline(thread, 1.0)
        thread.stop_waiting()  # woken by a reply before the deadline
    assert not timers.pending()
    assert timers.next_timer() is None and len(timers) == 0
    timers.run_due(10.0)
    assert log == []


def test_deadlines_keep_their_place_among_timers_at_the_same_time(
    timers: Timers, log: list[str], make_thread: Callable[[str], SimThread]
) -> None:
    timers.call_at(3.0, noting(log, "timer before"))
    timers.add_deadline(make_thread("waiter"), 3.0)  # its seq is taken now
    timers.call_at(3.0, noting(log, "timer after"))
    timers.run_due(3.0)
    assert log == ["timer before", "waiter timeout", "timer after"]


def test_only_the_current_deadline_of_a_thread_counts(
    timers: Timers, log: list[str], make_thread: Callable[[str], SimThread]
) -> None:
    thread = make_thread("waiter")
    timers.add_deadline(thread, 1.0)
    thread.stop_waiting()
    timers.add_deadline(thread, 4.0)  # its next wait: listed a second time
    first = timers.next_timer()
    assert first is not None and first.when == 4.0 and len(timers) == 1
    timers.run_due(4.0)
    assert log == ["waiter timeout"]


def test_pending_and_clear(
    timers: Timers, make_thread: Callable[[str], SimThread]
) -> None:
    assert not timers.pending()
    timer = timers.call_at(1.0, lambda: None)
    assert timers.pending()
    timer.cancel()
    assert not timers.pending()
    timers.add_deadline(make_thread("waiter"), 2.0)
    timers.call_at(3.0, lambda: None)
    assert timers.pending()
    timers.clear()
    assert not timers.pending() and len(timers) == 0 and timers.next_timer() is None

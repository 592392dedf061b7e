"""The kernel tells a busy loop from a spin.

A thread making progress (polls that find work, polls with events between them, an
event loop reading the clock between its select(0)s) never moves the clock. A thread
that only polls or only reads the clock waits for time to pass: the clock moves to the
next event. With none, a thread reading the clock is charged virtual time per read, up
to the spin budget. A spin that can never end fails the run, naming where it spins.
"""

from __future__ import annotations

import asyncio
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import sockfake as socketserver
from sockfake import settings
from sockfake.sim import SimDeadlockError, SimNetwork, SimTimeLimitError
from sockfake.sim.kernel.core import DEFAULT_SPIN_BUDGET, SPIN_QUANTUM


@pytest.fixture
def inet() -> Iterator[SimNetwork]:
    network = SimNetwork(seed=9, time_limit=3600)
    try:
        with network.intercept():
            yield network
    finally:
        network.close()


def _sleeper(net: SimNetwork, seconds: float) -> threading.Thread:
    """A thread asleep for ``seconds``: an event the clock could jump to."""
    thread = threading.Thread(target=net.sleep, args=(seconds,), name="sleeper")
    thread.start()
    return thread


def _ticking_server() -> tuple[socketserver.TCPServer, threading.Thread]:
    """A server in serve_forever(0.5): a timer every half second, and nothing else."""
    server = socketserver.TCPServer(("127.0.0.1", 0), socketserver.BaseRequestHandler)
    serving = threading.Thread(target=server.serve_forever, args=(0.5,))
    serving.start()
    return server, serving


class _ReturnsAtOnce(selectors.BaseSelector):
    """A selector that never blocks (as CPython's test_base_events stands one in): an
    event loop on it reads the clock round after round."""

    def register(self, fileobj: Any, events: int, data: Any = None) -> Any:
        return None

    def unregister(self, fileobj: Any) -> Any:
        return None

    calls = 0

    def select(self, timeout: float | None = None) -> list[Any]:
        self.calls += 1
        return []

    def close(self) -> None:
        pass

    def get_map(self) -> Any:
        return {}


def _never_blocking_loop(selector: _ReturnsAtOnce | None = None) -> asyncio.AbstractEventLoop:
    loop = asyncio.SelectorEventLoop(selector or _ReturnsAtOnce())
    setattr(loop, "_write_to_self", lambda: None)  # noqa: B010  # no self-pipe to write
    return loop


# -- busy loops: the clock stays where it is ------------------------------------------


def test_empty_polls_between_sends_are_a_busy_loop_not_a_spin(net: SimNetwork) -> None:
    a, b = net.socket(socket.AF_INET, socket.SOCK_DGRAM), net.socket(socket.AF_INET,
                                                                      socket.SOCK_DGRAM)
    b.bind(("127.0.0.1", 0))
    b.setblocking(False)
    sleeper = _sleeper(net, 1.0)
    with net.selector() as selector:
        selector.register(b, selectors.EVENT_READ)
        for number in range(1000):
            assert selector.select(0) == []  # empty: it has not been sent yet
            a.sendto(b"%d" % number, b.getsockname())
            assert selector.select(0) != []
            assert b.recv(10) == b"%d" % number
    # 1,000 empty select(0)s, each after an event: the clock never jumped to the
    # sleeper's 1 s (it used to after 64 of them).
    assert net.time() == 0.0
    sleeper.join()
    assert net.time() == 1.0
    a.close()
    b.close()


def test_an_event_loop_reading_the_clock_between_polls_moves_no_time(
    inet: SimNetwork,
) -> None:
    sleeper = _sleeper(inet, 1.0)
    a, b = socket.socketpair()
    with selectors.DefaultSelector() as selector:
        selector.register(a, selectors.EVENT_READ)
        for _ in range(5000):  # asyncio's _run_once with callbacks ready, by hand
            assert selector.select(0) == []
            time.monotonic()
    assert inet.time() == 0.0
    sleeper.join()
    a.close()
    b.close()


def test_asyncio_sleep_zero_a_thousand_times_with_an_event_pending(inet: SimNetwork) -> None:
    sleeper = _sleeper(inet, 5.0)

    async def main() -> float:
        loop = asyncio.get_running_loop()
        for _ in range(1000):
            await asyncio.sleep(0)
        return loop.time()

    start = inet.time()
    asyncio.run(main())
    assert inet.time() == start  # not the sleeper's 5 s
    sleeper.join()


def test_a_loop_on_the_clock_sees_what_the_thread_it_woke_did(inet: SimNetwork) -> None:
    # An event loop whose selector returns at once (a stand-in, as CPython's
    # test_base_events has) reads the clock round after round; it wakes a thread, which
    # hands it a result with call_soon_threadsafe and exits, with no trace event: the
    # wake-up and the exit are progress, so the loop's clock reads after them are no
    # spin (test_base_events.test_check_thread).
    loop = _never_blocking_loop()
    woken = threading.Event()
    result = loop.create_future()

    def worker() -> None:
        woken.wait()
        loop.call_soon_threadsafe(result.set_result, "from the thread")

    thread = threading.Thread(target=worker)
    thread.start()
    loop.call_soon(woken.set)
    try:
        assert loop.run_until_complete(result) == "from the thread"
    finally:
        loop.close()
    thread.join()
    assert inet.time() == 0.0


def test_a_loop_reading_the_clock_lets_the_threads_it_waits_for_run_soon(
    inet: SimNetwork,
) -> None:
    # Clock reads with nothing happening while another thread is ready: it runs after
    # a few of them (_SPIN_POLLS), not after the _SPIN_READS bound of a spin.
    selector = _ReturnsAtOnce()
    loop = _never_blocking_loop(selector)
    try:
        assert loop.run_until_complete(loop.run_in_executor(None, sum, [1, 2])) == 3
    finally:
        loop.close()
    assert selector.calls < 1000  # rounds of the loop: 100,001 before


def test_a_loop_on_the_clock_sees_an_executor_job_handed_back(inet: SimNetwork) -> None:
    # The executor's worker hands the result over and waits for its next job, with no
    # trace event: the thread that read the clock while it ran counts again
    # (test_base_events.test_asyncgen_finalization_by_gc_in_other_thread).
    loop = _never_blocking_loop()
    try:
        assert loop.run_until_complete(loop.run_in_executor(None, sum, [1, 2])) == 3
    finally:
        loop.close()
    assert inet.time() == 0.0


# -- waiting for time: the clock moves to the next event ----------------------------


def test_a_loop_on_the_clock_sees_time_pass_when_events_are_scheduled(
    inet: SimNetwork,
) -> None:
    server, serving = _ticking_server()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pass
    assert inet.time() == pytest.approx(30.0)
    server.shutdown()
    serving.join()
    server.server_close()


def test_the_clock_moves_at_the_same_places_for_the_same_seed() -> None:
    def run() -> str:
        with SimNetwork(seed=4) as net, net.intercept():
            sleepers = [_sleeper(net, seconds) for seconds in (0.25, 1.0, 2.5)]
            deadline = time.monotonic() + 2.5  # the last sleeper wakes then
            while time.monotonic() < deadline:
                pass
            assert net.time() == 2.5
            for sleeper in sleepers:
                sleeper.join()
            jumps = [event.time for event in net.trace if event.kind == "jump"]
            assert jumps == [0.25, 1.0, 2.5]
            return net.trace.digest()

    assert run() == run()


# -- waiting for time only the thread sees: its clock reads are charged ----------------


def test_a_bounded_loop_on_a_frozen_clock_ends_as_on_the_os(inet: SimNetwork) -> None:
    # Nothing is scheduled, so no event can move the clock: past the spin bounds each
    # read is charged SPIN_QUANTUM of virtual time, and the loop ends at its deadline.
    start = inet.time()
    deadline = time.monotonic() + 5
    reads = 0
    while time.monotonic() < deadline:
        reads += 1
    assert start + 5 <= inet.time() < start + 5 + 2 * SPIN_QUANTUM
    assert reads > 5 / SPIN_QUANTUM  # the spin bounds' reads, then one per quantum


def test_an_event_loop_on_a_selector_that_never_blocks_sees_its_timer(
    inet: SimNetwork,
) -> None:
    # CPython's test_base_events.test_time_and_call_at: a loop on a stand-in selector
    # waits for call_at(now + 0.1) with nothing scheduled in the simulation.
    loop = _never_blocking_loop()
    try:
        start = loop.time()
        loop.call_at(start + 0.1, loop.stop)
        loop.run_forever()
        assert loop.time() - start >= 0.1
    finally:
        loop.close()


def test_charged_reads_give_the_same_clock_and_digest_for_the_same_seed() -> None:
    def run() -> tuple[float, str]:
        with SimNetwork(seed=4) as net, net.intercept():
            deadline = time.monotonic() + 2.5
            while time.monotonic() < deadline:
                pass
            _sleeper(net, 1.0).join()
            return net.time(), net.trace.digest()

    assert run() == run()


def test_spin_budget_bounds_the_time_charged_to_clock_reads() -> None:
    with SimNetwork(seed=1, spin_budget=10) as net, net.intercept():
        deadline = time.monotonic() + 8  # within the budget: it ends
        while time.monotonic() < deadline:
            pass
        deadline = time.monotonic() + 12  # past it (charged afresh after the sleep)
        time.sleep(0.5)
        with pytest.raises(SimDeadlockError, match="the spin budget of 10 s"):
            while time.monotonic() < deadline:
                pass
        assert net.time() == pytest.approx(18.5, abs=0.01)


def test_spin_budget_zero_reports_a_frozen_clock_at_once() -> None:
    with SimNetwork(seed=1, spin_budget=0) as net, net.intercept():
        deadline = time.monotonic() + 0.01
        with pytest.raises(SimDeadlockError, match="spin: 'main' reads the clock"):
            while time.monotonic() < deadline:
                pass
        assert net.time() == 0.0


def test_charged_reads_stop_at_the_time_limit() -> None:
    with SimNetwork(seed=1, time_limit=5) as net, net.intercept():
        deadline = time.monotonic() + 10
        with pytest.raises(SimTimeLimitError, match="virtual time limit of 5 s reached while "
                                                    "'main' reads the clock"):
            while time.monotonic() < deadline:
                pass
        assert net.time() <= 5.0


@pytest.mark.parametrize("budget", [-1, float("nan"), float("inf"), "60", True])
def test_spin_budget_is_validated(budget: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="spin_budget"):
        SimNetwork(spin_budget=budget)
    with pytest.raises(ValueError, match="spin_budget"):
        settings.parse_options({"spin_budget": budget})


def test_the_settings_spin_budget_default_is_the_kernels() -> None:
    assert settings.DEFAULT_SPIN_BUDGET == DEFAULT_SPIN_BUDGET  # settings imports no sim
    assert settings.parse_options({}).spin_budget == DEFAULT_SPIN_BUDGET
    assert settings.parse_options({"spin_budget": 0}).spin_budget == 0.0


# -- spins that can never end: reported with their frames ------------------------------


def test_a_loop_on_a_frozen_clock_is_reported_with_its_frame(inet: SimNetwork) -> None:
    # Past the spin budget (60 virtual seconds charged to its reads by default).
    deadline = time.monotonic() + 600
    with pytest.raises(SimDeadlockError) as info:
        while time.monotonic() < deadline:
            pass
    message = str(info.value)
    assert "spin: 'main' reads the clock" in message
    assert "nothing is scheduled" in message
    assert "the spin budget of 60 s" in message
    assert f"spinning at {__file__}" in message
    assert "in test_a_loop_on_a_frozen_clock_is_reported_with_its_frame" in message


def test_select_zero_forever_is_reported_with_its_frame(inet: SimNetwork) -> None:
    a, b = socket.socketpair()
    with selectors.DefaultSelector() as selector:
        selector.register(a, selectors.EVENT_READ)
        with pytest.raises(SimDeadlockError) as info:
            while not selector.select(0):
                pass
    message = str(info.value)
    assert "spin: 'main' busy-polls (select(0))" in message
    assert "in test_select_zero_forever_is_reported_with_its_frame" in message
    a.close()
    b.close()


def test_polls_the_clock_cannot_help_fail_after_the_clock_moved_for_them(
    inet: SimNetwork,
) -> None:
    _ticking_server()
    a, b = socket.socketpair()
    with selectors.DefaultSelector() as selector:
        selector.register(a, selectors.EVENT_READ)
        with pytest.raises(SimDeadlockError, match="the clock has moved 1000 times"):
            while not selector.select(0):
                pass
    assert inet.time() == pytest.approx(500.0)  # 1,000 of the server's 0.5 s ticks


def test_a_spinning_thread_fails_the_run_in_the_main_thread(inet: SimNetwork) -> None:
    def spin() -> None:
        deadline = time.monotonic() + 600  # past the spin budget
        while time.monotonic() < deadline:
            pass

    spinner = threading.Thread(target=spin, name="spinner")
    spinner.start()
    with pytest.raises(SimDeadlockError) as info:
        spinner.join()
    message = str(info.value)
    assert "spin: 'spinner' reads the clock" in message
    assert "in spin" in message


def test_an_asyncio_task_spinning_on_the_loop_clock_is_named(inet: SimNetwork) -> None:
    async def spin_until(deadline: float) -> None:
        loop = asyncio.get_running_loop()
        while loop.time() < deadline:
            await asyncio.sleep(0)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await asyncio.create_task(spin_until(loop.time() + 600), name="spinner")

    with pytest.raises(SimDeadlockError) as info:
        asyncio.run(main())
    message = str(info.value)
    assert "spin: 'main'" in message
    assert "spinner: test_an_asyncio_task_spinning_on_the_loop_clock_is_named." \
           "<locals>.spin_until()" in message

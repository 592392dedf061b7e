"""A signal one thread sends the main thread runs its handler there, and the wait goes on.

On the simulation (``net.intercept()``'s ``signal.pthread_kill``) the handler runs at
the main thread's next turn, at the virtual time of the send; on the real OS it runs
whenever the main thread next gets the GIL. Either way: on the main thread, and the
interrupted wait carries on to its real end (PEP 475).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sockfake.sim import SimNetwork

pytestmark = pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="POSIX only")


@pytest.fixture
def usr1_handler() -> Iterator[list[tuple[str, float]]]:
    """SIGUSR1's handler records the thread it ran on and the (possibly virtual) time."""
    seen: list[tuple[str, float]] = []

    def handler(signum: int, frame: Any) -> None:
        seen.append((threading.current_thread().name, time.monotonic()))

    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGUSR1, previous)


def _signal_then_set(main: int, done: threading.Event, sent_at: list[float]) -> None:
    time.sleep(1.0)
    sent_at.append(time.monotonic())
    signal.pthread_kill(main, signal.SIGUSR1)
    time.sleep(2.0)
    done.set()


def _main_waits_through_a_signal(seen: list[tuple[str, float]]) -> tuple[bool, list[float]]:
    done = threading.Event()
    sent_at: list[float] = []
    sender = threading.Thread(target=_signal_then_set,
                              args=(threading.get_ident(), done, sent_at))
    sender.start()
    finished = done.wait(timeout=30)
    sender.join()
    return finished, sent_at


@pytest.mark.parametrize("network", ["sim", "real"])
def test_the_handler_runs_on_the_main_thread_and_the_wait_goes_on(
    network: str, usr1_handler: list[tuple[str, float]]
) -> None:
    if network == "real":
        finished, sent_at = _main_waits_through_a_signal(usr1_handler)
    else:
        net = SimNetwork(seed=1)
        try:
            with net.intercept():
                finished, sent_at = _main_waits_through_a_signal(usr1_handler)
                kinds = [event.kind for event in net.trace]
        finally:
            net.close()
        assert kinds.count("signal") == 1
        # In virtual time, exactly when it was sent; the wait ended 2 s later, at the set().
        assert [when for _, when in usr1_handler] == sent_at
    assert finished  # the wait was not cut short by the signal
    assert [name for name, _ in usr1_handler] == [threading.main_thread().name]


def test_a_signal_in_the_simulation_repeats_exactly(usr1_handler: list[tuple[str, float]]
                                                    ) -> None:
    digests = []
    for _ in range(2):
        net = SimNetwork(seed=3)
        try:
            with net.intercept():
                _main_waits_through_a_signal(usr1_handler)
            digests.append(net.trace.digest())
        finally:
            net.close()
    assert digests[0] == digests[1]
    assert len(usr1_handler) == 2


def test_a_handler_that_raises_ends_the_wait_with_its_error() -> None:
    class Interrupted(Exception):
        pass

    def handler(signum: int, frame: Any) -> None:
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGUSR1, handler)
    net = SimNetwork(seed=1)
    try:
        with net.intercept():
            done = threading.Event()
            sent_at: list[float] = []
            sender = threading.Thread(target=_signal_then_set,
                                      args=(threading.get_ident(), done, sent_at))
            sender.start()
            with pytest.raises(Interrupted):
                done.wait(timeout=30)
            raised_at = time.monotonic()
            sender.join()
        assert [raised_at] == sent_at  # at once, not after the 2 s the wait had left
    finally:
        net.close()
        signal.signal(signal.SIGUSR1, previous)


def _in_simulation(body: Any) -> Any:
    net = SimNetwork(seed=1)
    try:
        with net.intercept():
            return body()
    finally:
        net.close()


def test_a_set_right_after_the_signal_still_wakes_the_main_thread(
    usr1_handler: list[tuple[str, float]]
) -> None:
    # The signal takes the main thread off its wait; the set() that follows in the same
    # turn must not be lost (it was: a wrong deadlock, or the wait ran to its timeout).
    def body() -> tuple[bool, float]:
        done = threading.Event()
        main = threading.get_ident()

        def sender() -> None:
            time.sleep(1.0)
            signal.pthread_kill(main, signal.SIGUSR1)
            done.set()

        started = time.monotonic()
        thread = threading.Thread(target=sender)
        thread.start()
        finished = done.wait(timeout=5.0)
        waited = time.monotonic() - started
        thread.join()
        return finished, waited

    finished, waited = _in_simulation(body)
    assert finished
    assert waited == pytest.approx(1.0)
    assert len(usr1_handler) == 1


def test_os_kill_of_the_own_process_and_many_signals_in_one_sleep(
    usr1_handler: list[tuple[str, float]]
) -> None:
    def body() -> float:
        main_sleeps = threading.Thread(target=lambda: None)  # a simulated thread exists
        main_sleeps.start()
        main_sleeps.join()

        def sender() -> None:
            for _ in range(1500):  # one wait interrupted 1,500 times: no frame per signal
                os.kill(os.getpid(), signal.SIGUSR1)
                time.sleep(0.001)

        started = time.monotonic()
        thread = threading.Thread(target=sender)
        thread.start()
        time.sleep(10.0)
        thread.join()
        return time.monotonic() - started

    assert _in_simulation(body) == pytest.approx(10.0)
    assert len(usr1_handler) == 1500
    assert {name for name, _ in usr1_handler} == {threading.main_thread().name}


def test_signal_zero_probes_and_a_raising_handler_leaves_the_rest_pending() -> None:
    ran: list[str] = []

    class Stop(Exception):
        pass

    def first(signum: int, frame: Any) -> None:
        ran.append("USR1")
        raise Stop

    def second(signum: int, frame: Any) -> None:
        ran.append("USR2")

    def body() -> None:
        main = threading.get_ident()

        def sender() -> None:
            signal.pthread_kill(main, 0)  # is it alive? (no handler, nothing delivered)
            signal.pthread_kill(main, signal.SIGUSR1)
            signal.pthread_kill(main, signal.SIGUSR2)

        thread = threading.Thread(target=sender)
        with pytest.raises(Stop):  # at the main thread's next turn: start() yields to it
            thread.start()
            thread.join()
        assert ran == ["USR1"]
        time.sleep(0.1)  # USR2 stayed pending: its handler runs at the next chance
        thread.join()

    previous = (signal.signal(signal.SIGUSR1, first), signal.signal(signal.SIGUSR2, second))
    try:
        _in_simulation(body)
    finally:
        signal.signal(signal.SIGUSR1, previous[0])
        signal.signal(signal.SIGUSR2, previous[1])
    assert ran == ["USR1", "USR2"]

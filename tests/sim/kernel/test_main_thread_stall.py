"""The main simulated thread blocking outside the simulation is reported, never a hang."""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from sockfake.sim import SimNetwork, SimStallError
from sockfake.sim.kernel.backends import set_default_backend


@pytest.fixture(autouse=True)
def _os_threads() -> Iterator[None]:
    """These tests are about OS threads (a session forced onto greenlets aside)."""
    previous = set_default_backend("threads")
    yield
    set_default_backend(previous)


pytestmark = pytest.mark.skipif(
    not hasattr(signal, "SIGUSR2"), reason="the stall signal needs POSIX signals"
)


def test_main_thread_waiting_on_a_real_queue_for_a_simulated_thread_is_a_stall() -> None:
    net = SimNetwork(seed=1, stall_timeout=0.3)
    results: queue.Queue[int] = queue.Queue()

    def worker() -> None:
        net.sleep(1.0)
        results.put(42)

    threading.Thread(target=worker).start()
    try:
        with pytest.raises(SimStallError, match="'main' has held the turn") as caught:
            results.get(timeout=30)  # the worker can never run: the main thread has the turn
    finally:
        net.close()
    assert "results.get" in str(caught.value)  # the report shows where it was stuck


def test_main_thread_in_time_sleep_while_others_starve_is_a_stall() -> None:
    net = SimNetwork(seed=2, stall_timeout=0.3)
    threading.Thread(target=net.sleep, args=(1.0,)).start()
    try:
        with pytest.raises(SimStallError):
            time.sleep(30)
    finally:
        net.close()


def test_a_real_wait_that_starves_nobody_is_not_a_stall() -> None:
    # A real thread started before the network exists is not part of it; it answers
    # after a real delay longer than the stall timeout.
    never = threading.Event()
    done = threading.Event()
    def wait_then_set() -> None:
        never.wait(0.6)
        done.set()

    real = threading.Thread(target=wait_then_set)
    real.start()
    net = SimNetwork(seed=3, stall_timeout=0.2)
    finished: list[str] = []
    thread = threading.Thread(target=finished.append, args=("ran",))
    thread.start()
    thread.join()  # the simulated thread has finished: nothing is left to starve
    try:
        assert done.wait(5)  # longer than stall_timeout, but nobody starves
    finally:
        net.close()
        real.join()
    assert finished == ["ran"]


def test_the_stall_signal_handler_is_removed_when_the_network_closes() -> None:
    before = signal.getsignal(signal.SIGUSR2)
    if before is not signal.SIG_DFL or threading.current_thread() is not threading.main_thread():
        pytest.skip("the network installs its handler only in the main thread, over SIG_DFL")
    net = SimNetwork(seed=4)
    thread = threading.Thread(target=lambda: None)
    thread.start()
    thread.join()
    installed = signal.getsignal(signal.SIGUSR2)
    net.close()
    assert installed is not before  # there was a handler to remove
    assert signal.getsignal(signal.SIGUSR2) == before


def test_a_network_left_behind_does_not_interrupt_later_code() -> None:
    def use_and_forget() -> SimNetwork:
        net = SimNetwork(seed=5, stall_timeout=0.2)
        threading.Thread(target=net.sleep, args=(1.0,)).start()  # ready, never run
        return net

    abandoned = use_and_forget()  # the code that used it has returned
    never = threading.Event()
    try:
        assert not never.wait(0.6)  # later, unrelated waiting: no SimStallError here
    finally:
        abandoned.close()

"""Modules imported while an interception is active, from a simulated thread.

Their module-level objects outlive the simulation and are shared with every thread, so
they are the real primitives, however deep below the module's code they are made (a
registry whose constructor makes a lock eight calls down), and a lock among them
waits in virtual time when simulated threads contend for it. The next test, with no
interception, finds real objects that work. Checked with a throwaway module and with
a real third-party one (dnspython's ``dns.entropy``, imported afresh inside the test).
"""

from __future__ import annotations

import _thread
import importlib
import queue
import sys
import threading
import time
from collections.abc import Callable
from types import ModuleType

import pytest

from sockfake.sim import SimNetwork
from sockfake.sim.intercept.dispatch import REAL
from sockfake.sim.intercept.made_before import GuardedLock

LATE_SOURCE = """
import queue
import threading
from time import monotonic

def _deep(n):
    return _deep(n - 1) if n else (threading.Lock(), threading.Event(), queue.Queue())

class Registry:
    def __init__(self):
        self.lock, self.event, self.jobs = _deep(8)   # made far below the module's code

registry = Registry()
lock = threading.Lock()
"""

@pytest.fixture
def late_name(module_source: Callable[[str, str], str]) -> str:
    return module_source("late_objects", LATE_SOURCE)


def test_a_module_imported_in_a_simulated_test_holds_real_objects_that_work_after(
    late_name: str,
) -> None:
    net = SimNetwork(seed=1, time_limit=60)
    entered: list[float] = []
    try:
        with net.intercept():
            late = importlib.import_module(late_name)

            def hold() -> None:  # the lock held across a simulated call
                with late.registry.lock:
                    entered.append(net.time())
                    time.sleep(1)

            threads = [threading.Thread(target=hold) for _ in range(2)]
            for thread in threads:
                thread.start()
            late.registry.event.set()
            late.registry.jobs.put("job")
            for thread in threads:
                thread.join()
            assert late.monotonic() == time.monotonic()  # the dispatcher: virtual here
    finally:
        net.close()
    assert entered == [0.0, 1.0]  # the second waited in virtual time, no stall
    # After the interception (the next test): real objects, on the real clock.
    assert isinstance(late.registry.event, REAL["Event"])
    assert type(late.registry.jobs) is queue.Queue
    assert late.registry.event.wait(0)
    assert late.registry.jobs.get(timeout=1) == "job"
    outside: list[bool] = []
    worker = threading.Thread(target=lambda: outside.append(late.registry.lock.acquire(timeout=1)))
    worker.start()
    worker.join()
    assert outside == [True]
    assert late.monotonic() > 0  # the real clock again
    for lock in (late.lock, late.registry.lock):
        assert isinstance(lock, GuardedLock)
        assert isinstance(lock.lock, _thread.LockType)  # real underneath


def test_a_third_party_module_imported_first_in_a_simulated_test_keeps_real_objects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dns = pytest.importorskip("dns")
    pytest.importorskip("dns.entropy")
    # Imported afresh inside the interception, as in a process whose first user is
    # this test; the module the rest of the process uses is put back after.
    monkeypatch.delitem(sys.modules, "dns.entropy")
    monkeypatch.setattr(dns, "entropy", dns.entropy)
    net = SimNetwork(seed=1, time_limit=60)
    ids: list[int] = []
    try:
        with net.intercept():
            fresh: ModuleType = importlib.import_module("dns.entropy")
            threads = [threading.Thread(target=lambda: ids.append(fresh.random_16()))
                       for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    finally:
        net.close()
    assert len(ids) == 4
    assert isinstance(fresh.pool.lock, GuardedLock)
    # After the interception the module works from any thread, as a real one.
    later: list[int] = []
    worker = threading.Thread(target=lambda: later.append(fresh.random_16()))
    worker.start()
    worker.join()
    assert 0 <= later[0] < 65536


def test_a_busy_loop_taking_a_free_imported_lock_still_lets_others_run(
    module_source: Callable[[str, str], str],
) -> None:
    """A loop on a stand-in that never blocks (CPython's test_base_events: a mock
    selector, whose every call takes unittest.mock's lock, made by an import in the
    simulation) waits for time to pass by reading the clock: after enough reads the
    others run. Taking and releasing a free lock is no progress; when it counted as
    some, the loop never let the thread that would end it run (a hang)."""
    name = module_source("late_lock", "import threading\nlock = threading.Lock()\n")
    net = SimNetwork(seed=1, time_limit=60)
    done: list[bool] = []
    spins = 0
    try:
        with net.intercept():
            late = importlib.import_module(name)
            def wake() -> None:
                time.sleep(1)  # the loop's clock reads move the clock to this
                done.append(True)

            other = threading.Thread(target=wake)
            other.start()
            while not done and spins < 300_000:  # bounded: 100,000 clock reads suffice
                with late.lock:
                    spins += 1
                time.monotonic()
            other.join()
    finally:
        net.close()
    assert done == [True]
    assert spins < 300_000
    assert net.time() == 1.0

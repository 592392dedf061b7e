"""Objects and names a module bound at import, before ``net.intercept()``.

Each test imports a throwaway module (written to ``tmp_path``) before the interception,
as an application's modules are, then uses its globals from simulated threads: a name
bound by ``from time import monotonic`` is the simulation, a module-level lock, event,
condition, semaphore or queue waits in virtual time, and a module-level thread pool runs
a simulated thread's work on a simulated stand-in. Before this, each of them blocked
the OS thread holding the simulation's turn: a stall reported after 10 real seconds
(the pool was refused at once instead).
"""

from __future__ import annotations

import importlib
import itertools
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from sockfake.sim import SimDeadlockError, SimNetwork
from sockfake.sim.intercept.clock import MONOTONIC_BASE
from sockfake.sim.intercept.dispatch import REAL

EARLY_SOURCE = """
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from socket import create_connection
from time import monotonic, sleep
from time import perf_counter as real_clock
from threading import Lock as LockClass

_sleep = time.sleep
lock = threading.Lock()
rlock = threading.RLock()
event = threading.Event()
condition = threading.Condition()
semaphore = threading.Semaphore(0)
jobs = queue.Queue()
pool = ThreadPoolExecutor(2)
"""

_numbers = itertools.count()


@pytest.fixture
def early(tmp_path: Path) -> Iterator[ModuleType]:
    """A module imported before the interception, as an application's are (tests ask
    for it before ``inet``)."""
    name = f"early_objects_{next(_numbers)}"
    (tmp_path / f"{name}.py").write_text(EARLY_SOURCE)
    sys.path.insert(0, str(tmp_path))
    try:
        module = importlib.import_module(name)
        yield module
    finally:
        sys.path.remove(str(tmp_path))
        module = sys.modules.pop(name)
        module.pool.shutdown()


def test_names_bound_by_from_import_are_the_simulation_and_put_back(
    net: SimNetwork, early: ModuleType
) -> None:
    real = (early.monotonic, early.sleep, early._sleep, early.create_connection, early.LockClass)
    with net.intercept():
        assert early.real_clock is REAL["perf_counter"]  # its name says real: kept
        start = early.monotonic()
        assert start == MONOTONIC_BASE
        early.sleep(2)
        early._sleep(3)
        assert early.monotonic() == MONOTONIC_BASE + 5 == time.monotonic()
        assert early.create_connection is socket.create_connection
        with pytest.raises(ConnectionRefusedError):  # on the simulated network: no server
            early.create_connection(("127.0.0.1", 9), timeout=1)
        assert type(early.LockClass()) is type(threading.Lock())  # the dispatcher's
        with early.condition:  # a Condition on a module-level lock made now works too
            pass
        made_now = threading.Condition(early.lock)
        with made_now:
            assert not made_now.wait(timeout=1)
    assert (early.monotonic, early.sleep, early._sleep, early.create_connection,
            early.LockClass) == real


@pytest.mark.parametrize("name", ["lock", "rlock"])
def test_a_module_level_lock_held_by_another_simulated_thread_waits_in_virtual_time(
    net: SimNetwork, early: ModuleType, name: str
) -> None:
    real_lock = getattr(early, name)
    with net.intercept():
        lock = getattr(early, name)
        acquired = threading.Event()

        def hold() -> None:
            with lock:
                acquired.set()
                time.sleep(1)

        holder = threading.Thread(target=hold)
        holder.start()
        acquired.wait()
        started = time.perf_counter()
        with lock:  # stalled the run for 10 real seconds
            assert net.time() == pytest.approx(1.0)
        holder.join()
        assert time.perf_counter() - started < 5
        assert lock.acquire(timeout=2)
        lock.release()
    assert getattr(early, name) is real_lock
    assert real_lock.acquire(blocking=False)  # released, and usable as before


def test_a_module_level_rlock_keeps_a_second_greenlet_thread_out(early: ModuleType) -> None:
    """On the greenlet backend every simulated thread is one OS thread, which the real
    RLock takes for one owner: the stand-in keeps the simulated owner, so a second
    simulated thread waits (in virtual time) as it does on OS threads."""
    pytest.importorskip("greenlet")
    entered: list[tuple[str, float]] = []
    with SimNetwork(seed=1, time_limit=60, backend="greenlet") as net, net.intercept():
        lock = early.rlock
        held = threading.Event()

        def hold() -> None:
            with lock, lock:  # re-entered by its owner
                held.set()
                time.sleep(1)
            entered.append(("released", net.time()))

        holder = threading.Thread(target=hold)
        holder.start()
        held.wait()
        assert not lock.acquire(blocking=False)
        with pytest.raises(RuntimeError, match="un-acquired"):
            lock.release()
        with lock:
            entered.append(("main", net.time()))
        holder.join()
    assert entered == [("released", 1.0), ("main", 1.0)]


def test_a_module_level_event_condition_semaphore_and_queue_wait_in_virtual_time(
    early: ModuleType, inet: SimNetwork
) -> None:
    seen: list[tuple[str, float]] = []

    def producer() -> None:
        time.sleep(1)
        early.event.set()
        time.sleep(1)
        with early.condition:
            early.condition.notify_all()
        time.sleep(1)
        early.semaphore.release()
        time.sleep(1)
        early.jobs.put("job")

    thread = threading.Thread(target=producer)
    thread.start()
    assert early.event.wait()
    seen.append(("event", inet.time()))
    with early.condition:
        assert early.condition.wait(timeout=10)
    seen.append(("condition", inet.time()))
    assert early.semaphore.acquire()
    seen.append(("semaphore", inet.time()))
    assert early.jobs.get() == "job"
    seen.append(("queue", inet.time()))
    thread.join()
    assert seen == [("event", 1.0), ("condition", 2.0), ("semaphore", 3.0), ("queue", 4.0)]
    # A timeout runs on the virtual clock too.
    assert not early.semaphore.acquire(timeout=5)
    assert inet.time() == pytest.approx(9.0)


def test_a_module_level_thread_pool_runs_simulated_work_on_a_stand_in(
    early: ModuleType, inet: SimNetwork
) -> None:
    def job(n: int) -> tuple[int, bool, float]:
        time.sleep(1)
        name = threading.current_thread().name  # the original's prefix, simulated
        return n, name.startswith(prefix) and inet.kernel.is_simulated_caller(), inet.time()

    prefix = early.pool._thread_name_prefix
    started = time.perf_counter()
    futures = [early.pool.submit(job, n) for n in range(4)]  # 2 workers, as the original
    results = [future.result() for future in futures]
    assert time.perf_counter() - started < 5  # no stall
    assert results == [(0, True, 1.0), (1, True, 1.0), (2, True, 2.0), (3, True, 2.0)]
    assert list(early.pool.map(abs, [-1, -2])) == [1, 2]
    assert not early.pool._threads  # the original started no worker


def test_a_module_level_thread_pool_is_the_original_again_after_the_interception(
    early: ModuleType,
) -> None:
    net = SimNetwork(seed=1, time_limit=60)
    try:
        with net.intercept():
            assert early.pool.submit(sum, [1, 2]).result() == 3
    finally:
        net.close()
    assert early.pool.submit(sum, [3, 4]).result() == 7  # a real worker, outside
    assert len(early.pool._threads) == 1


def test_a_lock_that_is_never_released_is_a_deadlock_naming_it(early: ModuleType) -> None:
    # Held by a thread outside the simulation that never lets go (this test, before):
    # with nothing else to happen, the wait gives it stall_timeout of real time first.
    net = SimNetwork(seed=1, time_limit=3600, stall_timeout=0.5)
    early.lock.acquire()
    try:
        with net.intercept(), pytest.raises(SimDeadlockError) as caught:
            early.lock.acquire()
        assert f"threading.Lock {early.__name__}.lock, made before net.intercept()" in str(
            caught.value)
    finally:
        early.lock.release()
        net.close()


def test_a_real_event_set_by_a_thread_outside_the_simulation_ends_the_wait(
    early: ModuleType, inet: SimNetwork
) -> None:
    """Nothing in the simulation can set it: the wait gives the outside thread real time
    (a deadlock report at once before: a false failure)."""
    go = REAL["Event"]()

    def outside() -> None:
        go.wait()
        early.event.set()

    from sockfake.sim.kernel.thread_hooks import _original_start

    thread = threading.Thread(target=outside)
    _original_start(thread)
    go.set()
    assert early.event.wait()
    thread.join()
    assert inet.time() == 0.0


def test_threads_outside_the_simulation_get_the_real_objects(
    early: ModuleType, inet: SimNetwork
) -> None:
    results: list[object] = []

    def outside() -> None:
        results.append(early.monotonic() < MONOTONIC_BASE or early.monotonic() > 0)
        with early.lock:
            results.append(early.lock.locked())
        early.event.wait(0)
        results.append(early.pool.submit(sum, [1, 2]).result())

    # A thread the simulation does not know (started with the real start).
    from sockfake.sim.kernel.thread_hooks import _original_start

    thread = threading.Thread(target=outside)
    _original_start(thread)
    thread.join()
    assert results == [True, True, 3]

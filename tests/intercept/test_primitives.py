"""One family of primitives: what ``threading`` and ``queue`` give a simulated thread is
``net.lock()``'s kind, with a name, a creation site, an owner, and one setting
(``observed``) for whether its operations are switch points with trace events."""

from __future__ import annotations

import _thread
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import sockfake.sim.intercept.threads as intercepted
from sockfake import SockfakeRuntimeError
from sockfake.sim import SimDeadlockError, SimNetwork
from sockfake.sim.kernel.queues import SimQueue, SimSimpleQueue
from sockfake.sim.kernel.semaphores import SimSemaphore
from sockfake.sim.kernel.sync import SimCondition, SimEvent, SimLock, SimRLock
from sockfake.sim.kernel.thread_hooks import _original_start


def _in_real_thread(func: Callable[[], Any]) -> Any:
    """``func()`` in a thread outside the simulation; its result, or what it raised."""
    box: list[Any] = []

    def run() -> None:
        try:
            box.append(func())
        except BaseException as error:  # handed to the caller
            box.append(error)

    thread = threading.Thread(target=run)
    _original_start(thread)
    thread.join()
    return box[0]


# The factories are looked up when called: under net.intercept() they are its own.
def _lock(net: SimNetwork | None = None) -> Any:
    return threading.Lock()


def _rlock(net: SimNetwork | None = None) -> Any:
    return threading.RLock()


def _mutex_semaphore(net: SimNetwork) -> Any:
    return threading.Semaphore(1)


def _net_lock(net: SimNetwork) -> Any:
    return net.lock()


# -- deadlock reports ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "kind", "word"),
    [
        (_net_lock, "lock", "lock"),
        (_lock, "threading.Lock", "lock"),
        (_rlock, "threading.RLock", "lock"),
        (_mutex_semaphore, "threading.Semaphore", "semaphore"),
    ],
    ids=["net.lock", "Lock", "RLock", "Semaphore"],
)
def test_a_deadlock_report_names_the_locks_their_holders_sites_and_the_cycle(
    make: Callable[[SimNetwork], Any], kind: str, word: str
) -> None:
    with SimNetwork(seed=1) as net, net.intercept():
        first, second = make(net), make(net)

        def take(one: Any, other: Any) -> None:
            with one:
                time.sleep(1)  # both hold their first lock now
                with other:
                    pass

        threads = [
            threading.Thread(target=take, args=(first, second), name="left"),
            threading.Thread(target=take, args=(second, first), name="right"),
        ]
        for thread in threads:
            thread.start()
        with pytest.raises(SimDeadlockError) as info:
            for thread in threads:
                thread.join()
    report = str(info.value)
    assert f"left: blocked, waiting on {word} {kind}-2 (created at test_primitives.py:" in report
    assert "held by right)" in report and "held by left)" in report
    assert (f"wait-for cycle: left (waits on {kind}-2 held by right) -> right (waits on "
            f"{kind}-1 held by left) -> left") in report
    assert "in take" in report  # each thread's own frame at the blocking call


def test_a_lost_wake_up_names_the_condition_it_waits_on(inet: SimNetwork) -> None:
    cond = threading.Condition()
    with cond, pytest.raises(SimDeadlockError) as info:
        cond.wait()  # nobody will notify
    assert "main: blocked, waiting on condition threading.Condition-1 (created at " \
           "test_primitives.py:" in str(info.value)


def test_the_intercepted_classes_are_the_kernels_and_net_locks_numbers_stay_apart(
    inet: SimNetwork,
) -> None:
    made: list[Any] = [
        threading.Lock(), threading.RLock(), threading.Condition(), threading.Semaphore(),
        threading.BoundedSemaphore(), threading.Event(), queue.SimpleQueue(),
    ]
    classes = [SimLock, SimRLock, SimCondition, SimSemaphore, SimSemaphore, SimEvent,
               SimSimpleQueue]
    assert all(isinstance(obj, cls) for obj, cls in zip(made, classes, strict=True))
    assert [obj.observed for obj in made] == [False] * 5 + [True, False]
    assert made[0].name == "threading.Lock-1" and made[2].name == "threading.Condition-1"
    assert made[2]._lock.name == "threading.RLock-2"  # its own, made before it
    assert made[0].created_at.startswith("test_primitives.py:")
    # Locks that real code makes first shift no number of the test's own.
    lock, event, q = inet.lock(), inet.event(), inet.queue()
    assert (lock.name, event.name, q.name) == ("lock-1", "event-2", "queue-1")
    assert lock.observed and event.observed and q.observed
    assert isinstance(lock, SimLock) and isinstance(q, SimQueue)
    # queue.Queue stays the stdlib's class, on the kernel's lock and conditions.
    stdlib_queue: queue.Queue[int] = queue.Queue()
    assert isinstance(stdlib_queue.mutex, SimLock)
    assert stdlib_queue.not_empty._lock is stdlib_queue.mutex


# -- the observed setting -----------------------------------------------------------------


def _decisions(make_lock: Callable[[SimNetwork], Any], observed: bool | None) -> int:
    """Scheduler decisions for two threads taking a lock 50 times each (random policy)."""
    with SimNetwork(seed=3, scheduling="random") as net, net.intercept():
        lock = make_lock(net)
        if observed is not None:
            lock.observed = observed
        counter = [0]

        def work() -> None:
            for _ in range(50):
                with lock:
                    counter[0] += 1

        threads = [threading.Thread(target=work) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert counter[0] == 100
        return len(net.schedule)


def test_an_exploring_network_observes_real_codes_locks_as_net_lock() -> None:
    # Exploring (random here), a threading.Lock is what net.lock() is to the scheduler:
    # every acquire and release a switch point.
    intercepted_lock = _decisions(lambda net: threading.Lock(), observed=None)
    assert intercepted_lock > 200
    assert intercepted_lock == _decisions(lambda net: net.lock(), observed=None)
    # Turned off per object, it yields only when it must block.
    unobserved = _decisions(lambda net: threading.Lock(), observed=False)
    assert unobserved < 20
    assert unobserved == _decisions(lambda net: net.lock(), observed=False)


def test_under_fifo_real_codes_primitives_are_not_observed() -> None:
    with SimNetwork(seed=3) as net, net.intercept():
        made: list[Any] = [threading.Lock(), threading.RLock(), threading.Condition(),
                           threading.Semaphore(), queue.SimpleQueue()]
        assert not any(primitive.observed for primitive in made)
    with SimNetwork(seed=3, scheduling="pct") as net, net.intercept():
        made = [threading.Lock(), threading.RLock(), threading.Condition(),
                threading.Semaphore(), queue.SimpleQueue()]
        assert all(primitive.observed for primitive in made)


def test_an_observed_intercepted_lock_still_works_from_outside_and_after_close() -> None:
    with SimNetwork(seed=3, scheduling="random") as net, net.intercept():
        lock: Any = threading.Lock()
        assert lock.observed and not lock.strict
    # A cache made during a test keeps its lock; the next user is not simulated.
    with lock:
        assert lock.locked()
    assert not lock.locked()
    with SimNetwork(seed=3, scheduling="random") as net:
        strict = net.lock()
    with pytest.raises(SockfakeRuntimeError):
        strict.acquire()


def test_observed_primitives_of_real_code_go_to_the_trace_deterministically(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(intercepted, "OBSERVED", True)

    def run() -> tuple[str, set[str], int]:
        with SimNetwork(seed=5, scheduling="random") as net, net.intercept():
            jobs: queue.Queue[int | None] = queue.Queue(maxsize=2)
            sem = threading.BoundedSemaphore(1)
            done: list[int] = []

            def consumer() -> None:
                while (job := jobs.get()) is not None:
                    with sem:
                        done.append(job)

            thread = threading.Thread(target=consumer)
            thread.start()
            for job in range(20):
                jobs.put(job)
            jobs.put(None)
            thread.join()
            assert done == list(range(20))
            kinds = {event.kind for event in net.trace}
            return net.digest(), kinds, len(net.schedule)

    first, second = run(), run()
    assert first == second
    assert {"lock-wait", "lock-acquire", "condition-wait", "condition-notify"} <= first[1]


# -- the stdlib's surface -------------------------------------------------------------------


@pytest.mark.parametrize("make", [_lock, _rlock], ids=["Lock", "RLock"])
@pytest.mark.parametrize(
    "args", [(False, 1), (True, -2), (True, None), (True, 1e100), (True, float("nan")),
             (True, "1"), (False, -2)],
)
def test_acquire_refuses_what_the_real_lock_refuses(
    inet: SimNetwork, make: Callable[[], Any], args: tuple[object, object]
) -> None:
    real = _in_real_thread(lambda: _raised(lambda: make().acquire(*args)))
    simulated = _raised(lambda: make().acquire(*args))
    assert isinstance(make(), (SimLock, SimRLock))
    assert type(simulated) is type(real) and real is not None


def _raised(func: Callable[[], Any]) -> BaseException | None:
    try:
        func()
    except Exception as error:
        return error
    return None


def test_the_lock_and_rlock_surface(inet: SimNetwork) -> None:
    lock: Any = threading.Lock()
    assert lock.acquire(0) and not lock.acquire(False) and lock.locked()
    assert lock.locked_lock()
    lock.release_lock()
    assert lock.acquire_lock(True, 2)
    lock._at_fork_reinit()
    assert not lock.locked()
    with pytest.raises(RuntimeError, match="release unlocked lock"):
        lock.release()
    rlock: Any = threading.RLock()
    with rlock, rlock:
        assert rlock._recursion_count() == 2
        assert _in_real_thread(rlock._recursion_count) == 0
        assert "held by main" in repr(rlock) and "count=2" in repr(rlock)
    with pytest.raises(RuntimeError, match="un-acquired"):
        rlock.release()
    simple: queue.SimpleQueue[int] = queue.SimpleQueue()
    with pytest.raises(ValueError):
        simple.get(timeout=-1)
    with pytest.raises(queue.Empty):
        simple.get(False, -1)  # as the real one: no check without blocking


def test_a_lock_outside_the_simulation_works_until_it_would_wait(inet: SimNetwork) -> None:
    lock: Any = threading.Lock()
    assert _in_real_thread(lock.acquire) is True  # a free lock: taken from anywhere
    assert lock.owner is None and "held by a thread outside the simulation (or ended)" in repr(lock)
    lock.release()  # any thread may release a Lock
    with lock:
        assert lock.owner is not None and lock.owner.name == "main"
        assert _in_real_thread(lambda: lock.acquire(False)) is False
        error = _in_real_thread(lock.acquire)
        assert isinstance(error, SockfakeRuntimeError)
        assert "threading.Lock-1.acquire() would block thread" in str(error)
        assert "not part of this simulated network" in str(error)
    assert _thread.get_ident() != 0


def test_contended_net_lock_hands_over_under_every_policy() -> None:
    """A waiter reads the owner afresh after each wait (issue 22: a build compiled by
    mypyc trusted a narrowing another thread had undone, and raised TypeError)."""
    for scheduling in ("fifo", "random", "pct"):
        for seed in range(5):
            with SimNetwork(seed=seed, scheduling=scheduling) as net:
                lock = net.lock()
                counter = [0]

                def work(lock: Any = lock, counter: list[int] = counter,
                         net: SimNetwork = net) -> None:
                    for _ in range(20):
                        with lock:
                            seen = counter[0]
                            net.sleep(0.001)
                            counter[0] = seen + 1

                threads = [net.thread(work) for _ in range(3)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                assert counter[0] == 60


def test_the_creation_site_is_the_users_line_with_or_without_frame_module_names(
    inet: SimNetwork, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sockfake.sim.kernel.sync as sync

    made_here: list[Any] = [threading.Lock(), queue.Queue().not_empty, inet.lock()]  # a line
    monkeypatch.setattr(sync, "_frame_module", None)  # as on 3.10 and 3.11: a walk
    made_here += [threading.Lock(), queue.Queue().not_empty, inet.lock()]
    sites = {primitive.created_at for primitive in made_here}
    assert len(sites) == 2 and all(site.startswith("test_primitives.py:") for site in sites)

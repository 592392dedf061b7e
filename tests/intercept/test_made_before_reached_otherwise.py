"""Primitives made before ``net.intercept()`` and reached other than through a module
global: a class attribute, a default argument, a closure cell, an attribute of an
object made at import, up to three objects deep (``app.registry.cache.lock``), or deeper.

Each test imports a throwaway module (written to ``tmp_path``) before the interception,
as an application's modules are, and has two simulated threads contend for what it
holds across a simulated call (``time.sleep``), as a server's threads do. Before this,
the second thread blocked the OS thread that holds the simulation's turn on the real
primitive: a stall reported after 10 real seconds (``SimStallError``).
"""

from __future__ import annotations

import importlib
import queue
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from sockfake.sim import SimNetwork

EARLY_SOURCE = """
import queue
import threading
from threading import Lock

class Registry:
    lock = threading.Lock()           # a class attribute
    lock_class = threading.Lock       # a factory bound as a class attribute (werkzeug's Map)

    def __init__(self):
        self.made_lock = self.lock_class()

def with_default(work, lock=threading.Lock()):   # a default argument
    with lock:
        work()

def _closure():
    lock = threading.RLock()
    def with_closure(work):          # a closure cell
        with lock:
            work()
    return with_closure

with_closure = _closure()

def _factory_closure(make=Lock):
    def made():                      # a factory in a closure cell (a dataclass's default_factory)
        return make()
    return made

make_lock = _factory_closure()

class Holder:
    def __init__(self):
        self.lock = threading.Lock()  # an attribute of an object made at import
        self.inner = Inner()

class Inner:
    def __init__(self):
        self.event = threading.Event()      # two levels down: reached only as a Condition
        self.jobs = queue.Queue()
        self.condition = threading.Condition()
        self.lock = threading.RLock()       # two objects down: holder.inner.lock
        self.cache = Cache()

class Cache:
    def __init__(self):
        self.lock = threading.Lock()        # three down: holder.inner.cache.lock

holder = Holder()
"""

@pytest.fixture
def early(module_source: Callable[[str, str], str]) -> ModuleType:
    return importlib.import_module(module_source("early_reached", EARLY_SOURCE))


def _contend(
    net: SimNetwork, guarded: Callable[[Callable[[], None]], None]
) -> list[tuple[str, float]]:
    """Two simulated threads run ``guarded(work)``; each work holds it for 1 virtual
    second (a simulated call inside): the second waits in virtual time."""
    entered: list[tuple[str, float]] = []

    def work() -> None:
        entered.append((threading.current_thread().name, net.time()))
        time.sleep(1)

    threads = [threading.Thread(target=guarded, args=(work,), name=f"t{n}") for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return entered


def _with(lock: Any) -> Callable[[Callable[[], None]], None]:
    def guarded(work: Callable[[], None]) -> None:
        with lock:
            work()
    return guarded


@pytest.mark.parametrize("place", [
    "class attribute", "default argument", "closure", "object attribute", "factory attribute",
    "factory in a closure", "two objects down", "three objects down",
])
def test_a_lock_reached_otherwise_waits_in_virtual_time_and_is_put_back(
    early: ModuleType, place: str
) -> None:
    before = (early.Registry.__dict__["lock"], early.Registry.__dict__["lock_class"],
              early.with_default.__defaults__, early.with_closure.__closure__[0].cell_contents,
              early.holder.lock, early.make_lock.__closure__[0].cell_contents,
             early.holder.inner.lock, early.holder.inner.cache.lock)
    net = SimNetwork(seed=1, time_limit=60)
    try:
        with net.intercept():
            places: dict[str, Callable[[], Callable[[Callable[[], None]], None]]] = {
                "class attribute": lambda: _with(early.Registry.lock),
                "default argument": lambda: early.with_default,
                "closure": lambda: early.with_closure,
                "object attribute": lambda: _with(early.holder.lock),
                "factory attribute": lambda: _with(early.Registry().made_lock),
                "factory in a closure": lambda: _with(early.make_lock()),
                "two objects down": lambda: _with(early.holder.inner.lock),
                "three objects down": lambda: _with(early.holder.inner.cache.lock),
            }
            guarded = places[place]()
            started = time.perf_counter()
            entered = _contend(net, guarded)
            assert time.perf_counter() - started < 5  # no stall
        assert entered == [("t0", 0.0), ("t1", 1.0)]
    finally:
        net.close()
    after = (early.Registry.__dict__["lock"], early.Registry.__dict__["lock_class"],
             early.with_default.__defaults__, early.with_closure.__closure__[0].cell_contents,
             early.holder.lock, early.make_lock.__closure__[0].cell_contents,
             early.holder.inner.lock, early.holder.inner.cache.lock)
    assert after == before  # put back exactly
    assert early.Registry().made_lock.acquire(blocking=False)  # the real factory again


def test_an_event_queue_and_condition_two_levels_down_wait_in_virtual_time(
    early: ModuleType
) -> None:
    inner = early.holder.inner
    seen: list[tuple[str, float]] = []
    net = SimNetwork(seed=1, time_limit=60)
    try:
        with net.intercept():

            def producer() -> None:
                time.sleep(1)
                inner.event.set()
                time.sleep(1)
                inner.jobs.put("job")
                time.sleep(1)
                with inner.condition:
                    inner.condition.notify_all()

            thread = threading.Thread(target=producer)
            thread.start()
            assert inner.event.wait()
            seen.append(("event", net.time()))
            assert inner.jobs.get() == "job"
            seen.append(("queue", net.time()))
            with inner.condition:
                assert inner.condition.wait(timeout=10)
            seen.append(("condition", net.time()))
            thread.join()
            with pytest.raises(queue.Empty):  # a timeout runs on the virtual clock too
                inner.jobs.get(timeout=5)
            seen.append(("timeout", net.time()))
    finally:
        net.close()
    assert seen == [("event", 1.0), ("queue", 2.0), ("condition", 3.0), ("timeout", 8.0)]

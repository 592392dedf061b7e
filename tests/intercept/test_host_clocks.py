"""Per-host clocks under interception: what the threads of each host read, and the seed."""

from __future__ import annotations

import datetime
import queue
import select
import selectors
import socket
import threading
import time
from collections.abc import Callable

import pytest

from sockfake.sim import SimNetwork
from sockfake.sim.intercept.clock import EPOCH, MONOTONIC_BASE


def read_on(net: SimNetwork, host: str) -> tuple[float, float, datetime.datetime]:
    seen: list[tuple[float, float, datetime.datetime]] = []

    def read() -> None:
        seen.append((time.time(), time.monotonic(), datetime.datetime.now()))

    thread = net.host(host).thread(target=read)
    thread.start()
    thread.join()
    return seen[0]


def test_each_host_reads_its_own_clock(inet: SimNetwork) -> None:
    inet.add_host("db")
    inet.add_host("cache")
    inet.set_clock("db", offset=5.0, drift=1e-3)
    time.sleep(1000)
    wall, mono, date = read_on(inet, "db")
    assert wall == pytest.approx(EPOCH + 1000 + 5 + 1.0)
    assert mono == pytest.approx(MONOTONIC_BASE + 1000 + 1.0)
    assert date == datetime.datetime.fromtimestamp(wall)
    assert read_on(inet, "cache")[:2] == (EPOCH + 1000, MONOTONIC_BASE + 1000)
    assert (time.time(), time.monotonic()) == (EPOCH + 1000, MONOTONIC_BASE + 1000)
    assert inet.host_clock("db") == (wall, mono)
    # The test's own code, moved onto the host for a block:
    with inet.host("db").running():
        assert time.time() == wall
    assert time.time() == EPOCH + 1000


def test_a_step_back_leaves_monotonic_monotonic(inet: SimNetwork) -> None:
    inet.add_host("db")
    with inet.host("db").running():
        before = (time.time(), time.monotonic())
        inet.step_clock("db", -30.0)
        after = (time.time(), time.monotonic())
    assert after[0] == before[0] - 30.0
    assert after[1] == before[1]
    assert [e.details for e in inet.trace.events if e.kind == "clock"] == [
        "db: step -30.000000 s, offset -30.000000 s, drift +0.0 ppm"
    ]


def test_a_fast_clock_s_sleep_ends_early_in_true_time(inet: SimNetwork) -> None:
    inet.add_host("db")
    inet.set_clock("db", drift=0.25)
    with inet.host("db").running():
        start = time.monotonic()
        time.sleep(10.0)
        assert time.monotonic() - start == pytest.approx(10.0)
    assert inet.now == pytest.approx(8.0)


def test_a_fast_clock_s_socket_timeouts_end_early_in_true_time(inet: SimNetwork) -> None:
    # A timeout is counted on the host's clock, as its sleep is: 10 s of a clock
    # running 25 % fast are 8 s of true time, and read 10 s on the host's monotonic.
    inet.add_host("db")
    inet.set_clock("db", drift=0.25)
    with inet.host("db").running():
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("0.0.0.0", 5000))
        sock.settimeout(10.0)
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            sock.recv(100)
        assert time.monotonic() - start == pytest.approx(10.0)
        assert inet.now == pytest.approx(8.0)
        assert select.select([sock], [], [], 10.0) == ([], [], [])
        assert time.monotonic() - start == pytest.approx(20.0)
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ)
            assert selector.select(10.0) == []
        assert time.monotonic() - start == pytest.approx(30.0)
        sock.close()
    assert inet.now == pytest.approx(24.0)


def test_a_fast_clock_s_thread_and_queue_timeouts_end_early_in_true_time(
    inet: SimNetwork,
) -> None:
    # Every timed wait of the threading and queue modules is counted on the host's
    # clock, as a socket's timeout is: 10 s of a clock 25 % fast are 8 s of true time.
    inet.add_host("db")
    inet.set_clock("db", drift=0.25)
    seen: list[tuple[str, float, float]] = []

    def waits() -> None:
        lock = threading.Lock()
        lock.acquire()
        condition = threading.Condition()
        work: queue.Queue[int] = queue.Queue()
        other = threading.Thread(target=lambda: None)
        other.start()
        timed: list[tuple[str, Callable[[], object]]] = [
            ("Event.wait", lambda: threading.Event().wait(10.0)),
            ("Condition.wait", lambda: _under(condition, lambda: condition.wait(10.0))),
            ("Condition.wait_for",
             lambda: _under(condition, lambda: condition.wait_for(lambda: False, 10.0))),
            ("Lock.acquire", lambda: lock.acquire(timeout=10.0)),
            ("Semaphore.acquire", lambda: threading.Semaphore(0).acquire(timeout=10.0)),
            ("Queue.get", lambda: _empty(lambda: work.get(timeout=10.0))),
            ("SimpleQueue.get", lambda: _empty(lambda: queue.SimpleQueue().get(timeout=10.0))),
            ("Barrier.wait", lambda: _broken(lambda: threading.Barrier(2).wait(10.0))),
            ("sleep", lambda: time.sleep(10.0)),
        ]
        for name, wait in timed:
            start, true_start = time.monotonic(), inet.now
            wait()
            seen.append((name, time.monotonic() - start, inet.now - true_start))
        other.join()

    thread = inet.host("db").thread(target=waits)
    thread.start()
    thread.join()
    measured = [(name, round(on_host, 6), round(true, 6)) for name, on_host, true in seen]
    assert measured == [(name, 10.0, 8.0) for name, _, _ in seen]
    assert len(measured) == 9


def _under(condition: threading.Condition, wait: Callable[[], object]) -> object:
    with condition:
        return wait()


def _empty(get: Callable[[], object]) -> None:
    with pytest.raises(queue.Empty):
        get()


def _broken(wait: Callable[[], object]) -> None:
    with pytest.raises(threading.BrokenBarrierError):
        wait()


def test_a_slow_clock_s_stream_timeout_and_sendall_deadline_last_longer(
    inet: SimNetwork,
) -> None:
    inet.add_host("db")
    inet.set_clock("db", drift=-0.5)  # half speed: 1 s of its clock is 2 s of true time
    listener = socket.socket()
    listener.bind(("0.0.0.0", 5001))
    listener.listen()
    address = (inet.host("local").ipv4[0], 5001)
    with inet.host("db").running():
        client = socket.create_connection(address, timeout=1.0)
    server, _ = listener.accept()
    with inet.host("db").running():
        with pytest.raises(TimeoutError):
            client.recv(10)
    assert inet.now == pytest.approx(2.0)
    server.setblocking(False)
    with inet.host("db").running():
        with pytest.raises(TimeoutError):
            client.sendall(b"x" * 10_000_000)  # fills the buffers, then waits its 1 s
    assert inet.now == pytest.approx(4.0)
    for sock in (client, server, listener):
        sock.close()


def test_skewed_clocks_are_the_seed_s() -> None:
    def skews(seed: int) -> list[float]:
        with SimNetwork(seed=seed) as other:
            for name in ("a", "b"):
                other.add_host(name)
            other.skew_clocks(max_offset=2.0, max_drift=1e-4)
            other.sleep(100)
            return [other.host_clock(h)[0] for h in ("local", "a", "b")]

    first = skews(7)
    assert first == skews(7)
    assert first != skews(8)
    assert len(set(first)) == 3 and all(abs(w - EPOCH - 100) < 2.1 for w in first)


def test_net_random_is_the_seed_s_and_independent_of_the_simulation_s_streams() -> None:
    def draws(seed: int, extra: int) -> tuple[list[float], list[float]]:
        with SimNetwork(seed=seed) as net:
            mine = [net.random.random() for _ in range(extra)]
            return mine, [net.kernel.rng("datagram").random() for _ in range(3)]

    assert draws(3, 3) == draws(3, 3)
    assert draws(3, 3)[0] != draws(4, 3)[0]
    assert draws(3, 0)[1] == draws(3, 10)[1]  # the user's draws shift no other stream


def test_threads_started_on_a_host_see_its_clock(inet: SimNetwork) -> None:
    inet.add_host("db")
    inet.set_clock("db", offset=-100.0)
    seen: list[float] = []

    def parent() -> None:
        child = threading.Thread(target=lambda: seen.append(time.time()))
        child.start()
        child.join()

    thread = inet.host("db").thread(target=parent)
    thread.start()
    thread.join()
    assert seen == [EPOCH - 100.0]

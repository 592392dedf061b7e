"""The scheduler and the virtual clock, seen from servers and handlers."""

from __future__ import annotations

import os
import queue
import selectors
import socket
import threading
import time
from typing import Any

import pytest
from helpers import serving

import sockfake as socketserver
from sockfake import SockfakeError
from sockfake.sim import (
    SimDeadlockError,
    SimNetwork,
    SimStallError,
    SimTimeLimitError,
)
from sockfake.sim.kernel import backends
from sockfake.sim.kernel.core import current_kernel

# -- scheduling ---------------------------------------------------------------------------


def _count_with_lost_updates(seed: int, scheduling: str, clients: int = 6) -> int:
    """A handler doing an unlocked read-modify-write across a simulated call."""
    counter = {"hits": 0}

    class Racy(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.recv(10)
            seen = counter["hits"]
            self.request.sendall(b"ok")  # another thread may run here
            counter["hits"] = seen + 1

    with SimNetwork(seed=seed, scheduling=scheduling) as net:
        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Racy, network=net)
        with serving(server):

            def client() -> None:
                with net.create_connection(server.server_address) as sock:
                    sock.sendall(b"hit")
                    assert sock.recv(10) == b"ok"

            threads = [threading.Thread(target=client) for _ in range(clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    return counter["hits"]


def test_fifo_scheduling_never_loses_an_update() -> None:
    assert all(_count_with_lost_updates(seed, "fifo") == 6 for seed in range(10))


def test_random_scheduling_finds_the_lost_update_race() -> None:
    results = [_count_with_lost_updates(seed, "random") for seed in range(10)]
    assert any(hits < 6 for hits in results)
    # ... reproducibly: the same seed loses the same updates.
    assert [_count_with_lost_updates(seed, "random") for seed in range(10)] == results


def test_unknown_scheduling_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="scheduling"):
        SimNetwork(seed=1, scheduling="lifo")


# -- deadlock and stalls ---------------------------------------------------------------------


def test_deadlock_names_each_thread_and_what_it_waits_on(net: SimNetwork) -> None:
    first, second = net.event(), net.event()
    thread = threading.Thread(target=second.wait, name="waiter")
    thread.start()
    lst = net.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen()
    with pytest.raises(SimDeadlockError) as info:
        lst.accept()
    message = str(info.value)
    assert "deadlock" in message
    assert "main: blocked, waiting on accept on <SimSocket" in message
    assert "waiter: blocked, waiting on event" in message
    assert isinstance(info.value, SockfakeError) and isinstance(info.value, RuntimeError)
    del first
    lst.close()


def test_deadlock_between_two_threads_joined_by_main(net: SimNetwork) -> None:
    lock_a, lock_b = net.lock(), net.lock()
    gate = net.event()

    def take(first: Any, second: Any) -> None:
        with first:
            gate.wait()
            with second:
                pass

    threads = [
        threading.Thread(target=take, args=(lock_a, lock_b), name="ab"),
        threading.Thread(target=take, args=(lock_b, lock_a), name="ba"),
    ]
    for thread in threads:
        thread.start()
    net.sleep(0)
    gate.set()
    with pytest.raises(SimDeadlockError) as info:
        threads[0].join()
    message = str(info.value)
    assert "ab: blocked, waiting on lock" in message
    assert "ba: blocked, waiting on lock" in message
    assert "main: blocked, waiting on join ab" in message


def test_a_thread_blocked_outside_the_simulation_is_reported_in_bounded_time() -> None:
    net = SimNetwork(seed=1, stall_timeout=0.5, backend="threads")  # a stall needs OS threads
    try:

        def outside() -> None:
            time.sleep(1.5)  # real time: the simulation cannot see this

        thread = threading.Thread(target=outside, name="sleeper")
        start = time.monotonic()
        thread.start()
        with pytest.raises(SimStallError) as info:
            thread.join()
        # Real time is what a stall is made of: not reported before stall_timeout,
        # and reported while the thread still sleeps (its stack shows time.sleep).
        assert time.monotonic() - start >= 0.5
        message = str(info.value)
        assert "'sleeper'" in message and "time.sleep" in message
        assert "outside()" not in message or "its stack" in message
    finally:
        net.close()
    thread.join()  # the real thread ends on its own after the network closed


# -- virtual time ------------------------------------------------------------------------------


def test_an_hour_of_virtual_sleep_is_one_clock_jump(net: SimNetwork) -> None:
    # How fast that is in real time is benchmarks/bench_sim.py's to say.
    net.sleep(3600)
    assert net.time() == 3600
    jumps = [event for event in net.trace if event[2] == "jump"]
    assert len(jumps) == 1


def test_time_limit_raises(net: SimNetwork) -> None:
    with SimNetwork(seed=1, time_limit=10) as limited:
        limited.sleep(9)
        with pytest.raises(SimTimeLimitError, match="time limit of 10 s"):
            limited.sleep(5)


def test_bad_time_limit_and_sleep() -> None:
    with pytest.raises(ValueError, match="time_limit"):
        SimNetwork(seed=1, time_limit=-1)
    with SimNetwork(seed=1) as net, pytest.raises(ValueError, match="sleep"):
        net.sleep(-1)


def test_serve_forever_polls_on_virtual_time(net: SimNetwork) -> None:
    ticks: list[float] = []

    class Server(socketserver.TCPServer):
        def service_actions(self) -> None:
            ticks.append(net.time())

    server = Server(("127.0.0.1", 0), socketserver.BaseRequestHandler, network=net)
    with serving(server, poll_interval=0.25):
        net.sleep(1.1)
    assert ticks[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])


def test_socket_timeouts_are_virtual(net: SimNetwork) -> None:
    sock = net.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2.5)
    with pytest.raises(TimeoutError, match="timed out"):
        sock.recv(10)
    assert net.time() == pytest.approx(2.5)
    sock.close()


def test_handle_request_timeout_is_virtual(net: SimNetwork) -> None:
    timeouts: list[float] = []

    class Server(socketserver.TCPServer):
        timeout = 7.0

        def handle_timeout(self) -> None:
            timeouts.append(net.time())

    server = Server(("127.0.0.1", 0), socketserver.BaseRequestHandler, network=net)
    server.handle_request()
    server.server_close()
    assert timeouts == [pytest.approx(7.0)]


def test_the_clock_stands_still_while_threads_can_run(net: SimNetwork) -> None:
    done = net.event()

    def busy() -> None:
        for _ in range(1000):
            net.sleep(0)
        done.set()

    threading.Thread(target=busy).start()
    done.wait()
    assert net.time() == 0.0


# -- the documentation's example --------------------------------------------------------------


def test_socketserver_documentation_threaded_example(net: SimNetwork) -> None:
    received: list[str] = []

    class ThreadedTCPRequestHandler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            data = str(self.request.recv(1024), "ascii")
            cur_thread = threading.current_thread()
            response = bytes(f"{cur_thread.name}: {data}", "ascii")
            self.request.sendall(response)

    class ThreadedTCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
        pass

    def client(ip: str, port: int, message: str) -> None:
        with net.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.connect((ip, port))
            sock.sendall(bytes(message, "ascii"))
            received.append(str(sock.recv(1024), "ascii"))

    server = ThreadedTCPServer(("localhost", 0), ThreadedTCPRequestHandler, network=net)
    with server:
        ip, port = server.server_address
        server_thread = threading.Thread(target=server.serve_forever)
        server_thread.daemon = True
        server_thread.start()
        client(ip, port, "Hello World 1")
        client(ip, port, "Hello World 2")
        client(ip, port, "Hello World 3")
        server.shutdown()
    assert received == [
        "Thread-2 (process_request_thread): Hello World 1",
        "Thread-3 (process_request_thread): Hello World 2",
        "Thread-4 (process_request_thread): Hello World 3",
    ]


# -- threads: lifecycle, errors, close -------------------------------------------------------


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0


def test_close_unwinds_threads_blocked_anywhere_and_leaks_no_os_thread_or_descriptor() -> None:
    threads_before, fds_before = set(threading.enumerate()), _open_fds()
    net = SimNetwork(seed=1)
    lst = net.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen()
    _client = net.create_connection(lst.getsockname())
    conn, _ = lst.accept()
    udp = net.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    event, queue, lock = net.event(), net.queue(), net.lock()
    lock.acquire()
    selector = net.selector()
    selector.register(udp, selectors.EVENT_READ)

    inners: list[threading.Thread] = []

    def join_a_waiter() -> None:
        inner = threading.Thread(target=event.wait, name="inner")
        inners.append(inner)
        inner.start()
        inner.join()

    targets = {
        "sendall": lambda: conn.sendall(b"x" * 10_000_000),
        "accept": lst.accept,
        "recv": lambda: conn.recv(10),
        "select": selector.select,
        "sleep": lambda: net.sleep(1e6),
        "event": event.wait,
        "queue": queue.get,
        "lock": lock.acquire,
        "join": join_a_waiter,
    }
    threads = [
        threading.Thread(target=target, name=name, daemon=index % 2 == 0)  # type: ignore[arg-type]
        for index, (name, target) in enumerate(targets.items())
    ]
    for thread in threads:
        thread.start()
    net.sleep(1)
    dump = net.dump()
    for name in [*targets, "inner"]:
        assert f"  {name}: blocked, waiting on " in dump
    assert "  main: running\n" in dump
    net.close()
    for thread in threads + inners:
        thread.join(timeout=10)  # real threads, after the close: bounded
    assert not [thread.name for thread in threads + inners if thread.is_alive()]
    assert set(threading.enumerate()) <= threads_before
    assert _open_fds() <= fds_before


def test_a_close_by_a_thread_without_the_turn_still_leaves_no_simulation_behind() -> None:
    """An exception (pytest-timeout's, say) that reaches the main thread while another
    simulated thread holds the turn makes close() refuse to unwind; the network must be
    closed all the same, or every later test in the process would run its threads in
    it (a real-network test's server thread adopted, and a hang)."""
    net = SimNetwork(seed=1)
    event = net.event()
    waiter = threading.Thread(target=event.wait, name="waiter", daemon=True)
    waiter.start()
    net.sleep(1)  # the waiter is parked on the event
    kernel = net.kernel
    holder = next(thread for thread in kernel._threads if thread.name == "waiter")
    kernel.current = holder  # as if the main thread had been interrupted while waiting
    with pytest.raises(SockfakeError, match=r"another thread runs.*waiter holds the turn"):
        net.close()
    assert kernel.closed
    assert current_kernel() is None
    outside = threading.Thread(target=lambda: None)
    outside.start()  # a real thread again: not adopted by the abandoned network
    outside.join(10)
    assert not hasattr(outside, "_sockfake_thread") and not outside.is_alive()


def test_an_exception_in_a_simulated_thread_reaches_excepthook_and_the_run_goes_on(
    net: SimNetwork, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, str]] = []
    monkeypatch.setattr(
        threading, "excepthook",
        lambda args: seen.append((args.thread.name, str(args.exc_value))),
    )

    def fail() -> None:
        net.sleep(1)
        raise ValueError("boom")

    thread = threading.Thread(target=fail, name="failing")
    thread.start()
    thread.join()
    assert seen == [("failing", "boom")]
    assert not thread.is_alive()
    net.sleep(1)
    assert net.time() == 2.0


def test_join_with_a_timeout_waits_in_virtual_time(net: SimNetwork) -> None:
    event = net.event()
    thread = threading.Thread(target=event.wait)
    thread.start()
    thread.join(timeout=2.5)
    assert thread.is_alive() and net.time() == 2.5
    event.set()
    thread.join()
    assert not thread.is_alive()


def test_threads_started_by_simulated_threads_join_the_simulation(net: SimNetwork) -> None:
    names: list[str] = []

    def grandchild() -> None:
        net.sleep(1)
        names.append(threading.current_thread().name)

    def child() -> None:
        inner = threading.Thread(target=grandchild)
        inner.start()
        inner.join()

    thread = threading.Thread(target=child)
    thread.start()
    thread.join()
    assert names == ["Thread-2 (grandchild)"]
    assert net.time() == 1.0


def test_a_thread_the_os_cannot_start_is_forgotten_not_waited_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def cannot_start(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    with SimNetwork(seed=1, stall_timeout=1.0, backend="threads") as net:
        monkeypatch.setattr(backends, "_os_thread_start", cannot_start)
        with pytest.raises(RuntimeError, match="can't start"):
            threading.Thread(target=lambda: None).start()
        monkeypatch.undo()
        net.sleep(1)  # nothing left waiting for a turn it can never take
        assert "Thread-1" not in net.dump()


def _blocked_on_a_plain_lock(net: SimNetwork) -> tuple[Any, str, Any]:
    plain = threading.Lock()

    def holder() -> None:
        with plain:
            net.sleep(1)  # holds a real lock across a simulated call

    def taker() -> None:
        with plain:  # blocks the real thread while it holds the turn
            pass

    threading.Thread(target=holder, name="holder").start()
    # Closing the network unwinds the holder, which lets the taker through.
    return threading.Thread(target=taker, name="taker"), "taker", lambda: None


def _blocked_on_a_real_queue(net: SimNetwork) -> tuple[Any, str, Any]:
    real_queue: queue.Queue[int] = queue.Queue()
    getter = threading.Thread(target=lambda: real_queue.get(timeout=10), name="getter")
    return getter, "getter", lambda: real_queue.put(1)


@pytest.mark.parametrize("watcher", ["watchdog thread", "main thread"])
@pytest.mark.parametrize("blocker", [_blocked_on_a_plain_lock, _blocked_on_a_real_queue])
def test_a_simulated_thread_blocked_on_a_real_primitive_is_a_stall(
    blocker: Any, watcher: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The watchdog's thread watches the holder while the main thread waits; when no
    # thread could be started for it, the main thread's own timed wait does.
    if watcher == "main thread":
        import sockfake.sim.kernel.core as kernel_module
        import sockfake.sim.kernel.watchdog as watchdog_module

        def no_thread(thread: threading.Thread) -> None:
            raise RuntimeError("can't start new thread")

        monkeypatch.setattr(kernel_module, "_os_thread_start", no_thread)
        # The process's watcher thread may be running for an earlier network: a
        # watcher of its own, not yet started, has to start one.
        monkeypatch.setattr(watchdog_module, "_watcher", watchdog_module._Watcher())
    net = SimNetwork(seed=1, stall_timeout=0.3, backend="threads")  # a stall needs OS threads
    try:
        thread, name, release = blocker(net)
        thread.start()
        watchdog = net.kernel._watchdog
        assert watchdog is not None and watchdog.watching == (watcher == "watchdog thread")
        with pytest.raises(SimStallError) as info:
            thread.join()
        assert f"simulated thread {name!r} has held the turn" in str(info.value)
        assert "its stack:" in str(info.value)
    finally:
        net.close()
        release()
    thread.join(timeout=5)
    assert not thread.is_alive()


def _watcher_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "sockfake-watchdog"]


def test_one_watcher_thread_watches_successive_networks() -> None:
    # A network with threads is watched by the process's one watcher thread, which
    # outlives it: the next network is watched by the same thread, none is started.
    seen = []
    for seed in (1, 2):
        net = SimNetwork(seed=seed, backend="threads")
        try:
            worker = threading.Thread(target=net.sleep, args=(1,))
            worker.start()
            worker.join()
            watchdog = net.kernel._watchdog
            assert watchdog is not None and watchdog.watching
            seen.append(_watcher_threads())
        finally:
            net.close()
    assert len(seen[0]) == 1 and seen[1] == seen[0]


# -- deadlock reports (the lock cycle on every kind of lock: tests/intercept/test_primitives.py)


def test_a_server_polling_while_the_test_waits_for_good_is_a_deadlock_in_real_time() -> None:
    with SimNetwork(seed=1) as net:
        server = socketserver.TCPServer(("127.0.0.1", 0), socketserver.BaseRequestHandler,
                                        network=net)
        serving_thread = threading.Thread(target=server.serve_forever, args=(0.5,))
        serving_thread.start()
        never = net.event()
        with pytest.raises(SimDeadlockError, match="the other threads only poll") as info:
            never.wait()  # nothing will ever set it
        server.server_close()
    assert "main: blocked, waiting on event event-" in str(info.value)
    # Caught after 1000 idle polls (500 virtual s), not at the day-long time limit,
    # and the trace stays small.
    assert net.time() < 1000
    assert len(net.trace.events) < 5000

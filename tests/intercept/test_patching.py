"""The patch mechanism: what is replaced, for whom, and that exit restores it exactly."""

from __future__ import annotations

import _thread
import os
import queue
import select
import selectors
import socket
import subprocess
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
from helpers import descriptor_targets

from sockfake.network import SockfakeRuntimeError
from sockfake.sim import SimNetwork
from sockfake.sim.intercept.made_before import GuardedLock
from sockfake.sim.kernel.thread_hooks import _original_start

PATCHED = [
    (socket, "socket"), (socket, "create_connection"), (socket, "create_server"),
    (socket, "socketpair"), (socket, "getaddrinfo"), (socket, "gethostbyname"),
    (socket, "gethostbyname_ex"), (socket, "gethostbyaddr"), (socket, "getfqdn"),
    (socket, "gethostname"), (select, "select"), (select, "poll"), (select, "epoll"),
    (selectors, "DefaultSelector"), (selectors, "SelectSelector"), (selectors, "PollSelector"),
    (selectors, "EpollSelector"), (time, "sleep"), (time, "monotonic"), (time, "time"),
    (time, "perf_counter"), (time, "monotonic_ns"), (time, "time_ns"),
    (time, "perf_counter_ns"), (threading, "Lock"), (threading, "RLock"),
    (threading, "Condition"), (threading, "Event"), (threading, "Semaphore"),
    (threading, "BoundedSemaphore"), (threading, "Barrier"), (threading, "Timer"),
    (threading, "enumerate"), (threading, "active_count"), (_thread, "_count"),
    (queue, "SimpleQueue"), (queue, "time"), (os, "fork"), (os, "system"),
]  # fmt: skip
CLASS_ATTRIBUTES = ["__init__", "connect", "accept", "recv", "send", "sendall", "bind"]


def _in_real_thread(func: Any) -> Any:
    """Run ``func`` in a thread outside every simulation; return its result."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = func()
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=run)
    _original_start(thread)
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["result"]


def test_exit_restores_every_patched_name_exactly(net: SimNetwork) -> None:
    before = {(m.__name__, n): getattr(m, n) for m, n in PATCHED}
    class_before = {n: socket.socket.__dict__.get(n) for n in CLASS_ATTRIBUTES}
    import ssl
    from concurrent.futures import thread as futures_thread

    import sockfake.network

    others = {
        "Popen.__init__": lambda: subprocess.Popen.__dict__["__init__"],
        "Thread.start": lambda: threading.Thread.__dict__["start"],
        "wrap_socket": lambda: ssl.SSLContext.__dict__["wrap_socket"],
        "_counter": lambda: futures_thread.ThreadPoolExecutor.__dict__["_counter"],
        "_ServerSelector": lambda: sockfake.network._ServerSelector,
        "default_network": sockfake.network.default_network,
    }
    others_before = {name: get() for name, get in others.items()}
    with net.intercept():
        changed = [key for key in before if getattr(__import__(key[0]), key[1]) is before[key]]
        assert changed == [], f"not patched: {changed}"
        assert [n for n, get in others.items() if get() is others_before[n]] == []
    after = {(m.__name__, n): getattr(m, n) for m, n in PATCHED}
    assert all(after[key] is before[key] for key in before)
    assert {n: socket.socket.__dict__.get(n) for n in CLASS_ATTRIBUTES} == class_before
    assert {name: get() for name, get in others.items()} == others_before


def test_intercept_does_not_nest_but_enters_again(net: SimNetwork) -> None:
    interception = net.intercept()
    with interception:
        with pytest.raises(SockfakeRuntimeError, match="does not nest"), net.intercept():
            pass
        with socket.socket() as sock:  # (an unclosed one warns ResourceWarning)
            assert isinstance(sock, socket.socket)
    with net.intercept():
        pass
    from sockfake.sim.intercept.dispatch import REAL

    assert socket.socket is REAL["socket"]


def test_intercept_is_entered_from_a_thread_of_the_network(net: SimNetwork) -> None:
    with pytest.raises(SockfakeRuntimeError, match="not part of this simulated network"):
        _in_real_thread(lambda: net.intercept().__enter__())


def test_two_networks_each_get_their_own(net: SimNetwork) -> None:
    with net.intercept():
        other = SimNetwork(seed=2)
        try:
            # The newer network is innermost in this thread: it may be intercepted too.
            with other.intercept():
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", 0))
                    assert sock._sf_sim in other.open_sockets()  # type: ignore[attr-defined]
        finally:
            other.close()
        with socket.socket() as sock:
            assert sock._sf_sim in net.open_sockets()  # type: ignore[attr-defined]


def test_socket_is_a_subclassable_socket_socket(inet: SimNetwork) -> None:
    class Mine(socket.socket):
        def hello(self) -> str:
            return "hi"

    listener = Mine(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = socket.create_connection(listener.getsockname())
    conn, address = listener.accept()
    assert isinstance(listener, socket.socket) and isinstance(conn, socket.socket)
    assert listener.hello() == "hi"
    assert listener.family == socket.AF_INET and listener.type == socket.SOCK_STREAM
    assert listener.proto == 0 and client.timeout is None
    assert address == client.getsockname()
    assert "laddr=('127.0.0.1'" in repr(client)
    with conn.makefile("rwb") as stream:
        client.sendall(b"line\n")
        assert stream.readline() == b"line\n"
        stream.write(b"back\n")
        stream.flush()
    assert client.recv(10) == b"back\n"
    for sock in (client, conn, listener):
        sock.close()
    assert client.fileno() == -1


def test_outside_the_simulation_socket_socket_is_real(inet: SimNetwork) -> None:
    def make() -> tuple[bool, bool, int]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return (isinstance(sock, socket.socket), sock._sf_sim is None, sock.fileno())  # type: ignore[attr-defined]

    is_socket, real, fd = _in_real_thread(make)
    assert is_socket and real and 0 <= fd < 2**20


def test_socketpair_create_server_and_udp(inet: SimNetwork) -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(b"ping")
        assert b.recv(4) == b"ping"
        assert a.family == socket.AF_UNIX
    with socket.create_server(("127.0.0.1", 0)) as server:
        with socket.create_connection(server.getsockname(), timeout=1) as client:
            conn, _ = server.accept()
            with conn:
                client.sendall(b"x")
                assert conn.recv(1) == b"x"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, socket.socket(
        socket.AF_INET, socket.SOCK_DGRAM
    ) as tx:
        rx.bind(("127.0.0.1", 0))
        tx.sendto(b"dgram", rx.getsockname())
        data, source = rx.recvfrom(100)
        # As Linux: an unbound sender is bound to the wildcard address, the datagram
        # leaves from the route's address.
        assert (data, source) == (b"dgram", ("127.0.0.1", tx.getsockname()[1]))


def test_create_connection_signature(inet: SimNetwork) -> None:
    import inspect
    import sys

    parameters = inspect.signature(socket.create_connection).parameters
    assert parameters["timeout"].default is socket._GLOBAL_DEFAULT_TIMEOUT  # type: ignore[attr-defined]
    if sys.version_info >= (3, 11):
        assert "all_errors" in parameters
        with pytest.raises(ExceptionGroup):  # noqa: F821
            socket.create_connection(("localhost", 1), all_errors=True)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("localhost", 1))


def test_resolver_answers_from_the_simulated_hosts(inet: SimNetwork) -> None:
    inet.add_host("db", ipv4="10.0.0.9")
    assert socket.gethostbyname("db") == "10.0.0.9"
    assert socket.gethostbyname("localhost") == "127.0.0.1"
    assert socket.gethostbyname_ex("db") == ("db", [], ["10.0.0.9"])
    assert socket.gethostbyaddr("10.0.0.9") == ("db", [], ["10.0.0.9"])
    assert socket.gethostbyaddr("127.0.0.1")[0] == "localhost"
    assert socket.gethostname() == "local"
    assert socket.getfqdn("127.0.0.1") == "localhost"
    infos = socket.getaddrinfo("db", 5432, type=socket.SOCK_STREAM)
    assert [(i[0], i[4]) for i in infos] == [
        (socket.AF_INET, ("10.0.0.9", 5432)),
        (socket.AF_INET6, ("fd00::2", 5432, 0, 0)),
    ]
    assert socket.getaddrinfo("::1", "80", socket.AF_INET6)[0][4] == ("::1", 80, 0, 0)
    assert socket.getaddrinfo(None, 0, flags=socket.AI_PASSIVE)[0][4] == ("0.0.0.0", 0)
    for name in ("example.com", "nosuchhost"):
        with pytest.raises(socket.gaierror):
            socket.getaddrinfo(name, 80)
    with pytest.raises(socket.herror):
        socket.gethostbyaddr("10.9.9.9")


def test_an_ipv6_zone_becomes_the_scope_id_as_getaddrinfo_makes_it(inet: SimNetwork) -> None:
    # What the OS's getaddrinfo gives (CPython's test_create_connection_ipv6_scope).
    def address(host: str) -> Any:
        return socket.getaddrinfo(host, 80, socket.AF_INET6, socket.SOCK_STREAM)[0][4]

    assert address("fe80::1%1") == ("fe80::1", 80, 0, 1)
    assert address("::1%7") == ("::1", 80, 0, 7)
    assert address("fe80::1") == ("fe80::1", 80, 0, 0)
    if hasattr(socket, "if_nametoindex"):
        name = socket.if_nameindex()[0]
        assert address(f"fe80::1%{name[1]}") == ("fe80::1", 80, 0, name[0])
        with pytest.raises(socket.gaierror):
            address("fe80::1%no-such-interface")


def test_select_poll_epoll_and_selectors_wait_in_virtual_time(inet: SimNetwork) -> None:
    a, b = socket.socketpair()
    with a, b:
        assert select.select([a], [], [], 2.5) == ([], [], [])
        assert inet.time() == 2.5
        assert select.select([], [a], [], None) == ([], [a], [])
        threading.Timer(1.0, b.sendall, args=(b"!",)).start()
        assert select.select([a, b], [], [])[0] == [a]
        assert inet.time() == 3.5
        assert a.recv(1) == b"!"
        poller = select.poll()
        poller.register(a, select.POLLIN)
        assert poller.poll(500) == [] and inet.time() == 4.0
        b.send(b"?")
        assert poller.poll() == [(a.fileno(), select.POLLIN)]
        with select.epoll() as ep:
            ep.register(a.fileno(), select.EPOLLIN | select.EPOLLOUT)
            assert (a.fileno(), select.EPOLLIN | select.EPOLLOUT) in ep.poll(1)
        for cls in (selectors.DefaultSelector, selectors.SelectSelector, selectors.PollSelector):
            with cls() as sel:
                sel.register(a, selectors.EVENT_READ, "data")
                [(key, mask)] = sel.select(1)
                assert key.data == "data" and mask == selectors.EVENT_READ
        a.recv(1)
        with selectors.DefaultSelector() as sel:
            sel.register(a, selectors.EVENT_READ)
            assert sel.select(0.25) == []
        assert inet.time() == 4.25


def test_contended_lock_rlock_condition_semaphore_barrier(inet: SimNetwork) -> None:
    lock = threading.Lock()
    order: list[str] = []

    def worker(name: str) -> None:
        with lock:
            order.append(name + "+")
            time.sleep(1)
            order.append(name + "-")

    threads = [threading.Thread(target=worker, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert order == ["a+", "a-", "b+", "b-"] and inet.time() == 2.0
    assert not lock.acquire(timeout=0) or lock.release() is None  # type: ignore[func-returns-value]

    rlock = threading.RLock()
    with rlock, rlock:
        assert rlock.acquire(blocking=False)
        rlock.release()

    cond = threading.Condition()
    box: list[int] = []

    def producer() -> None:
        time.sleep(3)
        with cond:
            box.append(1)
            cond.notify()

    threading.Thread(target=producer).start()
    with cond:
        assert cond.wait_for(lambda: box, timeout=10)
    assert inet.time() == 5.0
    with cond:
        assert not cond.wait(0.5)
    assert inet.time() == 5.5

    sem = threading.BoundedSemaphore(1)
    assert sem.acquire()
    assert not sem.acquire(timeout=2)
    assert inet.time() == 7.5
    sem.release()
    with pytest.raises(ValueError):
        sem.release()

    barrier = threading.Barrier(3)
    arrived: list[float] = []

    def party(delay: float) -> None:
        time.sleep(delay)
        barrier.wait()
        arrived.append(inet.time())

    parties = [threading.Thread(target=party, args=(d,)) for d in (1, 2)]
    for t in parties:
        t.start()
    barrier.wait(timeout=10)
    for t in parties:
        t.join()
    assert arrived == [9.5, 9.5]


def test_queues_futures_and_pools(inet: SimNetwork) -> None:
    for cls in (queue.Queue, queue.LifoQueue, queue.PriorityQueue):
        q = cls(maxsize=1)  # type: ignore[var-annotated]
        with pytest.raises(queue.Empty):
            q.get(timeout=1.5)
        q.put(1)
        with pytest.raises(queue.Full):
            q.put(2, timeout=0.5)
    assert inet.time() == 6.0
    simple: queue.SimpleQueue[int] = queue.SimpleQueue()
    threading.Timer(2, simple.put, args=(5,)).start()
    assert simple.get(timeout=3) == 5
    with pytest.raises(queue.Empty):
        simple.get(timeout=1)
    assert inet.time() == 9.0
    future: Future[int] = Future()
    threading.Timer(1, future.set_result, args=(42,)).start()
    assert future.result(timeout=5) == 42
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(time.sleep, 10) for _ in range(4)]
        for f in futures:
            f.result()
    assert inet.time() == 30.0


def test_primitives_made_outside_or_by_the_stdlib_stay_real(inet: SimNetwork) -> None:
    assert type(threading.Lock()).__module__ == "sockfake.sim.kernel.sync"
    real = _in_real_thread(threading.Lock)
    assert type(real) is type(threading._allocate_lock())  # type: ignore[attr-defined]
    thread = threading.Thread(target=lambda: None)
    # Thread's own _started event is made inside the threading module: real.
    assert type(thread._started).__module__ == "threading"  # type: ignore[attr-defined]
    import logging

    handler = logging.StreamHandler()
    assert type(handler.lock).__module__ != "sockfake.sim.kernel.sync"


def test_a_simulated_event_waited_on_outside_fails_clearly(inet: SimNetwork) -> None:
    event = threading.Event()
    _in_real_thread(event.set)  # setting from outside is fine
    assert event.wait(0)
    event.clear()
    with pytest.raises(SockfakeRuntimeError, match="not part of this simulated network"):
        _in_real_thread(lambda: event.wait(1))


def test_helper_threads_are_invisible(inet: SimNetwork) -> None:
    count, active = _thread._count(), threading.active_count()
    names = [t.name for t in threading.enumerate()]
    started = threading.Event()
    release = threading.Event()

    def worker() -> None:
        started.set()
        release.wait()

    thread = threading.Thread(target=worker)
    thread.start()  # the first simulated thread: the kernel starts its watchdog now
    started.wait()
    assert threading.active_count() == active + 1
    assert _thread._count() == count + 1
    assert "sockfake-watchdog" not in [t.name for t in threading.enumerate()]
    assert "sockfake-watchdog" not in {t.name for t in threading._dangling}  # type: ignore[attr-defined]
    release.set()
    thread.join()
    assert [t.name for t in threading.enumerate()] == names


def test_names_captured_outside_a_modules_globals_keep_the_real_function(
    net: SimNetwork,
) -> None:
    """Documented limit: a name bound before intercept() in a namespace that is not a
    loaded module's globals is the real function (module globals are rebound:
    test_made_before.py); one bound while an interception is active is the dispatcher,
    simulated in simulated threads."""
    import sockfake.sim.intercept.install as module

    before: dict[str, Any] = {}
    exec("from time import monotonic", before)  # as a module imported earlier would
    with net.intercept():
        during: dict[str, Any] = {}
        exec("from time import monotonic", during)  # as a module imported now would
        net.sleep(5)
        assert during["monotonic"]() == module.MONOTONIC_BASE + 5.0
        assert before["monotonic"]() != during["monotonic"]()
    with net.intercept():
        assert during["monotonic"]() == module.MONOTONIC_BASE + 5.0  # still dispatches
    assert "is not a module's globals (``exec``) keeps the real function" in " ".join(
        (module.__doc__ or "").split())


def test_asyncio_runs_on_virtual_time_too(inet: SimNetwork) -> None:
    """asyncio's loop is built on selectors, socketpair and time.monotonic: all simulated."""
    import asyncio

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write((await reader.readline()).upper())
        await writer.drain()
        writer.close()

    async def main() -> bytes:
        await asyncio.sleep(10)
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hi\n")
        await writer.drain()
        line = await reader.readline()
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return line

    assert asyncio.run(main()) == b"HI\n"
    assert inet.time() >= 10.0


def test_sendfile_falls_back_to_send(inet: SimNetwork, tmp_path: Any) -> None:
    path = tmp_path / "data"
    path.write_bytes(b"x" * 10000)
    a, b = socket.socketpair()
    with a, b, open(path, "rb") as source:
        assert a.sendfile(source) == 10000
        received = b""
        while len(received) < 10000:
            received += b.recv(65536)
        assert received == b"x" * 10000


def test_every_guarded_real_method_is_overridden_for_simulated_sockets() -> None:
    """A simulated socket never reaches the real class's guarded (refusing) methods."""
    from sockfake.sim.intercept import sockets as _patched_socket

    overridden = vars(_patched_socket.InterceptSocket)
    missing = [n for n in _patched_socket._GUARDED if n not in overridden]
    assert missing == []


def _socket_like_descriptors() -> list[str]:
    """The process's sockets, pipes and event descriptors (what a simulated socket would
    need, were it real)."""
    return sorted(f"{fd} {target}" for fd, target in descriptor_targets().items()
                  if target.startswith(("socket:", "pipe:", "anon_inode:")))


def test_simulated_sockets_open_no_real_descriptor(inet: SimNetwork) -> None:
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("no /proc/self/fd")
    before = _socket_like_descriptors()
    socks = [socket.socket(socket.AF_INET, kind) for kind in (socket.SOCK_STREAM,
             socket.SOCK_DGRAM) for _ in range(50)]  # fmt: skip
    pairs = [socket.socketpair() for _ in range(10)]
    assert _socket_like_descriptors() == before
    for sock in socks + [s for pair in pairs for s in pair]:
        sock.close()
    assert _socket_like_descriptors() == before


def test_primitives_made_by_an_import_in_a_simulated_thread_stay_real(
    inet: SimNetwork, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sockfake_probe_module.py").write_text(
        "import threading, queue\n"
        "LOCK = threading.Lock()\n"
        "class Registry:\n"
        "    def __init__(self):\n"
        "        self.queue = queue.Queue()\n"
        "REGISTRY = Registry()\n"
        "def make():\n"
        "    return threading.Lock()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import sockfake_probe_module as probe  # type: ignore[import-not-found]

    real_lock_type = type(_in_real_thread(threading.Lock))
    # Real, in a guard that waits in virtual time when simulated threads contend
    # (test_imported_during_interception.py).
    for lock in (probe.LOCK, probe.REGISTRY.queue.mutex):
        assert isinstance(lock, GuardedLock)
        assert type(lock.lock) is real_lock_type
    assert type(probe.make()).__name__ == "SimLock"  # called later: simulated


def test_thread_pools_used_by_several_simulated_threads_at_once() -> None:
    """ThreadPoolExecutor.submit starts workers under a real, import-time lock: the
    start must not hand the turn to a thread that would block on it for real."""
    with SimNetwork(seed=1, stall_timeout=2.0) as net, net.intercept():
        done: list[int] = []

        def user(i: int) -> None:
            with ThreadPoolExecutor(max_workers=2) as pool:
                for f in [pool.submit(time.sleep, 0.1) for _ in range(6)]:
                    f.result()
            done.append(i)

        users = [threading.Thread(target=user, args=(i,)) for i in range(4)]
        for t in users:
            t.start()
        for t in users:
            t.join()
        assert sorted(done) == [0, 1, 2, 3]
        assert net.time() == pytest.approx(0.3)

"""Classic concurrency bugs in handler code, each as a scenario on a network.

Each ``bug(network)`` runs a server whose handlers share state the wrong way and returns
True when the run showed the bug (a lost update, a double computation, a deadlock...),
False when this schedule happened to be harmless. The same scenarios run on the real
network (``REAL_NETWORK``) and on a simulated one: ``tests/sim/kernel/test_races.py`` shows the
exploration mode that finds each, ``benchmarks/bench_races.py`` measures hit rates.

``BUGS`` are the first six, written against the network's own calls. ``REAL_CODE_BUGS``
are written as real code is, against ``socket``, ``threading``, ``queue`` and
``concurrent.futures`` (on a simulated network they need ``net.intercept()``, the
plugin's default); each takes ``fixed=True`` for the corrected version, which no
schedule fails (``FIXED``).
"""

from __future__ import annotations

import contextlib
import functools
import queue
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sockfake
from sockfake.errors import SimDeadlockError

CLIENTS = 2


def _serve(network: Any, handler: type, server_class: Any = None, **state: Any) -> Any:
    server_class = server_class or sockfake.ThreadingTCPServer
    server = server_class(("127.0.0.1", 0), handler, network=network)
    server.daemon_threads = False
    for name, value in state.items():
        setattr(server, name, value)
    thread = threading.Thread(target=server.serve_forever, args=(None,), daemon=True)
    thread.start()
    return server, thread


def _stop(server: Any, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(10)


def _clients(network: Any, server: Any, count: int = CLIENTS, data: bytes = b"go\n") -> None:
    """``count`` clients at once, each sends a line and reads the reply to the end."""

    def one() -> None:
        with network.create_connection(server.server_address, 10) as conn:
            conn.sendall(data)
            while conn.recv(100):
                pass

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)


def lost_update_across_io(network: Any) -> bool:
    """Read a shared counter, talk to the client, write counter + 1."""

    class Handler(sockfake.StreamRequestHandler):
        def handle(self) -> None:
            self.rfile.readline()
            seen = self.server.hits
            self.wfile.write(b"counted\n")  # a switch point between read and write
            self.server.hits = seen + 1

    server, thread = _serve(network, Handler, hits=0)
    try:
        _clients(network, server)
    finally:
        _stop(server, thread)
    return bool(server.hits != CLIENTS)


def plain_increment(network: Any) -> bool:
    """``self.server.hits += 1``: one line, several bytecodes, no simulated call."""

    class Handler(sockfake.StreamRequestHandler):
        def handle(self) -> None:
            self.rfile.readline()
            for _ in range(20):
                self.server.hits += 1
            self.wfile.write(b"ok\n")

    server, thread = _serve(network, Handler, hits=0)
    try:
        _clients(network, server)
    finally:
        _stop(server, thread)
    return bool(server.hits != 20 * CLIENTS)


def check_then_act(network: Any) -> bool:
    """A cache that computes a missing entry: two handlers both see it missing."""

    class Handler(sockfake.StreamRequestHandler):
        def handle(self) -> None:
            key = self.rfile.readline().strip()
            cache = self.server.cache
            if key not in cache:
                self.server.computed += 1
                value = key.upper()
                cache[key] = value
            self.wfile.write(cache[key] + b"\n")

    server, thread = _serve(network, Handler, cache={}, computed=0)
    try:
        _clients(network, server, data=b"same-key\n")
    finally:
        _stop(server, thread)
    return bool(server.computed != 1)


def two_lock_deadlock(network: Any) -> bool:
    """One handler takes lock A then B, the other B then A."""
    first, second = network.lock(), network.lock()

    class Handler(sockfake.StreamRequestHandler):
        def handle(self) -> None:
            order = self.rfile.readline().strip()
            locks = (first, second) if order == b"ab" else (second, first)
            if not locks[0].acquire(timeout=2):
                return
            try:
                if not locks[1].acquire(timeout=2):
                    self.server.stuck += 1
                    return
                locks[1].release()
            finally:
                locks[0].release()
            self.wfile.write(b"done\n")

    server, thread = _serve(network, Handler, stuck=0)
    try:

        def client(order: bytes) -> None:
            with network.create_connection(server.server_address, 10) as conn:
                conn.sendall(order + b"\n")
                while conn.recv(100):
                    pass

        threads = [threading.Thread(target=client, args=(o,)) for o in (b"ab", b"ba")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    except SimDeadlockError:
        return True
    finally:
        _stop(server, thread)
    return bool(server.stuck)


def order_violation(network: Any) -> bool:
    """The serving thread publishes the greeting after it starts serving: a handler that
    runs first reads it unset."""

    class Handler(sockfake.StreamRequestHandler):
        def handle(self) -> None:
            self.rfile.readline()
            greeting = getattr(self.server, "greeting", None)
            self.wfile.write((greeting or b"NONE") + b"\n")

    server = sockfake.ThreadingTCPServer(("127.0.0.1", 0), Handler, network=network)
    server.daemon_threads = False
    replies: list[bytes] = []

    def serve() -> None:
        server.serve_forever(None)

    def publish() -> None:
        server.greeting = b"hello"  # type: ignore[attr-defined]

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    publisher = threading.Thread(target=publish)
    try:
        with network.create_connection(server.server_address, 10) as conn:
            publisher.start()  # meant to be in place before any request is handled
            conn.sendall(b"hi\n")
            replies.append(conn.makefile("rb").readline())
        publisher.join(10)
    finally:
        _stop(server, thread)
    return replies != [b"hello\n"]


def use_after_close(network: Any) -> bool:
    """Two threads share one client socket; one closes it while the other still sends."""

    class Handler(sockfake.StreamRequestHandler):
        def handle(self) -> None:
            while self.rfile.readline():
                pass

    server, thread = _serve(network, Handler)
    errors: list[BaseException] = []
    try:
        shared = network.create_connection(server.server_address, 10)

        def sender() -> None:
            try:
                for _ in range(3):
                    shared.sendall(b"data\n")
            except OSError as exc:
                errors.append(exc)

        def closer() -> None:
            shared.close()

        threads = [threading.Thread(target=sender), threading.Thread(target=closer)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    finally:
        _stop(server, thread)
    return bool(errors)


# -- bugs in real code: socket, threading, queue, concurrent.futures ------------------------

# How long real code here waits before it gives up (virtual seconds on a simulated
# network): a deadlock shows as a timeout, and a real run never hangs.
GIVE_UP = 2.0


def _ask(address: Any, line: bytes) -> bytes:
    """One request on a fresh connection: send a line, read the reply line."""
    with socket.create_connection(address, 10) as conn:
        conn.sendall(line)
        return conn.makefile("rb").readline()


def _together(*calls: Callable[[], object]) -> None:
    """Run the calls in threads at once; wait for all of them."""
    threads = [threading.Thread(target=call) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)


def _locked(lock: Any, fixed: bool) -> Any:
    """``lock`` in the fixed version, nothing in the buggy one."""
    return lock if fixed else contextlib.nullcontext()


def connection_cache(network: Any, fixed: bool = False) -> bool:
    """A client-side connection cache: look up, connect and read the greeting, then
    store. Two threads that both miss open two connections (one is never reused)."""

    class Greeter(sockfake.StreamRequestHandler):
        def handle(self) -> None:
            self.server.connections += 1
            self.wfile.write(b"hello\n")
            self.rfile.readline()  # until the client closes

    server, thread = _serve(network, Greeter, connections=0)
    cache: dict[str, socket.socket] = {}
    opened: list[socket.socket] = []
    lock = threading.Lock()

    def connection() -> socket.socket:
        with _locked(lock, fixed):
            conn = cache.get("db")
            if conn is None:
                conn = socket.create_connection(server.server_address, 10)
                opened.append(conn)
                conn.recv(100)  # the greeting
                cache["db"] = conn
            return conn

    try:
        _together(connection, connection)
    finally:
        for conn in opened:
            conn.close()
        _stop(server, thread)
    return len(opened) != 1


def lost_wakeup(network: Any, fixed: bool = False) -> bool:
    """A worker checks a flag, then waits on a ``Condition``: a notify that comes
    between the check and the wait is lost, and the worker waits out its timeout."""
    ready = threading.Condition()
    state = {"ready": False, "late": False}

    class Handler(sockfake.StreamRequestHandler):
        def handle(self) -> None:
            self.rfile.readline()
            with ready:
                state["ready"] = True
                ready.notify_all()
            self.wfile.write(b"ok\n")

    def worker() -> None:
        if fixed:
            with ready:
                notified = ready.wait_for(lambda: state["ready"], GIVE_UP)
        elif not state["ready"]:
            with ready:
                notified = ready.wait(GIVE_UP)
        else:
            notified = True
        state["late"] = not notified

    server, thread = _serve(network, Handler)
    try:
        _together(worker, lambda: _ask(server.server_address, b"go\n"))
    finally:
        _stop(server, thread)
    return state["late"]


def queue_join_under_lock(network: Any, fixed: bool = False) -> bool:
    """A handler holds the state lock while it waits for the work queue to drain
    (``Queue.join()``); the consumer needs that lock for a flush job. A flush queued
    meanwhile: neither can go on (the consumer gives up after ``GIVE_UP``)."""
    jobs: queue.Queue[bytes | None] = queue.Queue()
    state_lock = threading.Lock()
    stuck: list[bytes] = []

    def consumer() -> None:
        while (job := jobs.get()) is not None:
            if job == b"flush":
                if state_lock.acquire(timeout=GIVE_UP):
                    state_lock.release()
                else:
                    stuck.append(job)
            jobs.task_done()

    class Handler(sockfake.StreamRequestHandler):
        def handle(self) -> None:
            job = self.rfile.readline().strip()
            if job == b"flush":
                jobs.put(job)
            elif fixed:  # wait for the queue without the lock, then take it
                jobs.put(job)
                jobs.join()
                with state_lock:
                    pass
            else:
                with state_lock:
                    jobs.put(job)
                    jobs.join()
            self.wfile.write(b"done\n")

    server, thread = _serve(network, Handler)
    worker = threading.Thread(target=consumer)
    worker.start()
    try:
        _together(lambda: _ask(server.server_address, b"work\n"),
                  lambda: _ask(server.server_address, b"flush\n"))
    finally:
        jobs.put(None)
        worker.join(30)
        _stop(server, thread)
    return bool(stuck)


def forwarding_servers(network: Any, fixed: bool = False) -> bool:
    """Two synchronous servers, each forwarding some requests to the other and waiting
    for its answer: with a request at each at once, each waits for a server busy
    waiting for it (the forward gives up after ``GIVE_UP``). Fixed: threading servers."""

    class Forwarder(sockfake.StreamRequestHandler):
        def handle(self) -> None:
            line = self.rfile.readline()
            if not line.startswith(b"fwd"):
                self.wfile.write(b"answer\n")
                return
            try:
                with socket.create_connection(self.server.peer, GIVE_UP) as conn:
                    conn.sendall(b"local\n")
                    reply = conn.makefile("rb").readline()
            except OSError:
                reply = b""
            if not reply:
                self.server.timeouts += 1
            self.wfile.write(reply or b"timeout\n")

    server_class = sockfake.ThreadingTCPServer if fixed else sockfake.TCPServer
    first, first_thread = _serve(network, Forwarder, server_class, timeouts=0)
    second, second_thread = _serve(network, Forwarder, server_class, timeouts=0)
    first.peer, second.peer = second.server_address, first.server_address
    try:
        _together(lambda: _ask(first.server_address, b"fwd\n"),
                  lambda: _ask(second.server_address, b"fwd\n"))
    finally:
        _stop(first, first_thread)
        _stop(second, second_thread)
    return bool(first.timeouts or second.timeouts)


def lww_over_udp(network: Any, fixed: bool = False) -> bool:
    """Two replicas of a last-writer-wins register over UDP, two writers sending
    ``timestamp value`` to both. The comparison ``ts >= current`` breaks a tie by
    arrival, so replicas that get the writes in different orders disagree for good;
    fixed, ``(ts, value) > current`` is the same whatever the order."""

    class Replica(sockfake.DatagramRequestHandler):
        def handle(self) -> None:
            data = self.rfile.read()
            if data == b"read":
                self.wfile.write(self.server.stamp[1])
                return
            stamp, value = data.split(b" ", 1)
            update = (int(stamp), value)
            current = self.server.stamp
            newer = update > current if fixed else update[0] >= current[0]
            if newer:
                self.server.stamp = update

    replicas = []
    for _ in range(2):
        replica = sockfake.UDPServer(("127.0.0.1", 0), Replica, network=network)
        replica.stamp = (0, b"")  # type: ignore[attr-defined]
        serving = threading.Thread(target=replica.serve_forever, args=(None,), daemon=True)
        serving.start()
        replicas.append((replica, serving))
    addresses = [replica.server_address for replica, _ in replicas]

    def writer(value: bytes, order: list[int]) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for index in order:
                sock.sendto(b"1 " + value, addresses[index])

    values = []
    try:
        _together(lambda: writer(b"a", [0, 1]), lambda: writer(b"b", [1, 0]))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as reader:
            reader.settimeout(10)
            for address in addresses:  # after the writes: one socket's queue is FIFO
                reader.sendto(b"read", address)
                values.append(reader.recvfrom(100)[0])
    finally:
        for replica, serving in replicas:
            _stop(replica, serving)
    return values[0] != values[1]


def check_then_debit(network: Any, fixed: bool = False) -> bool:
    """Each request debits an account in its handler's ``ThreadPoolExecutor``; the
    balance is read and written under a lock, but in two steps: two debits of 60
    from 100 both pass the check."""
    account = {"balance": 100}
    lock = threading.Lock()

    def debit(amount: int) -> bool:
        if fixed:
            with lock:
                if account["balance"] < amount:
                    return False
                account["balance"] -= amount
                return True
        with lock:
            balance = account["balance"]
        if balance < amount:
            return False
        with lock:
            account["balance"] -= amount
        return True

    class Handler(sockfake.StreamRequestHandler):
        def handle(self) -> None:
            amount = int(self.rfile.readline())
            with ThreadPoolExecutor(1) as pool:
                done = pool.submit(debit, amount).result()
            self.wfile.write(b"ok\n" if done else b"refused\n")

    server, thread = _serve(network, Handler)
    try:
        _together(lambda: _ask(server.server_address, b"60\n"),
                  lambda: _ask(server.server_address, b"60\n"))
    finally:
        _stop(server, thread)
    return account["balance"] < 0


# -- small scenarios, for systematic exploration ------------------------------------------


def independent_locks(network: Any) -> bool:
    """Two threads, each taking its own lock twice: nothing one does depends on the
    other (partial-order reduction runs one order of them). Never shows a bug."""
    locks = [threading.Lock(), threading.Lock()]
    counts = [0, 0]

    def work(index: int) -> None:
        for _ in range(2):
            with locks[index]:
                counts[index] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counts != [2, 2]


def debit_twice(network: Any, fixed: bool = False) -> bool:
    """Two threads debit 60 from 100 under one lock: the check and the debit in one hold
    (fixed), or in two (the bug: both see 100, the balance goes to -20)."""
    account = {"balance": 100}
    lock = threading.Lock()

    def debit() -> None:
        with lock:
            balance = account["balance"]
            if fixed and balance >= 60:
                account["balance"] -= 60
        if not fixed and balance >= 60:
            with lock:
                account["balance"] -= 60

    threads = [threading.Thread(target=debit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return account["balance"] < 0


REAL_CODE_BUGS: dict[str, Callable[..., bool]] = {
    "connection cache": connection_cache,
    "lost wake-up": lost_wakeup,
    "Queue.join under lock": queue_join_under_lock,
    "forwarding servers": forwarding_servers,
    "LWW over UDP": lww_over_udp,
    "check-then-debit": check_then_debit,
}
FIXED: dict[str, Callable[[Any], bool]] = {
    name: functools.partial(bug, fixed=True) for name, bug in REAL_CODE_BUGS.items()
}

BUGS: dict[str, Callable[[Any], bool]] = {
    "lost update across I/O": lost_update_across_io,
    "plain +=": plain_increment,
    "check-then-act": check_then_act,
    "two-lock deadlock": two_lock_deadlock,
    "order violation": order_violation,
    "use after close": use_after_close,
}

# Socket option values the scenarios use on both networks.
_ = socket.SOL_SOCKET

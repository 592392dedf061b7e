"""Scale: long runs, many descriptors, long turns of the simulation's own work.

Speed itself is measured by ``benchmarks/bench_sim.py``, not here; these tests check
the behaviours that make scale possible.
"""

from __future__ import annotations

import contextlib
import gc
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import running

import sockfake
from sockfake.sim import SimNetwork
from sockfake.sim.net.endpoint import Endpoint

ROOT = Path(__file__).resolve().parents[2]


class Echo(sockfake.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


class EchoUDP(sockfake.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        sock.sendto(data, self.client_address)


def test_finished_threads_leave_the_kernel_and_names_stay_unique() -> None:
    net = SimNetwork(seed=1)
    try:
        server = sockfake.ThreadingTCPServer(("127.0.0.1", 0), Echo, network=net)
        serving = threading.Thread(target=server.serve_forever, args=(0.5,))
        serving.start()
        for _ in range(50):
            with net.create_connection(server.server_address) as conn:
                conn.sendall(b"x")
                assert conn.recv(10) == b"x"
        net.sleep(0.1)
        kernel = net.kernel
        assert [t.name for t in kernel.threads] == ["main", "Thread-1 (serve_forever)"]
        assert kernel.finished_threads == 50
        workers = [threading.Thread(target=lambda: None, name="worker") for _ in range(2)]
        for worker in workers:
            worker.start()
            worker.join()
        names = [t._sockfake_thread.name for t in workers]  # type: ignore[attr-defined]
        assert names[0] == "worker" and names[1].startswith("worker#")
        server.shutdown()
        server.server_close()
        serving.join()
    finally:
        net.close()


def test_a_turn_spent_calling_into_the_simulation_is_no_stall() -> None:
    # The thread holds the turn far longer than stall_timeout, but calls in all along
    # (as a server starting thousands of handler threads in one turn does).
    net = SimNetwork(seed=1, stall_timeout=0.2)
    try:
        def busy() -> None:
            until = time.monotonic() + 0.8
            with net.socket() as sock:
                while time.monotonic() < until:
                    sock.getsockname()

        thread = threading.Thread(target=busy)
        thread.start()
        thread.join()
        assert net.kernel.failure is None
    finally:
        net.close()


def test_more_than_1100_open_descriptors() -> None:
    # The turn's timed wait (the main thread's) once used select(), which refuses a
    # descriptor above 1023. Run in a subprocess: the descriptors are its own.
    script = textwrap.dedent(
        """
        import os, resource, threading
        import sockfake
        from sockfake.sim import SimNetwork

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 1300 and (hard == resource.RLIM_INFINITY or hard >= 1300):
            resource.setrlimit(resource.RLIMIT_NOFILE, (1300, hard))
        held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]

        class Echo(sockfake.BaseRequestHandler):
            def handle(self):
                while data := self.request.recv(100):
                    self.request.sendall(data)

        net = SimNetwork(seed=1)
        assert net.kernel.root.go._read > 1100
        server = sockfake.ThreadingTCPServer(("127.0.0.1", 0), Echo, network=net)
        thread = threading.Thread(target=server.serve_forever, args=(0.5,))
        thread.start()
        with net.create_connection(server.server_address) as conn:
            for _ in range(20):
                conn.sendall(b"ping")
                assert conn.recv(100) == b"ping"
        server.shutdown()
        server.server_close()
        thread.join()
        net.close()
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_a_closed_network_is_not_kept_alive() -> None:
    import gc

    from sockfake.sim.kernel.core import Kernel

    net = SimNetwork(seed=1)
    with net.socket() as sock:
        sock.bind(("127.0.0.1", 0))
    # Not a weakref: a Kernel compiled by mypyc (SOCKFAKE_COMPILE=1) takes none.
    kernel = id(net.kernel)
    net.close()
    del net, sock
    gc.collect()
    assert not any(id(obj) == kernel for obj in gc.get_objects() if type(obj) is Kernel)


def test_lazy_trace_details_read_as_the_eager_text() -> None:
    from sockfake.sim.trace.texts import preview

    net = SimNetwork(seed=1)
    try:
        server = sockfake.ThreadingTCPServer(("127.0.0.1", 0), Echo, network=net)
        serving = threading.Thread(target=server.serve_forever, args=(0.5,))
        serving.start()
        payload = b"y" * 5000
        with net.create_connection(server.server_address) as conn:
            local, remote = conn.getsockname(), conn.getpeername()
            conn.sendall(payload)
            got = b""
            while len(got) < len(payload):
                got += conn.recv(65536)
        server.shutdown()
        server.server_close()
        serving.join()
        sends = [e for e in net.trace.events if e.kind == "send" and e.actor == "main"]
        assert sends[0].details == f"{local} -> {remote} 5000B {preview(payload)}"
        assert sends[0].details.endswith("...")
        recvs = [e for e in net.trace.events if e.kind == "recv" and e.actor == "main"]
        assert recvs[0].details == f"{local} {recvs[0].length}B"
    finally:
        net.close()


@contextlib.contextmanager
def _echo_connection(net: SimNetwork) -> Iterator[Any]:
    """A connection to a ``ThreadingTCPServer`` echo on ``net``, past its first message."""
    server = sockfake.ThreadingTCPServer(("127.0.0.1", 0), Echo, network=net)
    with running(server), net.create_connection(server.server_address) as conn:
        conn.sendall(b"warm-up")
        conn.recv(64)
        yield conn


def _echo(conn: Any, count: int) -> None:
    for _ in range(count):
        conn.sendall(b"x" * 32)
        conn.recv(64)


def test_a_long_runs_trace_gives_the_garbage_collector_nothing_to_walk() -> None:
    # A full collection walks every tracked object; a trace of tracked events made each
    # one cost more the longer the run (a NamedTuple, or a tuple holding a function,
    # stays tracked). Thousands of messages must leave the tracked count flat.
    with SimNetwork(seed=1) as net, _echo_connection(net) as conn:
        gc.collect()
        before = len(gc.get_objects())
        events = len(net.trace)
        _echo(conn, 2000)
        gc.collect()
        grown = len(gc.get_objects()) - before
        added = len(net.trace) - events
        assert added >= 8000  # send, deliver, recv and a switch per message, each way
        assert grown < 500, f"{grown} more tracked objects after {added} events"
        assert net.trace.events[-1].kind  # and they still read as TraceEvents


def test_trace_events_leave_the_collectors_care_in_its_young_generations() -> None:
    # An event that stays tracked through the young collections reaches the oldest
    # generation, and enough of them bring the next full collection forward (one walks
    # every tracked object). Events hold their lazy details flat, so the first young
    # collection that sees one lets it go.
    with SimNetwork(seed=1) as net, _echo_connection(net) as conn:
        gc.collect()
        old = {id(obj) for obj in gc.get_objects(generation=2)}
        _echo(conn, 2000)
        gc.collect(1)  # the young generations only: survivors move to the oldest
        promoted = [obj for obj in gc.get_objects(generation=2)
                    if id(obj) not in old and type(obj) is tuple]
    assert len(promoted) < 100, f"{len(promoted)} tuples still tracked after 2000 messages"


def _connect_and_close(net: SimNetwork, server: Any, count: int) -> None:
    """``count`` echo round trips, one connection each, closed before the next one."""
    for _ in range(count):
        with net.create_connection(server.server_address) as conn:
            conn.sendall(b"x")
            assert conn.recv(10) == b"x"


def test_closed_connections_are_let_go_while_the_clock_stands_still() -> None:
    # Connections that open and close at one instant: neither the SYN retransmission
    # timer (cancelled once the connection is up) nor the ephemeral port table may
    # keep them, or a long run's memory and collections grow with every connection.
    # Counted from before the run: endpoints an earlier test in this process still
    # holds (a failing test's traceback keeps its sockets) are not this run's.
    gc.collect()
    before = sum(1 for obj in gc.get_objects() if type(obj) is Endpoint)
    with SimNetwork(seed=1) as net:
        server = sockfake.ThreadingTCPServer(("127.0.0.1", 0), Echo, network=net)
        with running(server):
            _connect_and_close(net, server, 300)
            net.sleep(0)  # the last handler thread finishes
            gc.collect()
            alive = sum(1 for obj in gc.get_objects() if type(obj) is Endpoint) - before
            ports = len(net.default_host.ports)
            assert net.time() == 0.0
        assert alive <= 6, f"{alive} endpoints alive after 300 closed connections"
        assert ports <= 3, f"{ports} port entries after 300 closed connections"


def test_a_finished_handler_thread_keeps_nothing_of_its_connection() -> None:
    # threading keeps a Thread object until its OS thread has unwound, which a loaded
    # machine delays past the simulation's next steps (the test above then counted
    # dozens of closed connections alive). Here the test keeps the Thread objects: their
    # request, and the description of their last wait (a closure over the socket), must
    # not keep the connections. Endpoints are counted (a weak reference to the request
    # would do, but the compiled build's sockets take none).
    threads: list[threading.Thread] = []

    class Kept(Echo):
        def handle(self) -> None:
            threads.append(threading.current_thread())
            super().handle()

    gc.collect()
    before = sum(1 for obj in gc.get_objects() if type(obj) is Endpoint)
    with SimNetwork(seed=1) as net:
        server = sockfake.ThreadingTCPServer(("127.0.0.1", 0), Kept, network=net)
        with running(server):
            _connect_and_close(net, server, 10)
            # The last handler thread finishes. Called from here, not from the helper:
            # the kernel keeps the main thread's last calling frame (for its stall
            # watchdog), and the helper's holds the last client socket, linked to its peer.
            net.sleep(0)
            gc.collect()
            assert len(threads) == 10 and not any(t.is_alive() for t in threads)
            alive = sum(1 for obj in gc.get_objects() if type(obj) is Endpoint) - before
            # The listener; each kept connection would add two.
            assert alive <= 2, f"{alive} endpoints alive: finished handler threads keep them"


def test_timed_waits_ended_by_a_reply_leave_no_timers_behind() -> None:
    # A reply that comes before the timeout is the common case (a client's recv with
    # a timeout, a server's select(0.5)): such a wait's deadline never becomes a timer,
    # so a long run neither grows the timer heap nor hands the collector objects to
    # walk. The deadlines still decide when the clock moves (the last assertion).
    with SimNetwork(seed=1) as net:
        server = sockfake.UDPServer(("127.0.0.1", 0), EchoUDP, network=net)
        with running(server), net.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(5.0)
            client.sendto(b"warm-up", server.server_address)
            client.recvfrom(64)
            gc.collect()
            before = len(gc.get_objects())
            for _ in range(2000):
                client.sendto(b"x", server.server_address)
                assert client.recvfrom(64)[0] == b"x"
            gc.collect()
            grown = len(gc.get_objects()) - before
            heap = len(net.kernel._timers)
            assert net.time() == 0.0
            with pytest.raises(TimeoutError):
                client.recvfrom(64)  # nothing was sent: the 5 s deadline passes
            assert net.time() == 5.0
    assert heap < 50, f"{heap} timers in the heap after 2000 answered timed waits"
    assert grown < 500, f"{grown} more tracked objects after 2000 timed round trips"

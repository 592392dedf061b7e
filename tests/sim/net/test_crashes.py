"""A host's crash and restart: every thread unwound, every socket gone, peers told as
after a reboot, the disk kept, nothing leaked."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import db_and_app

import sockfake
from sockfake.errors import HostCrashed, SimThreadKilled, SockfakeRuntimeError
from sockfake.sim import SimNetwork


@pytest.fixture
def net() -> Iterator[SimNetwork]:
    with db_and_app(0.001) as network:
        yield network


class Echo(sockfake.StreamRequestHandler):
    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(line)


def start_echo(net: SimNetwork) -> tuple[Any, int]:
    db = net.host("db")
    server = sockfake.ThreadingTCPServer(("db", 0), Echo, network=db)
    db.thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def test_a_crash_unwinds_every_thread_of_the_host_and_leaves_nothing(net: SimNetwork) -> None:
    db = net.host("db")
    server, port = start_echo(net)
    clients = [net.host("app").create_connection(("db", port)) for _ in range(3)]
    for c in clients:
        c.sendall(b"hi\n")
        assert c.recv(10) == b"hi\n"
    unwound: list[str] = []
    event = net.event()

    def stubborn() -> None:
        try:
            while True:
                try:
                    event.wait()           # blocked on an event
                except Exception:          # does not catch the crash
                    unwound.append("caught?!")
        finally:
            unwound.append("stubborn")

    def sleeper() -> None:
        try:
            net.sleep(1e6)
        except SimThreadKilled as crash:
            unwound.append(type(crash).__name__)
            raise

    for target in (stubborn, sleeper):
        db.thread(target=target).start()
    net.settle()
    on_db = [t for t in net.kernel.threads if t.host is db]
    assert len(on_db) == 6  # serve_forever, three handlers, two of ours
    net.crash("db")
    net.settle()
    assert [t for t in net.kernel.threads if t.host is db] == []
    assert sorted(unwound) == ["HostCrashed", "stubborn"]
    assert [s for s in net.open_sockets() if s.ep.host is db] == []
    assert db.ports == {}
    assert [e.kind for e in net.trace.events if e.kind in ("crash", "restart")] == ["crash"]
    for c in clients:
        c.close()
    assert server.socket.fileno() == -1  # the object is the test's; its socket is gone


def test_peers_hear_silence_then_a_reset_after_the_reboot(net: SimNetwork) -> None:
    server, port = start_echo(net)
    client = net.host("app").create_connection(("db", port))
    client.settimeout(5.0)
    client.sendall(b"one\n")
    assert client.recv(10) == b"one\n"
    net.crash("db")
    client.sendall(b"two\n")                   # accepted by the client's kernel
    with pytest.raises(TimeoutError):
        client.recv(10)                        # silence: no FIN, no RST
    net.restart("db")
    with pytest.raises(ConnectionResetError):  # its retransmission meets a new kernel
        client.recv(10)
    client.close()
    # Connecting while it is down times out; after the restart nothing listens.
    net.crash("db")
    with pytest.raises(TimeoutError):
        net.host("app").create_connection(("db", port), timeout=3.0)
    net.restart("db")
    with pytest.raises(ConnectionRefusedError):
        net.host("app").create_connection(("db", port), timeout=3.0)


def test_a_restart_runs_the_service_again_with_its_disk(net: SimNetwork) -> None:
    db = net.host("db")
    db.disk["writes"] = []
    started: list[int] = []

    def boot() -> None:
        started.append(db.boots)
        server = sockfake.ThreadingTCPServer(("db", 7000), Echo, network=db)
        db.disk["writes"].append(db.boots)
        server.serve_forever()

    db.thread(target=boot, daemon=True).start()
    net.settle()
    net.crash("db")
    thread = net.restart("db", start=boot)
    net.settle()
    assert thread.name == "db-boot-1" and thread.is_alive()
    assert started == [0, 1] and db.disk["writes"] == [0, 1]   # the port was free again
    with net.host("app").create_connection(("db", 7000), timeout=3) as conn:
        conn.sendall(b"back\n")
        assert conn.recv(10) == b"back\n"
    net.crash("db")
    net.restart("db")
    net.settle()
    assert started == [0, 1]


def test_a_host_crashing_in_its_own_thread_stops_there(net: SimNetwork) -> None:
    db = net.host("db")
    after: list[str] = []

    def suicide() -> None:
        try:
            net.crash("db")
            after.append("went on")
        except HostCrashed as crash:
            after.append(str(crash))
            raise

    db.thread(target=suicide).start()
    net.settle()
    assert after == ["host 'db' crashed at 0.000000 (in its own thread)"]


def test_crash_and_restart_misuse_is_named(net: SimNetwork) -> None:
    with pytest.raises(SockfakeRuntimeError, match="has not crashed"):
        net.restart("db")
    net.crash("db")
    with pytest.raises(SockfakeRuntimeError, match="already crashed"):
        net.crash("db")
    with pytest.raises(SockfakeRuntimeError, match="bring it back with restart"):
        net.host_up("db")
    net.restart("db")
    udp = net.host("db").socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("db", 53))
    net.crash("db")
    assert udp.fileno() == -1


def test_crashing_the_default_host_unwinds_its_threads_but_not_the_test(net: SimNetwork) -> None:
    ended: list[str] = []

    def worker() -> None:
        try:
            net.sleep(100)
        finally:
            ended.append("worker")

    net.thread(target=worker).start()          # placed on no host: the default one
    net.settle()
    net.crash("local")
    net.settle()
    assert ended == ["worker"]
    assert [t.name for t in net.kernel.threads] == ["main"]
    net.restart("local")

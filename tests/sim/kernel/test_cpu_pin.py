"""A simulation keeps its threads on one CPU while it is open, and changes nothing else."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest
from helpers import echo_digest, running

import sockfake as socketserver
from sockfake.errors import SockfakeTypeError
from sockfake.sim import SimNetwork
from sockfake.sim.kernel.backends import set_default_backend


@pytest.fixture(autouse=True)
def _os_threads() -> Iterator[None]:
    """These tests are about OS threads (a session forced onto greenlets aside)."""
    previous = set_default_backend("threads")
    yield
    set_default_backend(previous)


pinnable = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs sched_setaffinity and at least two CPUs to choose from",
)


class ReportAffinity(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.recv(16)
        cpus = ",".join(map(str, sorted(os.sched_getaffinity(0))))
        self.request.sendall(cpus.encode())


def handler_cpus(net: SimNetwork) -> set[int]:
    """The CPUs a ThreadingTCPServer's handler thread may run on."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), ReportAffinity, network=net)
    with running(server), net.create_connection(server.server_address) as conn:
        conn.sendall(b"?")
        reply = conn.recv(1024).decode()
    return {int(cpu) for cpu in reply.split(",")}


@pinnable
def test_the_creating_thread_and_the_threads_it_starts_share_one_cpu_until_close() -> None:
    before = os.sched_getaffinity(0)
    net = SimNetwork(seed=1)
    try:
        root = os.sched_getaffinity(0)
        assert len(root) == 1 and root <= before
        assert net.kernel.cpu_pin.cpu in root
        assert handler_cpus(net) == root
    finally:
        net.close()
    assert os.sched_getaffinity(0) == before


@pinnable
def test_pin_cpu_false_leaves_every_thread_its_affinity() -> None:
    before = os.sched_getaffinity(0)
    net = SimNetwork(seed=1, pin_cpu=False)
    try:
        assert os.sched_getaffinity(0) == before
        assert handler_cpus(net) == before
    finally:
        net.close()


@pinnable
def test_closing_from_another_thread_restores_the_creating_threads_affinity() -> None:
    # As at interpreter exit: the network was made in a thread that is not the one
    # closing it (the thread below is real: no network exists when it starts).
    before = os.sched_getaffinity(0)
    made = threading.Event()
    done = threading.Event()
    networks: list[SimNetwork] = []

    def creator() -> None:
        networks.append(SimNetwork(seed=1))
        made.set()
        done.wait(30)

    thread = threading.Thread(target=creator)
    thread.start()
    try:
        assert made.wait(30)
        native_id = thread.native_id
        assert native_id is not None
        assert len(os.sched_getaffinity(native_id)) == 1
        networks[0].close()
        assert os.sched_getaffinity(native_id) == before
    finally:
        done.set()
        thread.join(30)


def test_pin_cpu_must_be_a_bool() -> None:
    with pytest.raises(SockfakeTypeError, match="pin_cpu must be True or False, not 'yes'"):
        SimNetwork(seed=1, pin_cpu="yes")  # type: ignore[arg-type]


def test_pinning_changes_no_simulated_behaviour() -> None:
    assert echo_digest(pin_cpu=True) == echo_digest(pin_cpu=False)

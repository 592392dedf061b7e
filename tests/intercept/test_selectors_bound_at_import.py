"""Selector classes bound at import run on the simulation from a simulated thread.

The stdlib's ``socketserver._ServerSelector`` is ``selectors.PollSelector``, bound when
``socketserver`` was imported; ``PollSelector._selector_cls`` is ``select.poll``, bound
when ``selectors`` was. Under interception a selector built from such a class waits in
virtual time, and a real poller made before the interception refuses a simulated
socket by name instead of reporting it as always ready.
"""

from __future__ import annotations

import select
import selectors
import socket
import socketserver
import threading
from typing import Any

import pytest

from sockfake.network import SockfakeRuntimeError
from sockfake.sim import SimNetwork

# Bound at import, before any interception: the real classes.
CAPTURED = {
    name: getattr(selectors, name)
    for name in ("SelectSelector", "PollSelector", "EpollSelector")
    if hasattr(selectors, name)
}
STDLIB_SERVER_SELECTOR = vars(socketserver)["_ServerSelector"]


class Upper(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.readline().upper())


def test_the_stdlibs_socketserver_is_the_real_module() -> None:
    # What the tests below rely on: not sockfake standing in for it.
    assert socketserver.__file__ is not None and "sockfake" not in socketserver.__file__
    assert STDLIB_SERVER_SELECTOR in CAPTURED.values()


def test_a_stdlib_server_serves_and_shuts_down_on_the_simulation(inet: SimNetwork) -> None:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Upper)
    serving = threading.Thread(target=server.serve_forever)
    serving.start()
    host, port = server.server_address[:2]
    with socket.create_connection((str(host), port), timeout=5) as conn:
        conn.sendall(b"hello\n")
        assert conn.makefile("rb").readline() == b"HELLO\n"
    started = inet.time()
    server.shutdown()  # deadlocked when the real poll reported the socket as ready
    serving.join()
    server.server_close()
    assert not serving.is_alive()
    # Noticed at the next poll of serve_forever(poll_interval=0.5), in virtual time.
    assert 0 < inet.time() - started <= 0.5


@pytest.mark.parametrize("name", sorted(CAPTURED))
def test_a_selector_class_bound_at_import_waits_in_virtual_time(
    inet: SimNetwork, name: str
) -> None:
    a, b = socket.socketpair()
    with a, b, CAPTURED[name]() as sel:
        sel.register(a, selectors.EVENT_READ, "a")
        start = inet.time()
        assert sel.select(timeout=30) == []
        assert inet.time() - start == pytest.approx(30, abs=0.002)
        b.sendall(b"x")
        assert [(key.data, mask) for key, mask in sel.select(timeout=30)] == [
            ("a", selectors.EVENT_READ)
        ]


def test_a_real_poller_made_before_interception_refuses_a_simulated_socket(
    net: SimNetwork,
) -> None:
    if "PollSelector" not in CAPTURED:
        pytest.skip("no select.poll on this platform")
    sel = selectors.PollSelector()  # before the interception: a real select.poll
    try:
        with net.intercept():
            sock = socket.socket()
            fd = sock.fileno()
            with sock, pytest.raises(SockfakeRuntimeError) as caught:
                sel.register(sock, selectors.EVENT_READ)
            assert sel.get_map() == {}  # not left half-registered
    finally:
        sel.close()
    message = str(caught.value)
    assert "PollSelector was made outside the simulation" in message
    assert f"simulated descriptor {fd}" in message
    assert "always ready (POLLNVAL)" in message


def test_a_real_poller_still_serves_real_descriptors_in_a_real_thread(
    inet: SimNetwork,
) -> None:
    out: dict[str, Any] = {}

    def run() -> None:  # not a simulated thread: the real poll, real descriptors
        r, w = socket.socketpair()
        with r, w, selectors.PollSelector() as sel:
            sel.register(r, selectors.EVENT_READ)
            w.sendall(b"x")
            out["ready"] = [key.fileobj is r for key, _ in sel.select(timeout=5)]

    from sockfake.sim.kernel.thread_hooks import _original_start

    thread = threading.Thread(target=run)
    _original_start(thread)
    thread.join()
    assert out == {"ready": [True]}


def test_exit_puts_the_bound_attributes_back(net: SimNetwork) -> None:
    def bound() -> dict[str, Any]:
        found = {f"{n}.{a}": CAPTURED[n].__dict__.get(a) for n in CAPTURED
                 for a in ("_selector_cls", "_select")}
        found["register"] = vars(selectors)["_PollLikeSelector"].__dict__["register"]
        return found

    before = bound()
    assert before["PollSelector._selector_cls"] is select.poll
    with net.intercept():
        assert bound() != before
    assert bound() == before

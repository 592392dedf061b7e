"""websockets (sync), unmodified, on the simulation: a seed replays its random bytes too."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest

from sockfake.sim import SimNetwork

sync_server = pytest.importorskip("websockets.sync.server",
                                  reason="websockets is not installed (the test extra)")
sync_client = pytest.importorskip("websockets.sync.client",
                                  reason="websockets is not installed (the test extra)")


def _masks(net: SimNetwork) -> list[bytes]:
    """The masking keys of the client's text frames, read off the wire (the trace)."""
    masks = []
    for event in net.trace:
        payload = bytes(event.payload or b"")
        # FIN and a text frame's opcode (RSV1 may be set: permessage-deflate), masked.
        if event.kind == "send" and len(payload) > 6 and payload[0] & 0x8F == 0x81 \
                and payload[1] & 0x80:
            masks.append(payload[2:6])
    return masks


def _close(server: Any) -> None:
    """The listening socket and the shutdown pair (sockets, or os.pipe() before 17)."""
    server.socket.close()
    for name in ("shutdown_watcher", "shutdown_notifier"):
        end = getattr(server, name, None)
        if isinstance(end, int):
            os.close(end)
        elif end is not None:
            end.close()


def _echo_run(seed: int, seed_entropy: bool = True) -> tuple[str, list[str], list[bytes]]:
    """An echo of three messages; the digest, the handshake keys and the frames' masks."""
    keys: list[str] = []

    def echo(connection: Any) -> None:
        keys.append(connection.request.headers["Sec-WebSocket-Key"])
        for message in connection:
            connection.send(message)

    net = SimNetwork(seed=seed, time_limit=3600)
    try:
        with net.intercept(seed_entropy=seed_entropy):
            server = sync_server.serve(echo, "127.0.0.1", 8765)
            # One connection, through the server's own handler (handshake, frames). Not
            # serve_forever(): before websockets 17 it wakes itself through os.pipe(),
            # a real descriptor that a simulated selector refuses.
            thread = threading.Thread(target=lambda: server.handler(*server.socket.accept()))
            thread.start()
            try:
                with sync_client.connect("ws://127.0.0.1:8765") as client:
                    for index in range(3):
                        client.send(f"hello {index}")
                        assert client.recv(timeout=10) == f"hello {index}"
            finally:
                thread.join()
                _close(server)
        return net.digest(), keys, _masks(net)
    finally:
        net.close()


def test_the_same_seed_replays_a_websockets_echo_byte_for_byte() -> None:
    first, second = _echo_run(7), _echo_run(7)
    assert len(first[2]) == 3  # one mask per message, found on the wire
    assert first == second  # digest, key and masks


def test_different_seeds_give_different_keys_and_masks() -> None:
    _, keys_a, masks_a = _echo_run(7)
    _, keys_b, masks_b = _echo_run(8)
    assert keys_a != keys_b
    assert masks_a != masks_b


def test_without_seeded_entropy_the_same_seed_differs() -> None:
    # The opt-out: the OS's entropy, so the library's bytes (and the digest) differ.
    first, second = _echo_run(7, seed_entropy=False), _echo_run(7, seed_entropy=False)
    assert first[1] != second[1]
    assert first[0] != second[0]

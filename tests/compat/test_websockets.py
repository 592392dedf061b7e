"""websockets (sync and asyncio), unmodified: echo on both networks and under latency,
keepalive through a partition on virtual time, and a seed replays its random bytes too."""

from __future__ import annotations

import asyncio
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
            # One connection, through the server's own handler (handshake, frames):
            # the digest holds one connection's events only (serve_forever() is
            # exercised by test_sync_echo below).
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


# -- echo on both networks and under latency, keepalive through a partition --------------

exceptions = pytest.importorskip("websockets.exceptions")
async_server = pytest.importorskip("websockets.asyncio.server")
async_client = pytest.importorskip("websockets.asyncio.client")


def _echo(connection: Any) -> None:
    for message in connection:
        connection.send(message)


async def _async_echo(connection: Any) -> None:
    async for message in connection:
        await connection.send(message)


class _SyncServer:
    """websockets' sync server, serving in a thread (``serve_forever``) until stopped."""

    def __init__(self, **options: Any) -> None:
        self.server = sync_server.serve(_echo, "127.0.0.1", 0, **options)
        self.uri = f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join()
        _close(self.server)  # before websockets 17 shutdown() leaves its os.pipe() open


def _sync_echo() -> None:
    served = _SyncServer()
    try:
        with sync_client.connect(served.uri) as client:
            for index in range(3):
                client.send(f"hello {index}")
                assert client.recv(timeout=10) == f"hello {index}"
    finally:
        served.stop()


def _asyncio_echo() -> None:
    async def main() -> list[str]:
        async with async_server.serve(_async_echo, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            async with async_client.connect(f"ws://127.0.0.1:{port}") as client:
                replies = []
                for index in range(3):
                    await client.send(f"hello {index}")
                    replies.append(await client.recv())
                return replies

    assert asyncio.run(main()) == [f"hello {index}" for index in range(3)]


@pytest.mark.sockfake(network="both")
def test_sync_echo(sockfake_network: Any) -> None:
    _sync_echo()


@pytest.mark.sockfake(network="both")
def test_asyncio_echo(sockfake_network: Any) -> None:
    _asyncio_echo()


# The connect, the opening handshake and three echoes: five round trips of 2 x 50 ms.
_LATENCY_ROUND_TRIPS = 5


# A seed of its own: with a few packets to take, some seeds would lose none.
@pytest.mark.sockfake(seed=1, latency=0.005, loss=0.3)
@pytest.mark.parametrize("echo", [_sync_echo, _asyncio_echo], ids=["sync", "asyncio"])
def test_echo_under_loss(sockfake_network: Any, echo: Any) -> None:
    echo()  # every frame arrives: TCP retransmitted what the link took
    assert any(event.kind == "loss" for event in sockfake_network.trace.events)


@pytest.mark.sockfake(latency=0.05)
def test_sync_echo_under_latency(sockfake_network: Any) -> None:
    _sync_echo()
    assert sockfake_network.time() >= _LATENCY_ROUND_TRIPS * 0.1 - 1e-9


@pytest.mark.sockfake(latency=0.05)
def test_asyncio_echo_under_latency(sockfake_network: Any) -> None:
    _asyncio_echo()
    assert sockfake_network.time() >= _LATENCY_ROUND_TRIPS * 0.1 - 1e-9


def _assert_keepalive_timeout(error: Any, elapsed: float) -> None:
    """The client's keepalive ping went unanswered: closed with 1011 after its interval
    (1 s) and timeout (1 s), on the virtual clock (and the closing handshake, which the
    partition also swallows, within close_timeout)."""
    assert isinstance(error, exceptions.ConnectionClosedError)
    assert error.sent is not None and error.sent.code == 1011
    assert "keepalive ping timeout" in error.sent.reason
    assert 2.0 <= elapsed <= 2.0 + 1.0 + 1e-6


def test_sync_keepalive_closes_the_connection_through_a_partition(
    sockfake_network: Any,
) -> None:
    net = sockfake_network
    served = _SyncServer(ping_interval=None)  # only the client pings
    try:
        with sync_client.connect(served.uri, ping_interval=1, ping_timeout=1,
                                 close_timeout=1) as client:
            client.send("before")
            assert client.recv(timeout=10) == "before"
            # Loopback TCP is cut; the connection's own wake-ups (socket pairs,
            # host-local) are not, so the keepalive fires and the close completes.
            net.partition("local", "local")
            started = net.time()
            with pytest.raises(exceptions.ConnectionClosedError) as caught:
                client.recv(timeout=60)
            _assert_keepalive_timeout(caught.value, net.time() - started)
        net.heal()  # the server's side of the connection then sees the end
    finally:
        served.stop()


def test_asyncio_keepalive_closes_the_connection_through_a_partition(
    sockfake_network: Any,
) -> None:
    net = sockfake_network

    async def main() -> tuple[BaseException, float]:
        async with async_server.serve(_async_echo, "127.0.0.1", 0, ping_interval=None) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            async with async_client.connect(f"ws://127.0.0.1:{port}", ping_interval=1,
                                            ping_timeout=1, close_timeout=1) as client:
                await client.send("before")
                assert await client.recv() == "before"
                net.partition("local", "local")
                started = net.time()
                try:
                    await asyncio.wait_for(client.recv(), 60)
                except exceptions.ConnectionClosed as error:
                    closed: BaseException = error
                else:
                    raise AssertionError("the keepalive did not close the connection")
                elapsed = net.time() - started
            net.heal()  # the server's side then sees the end, and serve() can close
            return closed, elapsed

    error, elapsed = asyncio.run(main())
    _assert_keepalive_timeout(error, elapsed)

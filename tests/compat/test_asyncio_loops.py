"""asyncio applications run unmodified on the simulation, busy loops included.

An event loop with work never blocks: it polls with ``select(0)`` between callbacks.
Each case here failed on the default zero-latency network while the kernel took that
for a spin (``SimDeadlockError``, or the clock jumping in the middle of pure
computation): echo round trips on one connection, an ``asyncio.Queue`` ping-pong,
``await asyncio.sleep(0)`` in a loop, anyio memory streams, ``wait_for`` over an
executor, uvicorn serving Starlette's ``BaseHTTPMiddleware`` and a streaming response
(on the real network too, and through a partition). Each runs on the default network
and, where they apply, under latency, chunking and loss; each runs twice with one seed
and must give one digest.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from sockfake.sim import SimNetwork

T = TypeVar("T")

# The networks a case runs on: the default (perfect, zero latency) and impaired ones.
DEFAULT: dict[str, Any] = {}
SLOW: dict[str, Any] = {"latency": 0.01, "jitter": 0.002}
CHUNKED: dict[str, Any] = {"latency": 0.005, "chunk": 3}
LOSSY: dict[str, Any] = {"latency": 0.01, "loss": 0.3}
STREAM_NETWORKS = pytest.mark.parametrize(
    "conditions", [DEFAULT, SLOW, CHUNKED], ids=["default", "slow", "chunked"]
)


def run_twice(conditions: dict[str, Any], body: Callable[[SimNetwork], T],
              seed: int = 20) -> tuple[T, SimNetwork]:
    """``body(net)`` under interception on a fresh network, twice with one seed: the
    two traces must have one digest. Returns the first run's result and network
    (closed; its trace and clock stay readable)."""
    runs = []
    for _ in range(2):
        net = SimNetwork(seed=seed, time_limit=3600, **conditions)
        try:
            with net.intercept():
                result = body(net)
        finally:
            net.close()
        runs.append((result, net))
    (first, net), (_, again) = runs
    assert net.trace.digest() == again.trace.digest()
    return first, net


def start_sleeper(seconds: float) -> threading.Thread:
    """A simulated thread asleep for ``seconds``: an event the clock could jump to if
    the kernel took a busy loop for a spin."""
    thread = threading.Thread(target=time.sleep, args=(seconds,), name="sleeper")
    thread.start()
    return thread


def with_an_event_pending(run: Callable[[], T]) -> Callable[[SimNetwork], tuple[T, float]]:
    """A body for ``run_twice``: ``run()`` while a thread sleeps 1 s; its result and
    the virtual time it ended at (the sleeper is joined afterwards)."""

    def body(net: SimNetwork) -> tuple[T, float]:
        sleeper = start_sleeper(1.0)
        result = run()
        at = net.time()
        sleeper.join()
        assert net.time() == 1.0
        return result, at

    return body


# -- streams ---------------------------------------------------------------------------


async def _echo_round_trips(count: int) -> list[bytes]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers = []
    for number in range(count):
        writer.write(b"message %d\n" % number)
        await writer.drain()
        answers.append(await reader.readline())
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()
    return answers


@STREAM_NETWORKS
def test_a_hundred_echo_round_trips_on_one_connection(conditions: dict[str, Any]) -> None:
    answers, net = run_twice(conditions, lambda net: asyncio.run(_echo_round_trips(100)))
    assert answers == [b"message %d\n" % number for number in range(100)]
    latency = conditions.get("latency", 0.0)
    if not latency:
        assert net.time() == 0.0
    else:  # the handshake and 100 round trips, each way at least the latency
        assert net.time() >= 202 * latency


def test_echo_round_trips_keep_the_clock_still_with_an_event_pending() -> None:
    body = with_an_event_pending(lambda: asyncio.run(_echo_round_trips(100)))
    (answers, at), _ = run_twice(DEFAULT, body)
    assert answers[-1] == b"message 99\n"
    assert at == 0.0  # not the sleeper's 1 s


def test_a_datagram_echo_with_retries_under_loss() -> None:
    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            self.transport.sendto(data, addr)

    class Client(asyncio.DatagramProtocol):
        def __init__(self) -> None:
            self.answers: asyncio.Queue[bytes] = asyncio.Queue()

        def datagram_received(self, data: bytes, addr: Any) -> None:
            self.answers.put_nowait(data)

    async def main() -> tuple[list[bytes], int]:
        loop = asyncio.get_running_loop()
        server, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 9999))
        transport, client = await loop.create_datagram_endpoint(
            Client, remote_addr=("127.0.0.1", 9999))
        got, sends = [], 0
        for number in range(20):
            request = b"%d" % number
            while True:  # resend after 0.1 s without an answer (a lost request or reply)
                transport.sendto(request)
                sends += 1
                try:
                    answer = await asyncio.wait_for(client.answers.get(), 0.1)
                except asyncio.TimeoutError:
                    continue
                if answer == request:
                    got.append(answer)
                    break
        transport.close()
        server.close()
        return got, sends

    (got, sends), _ = run_twice(LOSSY, lambda net: asyncio.run(main()))
    assert got == [b"%d" % number for number in range(20)]
    assert sends > 20  # some were lost and sent again


# -- the loop's own work ---------------------------------------------------------------


def test_a_queue_ping_pong_keeps_the_clock_still() -> None:
    async def main() -> int:
        ping: asyncio.Queue[int] = asyncio.Queue()
        pong: asyncio.Queue[int] = asyncio.Queue()

        async def ponger() -> None:
            while (number := await ping.get()) >= 0:
                await pong.put(number + 1)

        task = asyncio.create_task(ponger())
        total = 0
        for number in range(1000):
            await ping.put(number)
            total += await pong.get() - number
        await ping.put(-1)
        await task
        return total

    (total, at), _ = run_twice(DEFAULT, with_an_event_pending(lambda: asyncio.run(main())))
    assert total == 1000
    assert at == 0.0


def test_a_thousand_sleep_zero_keep_the_clock_still() -> None:
    async def main() -> int:
        count = 0
        for _ in range(1000):
            await asyncio.sleep(0)
            count += 1
        return count

    (count, at), _ = run_twice(DEFAULT, with_an_event_pending(lambda: asyncio.run(main())))
    assert (count, at) == (1000, 0.0)


def test_anyio_memory_streams() -> None:
    anyio = pytest.importorskip("anyio", reason="anyio is not installed")

    async def main() -> list[int]:
        send, receive = anyio.create_memory_object_stream[int](0)
        got: list[int] = []

        async def produce() -> None:
            async with send:
                for number in range(1000):
                    await send.send(number)

        async def consume() -> None:
            async with receive:
                got.extend([number async for number in receive])

        async with anyio.create_task_group() as group:
            group.start_soon(produce)
            group.start_soon(consume)
        got.append(await anyio.to_thread.run_sync(sum, got))
        return got

    body = with_an_event_pending(lambda: anyio.run(main, backend="asyncio"))
    (got, at), _ = run_twice(DEFAULT, body)
    assert got == [*range(1000), sum(range(1000))]
    assert at == 0.0


# -- executors -------------------------------------------------------------------------


@pytest.mark.parametrize("conditions", [DEFAULT, SLOW], ids=["default", "slow"])
def test_wait_for_times_out_at_its_own_timeout_over_a_sleeping_executor(
    conditions: dict[str, Any],
) -> None:
    async def main() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        slow = loop.run_in_executor(None, time.sleep, 5)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(slow), 2)
        timed_out = loop.time() - start
        await slow
        return timed_out, loop.time() - start

    (timed_out, finished), _ = run_twice(conditions, lambda net: asyncio.run(main()))
    assert timed_out == pytest.approx(2.0)
    assert finished == pytest.approx(5.0)


@pytest.mark.parametrize("conditions", [DEFAULT, SLOW], ids=["default", "slow"])
def test_wait_for_busy_work_and_an_executor_result_takes_no_time(
    conditions: dict[str, Any],
) -> None:
    async def work() -> int:
        loop = asyncio.get_running_loop()
        for _ in range(500):
            await asyncio.sleep(0)
        return await loop.run_in_executor(None, sum, range(10))

    async def main() -> tuple[int, float]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        sleeping = loop.run_in_executor(None, time.sleep, 5)  # a thread asleep meanwhile
        result = await asyncio.wait_for(work(), 2)
        took = loop.time() - start
        await sleeping
        return result, took

    (result, took), _ = run_twice(conditions, lambda net: asyncio.run(main()))
    assert (result, took) == (45, 0.0)


# -- uvicorn + Starlette, fetched by httpx, requests and urllib3 ---------------------------


def _starlette_app() -> Any:
    pytest.importorskip("starlette", reason="starlette is not installed")
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.responses import PlainTextResponse, StreamingResponse
    from starlette.routing import Route

    class Tag(BaseHTTPMiddleware):
        async def dispatch(self, request: Any, call_next: Any) -> Any:
            response = await call_next(request)
            response.headers["x-middleware"] = "seen"
            return response

    async def chunks() -> Any:
        for number in range(1000):
            yield b"%04d\n" % number

    async def stream(request: Any) -> Any:
        return StreamingResponse(chunks(), media_type="text/plain")

    async def hello(request: Any) -> Any:
        return PlainTextResponse("hello")

    return Starlette(routes=[Route("/", hello), Route("/stream", stream)],
                     middleware=[Middleware(Tag)])


@contextlib.contextmanager
def _uvicorn_serving(app: Any, port: int) -> Iterator[int]:
    """Serve ``app`` with uvicorn in a thread on ``port`` (0: any); the port it is
    bound to, until the block ends and uvicorn stops."""
    uvicorn = pytest.importorskip("uvicorn", reason="uvicorn is not installed")
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            lifespan="off")
    server = uvicorn.Server(config)
    serving = threading.Thread(target=server.run, name="uvicorn")
    serving.start()
    deadline = time.monotonic() + 10  # virtual seconds on the simulation
    while not server.started:
        assert serving.is_alive(), "uvicorn stopped before it started"
        assert time.monotonic() < deadline, "uvicorn did not start in 10 s"
        time.sleep(0.01)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        serving.join()


def _uvicorn_fetch(app: Any, port: int) -> list[Any]:
    """Serve ``app`` with uvicorn, fetch ``/`` and ``/stream`` with httpx, stop it;
    what came back."""
    httpx = pytest.importorskip("httpx", reason="httpx is not installed")
    with _uvicorn_serving(app, port) as bound, httpx.Client(
        base_url=f"http://127.0.0.1:{bound}", timeout=10
    ) as client:
        hello = client.get("/")
        stream = client.get("/stream")
    return [hello.status_code, hello.text, hello.headers.get("x-middleware"),
            stream.status_code, stream.headers.get("x-middleware"), stream.content]


_UVICORN_EXPECTED = [200, "hello", "seen", 200, "seen",
                     b"".join(b"%04d\n" % number for number in range(1000))]


@pytest.mark.parametrize("conditions", [DEFAULT, SLOW], ids=["default", "slow"])
def test_uvicorn_serves_starlette_middleware_and_a_1000_chunk_stream_to_httpx(
    conditions: dict[str, Any],
) -> None:
    app = _starlette_app()
    result, _ = run_twice(conditions, lambda net: _uvicorn_fetch(app, 8000))
    assert result == _UVICORN_EXPECTED


@pytest.mark.sockfake(network="both")
def test_uvicorn_and_starlette_on_both_networks(sockfake_network: Any) -> None:
    assert _uvicorn_fetch(_starlette_app(), 0) == _UVICORN_EXPECTED


@pytest.mark.sockfake(network="both")
def test_uvicorn_and_starlette_answer_requests_httpx_and_urllib3(
    sockfake_network: Any, client: Any
) -> None:
    with _uvicorn_serving(_starlette_app(), 0) as port:
        url = f"http://127.0.0.1:{port}/"
        assert client.get(url, timeout=10) == (200, "hello")
        assert client.lines(url + "stream", timeout=10) == [
            f"{number:04d}" for number in range(1000)
        ]


def test_uvicorn_through_a_partition_times_out_then_heals() -> None:
    uvicorn = pytest.importorskip("uvicorn", reason="uvicorn is not installed")
    httpx = pytest.importorskip("httpx", reason="httpx is not installed")
    app = _starlette_app()

    def body(net: SimNetwork) -> tuple[str, float, str]:
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=8000,
                                               log_level="warning", lifespan="off"))
        serving = threading.Thread(target=server.run, name="uvicorn")
        serving.start()
        for _ in range(1000):  # until it listens: bounded, 10 virtual seconds at most
            if server.started or not serving.is_alive():
                break
            time.sleep(0.01)
        assert server.started
        try:
            with httpx.Client(base_url="http://127.0.0.1:8000", timeout=10) as client:
                before = client.get("/").text
                net.partition("local", "local")  # loopback TCP cut, the loop's wake-ups not
                started = net.time()
                with pytest.raises(httpx.TimeoutException):
                    client.get("/", timeout=2)
                waited = net.time() - started
                net.heal()
                after = client.get("/").text
        finally:
            server.should_exit = True
            serving.join()
        return before, waited, after

    (before, waited, after), _ = run_twice(DEFAULT, body)
    assert (before, after) == ("hello", "hello")
    assert 2.0 - 1e-9 <= waited < 2.5  # the client's own timeout, on the virtual clock

"""aiohttp, unmodified, on the simulation: ``web.run_app``'s signal handling, and
``AppRunner`` + ``TCPSite`` serving a ``ClientSession`` on both networks, under latency
and through a partition, with the same digest for the same seed."""

from __future__ import annotations

import os
import signal
import threading
import time
import urllib.request
from typing import Any

import pytest

from sockfake.sim import SimNetwork

web = pytest.importorskip("aiohttp.web", reason="aiohttp is not installed (the test extra)")


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="POSIX signals")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_run_app_serves_then_exits_on_a_signal(inet: SimNetwork, signum: int) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("run_app handles signals on the main thread only")

    async def hello(request: Any) -> Any:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/", hello)
    bodies: list[bytes] = []
    signalled_at: list[float] = []

    def client() -> None:
        for _ in range(100):  # until the server listens: bounded, in virtual time
            try:
                with urllib.request.urlopen("http://127.0.0.1:8080/", timeout=5) as reply:
                    bodies.append(reply.read())
                break
            except OSError:
                time.sleep(0.1)
        signalled_at.append(time.monotonic())
        os.kill(os.getpid(), signum)

    thread = threading.Thread(target=client)
    thread.start()
    web.run_app(app, host="127.0.0.1", port=8080, handle_signals=True, print=None)
    returned_at = time.monotonic()
    thread.join()
    assert bodies == [b"hello"]
    assert len(signalled_at) == 1
    assert returned_at - signalled_at[0] < 5  # shut down on the signal, not a timeout
    assert signal.getsignal(signum) in (signal.SIG_DFL, signal.default_int_handler)


# -- AppRunner + TCPSite with ClientSession -----------------------------------------------

client_module = pytest.importorskip("aiohttp", reason="aiohttp is not installed (the test extra)")


def _app() -> Any:
    async def hello(request: Any) -> Any:
        return web.Response(text=f"hello {request.match_info['name']}")

    async def echo(request: Any) -> Any:
        body = await request.json()
        return web.json_response({"received": body, "keys": sorted(body)})

    app = web.Application()
    app.router.add_get("/hello/{name}", hello)
    app.router.add_post("/json", echo)
    return app


async def _serve_and_ask() -> list[Any]:
    runner = web.AppRunner(_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with client_module.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/hello/world") as reply:
                first = (reply.status, await reply.text())
            async with session.post(f"http://127.0.0.1:{port}/json",
                                    json={"b": [1, 2], "a": "x"}) as reply:
                second = (reply.status, await reply.json())
        return [first, second]
    finally:
        await runner.cleanup()


EXPECTED = [(200, "hello world"),
            (200, {"received": {"b": [1, 2], "a": "x"}, "keys": ["a", "b"]})]


@pytest.mark.sockfake(network="both")
def test_app_runner_and_tcp_site_serve_a_client_session(sockfake_network: Any) -> None:
    import asyncio

    assert asyncio.run(_serve_and_ask()) == EXPECTED


@pytest.mark.sockfake(latency=0.05)
def test_app_runner_under_latency(sockfake_network: Any) -> None:
    import asyncio

    assert asyncio.run(_serve_and_ask()) == EXPECTED
    assert sockfake_network.time() >= 2 * 0.1  # two requests, a round trip each at least


# A seed of its own: with a few packets to take, some seeds would lose none.
@pytest.mark.sockfake(seed=1, latency=0.005, loss=0.3)
def test_app_runner_under_loss(sockfake_network: Any) -> None:
    import asyncio

    assert asyncio.run(_serve_and_ask()) == EXPECTED  # TCP retransmitted what was lost
    assert any(event.kind == "loss" for event in sockfake_network.trace.events)


def test_the_same_seed_gives_the_same_digest() -> None:
    import asyncio

    from sockfake.testing import open_testbed

    def digest(seed: int) -> str:
        with open_testbed(seed=seed, latency=0.01, jitter=0.005) as bed:
            assert asyncio.run(_serve_and_ask()) == EXPECTED
        return str(bed.network.digest())

    first = digest(3)
    assert digest(3) == first
    assert digest(4) != first


def test_a_partition_times_out_a_client_session_then_heals(sockfake_network: Any) -> None:
    import asyncio

    net = sockfake_network

    async def main() -> tuple[tuple[int, str], float, tuple[int, str]]:
        runner = web.AppRunner(_app())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/hello/"
        try:
            async with client_module.ClientSession() as session:
                async with session.get(url + "before") as reply:
                    before = (reply.status, await reply.text())
                net.partition("local", "local")  # loopback TCP cut, the loop's wake-ups not
                started = net.time()
                with pytest.raises(asyncio.TimeoutError):
                    async with session.get(url + "cut",
                                           timeout=client_module.ClientTimeout(total=2)):
                        pass
                waited = net.time() - started
                net.heal()
                async with session.get(url + "again") as reply:
                    after = (reply.status, await reply.text())
            return before, waited, after
        finally:
            await runner.cleanup()

    before, waited, after = asyncio.run(main())
    assert before == (200, "hello before")
    assert 2.0 - 1e-9 <= waited < 2.5  # the client's own timeout, on the virtual clock
    assert after == (200, "hello again")

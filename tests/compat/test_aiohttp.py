"""aiohttp, unmodified, on the simulation: ``web.run_app``'s signal handling."""

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

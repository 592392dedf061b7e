"""A handler that sleeps, waits on events, queues and a thread pool runs in virtual time."""

from __future__ import annotations

import http.client
import json
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler
from typing import Any

from helpers import HTTPServer, running

from sockfake.sim import SimNetwork


class SlowHandler(BaseHTTPRequestHandler):
    """A handler using everything that must wait in virtual time, not real time.

    ``time.sleep``, a thread's ``Event``, a ``Timer`` feeding a ``queue.Queue``, a
    ``ThreadPoolExecutor`` and a ``Lock``: each once stalled the simulation or took
    zero virtual time.
    """

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        start = time.monotonic()
        time.sleep(30)
        ready = threading.Event()
        threading.Thread(target=lambda: (time.sleep(2), ready.set())).start()  # type: ignore[func-returns-value]
        assert ready.wait(10)
        work: queue.Queue[int] = queue.Queue()
        threading.Timer(1.0, work.put, args=(7,)).start()
        item = work.get(timeout=5)
        with ThreadPoolExecutor(max_workers=3) as pool:
            squares = list(pool.map(lambda n: (time.sleep(n), n * n)[1], range(4)))  # type: ignore[func-returns-value]
        lock = threading.Lock()
        with lock:
            pass
        body = json.dumps(
            {"item": item, "squares": squares, "elapsed": time.monotonic() - start}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _run(seed: int) -> tuple[str, float, dict[str, Any]]:
    with SimNetwork(seed=seed, latency=0.01) as net, net.intercept():
        with running(HTTPServer(("127.0.0.1", 0), SlowHandler)) as server:
            conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=120)
            conn.request("GET", "/")
            payload = json.loads(conn.getresponse().read())
            conn.close()
        return net.digest(), net.time(), payload


def test_handler_sleep_event_queue_and_pool_run_in_virtual_time() -> None:
    started = time.perf_counter()
    digest, virtual, payload = _run(seed=5)
    real = time.perf_counter() - started
    assert payload["item"] == 7
    assert payload["squares"] == [0, 1, 4, 9]
    # 30 s sleep + 2 s event + 1 s timer + 3 s longest pool task.
    assert payload["elapsed"] == 36.0
    assert virtual >= 36.0
    assert real < 1.0, f"took {real:.2f} s of real time"


def test_same_seed_same_digest() -> None:
    first, second = _run(seed=9), _run(seed=9)
    assert first[0] == second[0]
    assert first[1] == second[1]


def test_time_functions_are_virtual_only_in_simulated_threads(inet: SimNetwork) -> None:
    from sockfake.sim.intercept.install import EPOCH, MONOTONIC_BASE

    assert time.monotonic() == MONOTONIC_BASE
    time.sleep(1.5)
    assert inet.time() == 1.5
    assert time.time() == EPOCH + 1.5
    assert time.perf_counter() == MONOTONIC_BASE + 1.5
    assert time.monotonic_ns() == round((MONOTONIC_BASE + 1.5) * 1e9)
    assert time.time_ns() == round((EPOCH + 1.5) * 1e9)
    seen: dict[str, float] = {}

    def outside() -> None:
        seen["time"] = time.time()

    # Started with the real Thread.start: a thread outside the simulation.
    from sockfake.sim.intercept.install import _real  # type: ignore[attr-defined]
    from sockfake.sim.kernel.thread_hooks import _original_start

    thread = threading.Thread(target=outside)
    _original_start(thread)
    thread.join()  # a real thread: a real (short) join
    assert abs(seen["time"] - _real["time"]()) < 60  # the real wall clock, not the epoch


def test_negative_sleep_is_a_value_error(inet: SimNetwork) -> None:
    import pytest

    with pytest.raises(ValueError):
        time.sleep(-1)
    with pytest.raises(TypeError):
        time.sleep("1")  # type: ignore[arg-type]


def test_same_digest_in_another_process_with_another_hash_seed() -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parent
    code = (
        f"import sys; sys.path[:0] = [{str(here)!r}, {str(here.parent)!r}]\n"
        "from test_virtual_time import _run\n"
        "print(_run(seed=9)[0])\n"
    )
    digests = set()
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        env["PYTHONPATH"] = os.pathsep.join([str(here.parents[1]), env.get("PYTHONPATH", "")])
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        digests.add(proc.stdout.strip().splitlines()[-1])
    assert digests == {_run(seed=9)[0]}

"""The greenlet backend: the same runs as OS threads, with identity following the greenlet."""

from __future__ import annotations

import _thread
import asyncio
import contextlib
import contextvars
import http.server
import importlib
import os
import signal
import sys
import threading
import urllib.request
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import EchoHandler, open_fds, serve_in_thread, stop_serving

import sockfake
from sockfake.errors import SockfakeRuntimeError, SockfakeValueError, SockfakeWarning
from sockfake.settings import parse_options
from sockfake.sim import SimNetwork
from sockfake.sim.scenarios import Slowloris

pytest.importorskip("greenlet")

BACKENDS = ("threads", "greenlet")


def _echo_server(net: SimNetwork) -> tuple[Any, threading.Thread]:
    server = sockfake.ThreadingTCPServer(("127.0.0.1", 0), EchoHandler, network=net)
    return server, serve_in_thread(server)


def _echo_clients_with_loss(net: SimNetwork) -> None:
    server, thread = _echo_server(net)
    lock = net.lock()
    answers: list[bytes] = []

    def client(number: int) -> None:
        with net.create_connection(server.server_address) as conn:
            for round_ in range(3):
                conn.sendall(b"%d/%d" % (number, round_))
                data = conn.recv(100)
                with lock:
                    answers.append(data)

    clients = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for each in clients:
        each.start()
    for each in clients:
        each.join()
    stop_serving(server, thread)
    assert len(answers) == 24


def _slowloris(net: SimNetwork) -> None:
    server, thread = _echo_server(net)
    attack = Slowloris(net, server.server_address, connections=5, interval=1.0,
                       duration=5.0).start()
    attack.wait()
    assert attack.opened == 5
    stop_serving(server, thread)


def _stdlib_http(net: SimNetwork) -> None:
    # Code we did not write: http.server and urllib, intercepted.
    with net.intercept():
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                 http.server.SimpleHTTPRequestHandler)
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        port = server.server_address[1]
        for _ in range(3):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as reply:
                assert reply.status == 200
        server.shutdown()
        server.server_close()
        thread.join()


def _threading_race(net: SimNetwork) -> None:
    # Intercepted threading primitives under an exploring schedule.
    with net.intercept():
        counter = [0]
        guard = threading.Lock()
        done = threading.Event()
        ready = threading.Semaphore(0)

        def bump() -> None:
            for _ in range(20):
                with guard:
                    value = counter[0]
                    counter[0] = value + 1
            ready.release()

        workers = [threading.Thread(target=bump) for _ in range(4)]
        for each in workers:
            each.start()
        for _ in workers:
            ready.acquire()
        done.set()
        for each in workers:
            each.join()
        assert counter[0] == 80


SCENARIOS: dict[str, tuple[Callable[[SimNetwork], None], dict[str, Any]]] = {
    "echo, loss, random schedule": (_echo_clients_with_loss,
                                    {"loss": 0.2, "latency": 0.01, "scheduling": "random"}),
    "slowloris": (_slowloris, {"latency": 0.001}),
    "stdlib http.server and urllib": (_stdlib_http, {}),
    "intercepted threading, pct": (_threading_race, {"scheduling": "pct"}),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("seed", [1, 2])
def test_a_seed_gives_the_same_trace_digest_on_either_backend(scenario: str, seed: int) -> None:
    body, options = SCENARIOS[scenario]
    digests = {}
    for backend in BACKENDS:
        with SimNetwork(seed=seed, backend=backend, **options) as net:
            body(net)
            digests[backend] = (net.digest(), len(net.trace), net.schedule)
    assert digests["greenlet"] == digests["threads"]


def _in_simulated_threads(backend: str, count: int, body: Callable[[int], Any], *,
                          intercept: bool = False) -> list[Any]:
    results: list[Any] = [None] * count
    with SimNetwork(seed=1, backend=backend) as net, \
            net.intercept() if intercept else contextlib.nullcontext():
        def run(index: int) -> None:
            net.sleep(0.1)  # every thread interleaves with the others
            results[index] = body(index)

        threads = [threading.Thread(target=run, args=(i,), name=f"t{i}") for i in range(count)]
        for each in threads:
            each.start()
        for each in threads:
            each.join()
    return results


@pytest.mark.parametrize("backend", BACKENDS)
def test_get_ident_and_current_thread_follow_the_simulated_thread(backend: str) -> None:
    seen = _in_simulated_threads(backend, 3, lambda i: (
        threading.get_ident(), _thread.get_ident(), threading.current_thread()))
    idents = [ident for ident, _, _ in seen]
    assert len(set(idents)) == 3
    for index, (ident, raw_ident, thread) in enumerate(seen):
        assert raw_ident == ident == thread.ident
        assert thread.name == f"t{index}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_threading_local_is_per_simulated_thread(backend: str) -> None:
    with SimNetwork(seed=1, backend=backend) as net:
        local = threading.local()
        local.value = "main"
        seen: list[Any] = []

        def run(value: str) -> None:
            assert not hasattr(local, "value")
            local.value = value
            net.sleep(0.1)  # the other thread sets its own meanwhile
            seen.append(local.value)

        threads = [threading.Thread(target=run, args=(v,)) for v in ("a", "b")]
        for each in threads:
            each.start()
        for each in threads:
            each.join()
        assert sorted(seen) == ["a", "b"]
        assert local.value == "main"


_var: contextvars.ContextVar[str] = contextvars.ContextVar("_var")


@pytest.mark.parametrize("backend", BACKENDS)
def test_contextvars_are_per_simulated_thread(backend: str) -> None:
    _var.set("main")
    with SimNetwork(seed=1, backend=backend) as net:
        seen: list[tuple[str, str]] = []

        def run(index: int) -> None:
            before = _var.get("unset")  # a new thread starts with an empty context
            _var.set(f"t{index}")
            net.sleep(0.1)
            seen.append((before, _var.get()))

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for each in threads:
            each.start()
        for each in threads:
            each.join()
        assert sorted(seen) == [("unset", "t0"), ("unset", "t1")]
        assert _var.get() == "main"


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_simulated_thread_runs_its_own_asyncio_loop(backend: str) -> None:
    # CPython keeps the running loop per OS thread: on greenlets, without the backend
    # keeping it per simulated thread, the second asyncio.run() would find the first
    # thread's loop running ("Cannot run the event loop while another loop is running").
    async def nap(seconds: float) -> tuple[bool, float]:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(seconds)
        return asyncio.get_running_loop() is loop, net.time()

    with SimNetwork(seed=1, backend=backend) as net, net.intercept():
        seen: list[tuple[bool, float]] = []
        threads = [threading.Thread(target=lambda s=s: seen.append(asyncio.run(nap(s))))
                   for s in (2.0, 1.0)]
        for each in threads:
            each.start()
        for each in threads:
            each.join()
        assert asyncio._get_running_loop() is None
    assert seen == [(True, 1.0), (True, 2.0)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_get_ident_bound_at_import_follows_the_simulated_thread(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # anyio's from_thread does this, and compares idents to find its loop's thread.
    name = f"bound_ident_{backend}"  # a module is read once per name
    (tmp_path / f"{name}.py").write_text("from threading import get_ident\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module(name)
    try:
        seen = _in_simulated_threads(backend, 2, lambda i: (
            module.get_ident(), threading.current_thread().ident), intercept=True)
    finally:
        sys.modules.pop(name, None)
    assert len({bound for bound, _ in seen}) == 2
    assert all(bound == ident for bound, ident in seen)


@pytest.mark.parametrize("backend", BACKENDS)
def test_signal_setup_outside_the_main_thread_is_refused_as_cpython_does(
    backend: str,
) -> None:
    # CPython checks the OS thread; on greenlets every simulated thread is the main one.
    errors: list[str] = []

    def other() -> None:
        try:
            signal.signal(signal.SIGUSR1, signal.SIG_DFL)
        except ValueError as err:
            errors.append(str(err))
        try:
            signal.set_wakeup_fd(-1)
        except ValueError as err:
            errors.append(str(err))

    with SimNetwork(seed=1, backend=backend) as net, net.intercept():
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert len(errors) == 2
    assert all("main thread" in error for error in errors)


@pytest.mark.parametrize("backend", BACKENDS)
def test_thread_count_counts_a_simulated_thread(backend: str) -> None:
    with SimNetwork(seed=1, backend=backend):
        before = _thread._count()
        seen: list[int] = []
        thread = threading.Thread(
            target=lambda: seen.append(_thread._count()))
        thread.start()
        thread.join()
        after = _thread._count()
    assert seen == [before + 1]
    if backend == "greenlet":  # an OS thread's count drops a moment after join()
        assert after == before


def _os_threads() -> set[str]:
    return set(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/fd")
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_greenlet_thread_takes_no_os_thread_and_no_descriptor(backend: str) -> None:
    with SimNetwork(seed=1, backend=backend) as net:
        # The OS's threads (_thread._count() counts a greenlet thread as a thread): the
        # ones started meanwhile, so that a thread of an earlier test ending does not count.
        os_threads, descriptors = _os_threads(), open_fds()
        gate = net.event()
        threads = [threading.Thread(target=gate.wait) for _ in range(50)]
        for each in threads:
            each.start()
        net.sleep(0.1)  # all of them waiting
        extra_threads = len(_os_threads() - os_threads)
        extra_descriptors = open_fds() - descriptors
        gate.set()
        for each in threads:
            each.join()
        assert not any(each.is_alive() for each in threads)
    if backend == "greenlet":
        assert (extra_threads, extra_descriptors) == (0, 0)
    else:  # what the greenlet backend saves
        assert extra_threads >= 50 and extra_descriptors >= 50


def test_an_error_in_a_greenlet_thread_goes_to_threading_excepthook(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[type[BaseException] | None, str]] = []

    def hook(args: Any) -> None:
        seen.append((args.exc_type, args.thread.name if args.thread else ""))

    monkeypatch.setattr(threading, "excepthook", hook)
    with SimNetwork(seed=1, backend="greenlet") as net:
        def fail() -> None:
            net.sleep(0.1)
            raise KeyError("boom")

        thread = threading.Thread(target=fail, name="failing")
        thread.start()
        thread.join()
        assert not thread.is_alive()
    assert seen == [(KeyError, "failing")]


def test_identity_patches_are_undone_when_the_last_greenlet_network_closes() -> None:
    from sockfake.sim.kernel.greenlets import greenlet_ident

    if threading.get_ident is greenlet_ident:
        pytest.skip("a greenlet network another test left open keeps the patches")
    real = (threading.get_ident, _thread.get_ident, threading.local)
    first = SimNetwork(seed=1, backend="greenlet")
    second = SimNetwork(seed=2, backend="greenlet")
    assert threading.get_ident is not real[0]
    first.close()
    assert threading.get_ident is not real[0]  # the second is still open
    second.close()
    assert (threading.get_ident, _thread.get_ident, threading.local) == real


def test_an_unknown_backend_is_refused_by_name() -> None:
    with pytest.raises(SockfakeValueError, match="backend must be one of threads, greenlet"):
        SimNetwork(seed=1, backend="fibers")
    with pytest.raises(SockfakeValueError, match="backend"):
        parse_options({"backend": "fibers"})
    assert parse_options({"backend": "greenlet"}).backend == "greenlet"


def test_the_greenlet_backend_without_greenlet_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "greenlet", None)  # import greenlet fails
    with pytest.raises(SockfakeRuntimeError, match=r"pip install 'sockfake\[greenlet\]'"):
        SimNetwork(seed=1, backend="greenlet")
    with pytest.raises(SockfakeRuntimeError, match="greenlet package"):
        parse_options({"backend": "greenlet"})


def test_line_switch_points_are_refused_on_greenlets_and_a_swarm_draws_calls() -> None:
    for switch_points in ("lines", "opcodes"):
        with pytest.raises(SockfakeValueError, match="needs backend='threads'"):
            SimNetwork(seed=1, backend="greenlet", scheduling="random",
                       switch_points=switch_points)
    drawn = set()
    for seed in range(12):
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            net = SimNetwork(seed=seed, backend="greenlet", scheduling="swarm")
        with net:
            assert net.kernel.swarm is not None
            drawn.add(net.kernel.swarm.switch_points)
            assert net.kernel.switch_points == "calls"
            # A draw run as calls is said (races on plain objects go unexplored).
            downgraded = net.kernel.swarm.switch_points != "calls"
            assert [w.category for w in said] == ([SockfakeWarning] if downgraded else [])
            if downgraded:
                assert "use backend='threads'" in str(said[0].message)
    assert drawn - {"calls"}  # the draws that would have been lines or opcodes

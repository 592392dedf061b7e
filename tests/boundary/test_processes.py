"""Process creation at every level is refused in a simulated thread, by name; no child
is made, so nothing reaches the real listener and no child outlives the test."""

from __future__ import annotations

import _posixsubprocess
import multiprocessing
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import pytest
from boundary_listener import RealListener

from sockfake.sim import SimNetwork


def _client_code(listener: RealListener) -> str:
    return f"import socket; socket.create_connection({listener.address!r}).sendall(b'x')"


def _child_main(address: tuple[str, int]) -> None:  # a multiprocessing target
    import socket

    socket.create_connection(address).sendall(b"x")


def _argv(listener: RealListener) -> list[str]:
    return [sys.executable, "-c", _client_code(listener)]


def _fork_exec(listener: RealListener) -> None:
    # What subprocess and multiprocessing's spawn call; its signature varies by version,
    # and the refusal comes before the arguments are looked at.
    _posixsubprocess.fork_exec(_argv(listener))  # type: ignore[call-arg]


def _start_method(method: str) -> Callable[[RealListener], object]:
    def start(listener: RealListener) -> None:
        context = multiprocessing.get_context(method)
        context.Process(target=_child_main, args=(listener.address,)).start()  # type: ignore[attr-defined]

    return start


def _pool(method: str | None) -> Callable[[RealListener], object]:
    def pool(listener: RealListener) -> None:
        context = multiprocessing.get_context(method) if method else None
        with ProcessPoolExecutor(1, mp_context=context) as executor:
            executor.submit(_child_main, listener.address).result()

    return pool


WAYS: dict[str, tuple[str, Callable[[RealListener], object]]] = {
    "os.fork": (r"os.fork\(\)", lambda _: os.fork()),
    "os.forkpty": (r"os.forkpty\(\)", lambda _: os.forkpty()),
    "os.system": (r"os.system\(\)", lambda lst: os.system(" ".join(_argv(lst)))),
    "os.posix_spawn": (
        r"os.posix_spawn\(\)",
        lambda lst: os.posix_spawn(sys.executable, _argv(lst), dict(os.environ)),
    ),
    "os.posix_spawnp": (
        r"os.posix_spawnp\(\)",
        lambda lst: os.posix_spawnp("python3", _argv(lst), dict(os.environ)),
    ),
    "os.execv": (r"os.execv\(\)", lambda lst: os.execv(sys.executable, _argv(lst))),
    "os.execve": (
        r"os.execve\(\)",
        lambda lst: os.execve(sys.executable, _argv(lst), dict(os.environ)),
    ),
    "os.execl": (r"os.execv\(\)", lambda lst: os.execl(sys.executable, *_argv(lst))),
    "os.execlp": (r"os.exec", lambda lst: os.execlp("python3", *_argv(lst))),
    "os.execvp": (r"os.exec", lambda lst: os.execvp("python3", _argv(lst))),
    "os.spawnv": (
        r"os.fork\(\)",
        lambda lst: os.spawnv(os.P_WAIT, sys.executable, _argv(lst)),
    ),
    "subprocess.run": (r"subprocess.Popen\(\)", lambda lst: subprocess.run(_argv(lst))),
    "subprocess.check_output": (
        r"subprocess.Popen\(\)",
        lambda lst: subprocess.check_output(_argv(lst)),
    ),
    "_posixsubprocess.fork_exec": (r"_posixsubprocess.fork_exec\(\)", _fork_exec),
    "multiprocessing spawn": (r"multiprocessing.Process.start\(\)", _start_method("spawn")),
    "multiprocessing forkserver": (
        r"multiprocessing.Process.start\(\)",
        _start_method("forkserver"),
    ),
    "multiprocessing fork": (r"multiprocessing.Process.start\(\)", _start_method("fork")),
    "ProcessPoolExecutor": (r"ProcessPoolExecutor\(\)", _pool(None)),
    "ProcessPoolExecutor spawn": (r"ProcessPoolExecutor\(\)", _pool("spawn")),
    "ProcessPoolExecutor forkserver": (r"ProcessPoolExecutor\(\)", _pool("forkserver")),
}


@pytest.mark.parametrize("way", sorted(WAYS))
def test_a_process_is_refused_in_a_simulated_thread(way: str, quiet_listener: RealListener) -> None:
    pattern, make = WAYS[way]
    with SimNetwork(seed=1) as net, net.intercept():
        with pytest.raises(NotImplementedError, match=pattern) as refused:
            make(quiet_listener)
    assert "processes are not simulated" in str(refused.value)


# References taken before the interception (`from os import fork`) miss the patches; the
# audit hook refuses them in the C function.
_fork, _execv, _posix_spawn, _system = os.fork, os.execv, os.posix_spawn, os.system
_popen_init = subprocess.Popen.__init__

CAPTURED: dict[str, tuple[str, Callable[[RealListener], object]]] = {
    "fork": (r"os.fork\(\)", lambda _: _fork()),
    "execv": (r"os.exec\*\(\)", lambda lst: _execv(sys.executable, _argv(lst))),
    "posix_spawn": (
        r"os.posix_spawn\(\)",
        lambda lst: _posix_spawn(sys.executable, _argv(lst), {}),
    ),
    "system": (r"os.system\(\)", lambda lst: _system(" ".join(_argv(lst)))),
    "Popen.__init__": (
        r"subprocess.Popen\(\)",
        lambda lst: _popen_init(subprocess.Popen.__new__(subprocess.Popen), _argv(lst)),
    ),
}


@pytest.mark.parametrize("name", sorted(CAPTURED))
def test_a_reference_taken_before_the_interception_is_refused_by_the_audit_hook(
    name: str, quiet_listener: RealListener
) -> None:
    pattern, make = CAPTURED[name]
    with SimNetwork(seed=1) as net, net.intercept():
        with pytest.raises(NotImplementedError, match=pattern) as refused:
            make(quiet_listener)
    assert "reference taken before the interception" in str(refused.value)


def test_processes_outside_a_simulated_thread_still_run(real_listener: RealListener) -> None:
    # The refusals depend on the calling thread: the same calls work outside, and the
    # child reaches the real listener (so the listener does see what escapes).
    subprocess.run(_argv(real_listener), check=True, timeout=60)
    real_listener.finish()
    assert (real_listener.accepted, real_listener.received) == (1, 1)

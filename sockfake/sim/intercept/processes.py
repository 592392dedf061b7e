"""Processes under interception: refused in a simulated thread, at every level.

A child process would escape the simulation and its clock (and reach the real
network), so in a simulated thread these raise ``NotImplementedError`` naming the call:
``os.fork``, ``os.forkpty``, ``os.system``, ``os.posix_spawn(p)``, ``os.execv(e)`` (and
so every ``os.exec*`` and ``os.spawn*``), ``subprocess.Popen``,
``_posixsubprocess.fork_exec`` (what ``subprocess`` and multiprocessing's ``spawn`` and
``forkserver`` start methods call), ``multiprocessing``'s ``Process.start()`` with any
start method, and ``concurrent.futures.ProcessPoolExecutor()``. Other threads get the
real calls. The audit hook (``sockfake.sim.intercept.audit``) refuses the same calls
made through a reference taken before the interception.
"""

from __future__ import annotations

import threading
from typing import Any

from sockfake.sim.intercept.dispatch import REAL as _real, caller_network

__all__ = [
    "REFUSED_OS_CALLS",
    "popen_init",
    "refusal",
    "refuse_in_simulation",
    "refusing",
]

# The os functions refused in a simulated thread (those this platform has). The other
# exec* and spawn* functions are Python code in os that calls these by name.
REFUSED_OS_CALLS = (
    "fork", "forkpty", "system", "posix_spawn", "posix_spawnp", "execv", "execve",
)  # fmt: skip


def refusal(what: str, instead: str = "") -> NotImplementedError:
    """The error for a process made in a simulated thread."""
    return NotImplementedError(
        f"{what} in simulated thread {threading.current_thread().name!r}: processes are "
        "not simulated (a child process would escape the simulation and its clock, and "
        "reach the real network); run it outside the simulation, or use threads "
        f"({instead or 'ThreadingMixIn'}) in simulated tests"
    )


def refusing(what: str, original: Any, instead: str = "") -> Any:
    """``original`` (a function or method), refused in a simulated thread as ``what``."""

    def refused(*args: Any, **kwargs: Any) -> Any:
        if caller_network() is not None:
            raise refusal(what, instead)
        return original(*args, **kwargs)

    refused.__name__ = getattr(original, "__name__", "refused")
    refused.__qualname__ = getattr(original, "__qualname__", refused.__name__)
    refused.__doc__ = original.__doc__
    return refused


def refuse_in_simulation(name: str, original: Any) -> Any:
    """``os.<name>``, refused in a simulated thread."""
    return refusing(f"os.{name}()", original)


def popen_init(self: Any, *args: Any, **kwargs: Any) -> None:
    if caller_network() is not None:
        raise refusal("subprocess.Popen()")
    _real["Popen.__init__"](self, *args, **kwargs)


def process_patches() -> list[tuple[Any, str, Any]]:
    """(object, attribute, replacement) for the process makers above ``os``: the install
    table applies them (and puts them back)."""
    import _posixsubprocess
    import multiprocessing.process
    from concurrent.futures import process as futures_process

    patches: list[tuple[Any, str, Any]] = []
    fork_exec = getattr(_posixsubprocess, "fork_exec", None)
    if fork_exec is not None:
        patches.append(
            (
                _posixsubprocess,
                "fork_exec",
                refusing(
                    "_posixsubprocess.fork_exec() (subprocess, or multiprocessing's spawn or "
                    "forkserver start method)",
                    fork_exec,
                ),
            )
        )
    start = multiprocessing.process.BaseProcess.start
    patches.append(
        (
            multiprocessing.process.BaseProcess,
            "start",
            refusing(
                "multiprocessing.Process.start() (any start method: fork, spawn, forkserver)",
                start,
                "threading.Thread, or multiprocessing.dummy",
            ),
        )
    )
    pool_init = futures_process.ProcessPoolExecutor.__init__
    patches.append(
        (
            futures_process.ProcessPoolExecutor,
            "__init__",
            refusing(
                "concurrent.futures.ProcessPoolExecutor() (its worker processes)",
                pool_init,
                "ThreadPoolExecutor",
            ),
        )
    )
    return patches

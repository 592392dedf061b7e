"""Processes under interception: refused in a simulated thread.

``os.fork``, ``os.forkpty``, ``os.system``, ``os.posix_spawn(p)``,
``subprocess.Popen`` and ``_posixsubprocess.fork_exec`` (what ``multiprocessing``'s
spawn and forkserver start methods call: a ``ProcessPoolExecutor``) raise
``NotImplementedError`` in a simulated thread: a child process would escape the
simulation and its clock. Other threads get the real calls.
"""

from __future__ import annotations

import threading
from typing import Any

from sockfake.sim.intercept.dispatch import REAL as _real, caller_network

__all__ = ["REFUSED_OS_CALLS", "popen_init", "refuse_fork_exec", "refuse_in_simulation"]

# The os functions refused in a simulated thread (those this platform has).
REFUSED_OS_CALLS = ("fork", "forkpty", "system", "posix_spawn", "posix_spawnp")


def _refusal(what: str) -> NotImplementedError:
    return NotImplementedError(
        f"{what} in simulated thread {threading.current_thread().name!r}: processes are "
        "not simulated (a child process would escape the simulation and its clock); run "
        "it outside the simulation, or use threads (ThreadingMixIn) in simulated tests"
    )


def refuse_in_simulation(name: str, original: Any) -> Any:
    """``os.<name>``, refused in a simulated thread."""

    def refusing(*args: Any, **kwargs: Any) -> Any:
        if caller_network() is not None:
            raise _refusal(f"os.{name}()")
        return original(*args, **kwargs)

    refusing.__name__ = refusing.__qualname__ = name
    refusing.__doc__ = original.__doc__
    return refusing


def popen_init(self: Any, *args: Any, **kwargs: Any) -> None:
    if caller_network() is not None:
        raise _refusal("subprocess.Popen()")
    _real["Popen.__init__"](self, *args, **kwargs)


def refuse_fork_exec(original: Any) -> Any:
    """``_posixsubprocess.fork_exec``, refused in a simulated thread (``multiprocessing``
    starts its spawned and forkserver processes with it, not through ``Popen``)."""

    def fork_exec(*args: Any, **kwargs: Any) -> Any:
        if caller_network() is not None:
            raise _refusal("_posixsubprocess.fork_exec() (multiprocessing's spawn or "
                           "forkserver start method, a ProcessPoolExecutor)")
        return original(*args, **kwargs)

    fork_exec.__name__ = fork_exec.__qualname__ = "fork_exec"
    fork_exec.__doc__ = original.__doc__
    return fork_exec

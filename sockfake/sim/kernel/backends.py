"""What a simulated thread runs on: the seam between the kernel and its executors.

The kernel decides who runs; a backend makes that thread run. It gives each
simulated thread a turn (``TurnHandle``: ``release()`` hands it over, ``acquire()``
waits for it) and starts a new simulated thread's life (``start``). Two backends make
the same decisions, so a seed gives the same trace and digest on either:

- ``threads`` (the default): each simulated thread is an OS thread, parked on its own
  turn (``sockfake.sim.kernel.turn``).
- ``greenlet`` (optional, ``pip install 'sockfake[greenlet]'``): each simulated
  thread is a greenlet on the OS thread that made the network; handing the turn is a
  greenlet switch (``sockfake.sim.kernel.greenlets``). No OS thread and no descriptor
  per simulated thread, so a simulation holds as many as memory allows.
"""

from __future__ import annotations

import _thread
import threading
from typing import Literal, Protocol, get_args

from sockfake.errors import SockfakeRuntimeError, SockfakeValueError
from sockfake.sim.kernel.turn import Turn

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendName",
    "OsThreads",
    "TurnHandle",
    "check_backend",
    "current_get_ident",
    "make_backend",
    "set_default_backend",
    "thread_count",
]

BackendName = Literal["threads", "greenlet"]
BACKENDS: tuple[BackendName, ...] = get_args(BackendName)

# What ``SimNetwork()`` runs on when it names no backend: "threads", unless a session
# chose another for every network (the pytest plugin's --sockfake-backend).
_default: BackendName = "threads"

# The stdlib's own Thread.start, captured before thread_hooks replaces it.
_os_thread_start = threading.Thread.start
_os_thread_count = _thread._count
# The OS thread's ident, captured before the greenlet backend replaces get_ident.
os_get_ident = _thread.get_ident


def current_get_ident() -> int:
    """``_thread.get_ident()`` as it is now: the greenlet backend's while one of its
    networks is open (it answers the simulated thread), the OS's otherwise."""
    return int(_thread.get_ident())

# Simulated threads running as greenlets (started, not finished), in every network:
# threads that _thread._count() does not see (the greenlet backend keeps it).
greenlet_threads = 0


def thread_count() -> int:
    """``_thread._count()``: the OS threads, and the simulated threads on greenlets."""
    return int(_os_thread_count()) + greenlet_threads


class TurnHandle(Protocol):
    """The turn of one simulated thread."""

    def release(self) -> None:
        """Hand the turn to this thread (a no-op if it has it already)."""

    def acquire(self, timeout: float = -1) -> bool:
        """Wait for the turn (the caller is this thread); False: ``timeout`` passed first."""

    def close(self) -> None:
        """The thread is done: nobody hands it the turn again."""


class Backend(Protocol):
    """How simulated threads run."""

    name: BackendName
    # Do all simulated threads run on the OS thread that made the network? Then no
    # other OS thread can watch the turn's holder (the stall watchdog), and pinning
    # the simulation to one CPU has no handoff to speed up.
    one_os_thread: bool

    def new_turn(self) -> TurnHandle:
        """A turn for a new simulated thread (the first one made is the main thread's)."""

    def start(self, thread: threading.Thread) -> None:
        """Start ``thread``, already adopted by the kernel: its ``run()`` (the kernel's
        wrapper) waits for the turn first. Raises as ``Thread.start()`` would."""

    def close(self) -> None:
        """The network is closed: undo what the backend set up."""


class OsThreads:
    """Each simulated thread is an OS thread parked on a ``Turn``."""

    name: BackendName = "threads"
    one_os_thread = False

    def new_turn(self) -> TurnHandle:
        return Turn()

    def start(self, thread: threading.Thread) -> None:
        _os_thread_start(thread)

    def close(self) -> None:
        pass


def set_default_backend(name: BackendName) -> BackendName:
    """Make ``name`` the backend of networks that name none; returns the previous one."""
    global _default
    check_backend(name)
    previous, _default = _default, name
    return previous


def check_backend(name: object) -> BackendName:
    """``name`` if it is a backend that can run here; a clear error otherwise."""
    if name not in BACKENDS:
        raise SockfakeValueError(
            f"backend must be one of {', '.join(BACKENDS)}, not {name!r}")
    if name == "greenlet":
        try:
            import greenlet  # noqa: F401
        except ImportError:
            raise SockfakeRuntimeError(
                "backend='greenlet' needs the greenlet package: pip install 'sockfake[greenlet]'"
            ) from None
    return BACKENDS[BACKENDS.index(name)]


def make_backend(name: str | None) -> Backend:
    """The backend called ``name`` (one of ``BACKENDS``; None: the default), checked."""
    name = check_backend(_default if name is None else name)
    if name == "threads":
        return OsThreads()
    from sockfake.sim.kernel.greenlets import GreenletBackend

    return GreenletBackend()

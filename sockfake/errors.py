"""Every error sockfake raises for misuse, in one place.

Network failures stay the stdlib's own exceptions with the real errno
(``ConnectionResetError``, ``TimeoutError``...): code written for real sockets keeps
catching what it catches. This module is for mistakes in how sockfake is *used* (a
loss of 1.5, an unknown host, a simulated socket used from a foreign thread) and for
the simulation refusing to go on (deadlock, stall, time limit). Each concrete error
mixes in the stdlib type it refines, so ``except ValueError`` still works, and each
message names the argument or setting at fault.
"""

from __future__ import annotations

__all__ = [
    "SockfakeError",
    "SockfakeValueError",
    "SockfakeTypeError",
    "SockfakeRuntimeError",
    "SimulationError",
    "SimDeadlockError",
    "SimStallError",
    "SimTimeLimitError",
    "SimThreadKilled",
    "HostCrashed",
    "SockfakeWarning",
]


class SockfakeError(Exception):
    """Base class for misuse of sockfake (bad arguments, wrong thread, closed network)."""


class SockfakeValueError(SockfakeError, ValueError):
    """A value is out of range or malformed (a loss of 1.5, a negative latency)."""


class SockfakeTypeError(SockfakeError, TypeError):
    """An argument has the wrong type."""


class SockfakeRuntimeError(SockfakeError, RuntimeError):
    """An operation is not possible in the current state (closed network, wrong thread)."""


class SimulationError(SockfakeRuntimeError):
    """The simulation cannot go on: deadlock, stall, or virtual-time limit."""


class SimDeadlockError(SimulationError):
    """Every simulated thread waits and nothing is scheduled: nothing can ever happen."""


class SimStallError(SimulationError):
    """A simulated thread held the turn too long in real time: it blocks outside the simulation."""


class SimTimeLimitError(SimulationError):
    """The virtual clock passed the network's ``time_limit``."""


class SimThreadKilled(BaseException):
    """Raised inside a parked simulated thread when its network closes, so it unwinds.

    A ``BaseException`` so that handler code's ``except Exception`` does not swallow it.
    """


class HostCrashed(SimThreadKilled):
    """Raised in a simulated thread of a host that crashed (``SimNetwork.crash``), at its
    next simulated call, so it unwinds; the thread then ends quietly.

    A ``BaseException`` (a ``SimThreadKilled``) so that ``except Exception`` in the
    host's code does not swallow it: the process is gone, its code must not go on.
    """


class SockfakeWarning(UserWarning):
    """A setting sockfake could honour only in part (the run goes on, weaker than asked)."""

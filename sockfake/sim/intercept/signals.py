"""Signals under interception: a simulated thread's signal runs its handler in virtual time.

``signal.pthread_kill`` to one of the network's threads, ``os.kill`` of the process
itself and ``signal.raise_signal``, from a simulated thread and for a signal with a
Python handler, run the handler on the main thread at its next turn
(``Kernel.deliver_signal``); a blocking call it interrupts goes on, as PEP 475 says.
Anything else is the real call.
"""

from __future__ import annotations

import os
import signal

from sockfake.sim.intercept.dispatch import REAL as _real, _internal, caller_network

__all__ = ["kill", "pthread_kill", "raise_signal"]


def _deliver_simulated(signalnum: object, thread_id: int | None = None) -> bool:
    """Deliver a signal a simulated thread sends to its own process (``thread_id``
    None) or to one of its network's threads in virtual time (see
    ``Kernel.deliver_signal``), if it has a Python handler; False: the caller makes the
    real call."""
    net = caller_network()
    if net is None or _internal(2):
        return False
    if thread_id is not None and not net.kernel.is_simulated_ident(thread_id):
        return False
    if not isinstance(signalnum, int):  # signal.Signals is one
        return False  # the real call raises CPython's TypeError
    if not 0 < signalnum < signal.NSIG:
        return False  # 0 probes whether the target exists; out of range is an error
    handler = signal.getsignal(int(signalnum))
    return callable(handler) and net.kernel.deliver_signal(int(signalnum))


def pthread_kill(thread_id: int, signalnum: int) -> None:
    if not _deliver_simulated(signalnum, thread_id):
        _real["pthread_kill"](thread_id, signalnum)


def kill(pid: int, signalnum: int) -> None:
    if pid != os.getpid() or not _deliver_simulated(signalnum):
        _real["kill"](pid, signalnum)


def raise_signal(signalnum: int) -> None:
    if not _deliver_simulated(signalnum):
        _real["raise_signal"](signalnum)

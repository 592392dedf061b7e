"""``threading.Thread`` as the simulation's threads: start, join and is_alive hooks.

A thread started by a simulated thread joins that simulation before it runs, so the
documentation's ``threading.Thread(target=server.serve_forever).start()`` works
unchanged; ``join()`` and ``is_alive()`` on such a thread wait and answer in the
simulation. Every other thread is untouched: the hooks hand straight back to the
stdlib's own methods when the caller is not a simulated thread, or when the network's
interception has ended (its code is plain Python again until the next one).
"""

from __future__ import annotations

import threading

from sockfake.sim.kernel.core import current_kernel
from sockfake.sim.kernel.systematic import STARTS
from sockfake.sim.kernel.threads import SimThread

__all__ = ["install", "mark_simulated"]

_installed = False
_original_start = threading.Thread.start
_original_join = threading.Thread.join
_original_is_alive = threading.Thread.is_alive


# Set on a thread the network itself makes (SimNetwork.thread: sockfake's servers, a
# host's boot, the nemesis): it joins the simulation even after an interception ended.
_SIMULATED = "_sockfake_simulated"


def mark_simulated(thread: threading.Thread) -> threading.Thread:
    """``thread``, started by a simulated thread, joins the simulation whether or not
    an interception of it has ended (the network's own threads)."""
    setattr(thread, _SIMULATED, True)
    return thread


def _start(self: threading.Thread) -> None:
    kernel = current_kernel()
    if kernel is None or not kernel.is_simulated_caller() or (
            kernel.interception_ended and not getattr(self, _SIMULATED, False)):
        _original_start(self)
        return
    sim_thread = kernel.adopt(self)
    try:
        kernel.backend.start(self)
    except BaseException:
        # Not started ("can't start new thread"): it must not wait for a turn forever.
        kernel.forget(sim_thread)
        raise
    kernel.calls += 1  # starting an OS thread is the simulation's work, not a stall
    kernel.preemption_point("thread start", (STARTS, sim_thread.name))


def _join(self: threading.Thread, timeout: float | None = None) -> None:
    sim_thread: SimThread | None = getattr(self, "_sockfake_thread", None)
    if sim_thread is not None:
        kernel = sim_thread.kernel
        if kernel.backend.one_os_thread:
            # No OS thread to join: the simulated thread is all there is (after close,
            # it has finished or been left behind for good).
            if not kernel.closed and kernel.is_simulated_caller():
                kernel.join(sim_thread, timeout)
            return
        if not kernel.closed and kernel.is_simulated_caller():
            if not kernel.join(sim_thread, timeout):
                return
            _original_join(self)
            return
    _original_join(self, timeout)


def _is_alive(self: threading.Thread) -> bool:
    sim_thread: SimThread | None = getattr(self, "_sockfake_thread", None)
    if sim_thread is not None and (
            not sim_thread.kernel.closed or sim_thread.kernel.backend.one_os_thread):
        return sim_thread.state != "finished"
    return _original_is_alive(self)


def install() -> None:
    """Route Thread.start/join/is_alive through the kernel, for simulated threads only."""
    global _installed
    if _installed:
        return
    threading.Thread.start = _start  # type: ignore[method-assign]
    threading.Thread.join = _join  # type: ignore[method-assign]
    threading.Thread.is_alive = _is_alive  # type: ignore[method-assign]
    _installed = True

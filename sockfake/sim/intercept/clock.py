"""Time under interception: ``time.sleep`` and the clocks are virtual in simulated threads.

``time.sleep`` waits in virtual time. ``time.monotonic`` and ``perf_counter`` read
``MONOTONIC_BASE`` plus the virtual clock, ``time.time`` a fixed epoch (``EPOCH``)
plus the virtual clock (and their ``_ns`` variants the same in nanoseconds), so a
run's timestamps are the same every time. Every other thread keeps the real clock,
and so do the simulation's own calls and test machinery's (pytest, Hypothesis) in a
simulated thread.

A host with a clock of its own (``net.set_clock``, ``sockfake.sim.net.clocks``) shows
it to its threads: its offset, drift and steps on ``time.time`` (and ``datetime``),
its drift on ``monotonic`` and ``perf_counter`` (which never step), its seconds in
``sleep``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sockfake.sim.intercept import stray_sockets
from sockfake.sim.intercept.dispatch import REAL as _real, _internal, caller_host, caller_network
from sockfake.sim.net.clocks import EPOCH, MONOTONIC_BASE

if TYPE_CHECKING:
    from sockfake.sim.network import SimNetwork

__all__ = ["CLOCKS", "EPOCH", "MONOTONIC_BASE", "sleep", "wall_seconds"]


def sleep(seconds: float) -> None:
    """``time.sleep``: in a simulated thread, a wait in virtual time."""
    net = caller_network()
    if net is None or _internal(1):
        _real["sleep"](seconds)
        return
    if not isinstance(seconds, (int, float)):
        raise TypeError(f"'{type(seconds).__name__}' object cannot be interpreted as an integer")
    if seconds != seconds:
        raise ValueError("Invalid value NaN (not a number)")
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    if stray_sockets.alarmed:
        stray_sockets.check_run(net.kernel)
    if net.clocks_skewed and seconds:
        clock = caller_host(net).clock
        if clock is not None:  # its own seconds: a fast clock's sleep ends early
            seconds = clock.local_seconds(seconds)
    net.kernel.sleep(float(seconds))


def _reading(net: SimNetwork, wall: bool, counted: bool = True) -> float:
    """The calling thread's host's clock (wall or monotonic), in virtual seconds;
    ``counted``: a read the kernel counts towards a spin (``Kernel.read_clock``)."""
    now = net.kernel.read_clock() if counted else net.kernel.now
    if net.clocks_skewed:
        clock = caller_host(net).clock
        if clock is not None:
            return clock.wall(now) if wall else clock.monotonic(now)
    return now


def wall_seconds(net: SimNetwork) -> float:
    """``datetime.now()`` for a simulated caller: ``EPOCH`` plus its host's wall clock."""
    return EPOCH + _reading(net, True, counted=False)


def _clock(name: str, offset: float, wall: bool) -> Callable[[], float]:
    original = _real[name]

    def clock() -> float:
        net = caller_network()
        if net is None or _internal(1):
            return float(original())
        if stray_sockets.alarmed:
            stray_sockets.check_run(net.kernel)
        return offset + _reading(net, wall)

    clock.__name__ = clock.__qualname__ = name
    clock.__doc__ = original.__doc__
    return clock


def _clock_ns(name: str, offset: float, wall: bool) -> Callable[[], int]:
    original = _real[name]

    def clock_ns() -> int:
        net = caller_network()
        if net is None or _internal(1):
            return int(original())
        if stray_sockets.alarmed:
            stray_sockets.check_run(net.kernel)
        return round((offset + _reading(net, wall)) * 1e9)

    clock_ns.__name__ = clock_ns.__qualname__ = name
    clock_ns.__doc__ = original.__doc__
    return clock_ns


# The time module's clocks by name, as installed in its place.
CLOCKS: dict[str, Callable[[], float] | Callable[[], int]] = {
    "monotonic": _clock("monotonic", MONOTONIC_BASE, False),
    "monotonic_ns": _clock_ns("monotonic_ns", MONOTONIC_BASE, False),
    "time": _clock("time", EPOCH, True),
    "time_ns": _clock_ns("time_ns", EPOCH, True),
    "perf_counter": _clock("perf_counter", MONOTONIC_BASE, False),
    "perf_counter_ns": _clock_ns("perf_counter_ns", MONOTONIC_BASE, False),
}

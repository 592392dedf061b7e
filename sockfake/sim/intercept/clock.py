"""Time under interception: ``time.sleep`` and the clocks are virtual in simulated threads.

``time.sleep`` waits in virtual time. ``time.monotonic`` and ``perf_counter`` read
``MONOTONIC_BASE`` plus the virtual clock, ``time.time`` a fixed epoch (``EPOCH``)
plus the virtual clock (and their ``_ns`` variants the same in nanoseconds), so a
run's timestamps are the same every time. Every other thread keeps the real clock,
and so do the simulation's own calls and test machinery's (pytest, Hypothesis) in a
simulated thread.
"""

from __future__ import annotations

from collections.abc import Callable

from sockfake.sim.intercept import stray_sockets
from sockfake.sim.intercept.dispatch import REAL as _real, _internal, caller_network

__all__ = ["CLOCKS", "EPOCH", "MONOTONIC_BASE", "sleep"]

# time.time() in a simulated thread: this fixed epoch (2025-01-01T00:00:00Z) plus the
# virtual clock, so a run's timestamps (HTTP Date headers, log records) are the same
# every time. In the past, so that a deadline computed from it and handed to C code
# that waits on the real clock (gRPC's core) is already over:
# the call fails at once instead of waiting for years (the epoch was 2030 before).
# Not older than urllib3's RECENT_DATE (2025-01-01), below which it warns that the
# system clock is wrong.
EPOCH = 1_735_689_600.0
# time.monotonic() and perf_counter(): a fixed base plus the virtual clock.
MONOTONIC_BASE = 1_000.0


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
    net.kernel.sleep(float(seconds))


def _clock(name: str, offset: float) -> Callable[[], float]:
    original = _real[name]

    def clock() -> float:
        net = caller_network()
        if net is None or _internal(1):
            return float(original())
        if stray_sockets.alarmed:
            stray_sockets.check_run(net.kernel)
        return offset + net.kernel.read_clock()

    clock.__name__ = clock.__qualname__ = name
    clock.__doc__ = original.__doc__
    return clock


def _clock_ns(name: str, offset: float) -> Callable[[], int]:
    original = _real[name]

    def clock_ns() -> int:
        net = caller_network()
        if net is None or _internal(1):
            return int(original())
        if stray_sockets.alarmed:
            stray_sockets.check_run(net.kernel)
        return round((offset + net.kernel.read_clock()) * 1e9)

    clock_ns.__name__ = clock_ns.__qualname__ = name
    clock_ns.__doc__ = original.__doc__
    return clock_ns


# The time module's clocks by name, as installed in its place.
CLOCKS: dict[str, Callable[[], float] | Callable[[], int]] = {
    "monotonic": _clock("monotonic", MONOTONIC_BASE),
    "monotonic_ns": _clock_ns("monotonic_ns", MONOTONIC_BASE),
    "time": _clock("time", EPOCH),
    "time_ns": _clock_ns("time_ns", EPOCH),
    "perf_counter": _clock("perf_counter", MONOTONIC_BASE),
    "perf_counter_ns": _clock_ns("perf_counter_ns", MONOTONIC_BASE),
}

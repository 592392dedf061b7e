"""A host's own clocks: an offset, a drift and steps over the network's one virtual time.

Every host reads the same virtual time (``Kernel.now``) through a clock of its own, as
each machine of a cluster reads its own oscillator: ``wall(now)`` is what
``time.time()`` and ``datetime.now()`` show on the host (an offset from true time that
grows with the drift and jumps with each step, as an NTP step or an operator's
``date -s`` makes it jump), ``monotonic(now)`` what ``time.monotonic()`` shows (the
same drift, never a step: it never goes back). ``drift`` is the rate error, a
fraction: ``1e-4`` runs 100 ppm fast (8.64 s a day), ``-1e-4`` as slow. Pure: a
clock is a function of virtual time, re-anchored at each change.
"""

from __future__ import annotations

import math

from sockfake.errors import SockfakeTypeError, SockfakeValueError

__all__ = ["EPOCH", "HostClock", "MAX_DRIFT", "MONOTONIC_BASE"]

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

# A drift past this is no clock error but a broken clock (and at -1 time stops).
MAX_DRIFT = 0.5


def checked_drift(drift: object) -> float:
    if isinstance(drift, bool) or not isinstance(drift, (int, float)) or math.isnan(drift):
        raise SockfakeTypeError(f"drift must be a number (a rate: 1e-4 is 100 ppm), not {drift!r}")
    if abs(drift) > MAX_DRIFT:
        raise SockfakeValueError(
            f"drift {drift!r} is out of range: a clock's rate error is a fraction within "
            f"±{MAX_DRIFT} (1e-4 is 100 ppm fast)"
        )
    return float(drift)


def checked_seconds(name: str, seconds: object) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or \
            not math.isfinite(seconds):
        raise SockfakeTypeError(f"{name} must be a finite number of seconds, not {seconds!r}")
    return float(seconds)


class HostClock:
    """One host's wall and monotonic clocks (see the module docstring)."""

    def __init__(self, now: float, offset: float = 0.0, drift: float = 0.0) -> None:
        self._anchor = now
        self._wall = now + checked_seconds("offset", offset)
        self._monotonic = now
        self.drift = checked_drift(drift)

    def wall(self, now: float) -> float:
        """The wall clock's reading, in seconds of the network's time line."""
        return self._wall + (now - self._anchor) * (1.0 + self.drift)

    def monotonic(self, now: float) -> float:
        """The monotonic clock's reading (never steps; runs at the drifted rate)."""
        return self._monotonic + (now - self._anchor) * (1.0 + self.drift)

    def offset(self, now: float) -> float:
        """How far the wall clock is from true time now."""
        return self.wall(now) - now

    def local_seconds(self, seconds: float) -> float:
        """How much true time ``seconds`` of this host's clock take (a sleep, a timeout)."""
        return seconds / (1.0 + self.drift)

    def host_seconds(self, seconds: float) -> float:
        """How many seconds of this host's clock ``seconds`` of true time are."""
        return seconds * (1.0 + self.drift)

    def _anchor_at(self, now: float) -> None:
        self._wall, self._monotonic, self._anchor = self.wall(now), self.monotonic(now), now

    def set(self, now: float, offset: float | None = None, drift: float | None = None) -> None:
        """From ``now`` on: the wall clock ``offset`` from true time, running at ``drift``."""
        self._anchor_at(now)
        if drift is not None:
            self.drift = checked_drift(drift)
        if offset is not None:
            self._wall = now + checked_seconds("offset", offset)

    def step(self, now: float, seconds: float) -> None:
        """The wall clock jumps by ``seconds`` (back if negative); monotonic does not."""
        self._anchor_at(now)
        self._wall += checked_seconds("a clock step", seconds)

    def describe(self, now: float) -> str:
        return f"offset {self.offset(now):+.6f} s, drift {self.drift * 1e6:+.1f} ppm"

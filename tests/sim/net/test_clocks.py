"""A host's clock as a pure function of virtual time: offset, drift, steps."""

from __future__ import annotations

import pytest

from sockfake.errors import SockfakeTypeError, SockfakeValueError
from sockfake.sim.net.clocks import HostClock


def test_offset_and_drift_shape_the_wall_clock() -> None:
    clock = HostClock(10.0, offset=2.0, drift=1e-3)
    assert clock.wall(10.0) == 12.0
    assert clock.wall(1010.0) == pytest.approx(1013.0)   # 1000 s run 1 s fast
    assert clock.monotonic(1010.0) == pytest.approx(1011.0)
    assert clock.local_seconds(1.001) == pytest.approx(1.0)


def test_a_step_moves_the_wall_clock_only() -> None:
    clock = HostClock(0.0)
    clock.step(5.0, -3.0)
    assert clock.wall(5.0) == 2.0 and clock.monotonic(5.0) == 5.0
    assert clock.wall(6.0) == 3.0 and clock.offset(6.0) == -3.0
    clock.set(6.0, drift=-0.5)
    assert clock.wall(8.0) == 4.0 and clock.monotonic(8.0) == 7.0  # half speed
    clock.set(8.0, offset=0.0)
    assert clock.wall(8.0) == 8.0 and clock.monotonic(8.0) == 7.0  # monotonic never back
    assert clock.describe(8.0) == "offset +0.000000 s, drift -500000.0 ppm"


def test_bad_clock_settings_are_named() -> None:
    with pytest.raises(SockfakeValueError, match="drift 2 is out of range"):
        HostClock(0.0, drift=2)
    with pytest.raises(SockfakeTypeError, match="offset must be a finite number"):
        HostClock(0.0, offset=float("inf"))
    with pytest.raises(SockfakeTypeError, match="drift must be a number"):
        HostClock(0.0).set(0.0, drift="fast")  # type: ignore[arg-type]

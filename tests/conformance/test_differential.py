"""The differential probe (``tests/differential.py``): every behaviour on
the real OS and on the simulation, Linux's answer the reference.

A behaviour listed in ``DELIBERATE`` must still differ (else it is taken off the list);
every other one must give the same outcome on both networks.
"""

from __future__ import annotations

import sys

import pytest
from differential import DELIBERATE, PROBES, run_real, run_sim

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="Linux's sockets are the reference"
)


@pytest.mark.parametrize("name", list(PROBES))
def test_simulation_behaves_as_linux(name: str) -> None:
    real, sim = run_real(name), run_sim(name)
    if name in DELIBERATE:
        assert real != sim, f"{name} no longer differs: take it off DELIBERATE"
        return
    assert sim == real


def test_the_probe_is_wide() -> None:
    families = {name.split("[")[-1].rstrip("]") for name in PROBES if "[" in name}
    assert {"tcp4", "tcp6", "udp4", "udp6", "unix_stream", "unix_dgram"} <= families
    assert len(PROBES) >= 150


def test_every_deliberate_difference_names_a_behaviour_and_a_reason() -> None:
    for name, reason in DELIBERATE.items():
        assert name in PROBES
        assert len(reason) > 30

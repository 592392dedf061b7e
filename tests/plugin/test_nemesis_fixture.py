"""The marker's nemesis= and the sockfake_nemesis fixture: a schedule from the test's
seed, started by the test, stopped (faults undone) at teardown."""

from __future__ import annotations

import re

import pytest

from sockfake.errors import SockfakeTypeError, SockfakeValueError
from sockfake.settings import parse_options

TESTS = """
import pytest
import sockfake

booted = []

NEMESIS = {"faults": 5, "duration": 10, "kinds": ["crash", "partition"]}

@pytest.mark.sockfake(seed=4, nemesis=NEMESIS)
def test_under_faults(sockfake_network, sockfake_nemesis):
    net = sockfake_network
    for name in ("n1", "n2"):
        net.add_host(name)
    nemesis = sockfake_nemesis(boot=booted.append)
    print("SCHEDULE", repr(nemesis.schedule))
    assert len(nemesis.schedule) == 5
    assert {f.kind for f in nemesis.schedule} <= {"crash", "partition"}
    assert all(f.hosts[0] != "local" for f in nemesis.schedule if f.kind == "crash")
    net.sleep(4.0)

def test_after():
    print("BOOTED", booted)
"""


def test_the_marker_s_nemesis_is_drawn_from_the_seed_and_undone_at_teardown(pytester):
    pytester.makepyfile(TESTS)
    schedules = []
    for _ in range(2):
        result = pytester.runpytest("-s", "-p", "no:randomly")
        result.assert_outcomes(passed=2)
        out = result.stdout.str()
        schedules.append(re.search(r"SCHEDULE (.*)", out).group(1))  # type: ignore[union-attr]
    assert schedules[0] == schedules[1]   # the seed's
    assert "Fault(" in schedules[0]


def test_on_the_real_network_the_test_is_skipped(pytester):
    pytester.makepyfile("""
        import pytest

        @pytest.mark.sockfake(network="real")
        def test_it(sockfake_nemesis):
            pass
    """)
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    assert "a nemesis needs the simulated network" in result.stdout.str()


def test_bad_nemesis_keys_are_named() -> None:
    assert parse_options({"nemesis": True}).nemesis == {}
    assert parse_options({"nemesis": False}).nemesis is None
    with pytest.raises(SockfakeValueError, match="nemesis has no key 'fault'"):
        parse_options({"nemesis": {"fault": 3}})
    with pytest.raises(SockfakeValueError, match="unknown fault kind 'fire'"):
        parse_options({"nemesis": {"kinds": ["fire"]}})
    with pytest.raises(SockfakeTypeError, match="must be True, False, or a dict"):
        parse_options({"nemesis": 3})
    with pytest.raises(SockfakeValueError, match="duration=-1 must be a positive number"):
        parse_options({"nemesis": {"duration": -1}})

"""The plugin's default exploration on the bugs of ``race_bugs`` (the six written
against the network's calls, and the six in real code: ``socket``, ``threading``,
``queue``, ``concurrent.futures``, no ``net.*`` call).

``explore=200`` with no other key (a swarm) finds each bug; the failure's printed
reproduce command, run in a fresh process, fails again with the same trace digest
(CI runs this on 3.10, 3.11, 3.12 and 3.13; by hand, with a venv per Python:
``VENV/bin/python -m pytest tests/plugin/test_race_exploration.py -k command_replays``);
the fixed versions pass every one of 200 schedules.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from helpers import digest_of, run_printed
from race_bugs import BUGS, FIXED, REAL_CODE_BUGS

from sockfake.sim import SimNetwork
from sockfake.testing import explore

TESTS = Path(__file__).resolve().parents[1]  # where race_bugs.py is

TEST_FILE = """
import sys
sys.path.insert(0, {tests!r})
import pytest
from race_bugs import BUGS, REAL_CODE_BUGS

@pytest.mark.sockfake(explore=200)
def test_bug(sockfake_network):
    assert not {{**BUGS, **REAL_CODE_BUGS}}[{name!r}](sockfake_network), "the bug showed"
"""


@pytest.mark.parametrize("name", [*BUGS, *REAL_CODE_BUGS])
def test_the_default_exploration_finds_the_bug_and_its_command_replays_it(
    pytester: Any, name: str,
) -> None:
    pytester.makepyfile(test_bug=TEST_FILE.format(tests=str(TESTS), name=name))
    result = pytester.runpytest_subprocess(
        "-p", "no:hypothesispytest", "-p", "no:randomly", "--sockfake-seed=1", "-x",
    )
    output = result.stdout.str()
    assert "1 failed" in output, output[-3000:]
    assert "the bug showed" in output
    assert "schedule drawn by the swarm:" in output
    command = re.findall(r"reproduce: (cd .*?)$", output, re.M)[0]
    again = run_printed(command)
    assert "1 failed" in again.stdout, again.stdout[-3000:] + again.stderr
    assert digest_of(again.stdout) == digest_of(output)


@pytest.mark.parametrize("name", list(FIXED))
def test_the_fixed_version_passes_200_schedules_of_the_default_swarm(name: str) -> None:
    def scenario(net: Any) -> None:
        with net.intercept():
            assert not FIXED[name](net)

    result = explore(scenario, 200, time_limit=600)
    assert not result.failures, str(result)


@pytest.mark.parametrize("name", list(BUGS))
def test_the_default_swarm_finds_each_earlier_bug_and_its_seed_replays_it(name: str) -> None:
    """The six bugs written against the network's calls, each of which needed its own
    mode before: the default finds every one within 200 schedules."""
    bug = BUGS[name]

    def scenario(net: Any) -> None:
        with net.intercept():
            assert not bug(net), "the bug showed"

    # backend="threads": the swarm's line and opcode draws need OS threads (on greenlets
    # it runs them as calls), and the suite also runs with --sockfake-backend=greenlet.
    result = explore(scenario, 200, stop_at_first=True, time_limit=600, backend="threads")
    first = result.first_failure
    assert first is not None, f"{name}: {result}"
    seed, _, schedule = first
    with SimNetwork(seed=seed, scheduling="swarm", time_limit=600,
                    backend="threads") as net:
        with pytest.raises(AssertionError, match="the bug showed"):
            scenario(net)
        assert net.schedule == schedule


# What systematic exploration (bound 2) reaches within 600 schedules: with the
# partial-order reduction, every bug the unreduced search found within 500 (the first
# four) and the lost wake-up and the forwarding servers, which it did not; the others
# are found by neither (docs/how-to/races.md).
SYSTEMATIC_FINDS = {
    "order violation": BUGS["order violation"],
    "use after close": BUGS["use after close"],
    "connection cache": REAL_CODE_BUGS["connection cache"],
    "Queue.join under lock": REAL_CODE_BUGS["Queue.join under lock"],
    "lost wake-up": REAL_CODE_BUGS["lost wake-up"],
    "forwarding servers": REAL_CODE_BUGS["forwarding servers"],
}


@pytest.mark.parametrize("name", list(SYSTEMATIC_FINDS))
def test_systematic_exploration_finds_a_bug_within_two_preemptions(name: str) -> None:
    bug = SYSTEMATIC_FINDS[name]

    def scenario(net: Any) -> None:
        with net.intercept():
            assert not bug(net), "the bug showed"

    result = explore(scenario, "systematic", preemption_bound=2, max_schedules=600,
                     time_limit=600)
    assert str(result).startswith("failing schedule found after "), str(result)
    first = result.first_failure
    assert first is not None
    seed, _, schedule = first
    with SimNetwork(seed=seed, scheduling="systematic", replay=schedule,
                    time_limit=600) as net:
        with pytest.raises(AssertionError, match="the bug showed"):
            scenario(net)


# The fixed versions systematic exploration exhausts, and at which bound: these server
# scenarios (a server thread, a thread per connection, clients) are too big to exhaust
# at bound 2 (docs/how-to/races.md); a small test is (tests/sim/kernel/test_systematic).
EXHAUSTED = [("connection cache", 0), ("lost wake-up", 0), ("LWW over UDP", 0),
             ("lost wake-up", 1)]


@pytest.mark.parametrize(("name", "bound"), EXHAUSTED)
def test_systematic_exploration_exhausts_a_fixed_version(name: str, bound: int) -> None:
    def scenario(net: Any) -> None:
        with net.intercept():
            assert not FIXED[name](net)

    result = explore(scenario, "systematic", preemption_bound=bound, max_schedules=1000,
                     time_limit=600)
    assert result.exhausted and not result.failures, str(result)
    assert str(result) == (f"all {result.schedules} schedules with <= {bound} preemptions "
                           "explored, none failed")

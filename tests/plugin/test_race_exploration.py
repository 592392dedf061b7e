"""The plugin's default exploration on bugs in real code (``race_bugs.REAL_CODE_BUGS``:
``socket``, ``threading``, ``queue``, ``concurrent.futures``, no ``net.*`` call).

``explore=200`` with no other key (a swarm) finds each bug; the failure's printed
reproduce command, run in a fresh process, fails again with the same trace digest;
the fixed versions pass every one of 200 schedules.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from helpers import digest_of, run_printed
from race_bugs import FIXED, REAL_CODE_BUGS

from sockfake.testing import explore

TESTS = Path(__file__).resolve().parents[1]  # where race_bugs.py is

TEST_FILE = """
import sys
sys.path.insert(0, {tests!r})
import pytest
from race_bugs import REAL_CODE_BUGS

@pytest.mark.sockfake(explore=200)
def test_bug(sockfake_network):
    assert not REAL_CODE_BUGS[{name!r}](sockfake_network), "the bug showed"
"""


@pytest.mark.parametrize("name", list(REAL_CODE_BUGS))
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

"""``@pytest.mark.sockfake(explore="systematic", preemption_bound=k)``: one item that
runs every schedule with at most k preemptions (partial-order reduced) and says at
the end either "failing schedule found" (with a command that gets it again) or "all N
schedules with <= k preemptions explored, none failed"; bad keys error the test."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from helpers import digest_of, run_printed

DEBITS = """
import sys
sys.path.insert(0, {tests!r})
import pytest
from race_bugs import debit_twice

@pytest.mark.sockfake(explore="systematic", preemption_bound={bound})
def test_debits(sockfake_network):
    assert not debit_twice(sockfake_network, {fixed}), "overdrawn"
"""
TESTS = Path(__file__).resolve().parents[1]  # where race_bugs.py is


def test_a_bug_within_the_bound_is_found_and_its_command_replays_the_schedule(
        pytester: Any) -> None:
    """The failing schedule is stored under the trace directory; the printed command
    runs that one schedule in a fresh process: the same failure, the same digest."""
    pytester.makepyfile(test_debits=DEBITS.format(tests=str(TESTS), bound=2, fixed=False))
    result = pytester.runpytest_subprocess("-p", "no:randomly", "--sockfake-seed=3",
                                           f"--sockfake-trace-dir={pytester.path / 'traces'}")
    output = result.stdout.str()
    assert "1 failed" in output, output[-3000:]
    assert "overdrawn" in output
    verdict = re.findall(r"failing schedule found after (\d+) schedules \(<= 2 preemptions\)"
                         r"; reproduce: (cd .*?--sockfake-schedule=\S+) \(runs the failing",
                         output)
    assert verdict, output[-3000:]
    schedules, command = verdict[0]
    assert int(schedules) > 1  # the first schedule (no preemption) passes
    stored = list((pytester.path / "traces").glob("*.schedule.json"))
    assert len(stored) == 1, stored
    again = run_printed(command)
    assert "1 failed" in again.stdout, again.stdout[-3000:] + again.stderr
    assert "overdrawn" in again.stdout
    assert "the stored schedule (--sockfake-schedule) replayed: it failed" in again.stdout
    assert digest_of(again.stdout) == digest_of(output)


def test_the_fixed_version_is_exhausted_and_says_so(pytester: Any) -> None:
    pytester.makepyfile(test_debits=DEBITS.format(tests=str(TESTS), bound=2, fixed=True))
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    output = result.stdout.str()
    assert "1 passed" in output, output[-3000:]
    found = re.findall(r"test_debits: all (\d+) schedules with <= 2 preemptions explored, "
                       r"none failed", output)
    assert found and int(found[0]) > 10, output[-3000:]
    # A lower bound: fewer schedules (those that differ where a thread blocks or ends,
    # no preemption), still all of them.
    pytester.makepyfile(test_debits=DEBITS.format(tests=str(TESTS), bound=0, fixed=True))
    output = pytester.runpytest_subprocess("-p", "no:randomly").stdout.str()
    lower = re.findall(r"all (\d+) schedules with <= 0 preemptions explored, none failed",
                       output)
    assert lower and int(lower[0]) < int(found[0]), output[-3000:]


def test_bad_keys_error_the_test_and_name_the_key(pytester: Any) -> None:
    cases = {
        "explore=10, preemption_bound=2": "preemption_bound= is the bound of explore=",
        "preemption_bound=1": "preemption_bound= is the bound of explore=",
        'explore="systematic", preemption_bound=-1': "preemption_bound=-1 must be an int",
        'explore="systematic", preemption_bound=True': "preemption_bound=True must be an int",
        'explore="systematic", scheduling="pct"': "scheduling='pct' cannot be set with it",
        'explore="sometimes"': "explore='sometimes' must be a number of schedules, >= 1, "
                               'or "systematic"',
    }
    source = "import pytest\n"
    for index, marker in enumerate(cases):
        source += (f"\n@pytest.mark.sockfake({marker})\n"
                   f"def test_bad_{index}(sockfake_network):\n    pass\n")
    pytester.makepyfile(test_bad=source)
    output = pytester.runpytest_subprocess("-p", "no:randomly", "-rE").stdout.str()
    assert f"{len(cases)} errors" in output, output[-3000:]
    for index, says in enumerate(cases.values()):
        assert re.search(rf"test_bad_{index}: @pytest.mark.sockfake: .*{re.escape(says)}",
                         output), (index, says, output[-3000:])


PLAIN = """
import threading
import pytest

@pytest.mark.sockfake(explore="systematic", preemption_bound=2, switch_points={points!r})
def test_cache(sockfake_network):
    cache, computed = {{}}, []

    def get():
        if "key" not in cache:  # check-then-act on a plain dict: no simulated call
            computed.append(1)
            cache["key"] = 1

    threads = [threading.Thread(target=get) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(computed) == 1, "computed twice"
"""


def test_a_race_on_a_plain_object_is_seen_with_line_switch_points_only(pytester: Any) -> None:
    """The default switch points name no plain object: the search exhausts the test
    without the race. Line switch points touch memory: the race is found."""
    pytester.makepyfile(test_plain=PLAIN.format(points="calls"))
    output = pytester.runpytest_subprocess("-p", "no:randomly").stdout.str()
    assert "1 passed" in output, output[-3000:]
    assert re.search(r"all \d+ schedules with <= 2 preemptions explored, none failed", output)
    pytester.makepyfile(test_plain=PLAIN.format(points="lines"))
    output = pytester.runpytest_subprocess("-p", "no:randomly").stdout.str()
    assert "1 failed" in output and "computed twice" in output, output[-3000:]
    assert "failing schedule found after" in output

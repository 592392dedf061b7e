"""Campaigns through pytester: shards split the run, a campaign finds a rare bug and
writes its corpus line, and the next plain run replays that line first."""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap

import pytest

# Imported here, so pytester's in-process runs (which drop the modules they import)
# do not import the interception again in their first seed's run.
import sockfake.sim.intercept.install  # noqa: F401
from sockfake.testing import derive_seed


def run(pytester, *args, subprocess=False):
    runner = pytester.runpytest_subprocess if subprocess else pytester.runpytest
    return runner("-p", "no:hypothesispytest", *args)


def digest_of(text):
    found = re.search(r"trace digest ([0-9a-f]{64})", text)
    assert found is not None, text
    return found.group(1)


def rerun(command):
    """A printed reproduce command, run in a shell with this interpreter."""
    here = command.replace("python -m pytest", f"{shlex.quote(sys.executable)} -m pytest", 1)
    return subprocess.run(here, shell=True, capture_output=True, text=True, timeout=120)

# Each simulated test appends its node id and seed to $SEEDS_LOG: what a run ran.
RECORDER = """
import os
import pytest

def record(request, net):
    with open(os.environ["SEEDS_LOG"], "a") as log:
        log.write(f"{request.node.nodeid} {net.seed if net is not None else '-'}\\n")
"""

SUITE = """
@pytest.mark.sockfake(explore=7)
def test_explored(request, sockfake_network):
    record(request, sockfake_network)

def test_simulated(request, sockfake_network):
    record(request, sockfake_network)

@pytest.mark.sockfake(network="both")
def test_both(request, sockfake_network):
    record(request, sockfake_network if sockfake_network.__class__.__name__ == "SimNetwork"
           else None)

@pytest.mark.sockfake(seed=42)
def test_pinned(request, sockfake_network):
    record(request, sockfake_network)

@pytest.mark.parametrize("n", range(6))
def test_plain(request, n):
    record(request, None)
"""


def make_suite(pytester, body=SUITE, name="test_suite"):
    pytester.makepyfile(**{name: RECORDER + textwrap.dedent(body)})


def ran(pytester, monkeypatch, *args, subprocess=False):
    """Run the suite; the (test, seed) pairs it ran, in order."""
    log = pytester.path / f"seeds-{len(list(pytester.path.glob('seeds-*')))}.log"
    monkeypatch.setenv("SEEDS_LOG", str(log))
    result = run(pytester, "-p", "no:randomly", *args, subprocess=subprocess)
    lines = log.read_text().splitlines() if log.exists() else []
    return result, [tuple(line.rsplit(" ", 1)) for line in lines]


def test_shards_are_disjoint_and_their_union_is_the_whole_run(pytester, monkeypatch):
    make_suite(pytester)
    whole_result, whole = ran(pytester, monkeypatch, "--sockfake-seed=5")
    whole_result.assert_outcomes(passed=7 + 1 + 2 + 1 + 6)
    assert len(whole) == len(set(whole)) == 17
    parts = []
    for index in range(3):
        result, part = ran(pytester, monkeypatch, "--sockfake-seed=5",
                           f"--sockfake-shard={index}/3")
        assert f"shard {index}/3 (from --sockfake-shard)" in result.stdout.str()
        parts.append(part)
    assert all(parts), "every shard got some of the 17 items"
    assert sorted(itertools.chain(*parts)) == sorted(whole)  # seeds included: the same runs
    # The same shard of the same run is the same slice, whatever the order.
    again_result, again = ran(pytester, monkeypatch, "--sockfake-seed=5",
                              "--sockfake-shard=1/3", "-p", "no:cacheprovider")
    assert sorted(again) == sorted(parts[1])


def test_shard_from_the_environment_and_its_errors(pytester, monkeypatch):
    make_suite(pytester)
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")
    monkeypatch.setenv("SOCKFAKE_SHARD_COUNT", "2")
    from_k8s, k8s_part = ran(pytester, monkeypatch, "--sockfake-seed=5")
    assert "shard 1/2 (from JOB_COMPLETION_INDEX/SOCKFAKE_SHARD_COUNT)" in from_k8s.stdout.str()
    monkeypatch.setenv("SOCKFAKE_SHARD", "1/2")  # the generic variable comes first
    from_ci, ci_part = ran(pytester, monkeypatch, "--sockfake-seed=5")
    assert "shard 1/2 (from SOCKFAKE_SHARD)" in from_ci.stdout.str()
    assert sorted(ci_part) == sorted(k8s_part) and 0 < len(ci_part) < 17
    for bad, says in [("0/0", "from 1 to"), ("3/2", "from 0 to 1"), ("junk", "is not K/N")]:
        result = run(pytester, f"--sockfake-shard={bad}")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        assert f"sockfake: --sockfake-shard='{bad}'" in result.stderr.str()
        assert says in result.stderr.str()
    monkeypatch.setenv("SOCKFAKE_SHARD", "2/2")
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "SOCKFAKE_SHARD='2/2'" in result.stderr.str()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--sockfake-campaign=0"], "--sockfake-campaign='0': the number of seeds must be"),
        (["--sockfake-campaign=soon"], "is not a number of seeds (10000) or a duration"),
        (["--sockfake-replay=x"], "--sockfake-replay='x' must be a seed"),
        (["--sockfake-replay=1", "--sockfake-campaign=5"], "cannot go with"),
        (["--sockfake-corpus=nowhere/c.jsonl"], "nowhere does not exist"),
        (["--sockfake-corpus=."], "is not a file"),
    ],
)
def test_bad_campaign_options_are_usage_errors(pytester, args, says):
    result = run(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert says in result.stderr.str()


def test_a_campaign_runs_each_simulated_test_over_its_seed_stream(pytester, monkeypatch):
    make_suite(pytester)
    result, runs = ran(pytester, monkeypatch, "--sockfake-seed=5", "--sockfake-campaign=12",
                       "-v")
    # One item per simulated test (no schedule items); a pinned seed and the real
    # network run once, as in a plain run.
    result.assert_outcomes(passed=1 + 1 + 2 + 1 + 6)
    seeds: dict[str, list[str]] = {}
    for test, seed in runs:
        seeds.setdefault(test, []).append(seed)
    assert len(seeds["test_suite.py::test_explored"]) == 12
    assert len(set(seeds["test_suite.py::test_simulated"])) == 12
    assert len(seeds["test_suite.py::test_both[sim]"]) == 12
    assert seeds["test_suite.py::test_both[real]"] == ["-"]
    assert seeds["test_suite.py::test_pinned"] == ["42"]
    out = result.stdout.str()
    assert "campaign of 12 seeds per test" in out
    assert "test_suite.py::test_simulated: 12 seeds in " in out and "0 failed" in out
    # The shards of a campaign split every test's seeds: union = whole, disjoint.
    parts = [
        ran(pytester, monkeypatch, "--sockfake-seed=5", "--sockfake-campaign=12",
            f"--sockfake-shard={index}/4")[1]
        for index in range(4)
    ]
    merged = list(itertools.chain(*parts))
    assert sorted(merged) == sorted(runs)
    assert len([run for run in merged if run[0].endswith("test_simulated")]) == 12
    assert all(
        len([run for run in part if run[0].endswith("test_simulated")]) == 3 for part in parts
    )


def test_a_campaign_keeps_module_fixtures_and_renews_function_ones(pytester):
    pytester.makepyfile(test_scopes="""
        import pytest

        SET_UP = {"module": 0, "function": 0}

        @pytest.fixture(scope="module")
        def shared():
            SET_UP["module"] += 1

        @pytest.fixture
        def fresh():
            SET_UP["function"] += 1
            return SET_UP["function"]

        SEEN = []

        def test_runs(shared, fresh, sockfake_network):
            SEEN.append(fresh)

        def test_after():
            assert SET_UP == {"module": 1, "function": 9}
            assert SEEN == list(range(1, 10))
    """)
    result = run(pytester, "-p", "no:randomly", "--sockfake-campaign=9")
    result.assert_outcomes(passed=2)


def test_a_duration_campaign_outlives_the_per_test_timeout(pytester):
    pytester.makepyfile(test_long="""
        def test_quick(sockfake_network):
            sockfake_network.sleep(0.001)
    """)
    # pytest-timeout's timer goes around each seed's run (a few ms each), not the whole
    # campaign, which a timer around it would stop at 4 s.
    result = run(pytester, "-p", "no:randomly", "--timeout=4", "--sockfake-campaign=5s")
    result.assert_outcomes(passed=1)
    assert "test_long.py::test_quick: " in result.stdout.str()


# A UDP client that never retries: it fails when the link drops its datagram or the
# reply, about once in 500 seeds on this link.
RARE_BUG = """
import socketserver

import pytest


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        sock.sendto(data, self.client_address)


@pytest.mark.sockfake(loss=0.001)
def test_udp_no_retry(udp_server):
    server = udp_server(Echo)
    client = server.client(timeout=1.0)
    client.sendto(b"ping", server.address)
    assert client.recv(100) == b"ping"
"""


@pytest.mark.timeout(300)  # about 500 seeds of a UDP exchange, on a loaded machine
def test_a_campaign_finds_a_rare_bug_and_the_next_run_replays_it_first(pytester, monkeypatch):
    pytester.makepyfile(test_rare=RARE_BUG)
    corpus = pytester.path / "corpus.jsonl"
    # Base seed 1's stream fails first at seed #483 (deterministic: the seeds follow
    # from the base seed); a campaign of 2000 finds it, and -x stops it there.
    # The failing seed's swarm draw (opcodes) needs OS threads, and these in-process
    # runs would take the outer session's backend (--sockfake-backend=greenlet) otherwise.
    monkeypatch.setenv("SOCKFAKE_BACKEND", "threads")
    found = run(pytester, "-p", "no:randomly", "-x", "--sockfake-seed=1",
                "--sockfake-campaign=2000", f"--sockfake-corpus={corpus}")
    found.assert_outcomes(failed=1)
    out = found.stdout.str()
    assert "campaign seed #483 of base seed 1" in out
    assert "test_rare.py::test_udp_no_retry: 484 seeds in " in out
    lines = [json.loads(line) for line in corpus.read_text().splitlines()]
    assert len(lines) == 1
    line = lines[0]
    assert line["test"] == "test_rare.py::test_udp_no_retry"
    assert line["marker"] == {"loss": 0.001} and line["scheduling"] == "swarm"
    assert line["schedule"] and all(isinstance(step, str) for step in line["schedule"])
    assert line["error"] == "call: TimeoutError: timed out"
    assert line["campaign"] == {"base_seed": 1, "shard": "0/1", "position": 483}
    assert line["python"] == f"{sys.version_info.major}.{sys.version_info.minor}." \
        f"{sys.version_info.micro}"
    assert line["sockfake"] and line["reproduce"].endswith(f"--sockfake-replay={line['seed']}")
    assert f"first failing seed {line['seed']}" in out
    campaign_digest = digest_of(out)

    # The next plain run, another base seed: the corpus line runs first and fails the
    # same way (same seed, same trace).
    replayed = run(pytester, "-p", "no:randomly", "--sockfake-seed=2",
                   f"--sockfake-corpus={corpus}")
    replayed.assert_outcomes(failed=1)
    text = replayed.stdout.str()
    assert f"seed {line['seed']} (replayed from the corpus {corpus}" in text
    assert "TimeoutError: timed out" in text
    assert digest_of(text) == campaign_digest
    # The printed command reruns it, alone.
    again = rerun(line["reproduce"])
    assert again.returncode == 1, again.stdout
    assert digest_of(again.stdout) == campaign_digest
    # Without the corpus the plain run passes: the corpus is what keeps the bug.
    run(pytester, "-p", "no:randomly", "--sockfake-seed=2").assert_outcomes(passed=1)


def test_a_corpus_line_that_passes_lets_the_test_run_its_own_seed(pytester, monkeypatch):
    make_suite(pytester, """
        def test_simulated(request, sockfake_network):
            record(request, sockfake_network)
    """)
    corpus = pytester.path / "corpus.jsonl"
    corpus.write_text(
        json.dumps({"test": "test_suite.py::test_simulated", "seed": 77}) + "\n"
        + json.dumps({"test": "test_suite.py::test_other", "seed": 78}) + "\n"
        + "not json\n"
    )
    result, runs = ran(pytester, monkeypatch, "--sockfake-seed=3",
                       f"--sockfake-corpus={corpus}")
    result.assert_outcomes(passed=1)
    assert runs == [
        ("test_suite.py::test_simulated", "77"),
        ("test_suite.py::test_simulated", str(derive_seed(3, "test_suite.py::test_simulated"))),
    ]
    assert f"{corpus}:3: skipped, not a corpus line" in result.stdout.str()


FLAKY = """
import random

def test_sometimes(sockfake_network):
    # Library entropy follows the seed: about one seed in 40 fails.
    assert random.randrange(40) != 0
"""


@pytest.mark.timeout(300)  # six pytest processes, four at once
def test_four_shard_processes_merge_into_one_corpus(pytester):
    pytester.makepyfile(test_flaky=FLAKY)
    shared = pytester.path / "shared.jsonl"
    base = [sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:hypothesispytest",
            "-q", "--sockfake-seed=9", "--sockfake-campaign=240"]
    shards = [
        subprocess.Popen(
            [*base, f"--sockfake-shard={index}/4", f"--sockfake-corpus={shared}"],
            cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        for index in range(4)
    ]
    outputs = [shard.communicate(timeout=300)[0] for shard in shards]
    assert all("seeds in" in out for out in outputs), outputs
    whole = pytester.path / "whole.jsonl"
    single = subprocess.run([*base, f"--sockfake-corpus={whole}"], cwd=pytester.path,
                            capture_output=True, text=True, timeout=300)
    assert "240 seeds in" in single.stdout, single.stdout

    def found(path):
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        return sorted((line["test"], line["seed"], line["campaign"]["position"])
                      for line in lines)

    whole_found = found(whole)
    assert 2 <= len(whole_found) < 10  # under the per-test cap, so all were written
    assert found(shared) == whole_found  # every line whole, none twice, none lost
    lines = shared.read_text().splitlines()
    assert len({json.loads(line)["campaign"]["shard"] for line in lines}) >= 2
    # The merged corpus replays every line, in a plain run.
    replay = subprocess.run(
        [*base[:-1], f"--sockfake-corpus={shared}", "-v"], cwd=pytester.path,
        capture_output=True, text=True, timeout=300,
    )
    assert "1 failed" in replay.stdout, replay.stdout
    first_seed = json.loads(lines[0])["seed"]
    assert f"seed {first_seed} (replayed from the corpus" in replay.stdout
    assert shlex.quote("test_flaky.py::test_sometimes") in replay.stdout


def test_a_corpus_line_replays_on_an_explored_test_once(pytester, monkeypatch):
    make_suite(pytester, """
        @pytest.mark.sockfake(explore=3, network="both")
        def test_explored(request, sockfake_network):
            record(request, sockfake_network if sockfake_network.__class__.__name__ ==
                   "SimNetwork" else None)
    """)
    corpus = pytester.path / "corpus.jsonl"
    # What a campaign writes: the test's id without a schedule (one item per test).
    corpus.write_text(json.dumps({"test": "test_suite.py::test_explored[sim]", "seed": 77}))
    result, runs = ran(pytester, monkeypatch, "--sockfake-seed=3",
                       f"--sockfake-corpus={corpus}")
    result.assert_outcomes(passed=6)
    replayed = [run for run in runs if run[1] == "77"]
    assert replayed == [("test_suite.py::test_explored[sim-schedule-0]", "77")]
    assert runs.index(replayed[0]) == runs.index(
        ("test_suite.py::test_explored[sim-schedule-0]",
         str(derive_seed(3, "test_suite.py::test_explored[sim-schedule-0]")))
    ) - 1  # first, then the item's own seed


def test_replay_runs_one_seed_with_the_exploration_default(pytester):
    pytester.makepyfile(test_one="""
        def test_seed(sockfake_network):
            # An exploring scheduler records its choices (FIFO has none to record).
            assert type(sockfake_network.kernel.policy).__name__ == "Recorder"
            assert sockfake_network.seed != 5, "seed 5 is the bad one"

        def test_plain():
            pass
    """)
    result = run(pytester, "-p", "no:randomly", "--sockfake-replay=5",
                 "--sockfake-check-determinism")
    result.assert_outcomes(failed=1, passed=1)
    out = result.stdout.str()
    assert "seed 5 is the bad one" in out
    assert "seed 5 (from --sockfake-replay)" in out
    assert "--rootdir=. test_one.py::test_seed --sockfake-replay=5" in out
    assert "rerun with the same seed: the same" in out  # the determinism check ran
    run(pytester, "-p", "no:randomly", "--sockfake-replay=6").assert_outcomes(passed=2)


def test_campaign_shards_replay_each_corpus_line_once(pytester, monkeypatch):
    make_suite(pytester, """
        def test_simulated(request, sockfake_network):
            record(request, sockfake_network)
    """)
    corpus = pytester.path / "corpus.jsonl"
    seeds = [str(1000 + n) for n in range(8)]
    corpus.write_text("".join(
        json.dumps({"test": "test_suite.py::test_simulated", "seed": int(seed)}) + "\n"
        for seed in seeds
    ))
    replayed = []
    for index in range(4):
        result, runs = ran(pytester, monkeypatch, "--sockfake-campaign=4",
                           f"--sockfake-shard={index}/4", f"--sockfake-corpus={corpus}")
        result.assert_outcomes(passed=1)
        assert len(runs) - 1 == len([seed for _, seed in runs if seed in seeds])  # + 1 own
        replayed += [seed for _, seed in runs if seed in seeds]
    assert sorted(replayed) == seeds
    # A single machine's campaign replays all of them, before its own seeds.
    result, runs = ran(pytester, monkeypatch, "--sockfake-campaign=4",
                       f"--sockfake-corpus={corpus}")
    assert [seed for _, seed in runs[:8]] == seeds and len(runs) == 12

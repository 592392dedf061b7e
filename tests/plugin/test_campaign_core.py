"""The pytest-free campaign pieces: shards, budgets, seed streams, the corpus file."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from sockfake.campaign import (
    Budget,
    CorpusEntry,
    Shard,
    append_entry,
    campaign_seed,
    check_corpus_path,
    git_commit,
    parse_budget,
    parse_shard,
    read_corpus,
    shard_from_environment,
)
from sockfake.errors import SockfakeValueError


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("0/0", "from 1 to"),
        ("3/2", "from 0 to 1 for 2 shards"),
        ("2/2", "from 0 to 1"),
        ("1/1", "from 0 to 0 for 1 shard"),
        ("junk", "is not K/N"),
        ("1/", "is not K/N"),
        ("-1/4", "is not K/N"),
        ("1.5/4", "is not K/N"),
        ("", "is not K/N"),
    ],
)
def test_a_bad_shard_is_an_error_naming_where_it_came_from(text, says):
    with pytest.raises(SockfakeValueError) as raised:
        parse_shard(text, "--sockfake-shard")
    assert f"--sockfake-shard={text!r}" in str(raised.value)
    assert says in str(raised.value)


def test_a_shard_reads_k_of_n():
    assert parse_shard(" 3 / 8 ", "x") == Shard(3, 8)
    assert str(Shard(3, 8)) == "3/8"


def test_shards_partition_items_and_positions():
    ids = [f"tests/test_x.py::test_{n}" for n in range(300)]
    for count in (1, 2, 3, 7):
        shards = [Shard(index, count) for index in range(count)]
        for test_id in ids:
            assert sum(shard.owns_item(test_id) for shard in shards) == 1
            for schedule in range(5):
                assert sum(shard.owns_item(test_id, schedule) for shard in shards) == 1
        for position in range(50):
            assert sum(shard.owns_position(position) for shard in shards) == 1
    # One test's schedules go round robin: N schedules land on N different shards.
    owners = [
        next(index for index in range(4) if Shard(index, 4).owns_item("t", schedule))
        for schedule in range(4)
    ]
    assert sorted(owners) == [0, 1, 2, 3]


def test_the_environment_names_a_shard():
    assert shard_from_environment({}) is None
    assert shard_from_environment({"SOCKFAKE_SHARD": "1/3"}) == (Shard(1, 3), "SOCKFAKE_SHARD")
    found = shard_from_environment({"JOB_COMPLETION_INDEX": "4", "SOCKFAKE_SHARD_COUNT": "5"})
    assert found is not None and found[0] == Shard(4, 5)
    # An Indexed Job that does not shard its run: the index alone changes nothing.
    assert shard_from_environment({"JOB_COMPLETION_INDEX": "4"}) is None
    with pytest.raises(SockfakeValueError, match="JOB_COMPLETION_INDEX is not"):
        shard_from_environment({"SOCKFAKE_SHARD_COUNT": "5"})
    with pytest.raises(SockfakeValueError, match="from 0 to 4"):
        shard_from_environment({"JOB_COMPLETION_INDEX": "5", "SOCKFAKE_SHARD_COUNT": "5"})


@pytest.mark.parametrize(
    ("text", "budget"),
    [
        ("10000", Budget(seeds=10000)),
        ("30s", Budget(seconds=30.0)),
        ("5m", Budget(seconds=300.0)),
        ("1.5h", Budget(seconds=5400.0)),
        (" 2S ", Budget(seconds=2.0)),
    ],
)
def test_a_budget_is_seeds_or_a_duration(text, budget):
    assert parse_budget(text, "--sockfake-campaign") == budget


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("0", "from 1 to"),
        ("0s", "above 0"),
        ("-5", "is not a number of seeds"),
        ("5x", "is not a number of seeds"),
        ("abc", "is not a number of seeds"),
        ("8d", "is not a number of seeds"),
        ("200h", "at most 7 days"),
        ("", "is not a number of seeds"),
    ],
)
def test_a_bad_budget_is_an_error_saying_the_forms(text, says):
    with pytest.raises(SockfakeValueError) as raised:
        parse_budget(text, "--sockfake-campaign")
    assert says in str(raised.value)


def test_a_seed_budget_splits_over_shards_into_the_whole():
    budget = Budget(seeds=10)
    slices = [list(budget.positions(Shard(index, 3))) for index in range(3)]
    assert sorted(position for part in slices for position in part) == list(range(10))
    assert list(budget.positions(Shard(1, 3))) == [1, 4, 7]


def test_campaign_seeds_depend_on_base_seed_test_and_position_only():
    assert campaign_seed(5, "t::a", 3) == campaign_seed(5, "t::a", 3)
    seeds = {campaign_seed(5, "t::a", position) for position in range(1000)}
    assert len(seeds) == 1000
    assert campaign_seed(5, "t::a", 3) != campaign_seed(6, "t::a", 3)
    assert campaign_seed(5, "t::a", 3) != campaign_seed(5, "t::b", 3)


def entry(test="t.py::test_a", seed=1, **fields):
    return CorpusEntry(test=test, seed=seed, error="boom", reproduce="cmd", **fields)


def test_corpus_lines_round_trip_and_skip_what_cannot_be_read(tmp_path):
    path = tmp_path / "corpus.jsonl"
    assert read_corpus(path) == ([], [])  # not there yet: empty, not an error
    append_entry(path, entry(marker={"loss": 0.1, "handler_errors": ValueError}))
    append_entry(path, entry(seed=2, schedule=["1", "0"], commit="abc"))
    append_entry(path, entry(seed=1))  # the same failure found again: replayed once
    with path.open("ab") as corpus:
        corpus.write(b'{"test": "t.py::test_a", "seed": -3}\n')
        corpus.write(b"[1, 2]\n\n")
        corpus.write(b'{"test": "t.py::test_b", "seed": 9, "future_field": 1}\n')
        corpus.write(b'{"test": "t.py::test_a", "se')  # a killed writer's last line
    entries, notes = read_corpus(path)
    assert [(e.test, e.seed) for e in entries] == [
        ("t.py::test_a", 1), ("t.py::test_a", 2), ("t.py::test_b", 9)
    ]
    assert entries[0].marker == {"loss": 0.1, "handler_errors": "<class 'ValueError'>"}
    assert entries[1].schedule == ["1", "0"] and entries[1].commit == "abc"
    assert len(notes) == 3 and all("skipped" in note for note in notes)
    assert f"{path}:4:" in notes[0] and f"{path}:8:" in notes[2]


def test_each_corpus_line_is_one_append(tmp_path, monkeypatch):
    writes = []
    real_write = os.write

    def spy(descriptor, data):
        writes.append(data)
        return real_write(descriptor, data)

    monkeypatch.setattr(os, "write", spy)
    long_entry = entry(schedule=[str(n % 3) for n in range(20_000)])
    append_entry(tmp_path / "c.jsonl", long_entry)
    assert len(writes) == 1 and writes[0].endswith(b"\n")
    assert json.loads(writes[0])["schedule"][:3] == ["0", "1", "2"]


def test_a_corpus_path_is_checked(tmp_path):
    assert check_corpus_path(tmp_path / "new.jsonl") is None
    assert "is not a file" in str(check_corpus_path(tmp_path))
    assert "does not exist" in str(check_corpus_path(tmp_path / "no" / "c.jsonl"))
    existing = tmp_path / "c.jsonl"
    existing.write_text("")
    assert check_corpus_path(existing) is None


def test_the_commit_is_best_effort(tmp_path, monkeypatch):
    here = Path(__file__).parent
    inside = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                            text=True, check=False) if shutil.which("git") else None
    if inside is not None and inside.returncode == 0:  # a checkout: its commit
        assert git_commit(here) == inside.stdout.strip()
        assert re.fullmatch(r"[0-9a-f]{40,64}", str(git_commit(here)))
    assert git_commit(tmp_path) is None  # not a repository
    monkeypatch.setenv("PATH", str(tmp_path))  # no git at all
    assert git_commit(Path(__file__).parent) is None

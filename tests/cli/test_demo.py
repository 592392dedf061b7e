"""`python -m sockfake demo`: the documentation's examples, simulated, reproducible."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

from sockfake.demo import run_demo

ROOT = Path(__file__).resolve().parents[2]


def run_cli(seed: str, hash_seed: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONHASHSEED=hash_seed, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "sockfake", "demo", "--seed", seed],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )


def test_same_seed_prints_the_same_output_in_other_processes() -> None:
    first = run_cli("3", "1")
    second = run_cli("3", "4242")
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert first.stdout == second.stdout
    assert re.fullmatch(r"trace digest: [0-9a-f]{64}", first.stdout.splitlines()[-1])


def test_demo_shows_the_examples_under_loss_and_a_slow_client() -> None:
    out = io.StringIO()
    digest = run_demo(3, out)
    text = out.getvalue()
    assert "quick client got b'HELLO WORLD\\n'" in text
    assert "slow client got b'SLOW POKE\\n'" in text
    assert "b'charlie' -> b'CHARLIE'" in text
    assert re.search(r"Received: Thread-\d+ \(process_request_thread\): Hello World 3", text)
    assert text.splitlines()[-1] == f"trace digest: {digest}"


def test_other_seeds_give_other_runs() -> None:
    digests = set()
    for seed in (1, 2, 3):
        digests.add(run_demo(seed, io.StringIO()))
    assert len(digests) == 3


def test_demo_rejects_a_seed_that_is_not_an_integer() -> None:
    result = run_cli("many", "0")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "--seed" in result.stderr

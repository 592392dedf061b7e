"""`python -m sockfake demo`: the documentation's examples, simulated, reproducible."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sockfake.demo import REAL_TIME_MARK, run_demo

ROOT = Path(__file__).resolve().parents[2]


def run_cli(seed: str, hash_seed: str, *options: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONHASHSEED=hash_seed, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "sockfake", "demo", "--seed", seed, *options],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )


def without_real_time(output: str) -> list[str]:
    """The output but for the one line that measures real time."""
    return [line for line in output.splitlines() if REAL_TIME_MARK not in line]


def test_same_seed_prints_the_same_output_in_other_processes() -> None:
    first = run_cli("3", "1")
    second = run_cli("3", "4242")
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert without_real_time(first.stdout) == without_real_time(second.stdout)
    assert len(without_real_time(first.stdout)) == len(first.stdout.splitlines()) - 1
    assert re.fullmatch(r"trace digest: [0-9a-f]{64}", first.stdout.splitlines()[-1])


def test_demo_says_what_the_simulation_gained() -> None:
    out = io.StringIO()
    run_demo(1, out)
    text = out.getvalue()
    virtual = re.search(r"(\d+) events in (\d+\.\d{3}) virtual seconds", text)
    assert virtual is not None
    ran = re.search(r"(\d+\.\d{3}) virtual seconds ran in (\d+\.\d\d) real seconds "
                    r"\((\d+) times faster\)", text)
    assert ran is not None and ran.group(1) == virtual.group(2)
    assert float(ran.group(1)) > 10 * float(ran.group(2))  # a trickling client costs nothing
    # The faults injected, counted from the run: the drops the UDP trace shows.
    shown = re.search(r"trace of the UDP example \((\d+) datagrams dropped\)", text)
    assert shown is not None and int(shown.group(1)) > 0
    udp_section = text.split("trace of the UDP example")[1].split("trace, last events")[0]
    drops = sum(1 for line in udp_section.splitlines() if re.search(r"\bdrop\b", line))
    assert drops == int(shown.group(1))
    assert f"  faults injected:\n    {drops} datagrams dropped (30% loss" in text
    assert "20 ms latency +/- 10 ms jitter on every packet" in text
    assert ("the same seed gives the same run and the same trace digest, in any process:\n"
            "    python -m sockfake demo --seed 1\n") in text


def test_trace_dir_writes_the_capture_and_the_diagram(tmp_path: Path) -> None:
    plain = run_cli("1", "0")
    result = run_cli("1", "0", "--trace-dir", str(tmp_path / "traces"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    files = [tmp_path / "traces" / name for name in ("demo.pcapng", "demo.html", "demo.jsonl")]
    assert "trace files (Wireshark, JSON lines, sequence diagram):" in lines
    for path in files:
        assert f"  {path}" in lines and path.stat().st_size > 0
    assert lines[-1] == plain.stdout.splitlines()[-1]  # writing changes nothing: same digest
    drops = int(re.findall(r"(\d+) datagrams dropped", result.stdout)[0])
    page = files[1].read_text(encoding="utf-8")
    assert page.count('class="row pkt fate-dropped') == drops
    events = [json.loads(line) for line in files[2].read_text().splitlines()]
    assert sum(1 for e in events if e["kind"] == "drop") == drops
    dpkt = pytest.importorskip("dpkt")
    with files[0].open("rb") as capture:
        assert len(list(dpkt.pcapng.Reader(capture))) > drops


def test_trace_dir_that_is_a_file_is_refused_in_one_line(tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("")
    result = run_cli("1", "0", "--trace-dir", str(taken))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "is not a directory" in result.stderr


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

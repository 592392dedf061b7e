"""CPython's own test_socketserver, unmodified, with every test on a simulated network.

The runner (``tests/peer/run_cpython_socketserver_on_sim.py``) runs each upstream test
inside a fresh ``SimNetwork`` with ``intercept()`` active. Here it runs twice in
subprocesses: on the real OS (the baseline) and on the simulation. Everything that
passes for real must pass simulated, except the forking tests, which must be refused
with the clear ``NotImplementedError`` (processes are not simulated), not hang.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

RUNNER = Path(__file__).resolve().parent / "run_cpython_socketserver_on_sim.py"


def _has_upstream_suite() -> bool:
    try:
        import test.test_socketserver  # noqa: F401
    except Exception:
        return False
    return True


def _run(tmp_path: Path, *args: str) -> dict[str, Any]:
    env = dict(os.environ)
    root = str(RUNNER.parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        [sys.executable, str(RUNNER), "--json", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # the suite creates files (TESTFN) in the working directory
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    print(proc.stdout.strip().splitlines()[-2])
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not _has_upstream_suite(), reason="the interpreter ships no test package")
def test_cpython_socketserver_suite_on_the_simulated_network(tmp_path: Path) -> None:
    real = _run(tmp_path, "--real")["tests"]
    simulated = _run(tmp_path)["tests"]
    assert set(real) == set(simulated)
    passed_for_real = {name for name, o in real.items() if o["status"] == "passed"}
    forking = {name for name in real if "forking" in name.lower()}
    assert len(passed_for_real) >= 20
    statuses = {name: simulated[name]["status"] for name in sorted(passed_for_real)}
    expected = {name: "refused" if name in forking else "passed" for name in statuses}
    assert statuses == expected
    for name in passed_for_real - forking:
        # Each ran on the simulation (its network recorded what it did), bounded in time.
        assert simulated[name]["events"] > 0, name
        assert simulated[name]["real"] < 30, name
    for name in forking & passed_for_real:
        assert "processes are not simulated" in simulated[name]["detail"] or (
            "ForkingMixIn on a SimNetwork" in simulated[name]["detail"]
        ), simulated[name]

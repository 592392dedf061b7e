"""CPython's own asyncio suites, unmodified, every test on a fresh simulated network.

The runner (``tests/peer/run_cpython_asyncio_on_sim.py``) runs each module in a
subprocess of its own. By default every module of the issue runs there only
(``ALL``; the quickest, ``FAST``, with ``SOCKFAKE_CPYTHON_ASYNCIO=fast``): every test
the simulation does not skip must pass, or be refused with the simulation's clear
error (a child process, an OS pipe or pty), or be one the runner documents (``OS_ONLY``). With
``SOCKFAKE_CPYTHON_ASYNCIO=all`` every module of the issue runs, on the OS as well:
then every test that passes on the OS must pass on the simulation, be refused or be
documented. Either way each module's passes must reach its floor for this Python
(``FLOORS``: what the simulation passed when they were measured, so no regression).
CI runs every module, on the simulation, on one Python (``CI_PYTHON``); the variable
set to ``fast`` or ``all`` runs them on any.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

RUNNER = Path(__file__).resolve().parent / "run_cpython_asyncio_on_sim.py"
FAST = ("test_streams", "test_server", "test_sock_lowlevel", "test_sendfile", "test_ssl",
        "test_unix_events")  # fmt: skip
# Every test of these uses the network (the others test the loop with stand-ins too).
NETWORKED = ("test_streams", "test_server", "test_sock_lowlevel", "test_sendfile", "test_ssl")
ALL = (*FAST, "test_base_events", "test_selector_events", "test_events")
# Tests passed on the simulation, per Python and module (measured with the runner;
# the modules beyond FAST with SOCKFAKE_CPYTHON_ASYNCIO=all).
FLOORS: dict[tuple[int, int], dict[str, int]] = {
    (3, 10): {  # no test_asyncio.test_ssl yet
        "test_streams": 62, "test_server": 2, "test_sock_lowlevel": 30,
        "test_sendfile": 60, "test_unix_events": 118,
    },
    (3, 11): {
        "test_streams": 66, "test_server": 2, "test_sock_lowlevel": 39,
        "test_sendfile": 60, "test_ssl": 22, "test_unix_events": 120,
        "test_base_events": 108, "test_selector_events": 111, "test_events": 206,
    },
    (3, 12): {
        "test_streams": 66, "test_server": 4, "test_sock_lowlevel": 39,
        "test_sendfile": 60, "test_ssl": 22, "test_unix_events": 121,
        "test_base_events": 108, "test_selector_events": 121, "test_events": 209,
    },
    (3, 13): {
        "test_streams": 72, "test_server": 11, "test_sock_lowlevel": 39,
        "test_sendfile": 60, "test_ssl": 22, "test_unix_events": 121,
        "test_base_events": 110, "test_selector_events": 122, "test_events": 212,
    },
}  # fmt: skip
# CI runs every module on the simulation on this Python (one is enough, and CI's time
# is counted); SOCKFAKE_CPYTHON_ASYNCIO=fast runs the quick ones on any, =all every
# module on any, with the OS baseline.
CI_PYTHON = (3, 12)


def _has_asyncio_suites() -> bool:
    try:
        return importlib.util.find_spec("test.test_asyncio.test_streams") is not None
    except ImportError:
        return False


@pytest.mark.skipif(not _has_asyncio_suites(), reason="the interpreter ships no test package")
@pytest.mark.timeout(1800)
def test_cpython_asyncio_suites_on_the_simulated_network(tmp_path: Path) -> None:
    asked = os.environ.get("SOCKFAKE_CPYTHON_ASYNCIO", "")
    if not asked and sys.version_info[:2] != CI_PYTHON:
        version = ".".join(map(str, CI_PYTHON))
        pytest.skip(f"the asyncio suites run on Python {version} in CI; "
                    "SOCKFAKE_CPYTHON_ASYNCIO=fast (or all) runs them here")
    every = asked == "all"
    # CI (nothing asked) runs every module on the simulation alone (about 30 s more
    # than FAST): "all" adds the OS baseline, "fast" the quick modules only.
    chosen = FAST if asked == "fast" else ALL
    modules = [m for m in chosen
               if importlib.util.find_spec(f"test.test_asyncio.{m}") is not None]  # fmt: skip
    env = dict(os.environ)
    root = str(RUNNER.parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    report = tmp_path / "report.json"
    command = [sys.executable, str(RUNNER), "--json", str(report), "-v"]
    command += [] if every else ["--sim-only"]
    for module in modules:
        command += ["--module", module]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path,
                          timeout=1700, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    print(proc.stdout)
    outcome: dict[str, Any] = json.loads(report.read_text())["modules"]
    assert set(outcome) == set(modules)
    floors = FLOORS.get(sys.version_info[:2], {})
    for module, result in outcome.items():
        summary = result["summary"]
        # Nothing fails but what is refused clearly or documented.
        failed = {name: result["sim"].get(name, {}).get("detail", "not run")
                  for name, why in summary["not_passed"].items() if why == "failed"}  # fmt: skip
        assert failed == {}, module
        for name, why in summary["not_passed"].items():
            if why.startswith("refused"):
                detail = result["sim"][name]["detail"]
                assert "run it outside the simulation" in detail or (
                    "run this code outside the simulation" in detail), (module, name, detail)
        assert summary["sim_passed"] >= floors.get(module, 1), module
        if module in NETWORKED:
            # Each passing test ran on the simulation (its network recorded what it did).
            idle = [name for name, o in result["sim"].items()
                    if o["status"] == "passed" and o["events"] == 0]  # fmt: skip
            assert idle == [], module

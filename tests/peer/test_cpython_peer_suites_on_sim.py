"""More of CPython's network suites, unmodified, every test on a fresh simulated network.

Their servers (http.server, xmlrpc.server, wsgiref on sockfake; asyncore and plain
socket servers in threads) and their clients (http.client, urllib, xmlrpc.client,
imaplib, poplib, smtplib, ftplib, TLS included) run on the simulation through
``net.intercept()``. Every test that runs must pass: none needs a process.
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

RUNNER = Path(__file__).resolve().parent / "run_cpython_socketserver_on_sim.py"
SUITES = [
    "test.test_httpservers", "test.test_xmlrpc", "test.test_urllib2_localnet",
    "test.test_wsgiref", "test.test_imaplib", "test.test_poplib", "test.test_smtplib",
    "test.test_ftplib", "test.test_httplib",
]  # fmt: skip


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


@pytest.mark.parametrize("module", SUITES)
def test_cpython_network_suite_on_the_simulated_network(module: str, tmp_path: Path) -> None:
    if not _available(module):
        pytest.skip(f"{module} is not part of this interpreter's test package")
    env = dict(os.environ)
    root = str(RUNNER.parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        [sys.executable, str(RUNNER), "--module", module, "--json"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    print(lines[-2])
    outcome: dict[str, Any] = json.loads(lines[-1])
    failed = {n: o.get("detail") for n, o in outcome["tests"].items()
              if o["status"] in ("failed", "refused")}  # fmt: skip
    assert failed == {}
    assert outcome["counts"]["passed"] >= 20
    for name, result in outcome["tests"].items():
        if result["status"] == "passed":
            assert result["real"] < 30, name

"""``examples/real_clients.py`` (the docs' first real-clients example) runs as written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_real_clients_example_runs_in_virtual_time() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        env.pop(name, None)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "real_clients.py")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["{'path': '/a'}", "{'path': '/b'}"]
    assert float(lines[2]) >= 60.0

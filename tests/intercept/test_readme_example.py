"""The README's "Real clients on the simulated network" example runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_http_example_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Real clients on the simulated network", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        env.pop(name, None)
    proc = subprocess.run(
        [sys.executable, "-c", code.group(1)], capture_output=True, text=True, env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["{'path': '/a'}", "{'path': '/b'}"]
    assert float(lines[2]) >= 60.0

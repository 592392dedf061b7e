"""Line and opcode switch points: only the code under test, the same from the first run."""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from sockfake.sim import SimNetwork
from sockfake.sim.kernel.line_switches import under_test

COUNTER = """
def bump(box, times):
    for _ in range(times):
        box[0] += 1
"""


def _fresh_module(directory: Path, name: str) -> Any:
    """A module loaded from a new file: its code has never run in this process."""
    path = directory / f"{name}.py"
    path.write_text(COUNTER)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(module: Any, switch_points: str) -> tuple[int, str, int]:
    # backend="threads": the switch points need OS threads (the greenlet backend refuses
    # them), and the suite also runs with --sockfake-backend=greenlet.
    with SimNetwork(seed=4, scheduling="random", switch_points=switch_points,
                    backend="threads") as net:
        box = [0]
        threads = [threading.Thread(target=module.bump, args=(box, 30)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return len(net.schedule), net.digest(), box[0]


@pytest.mark.parametrize("switch_points", ["lines", "opcodes"])
def test_a_seed_schedules_fresh_code_as_it_does_code_that_ran_before(
    tmp_path: Path, switch_points: str,
) -> None:
    # settrace on 3.12+ reported fewer opcode events on a code object's first run, so a
    # failure found in a long session did not replay in a fresh process.
    module = _fresh_module(tmp_path, f"fresh_{switch_points}")
    first = _run(module, switch_points)
    assert first == _run(module, switch_points)
    assert first[0] > 60  # every line (or bytecode) of bump() is a switch point
    if switch_points == "opcodes":
        assert first[0] > _run(module, "lines")[0]


def test_the_code_under_test_is_not_sockfakes_the_stdlibs_or_an_installed_packages() -> None:
    assert under_test(__file__)
    assert not under_test(threading.__file__)
    assert not under_test(str(Path(pytest.__file__)))
    site = os.sep.join(["", "venv", "lib", "python3.12", "site-packages", "requests", "api.py"])
    assert not under_test(site)
    assert under_test(site, ("requests",))
    assert not under_test("<string>")
    import sockfake

    assert not under_test(sockfake.__file__ or "")


def test_an_installed_package_gets_switch_points_when_asked(tmp_path: Path) -> None:
    packages = tmp_path / "site-packages"
    packages.mkdir()
    (packages / "counterlib.py").write_text(COUNTER)
    sys.path.insert(0, str(packages))
    try:
        import counterlib  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(packages))
    try:
        plain = _run(counterlib, "lines")[0]
        with SimNetwork(seed=4, scheduling="random", switch_points="lines",
                        switch_packages=("counterlib",), backend="threads") as net:
            box = [0]
            threads = [threading.Thread(target=counterlib.bump, args=(box, 30))
                       for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            asked = len(net.schedule)
    finally:
        sys.modules.pop("counterlib", None)
    assert plain < 20 < 60 < asked
    with pytest.raises(TypeError, match="switch_packages"):
        SimNetwork(switch_packages="requests")

"""What the pytest plugin reports: failure sections, reproduce commands, trace files,
the determinism rerun's verdict, and the exploration summary.

Kept apart from ``pytest_plugin`` (hooks, options, fixtures) so each reads on its own;
nothing here is a hook but ``ExplorationSummary``'s, registered as a plugin object.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sockfake.errors import SimulationError
from sockfake.exploration import systematic_verdict
from sockfake.failure_report import FailureReport
from sockfake.plugin_campaigns import run_of
from sockfake.settings import NetworkMode
from sockfake.testing import Testbed

__all__ = [
    "SETTINGS_KEY",
    "SYSTEMATIC_PROPERTY",
    "ExplorationSummary",
    "Settings",
    "determinism_text",
    "hide_simulation_frames",
    "raised_by_the_simulation",
    "report_text",
    "reproduce_command",
    "systematic_text",
]


@dataclass
class Settings:
    """The session's sockfake settings, resolved once (options > env > ini)."""

    network: NetworkMode
    base_seed: int
    seed_origin: str
    trace: str
    rootpath: Path
    trace_dir: Path | None  # None: under pytest's basetemp
    intercept: bool  # --sockfake-intercept=on (default) or off
    explore: int | None  # --sockfake-explore=N
    check_determinism: bool
    # ini sockfake_allow_real: real endpoints C code may use on purpose (validated);
    # a marker's allow_real= replaces it.
    allow_real: Any = None


SETTINGS_KEY = pytest.StashKey[Settings]()
# The user property an explore="systematic" item's report carries its verdict in.
SYSTEMATIC_PROPERTY = "sockfake_systematic"


def raised_by_the_simulation(error: BaseException) -> bool:
    """A SimulationError, or an OSError a simulated socket raised as the OS would."""
    return isinstance(error, SimulationError) or (
        isinstance(error, OSError) and "sockfake.sim" in sys.modules
    )


def hide_simulation_frames() -> None:
    """Hide the simulation's own frames from tracebacks of the errors it raises.

    A SimulationError's message carries the scheduler's dump, and an OSError
    (``TimeoutError``, ``ConnectionResetError``...) from a simulated socket stands
    for one from the kernel, which shows no frames on a real socket: the
    simulation's frames between the test's call and the raise are noise. pytest
    honours a module-level ``__tracebackhide__`` callable; other errors keep their
    full traceback, and ``--full-trace`` shows everything.
    """

    def hide(excinfo: Any) -> bool:
        return excinfo is not None and raised_by_the_simulation(excinfo.value)

    for name, module in list(sys.modules.items()):
        if name.startswith("sockfake.sim.") and module is not None:
            vars(module).setdefault("__tracebackhide__", hide)


def reproduce_command(item: pytest.Item, settings: Settings) -> str:
    """A shell command that reruns this test with this seed, from any directory.

    A test's seed derives from its node id, which is relative to the rootdir: the
    command goes to the rootdir and pins it, so the node id (and the seed) is the same
    whatever directory it is run from and whether or not the project has a config file.
    A campaign's, corpus's or replay's seed is rerun by ``--sockfake-replay``.
    """
    run = run_of(item)
    return run.command if run is not None else _command(settings, item.nodeid)


def _command(settings: Settings, nodeid: str) -> str:
    """The command that reruns ``nodeid`` with the options that shape its items: the
    seed, the network, and ``--sockfake-explore`` (without it a ``[schedule-K]`` item
    given by the option does not exist, and pytest says "not found")."""
    parts = [
        "cd", shlex.quote(str(settings.rootpath)), "&&", "python", "-m", "pytest",
        "--rootdir=.", shlex.quote(nodeid), f"--sockfake-seed={settings.base_seed}",
    ]
    if settings.network != "sim":
        parts.append(f"--sockfake-network={settings.network}")
    if settings.explore is not None:
        parts.append(f"--sockfake-explore={settings.explore}")
    return " ".join(parts)


def systematic_text(schedules: int, bound: int, *, failed: bool, exhausted: bool,
                    command: str, replayed: bool = False) -> str:
    """An explore="systematic" item's verdict; after a failure, how to get it again:
    the command runs the failing schedule stored under the trace directory (one run,
    the same decisions and seed, so the same trace digest)."""
    if replayed:
        outcome = "failed" if failed else "passed"
        return f"the stored schedule (--sockfake-schedule) replayed: it {outcome}"
    text = systematic_verdict(schedules, bound, failed=failed, exhausted=exhausted)
    if failed:
        text += f"; reproduce: {command} (runs the failing schedule alone)"
    return text


def store_schedule(directory: Path | None, nodeid: str, decisions: list[str]) -> Path:
    """Write a failing systematic schedule for ``--sockfake-schedule``: the item it
    belongs to and every decision of the run (a JSON file under the trace directory)."""
    folder = directory if directory is not None else Path(tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")[-150:]
    path = folder / f"{name}.schedule.json"
    path.write_text(json.dumps({"nodeid": nodeid, "decisions": decisions}) + "\n")
    return path.resolve()


def stored_schedule(path: str | None, nodeid: str) -> list[str] | None:
    """The decisions ``--sockfake-schedule`` stored for ``nodeid``; None without the
    option, or for another item (that one searches as usual)."""
    if path is None:
        return None
    try:
        stored = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise pytest.UsageError(f"--sockfake-schedule={path}: cannot read it: {exc}") from None
    decisions = stored.get("decisions") if isinstance(stored, dict) else None
    if not isinstance(decisions, list) or not all(isinstance(d, str) for d in decisions):
        raise pytest.UsageError(f"--sockfake-schedule={path}: not a stored schedule")
    return decisions if stored.get("nodeid") == nodeid else None


def report_text(item: pytest.Item, bed: Testbed, settings: Settings, marker_seed: int | None
                ) -> str:
    run = run_of(item)
    origin = (
        run.origin
        if run is not None
        else "from the marker"
        if marker_seed is not None
        else f"derived from base seed {settings.base_seed} and the test id"
    )
    report = FailureReport(
        bed.seed if bed.kind == "sim" else None,
        origin,
        reproduce=[reproduce_command(item, settings)],
        trace_dir=trace_dir(item, settings),
        name=item.nodeid,
        trace=settings.trace != "off",
    )
    return report.text(bed.network)


def trace_dir(item: pytest.Item, settings: Settings) -> Path | None:
    """Where a failing test's trace files go: the option's directory, or under pytest's
    basetemp."""
    if settings.trace_dir is not None:
        return settings.trace_dir
    factory = getattr(item.config, "_tmp_path_factory", None)
    if factory is None:
        return None
    return Path(factory.getbasetemp()) / "sockfake-traces"


def determinism_text(first: Any, second: Any | None) -> str:
    """The determinism section: two runs' traces (``Trace``s) compared."""
    from sockfake.sim.determinism import compare_traces

    if second is None:
        return "the rerun made no simulated network: nothing to compare"
    divergence = compare_traces(first, second)
    if divergence is None:
        return (
            f"rerun with the same seed: the same {len(first)} events, event for event "
            "(equal digests; the failure is deterministic)"
        )
    return "rerun with the same seed DIFFERS: " + divergence.describe()


_SCHEDULE = re.compile(r"(?:^|-)schedule-(\d+)(?=-|$)")


class ExplorationSummary:
    """Counts explored schedules per test from the reports (the xdist controller sees
    every worker's) and prints one line per test at the end of the session."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.runs: dict[str, dict[int, bool]] = {}  # test -> schedule -> failed
        self.systematic: dict[str, str] = {}  # test -> its explore="systematic" verdict

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for name, value in report.user_properties:
            if name == SYSTEMATIC_PROPERTY:
                self.systematic[report.nodeid] = str(value)
        base, bracket, params = report.nodeid.partition("[")
        found = _SCHEDULE.search(params.rstrip("]")) if bracket else None
        if found is None:
            return
        rest = (params.rstrip("]")[: found.start()] + params.rstrip("]")[found.end():]).strip("-")
        test = f"{base}[{rest}]" if rest else base
        schedules = self.runs.setdefault(test, {})
        index = int(found.group(1))
        if report.when == "call" or report.failed:
            schedules[index] = schedules.get(index, False) or bool(report.failed)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.runs and not self.systematic:
            return
        settings = self.config.stash[SETTINGS_KEY]
        terminalreporter.section("sockfake exploration")
        for test, verdict in sorted(self.systematic.items()):
            terminalreporter.write_line(f"{test}: {verdict}")
        for test, schedules in sorted(self.runs.items()):
            failed = sorted(index for index, bad in schedules.items() if bad)
            line = f"{test}: {len(schedules)} schedules ran, {len(failed)} failed"
            if failed:
                base, _, rest = test.partition("[")
                params = f"{rest.rstrip(']')}-schedule-{failed[0]}" if rest else \
                    f"schedule-{failed[0]}"
                line += (
                    f"; first failing: schedule-{failed[0]}; reproduce: "
                    f"{_command(settings, f'{base}[{params}]')}"
                )
            terminalreporter.write_line(line)

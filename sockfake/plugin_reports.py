"""What the pytest plugin reports: failure sections, reproduce commands, trace files,
the determinism rerun's verdict, and the exploration summary.

Kept apart from ``pytest_plugin`` (hooks, options, fixtures) so each reads on its own;
nothing here is a hook but ``ExplorationSummary``'s, registered as a plugin object.
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sockfake.errors import SimulationError
from sockfake.settings import NetworkMode
from sockfake.testing import Testbed

__all__ = [
    "SETTINGS_KEY",
    "ExplorationSummary",
    "Settings",
    "determinism_text",
    "hide_simulation_frames",
    "raised_by_the_simulation",
    "report_text",
    "reproduce_command",
]

TRACE_LINES = 30


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


SETTINGS_KEY = pytest.StashKey[Settings]()


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
    """
    return _command(settings, item.nodeid)


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


def report_text(item: pytest.Item, bed: Testbed, settings: Settings, marker_seed: int | None
                ) -> str:
    lines = []
    if bed.kind == "sim":
        net = bed.network
        origin = (
            "from the marker"
            if marker_seed is not None
            else f"derived from base seed {settings.base_seed} and the test id"
        )
        lines.append(f"simulated network, seed {bed.seed} ({origin})")
        swarm = net.kernel.swarm
        if swarm is not None:  # what this seed drew: pin it in the marker to keep it
            lines.append(f"schedule drawn by the swarm: {swarm}; "
                         f"{len(net.schedule)} scheduler decisions")
        trace = net.trace
        lines.append(
            f"virtual time {net.kernel.now:.6f} s, {len(trace)} trace events, "
            f"trace digest {trace.digest()}"
        )
        if settings.trace != "off" and trace.events:
            lines.append(f"last {min(TRACE_LINES, len(trace.events))} trace events:")
            lines.append(trace.format(last=TRACE_LINES))
            lines.extend(_write_trace_files(item, net, settings))
    else:
        lines.append("real network (no seed, no trace)")
    lines.append(f"reproduce: {reproduce_command(item, settings)}")
    return "\n".join(lines)


def _write_trace_files(item: pytest.Item, net: Any, settings: Settings) -> list[str]:
    """Write the trace as pcapng, JSONL and HTML; the lines that name the files."""
    directory = settings.trace_dir
    if directory is None:
        factory = getattr(item.config, "_tmp_path_factory", None)
        if factory is None:
            return []
        directory = Path(factory.getbasetemp()) / "sockfake-traces"
    stem = re.sub(r"[^\w.-]+", "_", item.nodeid).strip("_")[-120:]
    try:
        # In the try: a directory that cannot be made is a line in the report, not
        # an INTERNALERROR that ends the session.
        directory.mkdir(parents=True, exist_ok=True)
        written = [
            net.trace.write_pcap(directory / f"{stem}.pcapng"),
            net.trace.write_jsonl(directory / f"{stem}.jsonl"),
            net.trace.write_html(directory / f"{stem}.html", title=item.nodeid),
        ]
    except OSError as exc:
        return [f"trace files: could not write to {directory}: {exc}"]
    return ["trace files (Wireshark, JSON lines, sequence diagram):"] + [
        f"  {path}" for path in written
    ]


def determinism_text(first: list[Any], second: list[Any] | None) -> str:
    from sockfake.sim.determinism import first_divergence

    if second is None:
        return "the rerun made no simulated network: nothing to compare"
    divergence = first_divergence(first, second)
    if divergence is None:
        return (
            f"rerun with the same seed: the same {len(first)} events, event for event "
            "(the failure is deterministic)"
        )
    return "rerun with the same seed DIFFERS: " + divergence.describe()


_SCHEDULE = re.compile(r"(?:^|-)schedule-(\d+)(?=-|$)")


class ExplorationSummary:
    """Counts explored schedules per test from the reports (the xdist controller sees
    every worker's) and prints one line per test at the end of the session."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.runs: dict[str, dict[int, bool]] = {}  # test -> schedule -> failed

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
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
        if not self.runs:
            return
        settings = self.config.stash[SETTINGS_KEY]
        terminalreporter.section("sockfake exploration")
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

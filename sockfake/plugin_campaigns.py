"""The pytest face of campaigns: shards, the campaign loop, the failure corpus.

``--sockfake-shard=K/N`` deselects what other shards run; ``--sockfake-campaign=``
runs each simulated test over a stream of fresh seeds inside its one item, under the
exploration default, until the budget is spent; ``--sockfake-corpus=PATH`` appends each
campaign failure as a JSON line and, in every run, replays the selected tests' lines
first; ``--sockfake-replay=SEED`` runs the selected tests once with one seed (the
command a campaign prints). The pieces that need no pytest are ``sockfake.campaign``.

One seed's run is pytest's own ``runtestprotocol`` (set-up, call, teardown: fresh
function fixtures each time, module and session fixtures kept) without logging; the
item logs one set of reports: the first failing run's, or the last run's.
"""

from __future__ import annotations

import os
import re
import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest

import sockfake
from sockfake.campaign import (
    WHOLE_RUN,
    Budget,
    CorpusEntry,
    Shard,
    append_entry,
    campaign_seed,
    check_corpus_path,
    git_commit,
    parse_budget,
    parse_shard,
    read_corpus,
    shard_from_environment,
)
from sockfake.errors import SockfakeValueError
from sockfake.settings import MAX_SEED, NetworkMode

__all__ = [
    "CAMPAIGN_KEY",
    "CampaignRun",
    "CampaignRunner",
    "CampaignSettings",
    "PluginSide",
    "add_options",
    "exploring_run",
    "one_item_per_test",
    "record_schedule",
    "resolve_settings",
    "run_of",
]

# Corpus lines one test may add in one session: a test that fails on most seeds is
# one bug, not a file of thousands of lines.
MAX_LINES_PER_TEST = 10
_clock = time.monotonic  # bound at import: never the simulation's clock


@dataclass(frozen=True)
class CampaignRun:
    """One seed's run of an item: where the seed came from, and how to rerun it."""

    seed: int
    source: str  # "campaign", "corpus" or "replay"
    origin: str  # for the report: where this seed came from
    command: str  # the shell command that reruns exactly this
    position: int | None = None  # the seed's place in the campaign's stream
    entry: CorpusEntry | None = None  # the corpus line replayed


@dataclass
class CampaignSettings:
    shard: Shard = WHOLE_RUN
    shard_origin: str = "default"
    budget: Budget | None = None
    corpus: Path | None = None
    replay: int | None = None
    corpus_entries: list[CorpusEntry] = field(default_factory=list)
    corpus_notes: list[str] = field(default_factory=list)


CAMPAIGN_KEY = pytest.StashKey[CampaignSettings]()
_RUN_KEY = pytest.StashKey[CampaignRun]()
_SCHEDULE_KEY = pytest.StashKey[list[str]]()


class PluginSide(Protocol):
    """What the runner asks of the plugin about an item."""

    def campaignable(self, item: pytest.Item) -> bool:
        """A simulated item whose seed is not pinned by its marker."""

    def marker(self, item: pytest.Item) -> dict[str, Any]:
        """The item's marker keys, merged."""

    def scheduling(self, item: pytest.Item) -> str:
        """The scheduling policy of the item's current run."""

    def reset(self, item: pytest.Item) -> None:
        """Forget the plugin's per-run state, before another run of the item."""


# -- what the plugin asks -----------------------------------------------------------------


def run_of(node: Any) -> CampaignRun | None:
    """The seed run the node is in, if a campaign, corpus or replay chose its seed."""
    run: CampaignRun | None = node.stash.get(_RUN_KEY, None)
    return run


def exploring_run(node: Any) -> bool:
    """Does this run take the exploration default? Every campaign, corpus and replay
    run does: campaigns explore, and their lines replay as they were found."""
    return run_of(node) is not None


def one_item_per_test(config: pytest.Config) -> bool:
    """Under a campaign or a replay a test is one item (its seeds are runs inside it),
    not one item per explored schedule."""
    settings = config.stash.get(CAMPAIGN_KEY, None)
    return settings is not None and (settings.budget is not None or settings.replay is not None)


def record_schedule(item: Any, net: Any) -> None:
    """Keep the run's schedule for its corpus line (only under a seed run)."""
    if run_of(item) is not None:
        item.stash[_SCHEDULE_KEY] = list(net.schedule)


# -- options --------------------------------------------------------------------------------


def add_options(group: Any) -> None:
    group.addoption(
        "--sockfake-shard",
        dest="sockfake_shard",
        metavar="K/N",
        default=None,
        help="run shard K (from 0) of N: a disjoint, reproducible slice of the items, or "
        "under a campaign of every simulated test's seeds; the N shards' union is the "
        "whole run. Env: SOCKFAKE_SHARD=K/N, or JOB_COMPLETION_INDEX with "
        "SOCKFAKE_SHARD_COUNT (Kubernetes Indexed Jobs).",
    )
    group.addoption(
        "--sockfake-campaign",
        dest="sockfake_campaign",
        metavar="DURATION|SEEDS",
        default=None,
        help="run each selected simulated test over fresh seeds (exploring schedules) "
        "inside its one item, for a duration per test (30s, 5m, 1h) or a number of seeds "
        "(10000, in total over the shards). Seeds follow from --sockfake-seed and the "
        "shard. Env: SOCKFAKE_CAMPAIGN.",
    )
    group.addoption(
        "--sockfake-corpus",
        dest="sockfake_corpus",
        metavar="PATH",
        default=None,
        help="failure corpus: campaign failures are appended to it as JSON lines, and "
        "every run replays the selected tests' lines first. Env: SOCKFAKE_CORPUS.",
    )
    group.addoption(
        "--sockfake-replay",
        dest="sockfake_replay",
        metavar="SEED",
        default=None,
        help="run each selected simulated test once with this seed, as a campaign runs "
        "it (the command a campaign or corpus line prints).",
    )


def _raw(config: pytest.Config, name: str, env: str | None) -> tuple[str | None, str]:
    value = config.getoption(f"sockfake_{name}", None)
    if value is not None:
        return str(value), f"--sockfake-{name}"
    if env is not None and os.environ.get(env, "").strip():
        return os.environ[env], env
    return None, "default"


def resolve_settings(config: pytest.Config) -> CampaignSettings:
    """The campaign settings, each checked where it is read: a usage error naming the
    option (or variable) and what it takes, before any test runs."""
    try:
        return _resolve(config)
    except SockfakeValueError as exc:
        raise pytest.UsageError(f"sockfake: {exc}") from None


def _resolve(config: pytest.Config) -> CampaignSettings:
    settings = CampaignSettings()
    value, origin = _raw(config, "shard", None)
    if value is not None:
        settings.shard, settings.shard_origin = parse_shard(value, origin), origin
    else:
        found = shard_from_environment(os.environ)
        if found is not None:
            settings.shard, settings.shard_origin = found
    value, origin = _raw(config, "campaign", "SOCKFAKE_CAMPAIGN")
    if value is not None:
        settings.budget = parse_budget(value, origin)
    value, origin = _raw(config, "replay", None)
    if value is not None:
        try:
            seed = int(value.strip(), 0)
        except ValueError:
            seed = -1
        if not 0 <= seed <= MAX_SEED:
            raise SockfakeValueError(
                f"{origin}={value!r} must be a seed: an integer from 0 to 2**64 - 1"
            )
        if settings.budget is not None:
            raise SockfakeValueError(
                f"{origin} reruns one seed; it cannot go with --sockfake-campaign"
            )
        settings.replay = seed
    value, origin = _raw(config, "corpus", "SOCKFAKE_CORPUS")
    if value is not None:
        path = Path(str(config.invocation_params.dir)) / value.strip()
        problem = check_corpus_path(path)
        if problem is not None:
            raise SockfakeValueError(f"{origin}={value!r}: {problem}")
        settings.corpus = path
        settings.corpus_entries, settings.corpus_notes = read_corpus(path)
    return settings


# -- the runner -------------------------------------------------------------------------


@dataclass
class _Tally:
    """One item's seed runs."""

    runs: int = 0
    failures: int = 0
    replayed: int = 0
    replay_failures: int = 0
    lines_written: int = 0
    first_failure: CampaignRun | None = None
    seconds: float = 0.0


class CampaignRunner:
    """The plugin object behind the options (registered by the sockfake plugin)."""

    def __init__(
        self, config: pytest.Config, settings: CampaignSettings, side: PluginSide, *,
        base_seed: int, rootpath: Path, network: NetworkMode,
    ) -> None:
        self.config = config
        self.settings = settings
        self.side = side
        self.base_seed = base_seed
        self.rootpath = rootpath
        self.network = network
        self.lines: list[str] = []  # the summary, one line per campaigned test
        self._commit: str | bool | None = False  # False: not looked up yet

    # -- hooks --

    def pytest_report_header(self, config: pytest.Config) -> str | None:
        settings = self.settings
        parts = []
        if settings.shard != WHOLE_RUN:
            parts.append(f"shard {settings.shard} (from {settings.shard_origin})")
        if settings.budget is not None:
            parts.append(f"campaign of {settings.budget} per test")
        if settings.replay is not None:
            parts.append(f"replaying seed {settings.replay}")
        if settings.corpus is not None:
            parts.append(f"corpus {settings.corpus} ({len(settings.corpus_entries)} entries)")
        if not parts:
            return None
        return "\n".join(["sockfake: " + ", ".join(parts), *settings.corpus_notes])

    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        shard = self.settings.shard
        if shard == WHOLE_RUN:
            return
        kept: list[pytest.Item] = []
        dropped: list[pytest.Item] = []
        for item in items:
            (kept if self._shard_runs(item) else dropped).append(item)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = kept

    def _shard_runs(self, item: pytest.Item) -> bool:
        shard = self.settings.shard
        if self.settings.budget is not None and self.side.campaignable(item):
            return True  # every shard runs the test, each its own slice of the seeds
        callspec = getattr(item, "callspec", None)
        schedule = callspec.params.get("sockfake_schedule") if callspec is not None else None
        if isinstance(schedule, int):
            return shard.owns_item(item.nodeid.partition("[")[0], schedule)
        return shard.owns_item(item.nodeid)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None
                                ) -> bool | None:
        settings = self.settings
        if settings.budget is None and settings.replay is None and not settings.corpus_entries:
            return None  # a plain run: nothing of ours to do, at no cost per item
        if not self.side.campaignable(item):
            return None
        if settings.replay is not None:
            # One run with this seed: pytest's own protocol runs it (and the
            # determinism check, when asked for, reruns it).
            item.stash[_RUN_KEY] = CampaignRun(
                settings.replay, "replay", "from --sockfake-replay",
                self._command(item.nodeid, settings.replay),
            )
            return None
        replays = [self._corpus_run(item, entry) for entry in self._entries_for(item)]
        if not replays and settings.budget is None:
            return None
        item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        timer = _PerRunTimer(item)
        tally = _Tally()
        chosen: list[pytest.TestReport] = []
        failed_run: CampaignRun | None = None
        started = _clock()
        for run in self._runs(item, replays, started):
            reports = self._run_once(item, run, timer)
            tally.runs += 1
            tally.replayed += run.source == "corpus"
            failed = any(report.failed for report in reports)
            if failed:
                tally.failures += 1
                tally.replay_failures += run.source == "corpus"
                if failed_run is None:
                    failed_run, chosen = run, reports
                    tally.first_failure = run
                if run.source == "campaign" and tally.lines_written < MAX_LINES_PER_TEST:
                    tally.lines_written += self._write_line(item, run, reports)
            elif failed_run is None:
                chosen = reports
            if reports[0].failed or any(report.skipped for report in reports):
                break  # set-up failed or skipped: no seed will do better
            if failed and (settings.budget is None or item.config.getoption("maxfail") == 1):
                break  # a replay failed (that is this test's result), or -x: stop at one
            if item.session.shouldstop or item.session.shouldfail:
                break
        tally.seconds = _clock() - started
        _forget(item, _RUN_KEY)
        if settings.budget is None and failed_run is None:
            # The corpus replayed clean: now the test's own run, with its own seed.
            self.side.reset(item)
            chosen = self._protocol(item, nextitem, timer)
        else:
            last = _teardown_up_to(item, nextitem)
            if last is not None and last.failed:
                chosen = [*chosen[:-1], last]
        self._annotate(item, chosen, tally, failed_run)
        for report in chosen:
            item.ihook.pytest_runtest_logreport(report=report)
        item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # From any xdist worker too: the summary line travels in the last report's
        # user_properties.
        if report.when != "teardown":
            return
        for name, value in report.user_properties:
            if name == "sockfake_campaign" and isinstance(value, str):
                self.lines.append(value)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.lines:
            return
        terminalreporter.section("sockfake campaign")
        for line in self.lines:
            terminalreporter.write_line(line)

    # -- the runs --

    def _entries_for(self, item: pytest.Item) -> list[CorpusEntry]:
        test = _campaign_id(item)
        entries = [entry for entry in self.settings.corpus_entries if entry.test == test]
        if self.settings.budget is not None:
            # Every shard of a campaign runs the test: each replays its share of the
            # lines, so the fleet replays each line once.
            shard = self.settings.shard
            entries = [entry for entry in entries if shard.owns_item(f"{test}\0{entry.seed}")]
        return entries

    def _runs(self, item: pytest.Item, replays: list[CampaignRun], started: float
              ) -> Iterator[CampaignRun]:
        settings = self.settings
        yield from replays
        budget = settings.budget
        if budget is None:
            return
        for position in budget.positions(settings.shard):
            if budget.seconds is not None and _clock() - started >= budget.seconds:
                return
            seed = campaign_seed(self.base_seed, item.nodeid, position)
            yield CampaignRun(
                seed, "campaign",
                f"campaign seed #{position} of base seed {self.base_seed}",
                self._command(item.nodeid, seed), position=position,
            )

    def _corpus_run(self, item: pytest.Item, entry: CorpusEntry) -> CampaignRun:
        where = f"found on commit {entry.commit[:12]}" if entry.commit else "found"
        return CampaignRun(
            entry.seed, "corpus",
            f"replayed from the corpus {self.settings.corpus} ({where}, sockfake "
            f"{entry.sockfake or '?'}, Python {entry.python})",
            self._command(entry.test, entry.seed), entry=entry,
        )

    def _run_once(self, item: pytest.Item, run: CampaignRun, timer: _PerRunTimer
                  ) -> list[pytest.TestReport]:
        self.side.reset(item)
        _forget(item, _SCHEDULE_KEY)
        item.stash[_RUN_KEY] = run
        # nextitem = the item's parent: the item's own (function) fixtures are torn
        # down after each seed, its module's and session's are kept for the next.
        return self._protocol(item, item.parent, timer)

    def _protocol(self, item: pytest.Item, nextitem: Any, timer: _PerRunTimer
                  ) -> list[pytest.TestReport]:
        from _pytest.runner import runtestprotocol

        timer.start()
        try:
            return runtestprotocol(item, nextitem=nextitem, log=False)
        finally:
            timer.stop()

    def _command(self, test: str, seed: int) -> str:
        parts = [
            "cd", shlex.quote(str(self.rootpath)), "&&", "python", "-m", "pytest",
            "--rootdir=.", shlex.quote(test), f"--sockfake-replay={seed}",
        ]
        if self.network != "sim":
            parts.append(f"--sockfake-network={self.network}")
        return " ".join(parts)

    def _write_line(self, item: pytest.Item, run: CampaignRun,
                    reports: list[pytest.TestReport]) -> int:
        corpus = self.settings.corpus
        if corpus is None:
            return 0
        if self._commit is False:
            self._commit = git_commit(self.rootpath)
        schedule = item.stash.get(_SCHEDULE_KEY, None)
        entry = CorpusEntry(
            test=item.nodeid,
            seed=run.seed,
            error=_first_line(reports),
            reproduce=run.command,
            marker=self.side.marker(item),
            scheduling=self.side.scheduling(item),
            schedule=schedule or None,
            sockfake=sockfake.__version__,
            commit=self._commit if isinstance(self._commit, str) else None,
            campaign={
                "base_seed": self.base_seed, "shard": str(self.settings.shard),
                "position": run.position,
            },
        )
        append_entry(corpus, entry)
        return 1

    def _annotate(self, item: pytest.Item, reports: list[pytest.TestReport], tally: _Tally,
                  failed_run: CampaignRun | None) -> None:
        """The summary line (and the failing run's story) on the logged reports."""
        line = self._summary(item, tally)
        if line is not None and reports:
            # A list of its own: the reports of an item share the item's list.
            last = reports[-1]
            last.user_properties = [*last.user_properties, ("sockfake_campaign", line)]
        if failed_run is None:
            return
        failed = next(report for report in reports if report.failed)
        story = [f"seed {failed_run.seed}: {failed_run.origin}"]
        if line is not None:
            story.append(line)
        if failed_run.source == "corpus":
            story.append(
                "this test failed when replaying a corpus line: the bug it recorded is "
                "still there (or came back)"
            )
        story.append(f"reproduce: {failed_run.command}")
        title = f"sockfake {failed_run.source}"  # campaign or corpus
        longrepr: Any = failed.longrepr
        if hasattr(longrepr, "addsection"):
            longrepr.addsection(title, "\n".join(story))
        else:
            failed.sections.append((title, "\n".join(story)))

    def _summary(self, item: pytest.Item, tally: _Tally) -> str | None:
        if self.settings.budget is None:
            return None
        rate = tally.runs / tally.seconds if tally.seconds > 0 else 0.0
        line = (
            f"{item.nodeid}: {tally.runs} seeds in {tally.seconds:.1f} s "
            f"({rate:.0f} seeds/s), {tally.failures} failed"
        )
        if tally.replayed:
            line += f" ({tally.replayed} replayed from the corpus, {tally.replay_failures} failed)"
        first = tally.first_failure
        if first is not None:
            line += f"; first failing seed {first.seed}; reproduce: {first.command}"
        if tally.lines_written:
            line += f"; {tally.lines_written} written to the corpus"
        return line


def _teardown_up_to(item: pytest.Item, nextitem: pytest.Item | None
                    ) -> pytest.TestReport | None:
    """Tear down the module's and session's fixtures as pytest would after this item
    (each seed's run tore down only the item's own), reported as a teardown."""
    if item.session.shouldfail or item.session.shouldstop:
        nextitem = None
    needed = nextitem.listchain() if nextitem is not None else []
    if item.listchain()[:-1] == needed[: len(item.listchain()) - 1]:
        return None  # the next item shares every fixture scope still set up
    setup_state = item.session._setupstate
    call = pytest.CallInfo.from_call(
        lambda: setup_state.teardown_exact(nextitem), when="teardown"
    )
    report: pytest.TestReport = item.ihook.pytest_runtest_makereport(item=item, call=call)
    return report


_SCHEDULE_ID = re.compile(r"(?:^|-)schedule-(\d+)(?=-|$)")


def _campaign_id(item: pytest.Item) -> str | None:
    """The id a campaign knows this item by: its own, or for an explored item (one item
    per schedule: ``test[schedule-0]``, ``test[sim-schedule-0]``) the id without the
    schedule, for schedule 0 only (a corpus line replays once, not once per schedule)."""
    base, bracket, params = item.nodeid.partition("[")
    found = _SCHEDULE_ID.search(params[:-1]) if bracket else None
    if found is None:
        return item.nodeid
    if found.group(1) != "0":
        return None
    rest = (params[: found.start()] + params[found.end():-1]).strip("-")
    return f"{base}[{rest}]" if rest else base


def _forget(item: pytest.Item, key: pytest.StashKey[Any]) -> None:
    if key in item.stash:
        del item.stash[key]


def _first_line(reports: list[pytest.TestReport]) -> str:
    for report in reports:
        if report.failed:
            crash = getattr(report.longrepr, "reprcrash", None)
            text = getattr(crash, "message", None) or str(report.longrepr)
            return f"{report.when}: {text.strip().splitlines()[0] if text.strip() else ''}"
    return ""


class _PerRunTimer:
    """pytest-timeout's timer around each seed's run, not the whole campaign.

    pytest-timeout starts one timer around the item's protocol; a campaign of five
    minutes would hit a per-test timeout of one. It is stopped here and started for
    each run instead (through its own hooks), so a seed that hangs fails that seed.
    """

    def __init__(self, item: pytest.Item) -> None:
        self.item = item
        self.settings: Any = None
        plugin = item.config.pluginmanager.getplugin("timeout")
        read = getattr(plugin, "_get_item_settings", None)
        if read is None:
            return
        settings = read(item)
        if settings.timeout and settings.timeout > 0 and settings.func_only is False:
            self.settings = settings
            item.ihook.pytest_timeout_cancel_timer(item=item)

    def start(self) -> None:
        if self.settings is not None:
            self.item.ihook.pytest_timeout_set_timer(item=self.item, settings=self.settings)

    def stop(self) -> None:
        if self.settings is not None:
            self.item.ihook.pytest_timeout_cancel_timer(item=self.item)

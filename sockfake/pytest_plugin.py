"""pytest plugin for sockfake: server fixtures on a simulated (or real) network.

Registered through the ``pytest11`` entry point; ``-p no:sockfake`` disables it.
Importing it is cheap: the simulation (``sockfake.sim``) loads only when a test asks
for a simulated network.

A thin layer over the pytest-free testing core (``sockfake.testing``: testbeds,
server handles, settings and their validation): this module holds the hooks, the
options, the marker, the reports and the fixtures.

Fixtures: ``sockfake_network`` (the test's network), ``tcp_server``, ``udp_server``,
``unix_stream_server``, ``unix_datagram_server`` (factories that start a server and
return a :class:`~sockfake.testing.ServerHandle`, generated from one table), the same
under ``sockfake_*`` names, ``sockfake_network_factory`` (fresh networks inside
``@given`` or loops), and ``sockfake_nemesis`` (a seeded schedule of faults).

Configuration, lowest precedence first: ini keys ``sockfake_network``,
``sockfake_seed``, ``sockfake_trace``; environment variables ``SOCKFAKE_NETWORK``,
``SOCKFAKE_SEED``, ``SOCKFAKE_TRACE``; options ``--sockfake-network=sim|real|both``,
``--sockfake-seed=N|last|random``, ``--sockfake-trace=fail|always|off``; and the
``@pytest.mark.sockfake(...)`` marker on the test (closest marker wins).

Every simulated test's seed is derived from the session's base seed and the test's
node id (sha256, so it does not depend on test order, ``-k``, xdist placement or
``PYTHONHASHSEED``). A failing test's report carries the seed, the virtual time, the
last trace events, the trace digest, and the command that reproduces it.

Why this module passes 600 lines: it is the plugin's whole face, every hook, option
and fixture pytest registers from the ``pytest11`` entry point, in one reading; what
is not a hook or a fixture lives apart: failure reports (``plugin_reports``), settings
and testbeds (``settings``, ``testing``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import shlex
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest

from sockfake.errors import SockfakeError
from sockfake.plugin_campaigns import (
    CAMPAIGN_KEY,
    CampaignRunner,
    add_options,
    exploring_run,
    one_item_per_test,
    record_schedule,
    resolve_settings,
    run_of,
)
from sockfake.plugin_reports import (
    SETTINGS_KEY,
    SYSTEMATIC_PROPERTY,
    ExplorationSummary,
    Settings,
    determinism_text,
    hide_simulation_frames,
    raised_by_the_simulation,
    report_text,
    reproduce_command,
    store_schedule,
    stored_schedule,
    systematic_text,
    trace_dir,
)
from sockfake.settings import MAX_EXPLORE, MAX_SEED, SYSTEMATIC_MAX_SCHEDULES, NetworkKind
from sockfake.testing import (
    NETWORK_MODES,
    NetworkSettings,
    ServerHandle,
    Testbed,
    TestbedError,
    derive_seed,
    make_network,
    open_testbed,
    parse_options,
    sim_network,
)

# The library's names, under the names this module has always offered.
sockfake_testbed = open_testbed

__all__ = [
    "ServerHandle",
    "Testbed",
    "TestbedError",
    "derive_seed",
    "sim_network",
    "sockfake_testbed",
]

_TRACE_MODES = ("fail", "always", "off")
_DEFAULT_TIMEOUT = 60.0
_CACHE_KEY = "sockfake/base_seed"
_SEED_LIMIT = 1 << 32
_MAX_TIMEOUT = 86400.0  # ini sockfake_timeout: a day


# -- settings -----------------------------------------------------------------------------


_settings_key = SETTINGS_KEY
_options_key = pytest.StashKey[NetworkSettings]()
_bed_key = pytest.StashKey["Testbed"]()
_call_failed_key = pytest.StashKey[bool]()
_events_key = pytest.StashKey[Any]()  # the Trace of the test's simulated network
_ran_tests_key = pytest.StashKey[bool]()
# explore="systematic": the decisions this run follows, and the policy that logged it.
_prefix_key = pytest.StashKey[list[str]]()
_policy_key = pytest.StashKey[Any]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sockfake", "sockfake: simulated networks for server tests")
    group.addoption(
        "--sockfake-network",
        dest="sockfake_network",
        metavar="sim|real|both",
        default=None,
        help="network for sockfake fixtures: sim (default), real, or both (each test "
        "runs once on each, as a parameter). Env: SOCKFAKE_NETWORK; ini: sockfake_network.",
    )
    group.addoption(
        "--sockfake-seed",
        dest="sockfake_seed",
        metavar="N|last|random",
        default=None,
        help="base seed for simulated networks: an integer, 'last' (the previous "
        "session's), or 'random' (default). Env: SOCKFAKE_SEED; ini: sockfake_seed.",
    )
    group.addoption(
        "--sockfake-trace",
        dest="sockfake_trace",
        metavar="fail|always|off",
        default=None,
        help="when to attach the simulation trace to reports: fail (default), always, "
        "or off (seed and reproduce command only). Env: SOCKFAKE_TRACE; ini: sockfake_trace.",
    )
    group.addoption(
        "--sockfake-trace-dir",
        dest="sockfake_trace_dir",
        metavar="DIR",
        default=None,
        help="where a failing simulated test's trace goes (pcapng for Wireshark, JSONL, "
        "an HTML sequence diagram); default: sockfake-traces under pytest's basetemp. "
        "Env: SOCKFAKE_TRACE_DIR; ini: sockfake_trace_dir.",
    )
    group.addoption(
        "--sockfake-schedule",
        dest="sockfake_schedule",
        metavar="FILE",
        default=None,
        help="an explore=\"systematic\" item named in FILE (written under the trace "
        "directory when such an item fails) runs that one failing schedule instead of "
        "searching again: the reproduce command of the failure passes it.",
    )
    group.addoption(
        "--sockfake-intercept",
        dest="sockfake_intercept",
        metavar="on|off",
        default=None,
        help="enter SimNetwork.intercept() for simulated tests: the stdlib's socket, "
        "time, threading, queue... are the simulation in its threads (default on; the "
        "marker's intercept=False turns it off for a test). Env: SOCKFAKE_INTERCEPT; "
        "ini: sockfake_intercept.",
    )
    group.addoption(
        "--sockfake-explore",
        dest="sockfake_explore",
        metavar="N",
        default=None,
        help="run every simulated test under N schedules (a swarm: each draws its "
        "policy, switch points and PCT depth from its seed, unless the marker sets "
        "them), one item each; a summary says how many failed. The marker's "
        "explore=N sets it per test. Env: SOCKFAKE_EXPLORE; ini: sockfake_explore.",
    )
    group.addoption(
        "--sockfake-backend",
        dest="sockfake_backend",
        metavar="threads|greenlet",
        default=None,
        help="what every simulated network's threads run on: threads (default: OS "
        "threads) or greenlet (pip install 'sockfake[greenlet]'); the marker's "
        "backend= sets it per test. Env: SOCKFAKE_BACKEND; ini: sockfake_backend.",
    )
    group.addoption(
        "--sockfake-check-determinism",
        dest="sockfake_check_determinism",
        action="store_true",
        default=False,
        help="rerun each failing simulated test with the same seed; if the two traces "
        "differ, report the first divergent event and its likely cause.",
    )
    add_options(group)  # campaigns: --sockfake-shard, -campaign, -corpus, -replay
    parser.addini("sockfake_network", "default network for sockfake fixtures: sim|real|both")
    parser.addini("sockfake_trace_dir", "where failing simulated tests' traces are written")
    parser.addini("sockfake_intercept", "intercept the stdlib in simulated tests: on|off")
    parser.addini(
        "sockfake_allow_real",
        "real endpoints C code may use on purpose in simulated tests (not reported as "
        "stray sockets): 'all', or host:port, [v6host]:port, :port, /unix/path",
    )
    parser.addini("sockfake_explore", "run simulated tests under N schedules each")
    parser.addini("sockfake_backend", "what simulated threads run on: threads|greenlet")
    parser.addini("sockfake_seed", "base seed for simulated networks: N|last|random")
    parser.addini("sockfake_trace", "when to attach the simulation trace: fail|always|off")
    parser.addini(
        "sockfake_timeout",
        "pytest-timeout seconds for sockfake tests when no timeout is configured (default 60)",
    )


def _setting(config: pytest.Config, name: str) -> tuple[str | None, str]:
    """The raw value and where it came from: command line > env > ini."""
    value = config.getoption(f"sockfake_{name}", None)
    if value is not None:
        return str(value).strip(), f"--sockfake-{name.replace('_', '-')}"
    env = os.environ.get(f"SOCKFAKE_{name.upper()}", "").strip()
    if env:
        return env, f"SOCKFAKE_{name.upper()}"
    ini = str(config.getini(f"sockfake_{name}") or "").strip()
    if ini:
        return ini, f"ini sockfake_{name}"
    return None, "default"


_Choice = TypeVar("_Choice", bound=str)


def _choice(config: pytest.Config, name: str, choices: tuple[_Choice, ...],
            default: _Choice) -> _Choice:
    value, origin = _setting(config, name)
    if value is None:
        return default
    if value not in choices:
        raise pytest.UsageError(f"sockfake: {origin}={value!r} is not one of {', '.join(choices)}")
    return choices[choices.index(value)]


def _base_seed(config: pytest.Config) -> tuple[int, str]:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and "sockfake_base_seed" in workerinput:
        return int(workerinput["sockfake_base_seed"]), "from the xdist controller"
    value, origin = _setting(config, "seed")
    if value is None or value == "random":
        return random.SystemRandom().randrange(_SEED_LIMIT), "random"
    if value == "last":
        cache = getattr(config, "cache", None)
        last = cache.get(_CACHE_KEY, None) if cache is not None else None
        if isinstance(last, int):
            return last, "the last session's"
        return random.SystemRandom().randrange(_SEED_LIMIT), "random: no last seed cached"
    try:
        seed = int(value, 0)
    except (ValueError, TypeError):
        raise pytest.UsageError(
            f"sockfake: {origin}={value!r} is not an integer, 'last' or 'random'"
        ) from None
    if seed < 0:
        raise pytest.UsageError(f"sockfake: {origin}={value!r} must be non-negative")
    if seed > MAX_SEED:
        raise pytest.UsageError(f"sockfake: {origin}={value!r} must be at most 2**64 - 1")
    return seed, f"from {origin}"


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(ExplorationSummary(config), "sockfake-exploration")
    config.addinivalue_line(
        "markers",
        "sockfake(network=, seed=, loss=, duplicate=, reorder=, latency=, jitter=, "
        "bandwidth=, burst_loss=, corrupt=, chunk=, time_limit=, scheduling=, "
        "stall_timeout=, spin_budget=, "
        "handler_errors='fail'|'strict'|'ignore'|(ExceptionClass, ...), "
        "intercept=True|False, allow_real='all'|[(host, port), path], explore=N, "
        "switch_points='calls'|'lines'|'opcodes', "
        "pct_depth=3, pct_steps=N, switch_packages=('pkg',), pin_cpu=True|False, "
        "backend='threads'|'greenlet'): "
        "configure the sockfake "
        "network of this test",
    )
    network = _choice(config, "network", NETWORK_MODES, "sim")
    _choose_backend(config)
    trace = _choice(config, "trace", _TRACE_MODES, "fail")
    base_seed, origin = _base_seed(config)
    config.stash[_settings_key] = Settings(
        network=network,
        base_seed=base_seed,
        seed_origin=origin,
        trace=trace,
        rootpath=Path(str(config.rootpath)),
        trace_dir=_trace_dir(config),
        intercept=_choice(config, "intercept", ("on", "off"), "on") == "on",
        allow_real=_allow_real_option(config),
        explore=_explore_option(config),
        check_determinism=bool(config.getoption("sockfake_check_determinism", False)),
    )
    campaign = config.stash[CAMPAIGN_KEY] = resolve_settings(config)
    config.pluginmanager.register(
        CampaignRunner(config, campaign, _CampaignSide(), base_seed=base_seed,
                       rootpath=Path(str(config.rootpath)), network=network),
        "sockfake-campaign",
    )


def _allow_real_option(config: pytest.Config) -> Any:
    """The ini option ``sockfake_allow_real``, checked at start-up (a usage error);
    None when it is not set (the simulation is then not imported)."""
    text = str(config.getini("sockfake_allow_real") or "").strip()
    if not text:
        return None
    from sockfake.sim.intercept.allow_real import from_text

    try:
        return from_text(text)
    except (ValueError, TypeError) as exc:
        raise pytest.UsageError(f"sockfake: ini sockfake_allow_real={text!r}: {exc}") from None


def _choose_backend(config: pytest.Config) -> None:
    """--sockfake-backend: the default of every SimNetwork in the session (tests that
    make their own too), restored at the session's end."""
    from sockfake.sim.kernel.backends import BACKENDS, set_default_backend

    value, origin = _setting(config, "backend")
    if value is None:
        return
    name = _choice(config, "backend", BACKENDS, "threads")
    try:
        previous = set_default_backend(name)
    except SockfakeError as exc:
        raise pytest.UsageError(f"sockfake: {origin}={value!r}: {exc}") from None

    def restore() -> None:
        set_default_backend(previous)

    config.add_cleanup(restore)


def _explore_option(config: pytest.Config) -> int | None:
    value, origin = _setting(config, "explore")
    if value is None:
        return None
    try:
        count = int(value)
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_EXPLORE:
        raise pytest.UsageError(
            f"sockfake: {origin}={value!r} must be a number of schedules, from 1 to "
            f"{MAX_EXPLORE}"
        )
    return count


def _trace_dir(config: pytest.Config) -> Path | None:
    """The trace directory, checked at start-up: a usage error now, not an
    INTERNALERROR at the first failing test."""
    value, origin = _setting(config, "trace_dir")
    if value is None:
        return None
    try:
        path = (Path(str(config.invocation_params.dir)) / value).resolve()
    except (OSError, ValueError) as exc:
        raise pytest.UsageError(f"sockfake: {origin}={value!r} is not a usable path: {exc}")
    existing = path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        problem = "is not a directory" if existing == path else f"is under a file ({existing})"
        raise pytest.UsageError(f"sockfake: {origin}={value!r} {problem}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise pytest.UsageError(
            f"sockfake: {origin}={value!r}: {existing} is not writable, so no trace could be "
            "written there"
        )
    return path


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> None:
    # Called for every report, on the xdist controller too: the session ran tests.
    config.stash[_ran_tests_key] = True


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Remember the base seed for ``--sockfake-seed=last``, once tests ran with it.

    Not at start-up: ``pytest --fixtures`` or ``--collect-only`` between a failing
    run and its rerun must not replace the seed to rerun.
    """
    config = session.config
    cache = getattr(config, "cache", None)
    ran_tests = config.stash.get(_ran_tests_key, False)
    if ran_tests and cache is not None and not _is_xdist_worker(config):
        cache.set(_CACHE_KEY, config.stash[_settings_key].base_seed)


def pytest_report_header(config: pytest.Config) -> str:
    settings = config.stash[_settings_key]
    return (
        f"sockfake: network={settings.network}, base seed={settings.base_seed} "
        f"({settings.seed_origin}), trace={settings.trace}, simulation "
        f"{'compiled (mypyc)' if _sim_build_compiled() else 'pure Python'}"
    )


def _sim_build_compiled() -> bool:
    """Is the simulation the optional compiled build? Imported only when asked."""
    import sockfake.sim

    return sockfake.sim.COMPILED


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist, on the controller: hand the base seed to every worker."""
    settings = node.config.stash[_settings_key]
    node.workerinput["sockfake_base_seed"] = settings.base_seed


# -- the marker ---------------------------------------------------------------------------


def _marker_kwargs(node: pytest.Item | Any) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for mark in reversed(list(node.iter_markers("sockfake"))):
        if mark.args:
            raise ValueError(f"keyword arguments only, not {mark.args!r}")
        merged.update(mark.kwargs)
    return merged


def _options_for(item: Any) -> NetworkSettings:
    options: NetworkSettings | None = item.stash.get(_options_key, None)
    if options is None:
        settings = item.config.stash[_settings_key]
        try:
            options = parse_options(_explore_kwargs(item, settings), settings.network)
        except (ValueError, TypeError) as exc:
            message = f"{item.nodeid}: @pytest.mark.sockfake: {exc}"
        else:
            item.stash[_options_key] = options
            return options
        # A bad marker errors its own test at set-up, with or without xdist (a usage
        # error would stop the whole session, and on a worker it is an INTERNALERROR);
        # failing outside the except block keeps the message free of the chain.
        pytest.fail(message, pytrace=False)
    return options


def _is_xdist_worker(config: pytest.Config) -> bool:
    return getattr(config, "workerinput", None) is not None


def _uses_sockfake(item: Any) -> bool:
    return "sockfake_network_kind" in getattr(item, "fixturenames", ())


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sockfake_network_kind" not in metafunc.fixturenames:
        return
    settings = metafunc.config.stash[_settings_key]
    try:
        options = parse_options(_explore_kwargs(metafunc.definition, settings), settings.network)
    except (ValueError, TypeError):
        return  # reported, with the test's id, at the end of collection (or at set-up)
    if options.network == "both":
        metafunc.parametrize("sockfake_network_kind", ["sim", "real"], indirect=True)
    if options.explore is not None and not one_item_per_test(metafunc.config):
        # One item per schedule: each has its own node id, so its own seed, and
        # pytest-xdist spreads them over cores and machines.
        metafunc.parametrize(
            "sockfake_schedule", list(range(options.explore)), indirect=True,
            ids=[f"schedule-{index}" for index in range(options.explore)],
        )


def _explore_kwargs(node: Any, settings: Settings) -> dict[str, Any]:
    """The marker's keywords, with --sockfake-explore where the marker sets none."""
    kwargs = _marker_kwargs(node)
    if settings.explore is not None and "explore" not in kwargs:
        kwargs["explore"] = settings.explore
    elif exploring_run(node) and "explore" not in kwargs:
        kwargs["explore"] = 1  # a campaign's seed: the exploration default
    return kwargs


class _CampaignSide:
    """What the campaign runner (``plugin_campaigns``) asks of this plugin."""

    def campaignable(self, item: pytest.Item) -> bool:
        if not _uses_sockfake(item):
            return False
        try:
            kwargs = _marker_kwargs(item)
            options = parse_options(kwargs, item.config.stash[_settings_key].network)
        except (ValueError, TypeError):
            return False  # the bad marker errors the test at set-up, as ever
        if "seed" in kwargs or options.systematic:
            # Pinned by the marker: one seed is what the test asks for; or systematic:
            # its schedules are enumerated, not drawn from seeds.
            return False
        callspec = getattr(item, "callspec", None)
        kind = callspec.params.get("sockfake_network_kind") if callspec is not None else None
        return (kind or options.network) == "sim"

    def marker(self, item: pytest.Item) -> dict[str, Any]:
        return _marker_kwargs(item)

    def scheduling(self, item: pytest.Item) -> str:
        return str(_options_for(item).scheduling)

    def reset(self, item: pytest.Item) -> None:
        for key in (_options_key, _bed_key, _call_failed_key, _events_key):
            _forget(item, key)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    timeout = _default_timeout(config)
    for item in items:
        if timeout is not None and _uses_sockfake(item):
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(timeout))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A bad marker errors its test at set-up, naming the marker and the key; a test
    that does not intercept runs without the patches an earlier test left."""
    if item.get_closest_marker("sockfake") is not None:
        _options_for(item)
    install = sys.modules.get("sockfake.sim.intercept.install")  # not imported: nothing left
    if install is not None and install.is_lingering() and not _intercepts(item):
        install.remove_lingering()


def _intercepts(item: pytest.Item) -> bool:
    """Does this test's ``sockfake_network`` intercept? Its interception then reuses the
    patches the one before left (``linger=True``): one installation for a run of such
    tests instead of one per test, the largest part of the fixture's cost."""
    if "sockfake_network" not in getattr(item, "fixturenames", ()):
        return False
    if not item.config.stash[_settings_key].intercept:
        return False
    options = _options_for(item)
    callspec = getattr(item, "callspec", None)
    kind = callspec.params.get("sockfake_network_kind") if callspec is not None else None
    return bool(options.intercept) and (kind or options.network) != "real"


def pytest_unconfigure(config: pytest.Config) -> None:
    install = sys.modules.get("sockfake.sim.intercept.install")
    if install is not None:
        install.remove_lingering()  # the last intercepted test's patches


def _default_timeout(config: pytest.Config) -> float | None:
    """pytest-timeout seconds to add to sockfake tests, or None to leave things alone.

    Only when pytest-timeout is installed and no timeout is configured at all (no
    ``--timeout``, no ``timeout`` ini key, no ``PYTEST_TIMEOUT``): an explicit
    ``--timeout=0`` means the user wants none, and is respected.
    """
    if not config.pluginmanager.hasplugin("timeout"):
        return None
    if config.getoption("timeout", None) is not None or os.environ.get("PYTEST_TIMEOUT"):
        return None
    try:
        if str(config.getini("timeout") or "").strip():
            return None
    except ValueError:  # pragma: no cover - pytest-timeout registers the key
        return None
    raw = str(config.getini("sockfake_timeout") or "").strip()
    if not raw:
        return _DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except (ValueError, TypeError):
        raise pytest.UsageError(f"sockfake: ini sockfake_timeout={raw!r} is not a number")
    if not value <= _MAX_TIMEOUT:  # also nan and inf
        raise pytest.UsageError(
            f"sockfake: ini sockfake_timeout={raw!r} must be at most {_MAX_TIMEOUT:g} seconds "
            "(0: none)"
        )
    return value if value > 0 else None


# -- reports ------------------------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    excinfo = call.excinfo
    if excinfo is not None and raised_by_the_simulation(excinfo.value):
        hide_simulation_frames()
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call":
        item.stash[_call_failed_key] = report.failed
        # A stray-socket error the run raised has reached the outcome (not raised again
        # at teardown). Looked up, not imported: the plugin loads no simulation itself.
        stray_sockets = sys.modules.get("sockfake.sim.intercept.stray_sockets")
        if excinfo is not None and stray_sockets is not None:
            stray_sockets.mark_delivered(excinfo.value)
    bed = item.stash.get(_bed_key, None)
    if bed is None:
        return
    if report.when == "teardown":
        # pytest keeps its items to the end of the session: a testbed kept in one
        # would keep the test's whole simulated network alive (and every socket).
        del item.stash[_bed_key]
    settings = item.config.stash[_settings_key]
    if not report.failed and not (settings.trace == "always" and report.when == "call"):
        return
    _add_section(report, "sockfake", report_text(item, bed, settings, _options_for(item).seed))


def _add_section(report: pytest.TestReport, title: str, text: str) -> None:
    """Show ``text`` under ``title`` in the report's failure section."""
    longrepr: Any = report.longrepr
    if hasattr(longrepr, "addsection"):
        longrepr.addsection(title, text)
    else:
        report.sections.append((title, text))


# -- the determinism self-check ---------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    """With --sockfake-check-determinism, a failing simulated test runs again with the
    same seed; if the traces differ, its report says where and why."""
    settings = item.config.stash[_settings_key]
    bound = _systematic_bound(item)
    if bound is not None:
        _run_systematic(item, nextitem, bound)
        return True
    if not settings.check_determinism or not _uses_sockfake(item):
        return None
    from _pytest.runner import runtestprotocol

    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    reports = runtestprotocol(item, nextitem=nextitem, log=False)
    first = item.stash.get(_events_key, None)
    failed = [report for report in reports if report.failed]
    if failed and first is not None:
        item._initrequest()  # type: ignore[attr-defined]  # fresh fixtures for the rerun
        # The rerun makes its own testbed and trace.
        _forget(item, _bed_key)
        _forget(item, _call_failed_key)
        _forget(item, _events_key)
        runtestprotocol(item, nextitem=nextitem, log=False)
        second = item.stash.get(_events_key, None)
        _add_section(failed[0], "sockfake determinism", determinism_text(first, second))
    for report in reports:
        item.ihook.pytest_runtest_logreport(report=report)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


def _systematic_bound(item: pytest.Item) -> int | None:
    """The preemption bound of a simulated item under explore="systematic", else None
    (a bad marker: None too, and set-up reports it)."""
    if not _uses_sockfake(item):
        return None
    settings = item.config.stash[_settings_key]
    try:
        options = parse_options(_explore_kwargs(item, settings), settings.network)
    except (ValueError, TypeError):
        return None
    callspec = getattr(item, "callspec", None)
    kind = callspec.params.get("sockfake_network_kind") if callspec is not None else None
    if not options.systematic or (kind or options.network) == "real":
        return None
    return options.preemption_bound


def _run_systematic(item: pytest.Item, nextitem: pytest.Item | None, bound: int) -> None:
    """explore="systematic": run the item under every schedule with at most ``bound``
    preemptions (``ScheduleSearch``, partial-order reduced), each a fresh set-up, call
    and teardown, until one fails; log the last run's reports with the verdict."""
    from _pytest.runner import runtestprotocol

    from sockfake.sim.kernel.systematic import ScheduleSearch

    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    search = ScheduleSearch(bound)
    stored = stored_schedule(item.config.getoption("sockfake_schedule"), item.nodeid)
    reports: list[pytest.TestReport] = []
    ran = 0
    exhausted = failed = False
    while not failed:
        prefix = search.next_prefix() if stored is None or not ran else None
        if stored is not None and prefix is not None:
            prefix = stored  # the one failing schedule, every decision of it
        if prefix is None:
            exhausted = True
            break
        if ran >= SYSTEMATIC_MAX_SCHEDULES:
            break
        if ran:
            item._initrequest()  # type: ignore[attr-defined]  # fresh fixtures
            for key in (_bed_key, _call_failed_key, _events_key, _policy_key):
                _forget(item, key)
        item.stash[_prefix_key] = prefix
        reports = runtestprotocol(item, nextitem=nextitem, log=False)
        ran += 1
        policy = item.stash.get(_policy_key, None)
        failed = any(report.failed for report in reports)
        if policy is None or any(report.skipped for report in reports):
            break  # no simulated run to branch from
        if not failed:
            search.record(prefix, policy)
    settings = item.config.stash[_settings_key]
    command = reproduce_command(item, settings)
    policy = item.stash.get(_policy_key, None)
    if failed and stored is None and policy is not None:
        decisions = [decision.chosen for decision in policy.log]
        path = store_schedule(trace_dir(item, settings), item.nodeid, decisions)
        command += f" --sockfake-schedule={shlex.quote(str(path))}"
    text = systematic_text(ran, bound, failed=failed, exhausted=exhausted,
                           command=command, replayed=stored is not None)
    for report in reports:
        if report.failed or (report.when == "call" and not failed):
            _add_section(report, "sockfake systematic", text)
            report.user_properties.append((SYSTEMATIC_PROPERTY, text))
            break
    for report in reports:
        item.ihook.pytest_runtest_logreport(report=report)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)


def _forget(item: pytest.Item, key: pytest.StashKey[Any]) -> None:
    if key in item.stash:
        del item.stash[key]


# -- servers ------------------------------------------------------------------------------


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def sockfake_network_kind(request: pytest.FixtureRequest) -> NetworkKind:
    """``"sim"`` or ``"real"``: the network this test runs on.

    Chosen by ``--sockfake-network`` (and its ini key and env var) or the test's
    ``@pytest.mark.sockfake(network=...)``; with ``both`` the test is parametrized.
    """
    param = getattr(request, "param", None)
    if param is not None:
        return cast("NetworkKind", str(param))  # parametrized with "sim" and "real"
    network = _options_for(request.node).network
    return "sim" if network == "both" else network


@pytest.fixture
def sockfake_schedule(request: pytest.FixtureRequest) -> int | None:
    """Under ``explore=N``: which of the N schedules this item is (None otherwise)."""
    param = getattr(request, "param", None)
    return None if param is None else int(param)


@pytest.fixture
def sockfake_network(
    request: pytest.FixtureRequest, sockfake_network_kind: NetworkKind,
    sockfake_schedule: int | None,
) -> Iterator[Any]:
    """The test's network: a fresh ``SimNetwork`` (default) or the real one.

    Simulated: seeded from the session's base seed and the test id (or the marker's
    ``seed=``), with the marker's link conditions; ``.seed``, ``.time()``, ``.sleep()``,
    ``.set_conditions()``, ``.partition()``, ``.trace`` and ``.digest()`` are there.
    It is also the ambient default network during the test, so servers built
    without ``network=`` use it. At teardown every server started by the sockfake
    fixtures stops; a handler error, or a leaked simulated thread or socket, fails
    the test (``handler_errors='ignore'`` in the marker opts out of the former).
    """
    from sockfake.network import use_network

    item = request.node
    settings = item.config.stash[_settings_key]
    options = _options_for(item)
    run = run_of(item)  # a campaign's, the corpus's or --sockfake-replay's seed
    seed = run.seed if run is not None else None
    if seed is None:
        seed = options.seed if options.seed is not None else derive_seed(
            settings.base_seed, item.nodeid
        )
    kind = sockfake_network_kind
    if kind == "real" and options.conditions:
        # Loopback cannot lose, delay or re-chunk on demand: running the test there
        # would pass or fail for reasons that have nothing to do with its marker.
        wanted = ", ".join(f"{key}={value!r}" for key, value in options.conditions.items())
        pytest.skip(f"sockfake: link conditions ({wanted}) need the simulated network")
    prefix = item.stash.get(_prefix_key, None) if options.systematic else None
    net = make_network(kind, seed, options, replay=prefix)
    bed = Testbed(
        net, kind, seed=seed if kind == "sim" else None, handler_errors=options.handler_errors
    )
    item.stash[_bed_key] = bed
    problems: list[str] = []
    try:
        with contextlib.ExitStack() as stack:
            if kind == "sim" and options.intercept and settings.intercept:
                from sockfake.sim.intercept.install import intercept

                allow_real = (options.allow_real if options.allow_real is not None
                              else settings.allow_real) or ()
                # linger: the patches stay for the next test that intercepts (see
                # _intercepts; pytest_runtest_setup removes them before one that does not).
                stack.enter_context(intercept(net, options.seed_entropy, linger=True,
                                              allow_real=allow_real))
            stack.enter_context(use_network(net))
            try:
                yield net
            finally:
                # Servers stop while still intercepted (as in open_testbed()): a serving
                # thread that calls select.select() per loop (waitress) must still get
                # the simulation's, not the real one, when shutdown() wakes it.
                call_failed = item.stash.get(_call_failed_key, False)
                problems = bed.close(check_leaks=not call_failed)
    finally:
        if not bed.closed:
            problems = bed.close(check_leaks=False)
        if kind == "sim" and settings.check_determinism:
            item.stash[_events_key] = net.trace
        if kind == "sim":
            record_schedule(item, net)
            if options.systematic:
                item.stash[_policy_key] = net.kernel.base_policy
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def sockfake_nemesis(
    sockfake_network: Any, sockfake_network_kind: NetworkKind, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Any]]:
    """Factory: ``sockfake_nemesis(boot=None, hosts=None, schedule=None)`` starts a
    nemesis on the test's network (``sockfake.sim.nemesis``): ``schedule``, or one drawn
    from the test's seed with the marker's ``nemesis=`` keywords (``duration``,
    ``faults``, ``kinds``, ``crashable``, ``max_fault``); ``boot(host)`` restarts a
    crashed host's service. Each started nemesis stops at teardown, before the leak
    check, undoing the faults still in force. Skips the test on the real network."""
    if sockfake_network_kind == "real":
        pytest.skip("sockfake: a nemesis needs the simulated network")
    from sockfake.sim.nemesis import start_nemesis

    options = _options_for(request.node).nemesis or {}
    started: list[Any] = []

    def start(boot: Callable[[str], object] | None = None, hosts: Any = None,
              schedule: Any = None) -> Any:
        nemesis = start_nemesis(sockfake_network, options, boot, hosts, schedule)
        started.append(nemesis)
        return nemesis

    yield start
    for nemesis in reversed(started):
        nemesis.stop()


def _testbed(request: pytest.FixtureRequest) -> Testbed:
    request.getfixturevalue("sockfake_network")
    bed: Testbed = request.node.stash[_bed_key]
    return bed


class _ServerFactory:
    """What ``tcp_server`` and friends return: call it to start a server.

    A class rather than a closure so a failing test's report shows
    ``<tcp_server factory on SimNetwork(seed=..., ...)>`` for the fixture's value.
    """

    def __init__(self, bed: Testbed, method: str, fixture: str) -> None:
        self._start = getattr(bed, method)
        self._fixture = fixture
        self._bed = bed
        self.__doc__ = self._start.__doc__

    def __call__(self, handler: Any = None, **kwargs: Any) -> ServerHandle:
        handle: ServerHandle = self._start(handler, _fixture=self._fixture, **kwargs)
        return handle

    def __repr__(self) -> str:
        return f"<{self._fixture} factory on {self._bed.network!r}>"


_TCP_DOC = """Factory: ``tcp_server(Handler, **server_attributes)`` starts a TCP server.

    Serves in the background on the test's network (``concurrency='threading'``
    by default, or ``'pool'`` or ``'sync'``; ``server_class=`` for your own class,
    sockfake's or built on the stdlib's socketserver; ``server_factory=`` instead of a
    handler, a callable ``(host, port) -> server`` for other constructors;
    ``host="db"`` to place it on a simulated host; ``serve=False`` to call
    ``handle_request()`` yourself; ``poll_interval`` defaults
    to None, so an idle simulated server waits without ticking the clock and a
    deadlock is reported as one). Keyword attributes
    become class attributes of the server (``daemon_threads=True``...), so they
    apply during construction. Returns a handle with ``.address``, ``.server`` and
    ``.connect()``. Stopped and checked at teardown.
    """
_UDP_DOC = """Factory: ``udp_server(Handler, **server_attributes)`` starts a UDP server.

    Like ``tcp_server``; the handle has ``.address``, ``.server`` and ``.client()``
    (a datagram socket on the same network, closed at teardown).
    """
_UNIX_STREAM_DOC = """Factory: ``unix_stream_server(Handler, ...)`` starts a Unix stream server.

    On a fresh path (in the simulated namespace, or a temporary directory on the
    real network); the handle has ``.address``, ``.server`` and ``.connect()``.
    """
_UNIX_DATAGRAM_DOC = """Factory: ``unix_datagram_server(Handler, ...)``: a Unix datagram server.

    The handle's ``.client()`` is bound to its own path, so replies reach it.
    """

# The server fixtures, one row each: fixture name -> (Testbed method, docstring). Every
# factory also exists under a ``sockfake_`` name, to avoid clashes with other plugins.
_SERVER_FIXTURES: dict[str, tuple[str, str]] = {}
for _method, _doc in (
    ("tcp_server", _TCP_DOC),
    ("udp_server", _UDP_DOC),
    ("unix_stream_server", _UNIX_STREAM_DOC),
    ("unix_datagram_server", _UNIX_DATAGRAM_DOC),
):
    _SERVER_FIXTURES[_method] = (_method, _doc)
    _SERVER_FIXTURES[f"sockfake_{_method}"] = (_method, f"Same as ``{_method}``.\n\n    {_doc}")


def _server_fixture(name: str, method: str, doc: str) -> Any:
    def fixture(
        request: pytest.FixtureRequest, sockfake_network: Any
    ) -> Callable[..., ServerHandle]:
        return _ServerFactory(_testbed(request), method, name)

    fixture.__name__ = fixture.__qualname__ = name
    fixture.__doc__ = doc
    return pytest.fixture(name=name)(fixture)


for _name, (_method, _doc) in _SERVER_FIXTURES.items():
    globals()[_name] = _server_fixture(_name, _method, _doc)


@pytest.fixture(scope="session")
def sockfake_network_factory() -> Callable[..., contextlib.AbstractContextManager[Testbed]]:
    """Factory of fresh testbeds, for ``@given`` tests and loops.

    ``with sockfake_network_factory(seed=seed, loss=0.2) as bed:`` gives a
    :class:`~sockfake.pytest_plugin.Testbed` with ``.network``, ``.tcp_server()``,
    ``.udp_server()``...; it is closed and checked (handler errors, leaks) at the end
    of the block. Session-scoped, so Hypothesis' function-scoped-fixture health
    check does not object; draw the seed from Hypothesis to make it shrinkable.
    The interception's patches stay between two testbeds (``linger=True``), as between
    intercepted tests: installed once for a test's examples, taken away before the next
    test that does not intercept and at the session's end.
    """
    return functools.partial(open_testbed, linger=True)

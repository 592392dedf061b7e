"""pytest plugin for sockfake: server fixtures on a simulated (or real) network.

Registered through the ``pytest11`` entry point; ``-p no:sockfake`` disables it.
Importing it is cheap: the simulation (``sockfake.sim``) loads only when a test asks
for a simulated network.

Fixtures: ``sockfake_network`` (the test's network), ``tcp_server``, ``udp_server``,
``unix_stream_server``, ``unix_datagram_server`` (factories that start a server and
return a :class:`ServerHandle`), the same under ``sockfake_*`` names, and
``sockfake_network_factory`` (fresh networks inside ``@given`` or loops).

Configuration, lowest precedence first: ini keys ``sockfake_network``,
``sockfake_seed``, ``sockfake_trace``; environment variables ``SOCKFAKE_NETWORK``,
``SOCKFAKE_SEED``, ``SOCKFAKE_TRACE``; options ``--sockfake-network=sim|real|both``,
``--sockfake-seed=N|last|random``, ``--sockfake-trace=fail|always|off``; and the
``@pytest.mark.sockfake(...)`` marker on the test (closest marker wins).

Every simulated test's seed is derived from the session's base seed and the test's
node id (sha256, so it does not depend on test order, ``-k``, xdist placement or
``PYTHONHASHSEED``). A failing test's report carries the seed, the virtual time, the
last trace events, the trace digest, and the command that reproduces it.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
import random
import shlex
import shutil
import socket
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from sockfake.sim import SimNetwork

__all__ = [
    "ServerHandle",
    "Testbed",
    "TestbedError",
    "derive_seed",
    "sim_network",
    "sockfake_testbed",
]

_NETWORK_MODES = ("sim", "real", "both")
_TRACE_MODES = ("fail", "always", "off")
_LINK_KEYS = (
    "latency",
    "jitter",
    "bandwidth",
    "loss",
    "burst_loss",
    "duplicate",
    "reorder",
    "corrupt",
    "chunk",
)
_MARKER_KEYS = (
    "network",
    "seed",
    "time_limit",
    "scheduling",
    "stall_timeout",
    "handler_errors",
    *_LINK_KEYS,
)
_TRACE_LINES = 30
# A virtual-time limit for simulated tests, so a clock that runs away (a loop that
# polls forever) fails in about a second of real time; the marker's time_limit=
# changes it, time_limit=None removes it.
_DEFAULT_TIME_LIMIT = 86400.0
_DEFAULT_TIMEOUT = 60.0
# Bounds for stopping servers at teardown: virtual seconds on the simulation (cheap),
# real seconds on the real network.
_STOP_TIMEOUT = {"sim": 60.0, "real": 5.0}
_CACHE_KEY = "sockfake/base_seed"
_SEED_LIMIT = 1 << 32


class TestbedError(AssertionError):
    """A testbed closed with problems: handler errors, leaked threads or sockets."""

    __test__ = False  # not a test class, whatever pytest's naming rules say


def derive_seed(base_seed: int, node_id: str) -> int:
    """A test's seed: a stable function of the session's base seed and the test's id."""
    digest = hashlib.sha256(f"{base_seed}\0{node_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


# -- settings -----------------------------------------------------------------------------


@dataclass
class _Settings:
    network: str
    base_seed: int
    seed_origin: str
    trace: str
    rootpath: Path
    invocation_dir: Path


@dataclass
class _TestOptions:
    network: str  # sim, real or both (both: the test is parametrized)
    seed: int | None  # from the marker; None: derived from the base seed
    conditions: dict[str, Any] = field(default_factory=dict)
    time_limit: float | None = _DEFAULT_TIME_LIMIT
    scheduling: str = "fifo"
    stall_timeout: float = 10.0
    handler_errors: str = "fail"


_settings_key = pytest.StashKey[_Settings]()
_options_key = pytest.StashKey[_TestOptions]()
_bed_key = pytest.StashKey["Testbed"]()
_call_failed_key = pytest.StashKey[bool]()
_ran_tests_key = pytest.StashKey[bool]()


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
    parser.addini("sockfake_network", "default network for sockfake fixtures: sim|real|both")
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
        return str(value).strip(), f"--sockfake-{name}"
    env = os.environ.get(f"SOCKFAKE_{name.upper()}", "").strip()
    if env:
        return env, f"SOCKFAKE_{name.upper()}"
    ini = str(config.getini(f"sockfake_{name}") or "").strip()
    if ini:
        return ini, f"ini sockfake_{name}"
    return None, "default"


def _choice(config: pytest.Config, name: str, choices: tuple[str, ...], default: str) -> str:
    value, origin = _setting(config, name)
    if value is None:
        return default
    if value not in choices:
        raise pytest.UsageError(f"sockfake: {origin}={value!r} is not one of {', '.join(choices)}")
    return value


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
    except ValueError:
        raise pytest.UsageError(
            f"sockfake: {origin}={value!r} is not an integer, 'last' or 'random'"
        ) from None
    if seed < 0:
        raise pytest.UsageError(f"sockfake: {origin}={value!r} must be non-negative")
    return seed, f"from {origin}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "sockfake(network=, seed=, loss=, duplicate=, reorder=, latency=, jitter=, "
        "bandwidth=, burst_loss=, corrupt=, chunk=, time_limit=, scheduling=, "
        "stall_timeout=, handler_errors='fail'|'ignore'): configure the sockfake "
        "network of this test",
    )
    network = _choice(config, "network", _NETWORK_MODES, "sim")
    trace = _choice(config, "trace", _TRACE_MODES, "fail")
    base_seed, origin = _base_seed(config)
    config.stash[_settings_key] = _Settings(
        network=network,
        base_seed=base_seed,
        seed_origin=origin,
        trace=trace,
        rootpath=Path(str(config.rootpath)),
        invocation_dir=Path(str(config.invocation_params.dir)),
    )


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
        f"({settings.seed_origin}), trace={settings.trace}"
    )


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


def _number(key: str, value: Any, *, positive: bool) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (value > 0 if positive else value >= 0)
    ):
        kind = "a positive" if positive else "a non-negative"
        raise ValueError(f"{key}={value!r} must be {kind} number")
    return float(value)


def _parse_marker(kwargs: dict[str, Any], default_network: str) -> _TestOptions:
    """Validated test options; ValueError with a message that names the key."""
    unknown = sorted(set(kwargs) - set(_MARKER_KEYS))
    if unknown:
        raise ValueError(
            f"unknown key(s) {', '.join(unknown)}; known keys: {', '.join(_MARKER_KEYS)}"
        )
    options = _TestOptions(network=default_network, seed=None)
    if "network" in kwargs:
        if kwargs["network"] not in _NETWORK_MODES:
            raise ValueError(
                f"network={kwargs['network']!r} is not one of {', '.join(_NETWORK_MODES)}"
            )
        options.network = kwargs["network"]
    if "seed" in kwargs:
        seed = kwargs["seed"]
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed={seed!r} must be a non-negative integer")
        options.seed = seed
    if "time_limit" in kwargs:
        options.time_limit = None
    if kwargs.get("time_limit") is not None:
        options.time_limit = _number("time_limit", kwargs["time_limit"], positive=True)
    if "stall_timeout" in kwargs:
        options.stall_timeout = _number("stall_timeout", kwargs["stall_timeout"], positive=True)
    if "scheduling" in kwargs:
        if kwargs["scheduling"] not in ("fifo", "random"):
            raise ValueError(f"scheduling={kwargs['scheduling']!r} is not one of fifo, random")
        options.scheduling = kwargs["scheduling"]
    if "handler_errors" in kwargs:
        if kwargs["handler_errors"] not in ("fail", "ignore"):
            raise ValueError(
                f"handler_errors={kwargs['handler_errors']!r} is not one of fail, ignore"
            )
        options.handler_errors = kwargs["handler_errors"]
    conditions = {key: kwargs[key] for key in _LINK_KEYS if key in kwargs}
    if conditions:
        from sockfake.sim.links import LinkConditions

        try:
            LinkConditions(**conditions)
        except (TypeError, ValueError) as exc:
            raise ValueError(str(exc).replace("LinkConditions.", "")) from None
        options.conditions = conditions
    return options


def _options_for(item: Any) -> _TestOptions:
    options: _TestOptions | None = item.stash.get(_options_key, None)
    if options is None:
        settings = item.config.stash[_settings_key]
        try:
            options = _parse_marker(_marker_kwargs(item), settings.network)
        except ValueError as exc:
            message = f"{item.nodeid}: @pytest.mark.sockfake: {exc}"
            if not _is_xdist_worker(item.config):
                raise pytest.UsageError(message) from None
        else:
            item.stash[_options_key] = options
            return options
        # A usage error raised on an xdist worker reaches the user as the controller's
        # INTERNALERROR; failing the test (outside the except block) carries the message.
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
        network = _parse_marker(_marker_kwargs(metafunc.definition), settings.network).network
    except ValueError:
        return  # reported, with the test's id, at the end of collection (or at set-up)
    if network == "both":
        metafunc.parametrize("sockfake_network_kind", ["sim", "real"], indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    timeout = _default_timeout(config)
    worker = _is_xdist_worker(config)
    for item in items:
        if item.get_closest_marker("sockfake") is None and not _uses_sockfake(item):
            continue
        if not worker:
            _options_for(item)  # a bad marker is a usage error, reported now
        if timeout is not None and _uses_sockfake(item):
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(timeout))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """On an xdist worker, a bad marker fails its test at set-up, naming the marker."""
    if item.get_closest_marker("sockfake") is not None:
        _options_for(item)


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
    except ValueError:
        raise pytest.UsageError(f"sockfake: ini sockfake_timeout={raw!r} is not a number")
    return value if value > 0 else None


# -- reports ------------------------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    excinfo = call.excinfo
    if excinfo is not None and _raised_by_the_simulation(excinfo.value):
        _hide_simulation_frames()
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call":
        item.stash[_call_failed_key] = report.failed
    bed = item.stash.get(_bed_key, None)
    if bed is None:
        return
    settings = item.config.stash[_settings_key]
    if not report.failed and not (settings.trace == "always" and report.when == "call"):
        return
    text = _report_text(item, bed, settings)
    longrepr = report.longrepr
    if hasattr(longrepr, "addsection"):
        longrepr.addsection("sockfake", text)
    else:
        report.sections.append(("sockfake", text))


def _is_simulation_error(error: BaseException) -> bool:
    sim = sys.modules.get("sockfake.sim.kernel")
    return sim is not None and isinstance(error, sim.SimulationError)


def _raised_by_the_simulation(error: BaseException) -> bool:
    """A SimulationError, or an OSError a simulated socket raised as the OS would."""
    return _is_simulation_error(error) or (
        isinstance(error, OSError) and "sockfake.sim" in sys.modules
    )


def _hide_simulation_frames() -> None:
    """Hide the simulation's own frames from tracebacks of the errors it raises.

    A SimulationError's message carries the scheduler's dump, and an OSError
    (``TimeoutError``, ``ConnectionResetError``...) from a simulated socket stands
    for one from the kernel, which shows no frames on a real socket: the
    simulation's frames between the test's call and the raise are noise. pytest
    honours a module-level ``__tracebackhide__`` callable; other errors keep their
    full traceback, and ``--full-trace`` shows everything.
    """

    def hide(excinfo: Any) -> bool:
        return excinfo is not None and _raised_by_the_simulation(excinfo.value)

    for name, module in list(sys.modules.items()):
        if name.startswith("sockfake.sim.") and module is not None:
            vars(module).setdefault("__tracebackhide__", hide)


def _reproduce_command(item: pytest.Item, settings: _Settings) -> str:
    path, sep, rest = item.nodeid.partition("::")
    target = os.path.relpath(settings.rootpath / path, settings.invocation_dir) + sep + rest
    parts = ["pytest", shlex.quote(target), f"--sockfake-seed={settings.base_seed}"]
    if settings.network != "sim":
        parts.append(f"--sockfake-network={settings.network}")
    return " ".join(parts)


def _report_text(item: pytest.Item, bed: Testbed, settings: _Settings) -> str:
    lines = []
    if bed.kind == "sim":
        net = bed.network
        options = _options_for(item)
        origin = (
            "from the marker"
            if options.seed is not None
            else f"derived from base seed {settings.base_seed} and the test id"
        )
        lines.append(f"simulated network, seed {bed.seed} ({origin})")
        trace = net.trace
        lines.append(
            f"virtual time {net.kernel.now:.6f} s, {len(trace)} trace events, "
            f"trace digest {trace.digest()}"
        )
        if settings.trace != "off" and trace.events:
            lines.append(f"last {min(_TRACE_LINES, len(trace.events))} trace events:")
            lines.append(trace.format(last=_TRACE_LINES))
    else:
        lines.append("real network (no seed, no trace)")
    lines.append(f"reproduce: {_reproduce_command(item, settings)}")
    return "\n".join(lines)


# -- servers ------------------------------------------------------------------------------


def _server_class(kind: str, concurrency: str) -> type[Any]:
    import sockfake

    names = {
        "tcp": ("TCPServer", "ThreadingTCPServer", "ThreadPoolTCPServer"),
        "udp": ("UDPServer", "ThreadingUDPServer", "ThreadPoolUDPServer"),
        "unix_stream": (
            "UnixStreamServer",
            "ThreadingUnixStreamServer",
            "ThreadPoolUnixStreamServer",
        ),
        "unix_datagram": (
            "UnixDatagramServer",
            "ThreadingUnixDatagramServer",
            "ThreadPoolUnixDatagramServer",
        ),
    }[kind]
    index = {"sync": 0, "threading": 1, "pool": 2}.get(concurrency)
    if index is None:
        raise ValueError(f"concurrency={concurrency!r} is not one of 'threading', 'pool', 'sync'")
    cls: type[Any] = getattr(sockfake, names[index])
    return cls


class ServerHandle:
    """A server started by a sockfake fixture: ``.address``, ``.server``, clients.

    ``connect()`` (stream servers) returns a connected client socket, ``client()``
    (datagram servers) a datagram socket, both on the server's network. The fixture
    closes these sockets and stops the server at teardown; :meth:`stop` does it early.
    """

    def __init__(self, testbed: Testbed, kind: str, server: Any, name: str, thread: Any) -> None:
        self.testbed = testbed
        self.kind = kind
        self.server = server
        self.name = name
        self.thread = thread
        self.network = testbed.network
        self.address: Any = server.server_address
        self.stopped = False

    def __repr__(self) -> str:
        return f"<ServerHandle {self.name} {type(self.server).__name__} at {self.address!r}>"

    @property
    def family(self) -> int:
        return int(self.server.address_family)

    def connect(self, timeout: float | None = None) -> Any:
        """A client socket connected to this (stream) server; closed at teardown."""
        if self.kind not in ("tcp", "unix_stream"):
            raise TypeError(f"{self.name}: a datagram server has no connect(); use client()")
        if self.kind == "tcp":
            sock = self.network.create_connection(self.address[:2], timeout)
        else:
            sock = self.network.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                if timeout is not None:
                    sock.settimeout(timeout)
                sock.connect(self.address)
            except BaseException:
                sock.close()
                raise
        self.testbed._clients.append(sock)
        return sock

    def client(self, timeout: float | None = None) -> Any:
        """A datagram socket on the server's network (Unix: bound, so replies reach it)."""
        if self.kind not in ("udp", "unix_datagram"):
            raise TypeError(f"{self.name}: a stream server has no client(); use connect()")
        sock = self.network.socket(self.family, socket.SOCK_DGRAM)
        try:
            if timeout is not None:
                sock.settimeout(timeout)
            if self.kind == "unix_datagram":
                sock.bind(self.testbed._unix_path("client"))
        except BaseException:
            sock.close()
            raise
        self.testbed._clients.append(sock)
        return sock

    def stop(self) -> list[str]:
        """Stop serving and close the server (idempotent); returns problems met."""
        if self.stopped:
            return []
        self.stopped = True
        problems = []
        bound = _STOP_TIMEOUT[self.testbed.kind]
        if self.thread is not None:
            if not self.server.shutdown(timeout=bound):
                problems.append(f"{self.name}: serve_forever() did not stop within {bound:g} s")
        close = self.server.server_close
        kwargs = {"timeout": bound} if "timeout" in inspect.signature(close).parameters else {}
        try:
            if self.testbed.kind == "real":
                problems.extend(self._close_within(close, kwargs, 2 * bound))
            else:
                close(**kwargs)  # a handler stuck on the simulation is a deadlock, reported
        finally:
            if self.thread is not None and not problems:
                self.thread.join(bound)
        return problems

    def _close_within(self, close: Callable[..., Any], kwargs: Any, bound: float) -> list[str]:
        """``server_close()`` on the real network, given up on after ``bound`` seconds.

        ``server_close(timeout=)`` aborts the connections of handlers still running
        after its timeout, but a handler blocked on something else (an event, a sleep,
        another server) keeps its thread alive and the join waiting: wait for that in
        a helper thread, so teardown stays bounded and the test says what is stuck.
        """
        import threading

        errors: list[BaseException] = []

        def run() -> None:
            try:
                close(**kwargs)
            except BaseException as exc:
                errors.append(exc)

        server = self.server
        # This server's handler threads (and pool workers): their target is bound to it.
        handlers = [
            t for t in threading.enumerate()
            if getattr(getattr(t, "_target", None), "__self__", None) is server
        ]
        closer = threading.Thread(target=run, name=f"sockfake-{self.name}-close", daemon=True)
        closer.start()
        closer.join(bound)
        if errors:
            raise errors[0]
        stuck = sorted(t.name for t in handlers if t.is_alive())
        if not closer.is_alive() and not stuck:
            return []
        # server_close(timeout=) gives up on a handler its abort cannot wake; without
        # a timeout parameter the close itself is what does not return.
        return [
            f"{self.name}: a handler is still running after server_close() "
            f"({bound:g} s), blocked outside its connection (threads alive: "
            f"{', '.join(stuck) or 'none'})"
        ]


def _starter(kind: str, doc: str) -> Callable[..., ServerHandle]:
    """One of Testbed's server starters (tcp_server, udp_server...), all alike."""

    def start(
        self: Testbed,
        handler: Any,
        *,
        address: Any = None,
        concurrency: str = "threading",
        server_class: type[Any] | None = None,
        serve: bool = True,
        poll_interval: float | None = None,
        _fixture: str = f"{kind}_server",
        **server_attributes: Any,
    ) -> ServerHandle:
        return self._start(
            kind,
            _fixture,
            handler,
            address,
            concurrency,
            server_class,
            serve,
            poll_interval,
            server_attributes,
        )

    start.__name__ = start.__qualname__ = f"{kind}_server"
    start.__doc__ = doc
    return start


class Testbed:
    """One network plus the servers and clients a test started on it.

    The fixtures build one per test; :func:`sockfake_testbed` builds one as a context manager
    (for ``@given`` and loops). :meth:`close` stops every server, then fails if a
    handler raised, or (on the simulated network) if a simulated thread or socket
    was left behind.
    """

    __test__ = False

    def __init__(
        self,
        network: Any,
        kind: str,
        *,
        seed: int | None = None,
        handler_errors: str = "fail",
    ) -> None:
        self.network = network
        self.kind = kind
        self.seed = seed
        self.handler_errors = handler_errors
        self.servers: list[ServerHandle] = []
        self.errors: list[str] = []
        self._clients: list[Any] = []
        self._tmpdir: str | None = None
        self._paths = 0
        self._names: dict[str, int] = {}
        self.closed = False

    def _unix_path(self, what: str) -> str:
        self._paths += 1
        if self.kind == "sim":
            return f"/sockfake/{what}-{self._paths}.sock"
        if self._tmpdir is None:
            self._tmpdir = tempfile.mkdtemp(prefix="sockfake-")
        return os.path.join(self._tmpdir, f"{what}-{self._paths}.sock")

    def _start(
        self,
        kind: str,
        fixture: str,
        handler: Any,
        address: Any,
        concurrency: str,
        server_class: type[Any] | None,
        serve: bool,
        poll_interval: float | None,
        attributes: dict[str, Any],
    ) -> ServerHandle:
        if self.closed:
            raise RuntimeError(f"{fixture}: the testbed is closed")
        if kind.startswith("unix") and not hasattr(socket, "AF_UNIX"):
            pytest.skip("Unix sockets are not available here")
        base = server_class if server_class is not None else _server_class(kind, concurrency)
        for name in attributes:
            if not hasattr(base, name):
                raise TypeError(f"{fixture}(): {base.__name__} has no attribute {name!r} to set")
        cls = type(base.__name__, (base,), dict(attributes)) if attributes else base
        if address is None:
            address = self._unix_path("server") if kind.startswith("unix") else ("127.0.0.1", 0)
        server = cls(address, handler, network=self.network)
        number = self._names[fixture] = self._names.get(fixture, 0) + 1
        name = fixture if number == 1 else f"{fixture}-{number}"
        self._watch_errors(server, name)
        thread = None
        if serve:
            thread = self.network.thread(
                target=server.serve_forever,
                args=(poll_interval,),
                name=f"sockfake-{name}-serve",
                daemon=True,
            )
            thread.start()
        handle = ServerHandle(self, kind, server, name, thread)
        self.servers.append(handle)
        return handle

    def _watch_errors(self, server: Any, name: str) -> None:
        original = server.handle_error
        errors = self.errors
        ignore = self.handler_errors == "ignore"

        def handle_error(request: Any, client_address: Any) -> Any:
            if not ignore:
                text = traceback.format_exc()
                errors.append(f"{name}: handler error for client {client_address!r}\n{text}")
            return original(request, client_address)

        server.handle_error = handle_error

    tcp_server = _starter(
        "tcp", "Start a TCP server (threading by default) serving in the background."
    )
    udp_server = _starter(
        "udp", "Start a UDP server (threading by default) serving in the background."
    )
    unix_stream_server = _starter(
        "unix_stream", "Start a Unix stream server on a fresh path, serving in the background."
    )
    unix_datagram_server = _starter(
        "unix_datagram", "Start a Unix datagram server on a fresh path, serving in the background."
    )

    def close(self, *, check_leaks: bool = True) -> list[str]:
        """Stop everything; return the problems (handler errors, leaks), if any."""
        if self.closed:
            return []
        self.closed = True
        problems: list[str] = []
        failed = self.kind == "sim" and self.network.kernel.failure is not None
        try:
            if failed:
                # The simulation already failed (deadlock, stall, time limit) and the
                # test saw it: unwind the simulated threads, then close quietly.
                self.network.close()
            for sock in self._clients:
                with contextlib.suppress(Exception):
                    sock.close()
            for handle in self.servers:
                if failed:
                    handle.stopped = True
                    with contextlib.suppress(Exception):
                        handle.server.socket.close()
                    continue
                try:
                    problems.extend(handle.stop())
                except Exception as exc:
                    problems.append(f"{handle.name}: stopping the server failed: {exc}")
                    break
            problems[:0] = self.errors
            if self.errors:
                problems.append(
                    "(handler errors fail the test; opt out with "
                    "@pytest.mark.sockfake(handler_errors='ignore'))"
                )
            if self.kind == "sim" and not failed and not self.network.closed:
                if check_leaks:
                    problems.extend(self._leaks())
                self.network.close()
        finally:
            if self.kind == "sim" and not self.network.closed:
                self.network.close()
            if self._tmpdir is not None:
                shutil.rmtree(self._tmpdir, ignore_errors=True)
        return problems

    def _leaks(self) -> list[str]:
        problems = []
        kernel = self.network.kernel
        threads = [t for t in kernel._threads if t is not kernel.root and t.state != "finished"]
        if threads:
            described = "; ".join(f"{t.name} ({_waiting_on(t)})" for t in threads)
            problems.append(f"leaked simulated thread(s), still running at teardown: {described}")
        sockets = self.network.open_sockets()
        if sockets:
            described = "; ".join(repr(s) for s in sockets)
            problems.append(f"leaked simulated socket(s), never closed: {described}")
        return problems


def _waiting_on(thread: Any) -> str:
    """What a simulated thread waits on (descriptions are built lazily by the kernel)."""
    if thread.state != "blocked":
        return str(thread.state)
    what = thread.waiting_on
    return str(what() if callable(what) else what)


def _make_network(
    kind: str,
    seed: int,
    options: _TestOptions,
) -> Any:
    if kind == "real":
        from sockfake.network import REAL_NETWORK

        return REAL_NETWORK
    from sockfake.sim import SimNetwork

    return SimNetwork(
        seed=seed,
        scheduling=options.scheduling,
        time_limit=options.time_limit,
        stall_timeout=options.stall_timeout,
        **options.conditions,
    )


@contextlib.contextmanager
def sockfake_testbed(
    network: str = "sim",
    *,
    seed: int = 0,
    handler_errors: str = "fail",
    time_limit: float | None = _DEFAULT_TIME_LIMIT,
    scheduling: str = "fifo",
    stall_timeout: float = 10.0,
    **conditions: Any,
) -> Iterator[Testbed]:
    """A fresh network with server helpers, closed and checked on exit.

    For ``@given`` tests and loops, where function-scoped fixtures are not reset
    between examples::

        with sockfake_testbed(seed=seed, loss=0.2) as bed:
            srv = bed.udp_server(Handler)
            ...

    On exit, a handler error or a leaked simulated thread or socket raises
    :class:`TestbedError` (unless the block already raised).
    """
    kwargs = dict(conditions)
    for key, value in (
        ("network", network),
        ("seed", seed),
        ("scheduling", scheduling),
        ("handler_errors", handler_errors),
        ("stall_timeout", stall_timeout),
    ):
        kwargs[key] = value
    kwargs["time_limit"] = time_limit
    options = _parse_marker(kwargs, "sim")
    if options.network == "both":
        raise ValueError("sockfake_testbed(network='both'): pick 'sim' or 'real'")
    net = _make_network(options.network, seed, options)
    bed = Testbed(
        net,
        options.network,
        seed=seed if options.network == "sim" else None,
        handler_errors=options.handler_errors,
    )
    try:
        yield bed
    except BaseException:
        bed.close(check_leaks=False)
        raise
    problems = bed.close()
    if problems:
        raise TestbedError("\n".join(problems))


@contextlib.contextmanager
def sim_network(seed: int = 0, **options: Any) -> Iterator[SimNetwork]:
    """A fresh ``SimNetwork`` (keyword link conditions as the marker's), closed on exit.

    Servers started on it are yours to stop; use :func:`sockfake_testbed` for servers that
    stop themselves and for handler-error and leak checks.
    """
    with sockfake_testbed("sim", seed=seed, **options) as bed:
        yield bed.network


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def sockfake_network_kind(request: pytest.FixtureRequest) -> str:
    """``"sim"`` or ``"real"``: the network this test runs on.

    Chosen by ``--sockfake-network`` (and its ini key and env var) or the test's
    ``@pytest.mark.sockfake(network=...)``; with ``both`` the test is parametrized.
    """
    param = getattr(request, "param", None)
    if param is not None:
        return str(param)
    network = _options_for(request.node).network
    return "sim" if network == "both" else network


@pytest.fixture
def sockfake_network(request: pytest.FixtureRequest, sockfake_network_kind: str) -> Iterator[Any]:
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
    seed = (
        options.seed if options.seed is not None else derive_seed(settings.base_seed, item.nodeid)
    )
    kind = sockfake_network_kind
    if kind == "real" and options.conditions:
        # Loopback cannot lose, delay or re-chunk on demand: running the test there
        # would pass or fail for reasons that have nothing to do with its marker.
        wanted = ", ".join(f"{key}={value!r}" for key, value in options.conditions.items())
        pytest.skip(f"sockfake: link conditions ({wanted}) need the simulated network")
    net = _make_network(kind, seed, options)
    bed = Testbed(
        net, kind, seed=seed if kind == "sim" else None, handler_errors=options.handler_errors
    )
    item.stash[_bed_key] = bed
    try:
        with use_network(net):
            yield net
    finally:
        call_failed = item.stash.get(_call_failed_key, False)
        problems = bed.close(check_leaks=not call_failed)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


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

    def __call__(self, handler: Any, **kwargs: Any) -> ServerHandle:
        return self._start(handler, _fixture=self._fixture, **kwargs)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"<{self._fixture} factory on {self._bed.network!r}>"


def _factory(request: pytest.FixtureRequest, method: str, fixture: str) -> Callable[..., Any]:
    return _ServerFactory(_testbed(request), method, fixture)


@pytest.fixture
def sockfake_tcp_server(
    request: pytest.FixtureRequest, sockfake_network: Any
) -> Callable[..., ServerHandle]:
    """Factory: ``sockfake_tcp_server(Handler, **server_attributes)`` -> ServerHandle.

    Same as ``tcp_server`` (this name avoids clashes with other plugins).
    """
    return _factory(request, "tcp_server", "sockfake_tcp_server")


@pytest.fixture
def tcp_server(
    request: pytest.FixtureRequest, sockfake_network: Any
) -> Callable[..., ServerHandle]:
    """Factory: ``tcp_server(Handler, **server_attributes)`` starts a TCP server.

    Serves in the background on the test's network (``concurrency='threading'``
    by default, or ``'pool'`` or ``'sync'``; ``server_class=`` for your own class;
    ``serve=False`` to call ``handle_request()`` yourself; ``poll_interval`` defaults
    to None, so an idle simulated server waits without ticking the clock and a
    deadlock is reported as one). Keyword attributes
    become class attributes of the server (``daemon_threads=True``...), so they
    apply during construction. Returns a handle with ``.address``, ``.server`` and
    ``.connect()``. Stopped and checked at teardown.
    """
    return _factory(request, "tcp_server", "tcp_server")


@pytest.fixture
def sockfake_udp_server(
    request: pytest.FixtureRequest, sockfake_network: Any
) -> Callable[..., ServerHandle]:
    """Factory: ``sockfake_udp_server(Handler, **server_attributes)``; same as ``udp_server``."""
    return _factory(request, "udp_server", "sockfake_udp_server")


@pytest.fixture
def udp_server(
    request: pytest.FixtureRequest, sockfake_network: Any
) -> Callable[..., ServerHandle]:
    """Factory: ``udp_server(Handler, **server_attributes)`` starts a UDP server.

    Like ``tcp_server``; the handle has ``.address``, ``.server`` and ``.client()``
    (a datagram socket on the same network, closed at teardown).
    """
    return _factory(request, "udp_server", "udp_server")


@pytest.fixture
def sockfake_unix_stream_server(
    request: pytest.FixtureRequest, sockfake_network: Any
) -> Callable[..., ServerHandle]:
    """Factory: same as ``unix_stream_server``."""
    return _factory(request, "unix_stream_server", "sockfake_unix_stream_server")


@pytest.fixture
def unix_stream_server(
    request: pytest.FixtureRequest, sockfake_network: Any
) -> Callable[..., ServerHandle]:
    """Factory: ``unix_stream_server(Handler, ...)`` starts a Unix stream server.

    On a fresh path (in the simulated namespace, or a temporary directory on the
    real network); the handle has ``.address``, ``.server`` and ``.connect()``.
    """
    return _factory(request, "unix_stream_server", "unix_stream_server")


@pytest.fixture
def sockfake_unix_datagram_server(
    request: pytest.FixtureRequest, sockfake_network: Any
) -> Callable[..., ServerHandle]:
    """Factory: same as ``unix_datagram_server``."""
    return _factory(request, "unix_datagram_server", "sockfake_unix_datagram_server")


@pytest.fixture
def unix_datagram_server(
    request: pytest.FixtureRequest, sockfake_network: Any
) -> Callable[..., ServerHandle]:
    """Factory: ``unix_datagram_server(Handler, ...)`` starts a Unix datagram server.

    The handle's ``.client()`` is bound to its own path, so replies reach it.
    """
    return _factory(request, "unix_datagram_server", "unix_datagram_server")


@pytest.fixture(scope="session")
def sockfake_network_factory() -> Callable[..., contextlib.AbstractContextManager[Testbed]]:
    """Factory of fresh testbeds, for ``@given`` tests and loops.

    ``with sockfake_network_factory(seed=seed, loss=0.2) as bed:`` gives a
    :class:`~sockfake.pytest_plugin.Testbed` with ``.network``, ``.tcp_server()``,
    ``.udp_server()``...; it is closed and checked (handler errors, leaks) at the end
    of the block. Session-scoped, so Hypothesis' function-scoped-fixture health
    check does not object; draw the seed from Hypothesis to make it shrinkable.
    """
    return sockfake_testbed

"""A test network's settings: the marker's keys, validated, and handler-error policy.

The pytest marker (``@pytest.mark.sockfake(...)``), ``open_testbed(...)`` and
``--sockfake-*`` options all come through :func:`parse_options`, which returns a
:class:`NetworkSettings` or raises ``SockfakeValueError``/``SockfakeTypeError`` naming
the key. Nothing here imports pytest or the simulation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_args

from sockfake.errors import SockfakeTypeError, SockfakeValueError

if TYPE_CHECKING:
    from sockfake.sim.kernel.backends import BackendName
    from sockfake.sim.kernel.scheduling import SchedulingPolicy, SwitchPoints

__all__ = [
    "DEFAULT_TIME_LIMIT",
    "MAX_EXPLORE",
    "LINK_KEYS",
    "NETWORK_MODES",
    "OPTION_KEYS",
    "PEER_GONE",
    "HandlerErrorPolicy",
    "HandlerErrors",
    "NetworkKind",
    "NetworkMode",
    "NetworkSettings",
    "ignored_errors",
    "parse_options",
]

# The network a test runs on; the marker's network= may also say both (the test is
# parametrized, one item per network).
NetworkKind = Literal["sim", "real"]
NetworkMode = Literal["sim", "real", "both"]
NETWORK_MODES: tuple[NetworkMode, ...] = get_args(NetworkMode)
LINK_KEYS = (
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
OPTION_KEYS = (
    "network",
    "seed",
    "time_limit",
    "scheduling",
    "stall_timeout",
    "spin_budget",
    "handler_errors",
    "intercept",
    "seed_entropy",
    "allow_real",
    "nemesis",
    "explore",
    "preemption_bound",
    "switch_points",
    "pct_depth",
    "pct_steps",
    "switch_packages",
    "pin_cpu",
    "backend",
    "trace_limit",
    *LINK_KEYS,
)
# A virtual-time limit for simulated tests, so a clock that runs away (a loop that
# polls forever) fails in about a second of real time; the marker's time_limit=
# changes it, time_limit=None removes it.
DEFAULT_TIME_LIMIT = 86400.0
# Upper bounds of the keys (documented in docs/how-to/hardening.md): far above
# any sensible test, below where a value hangs or breaks the run later (explore=10**7
# made collection hang; time_limit=inf failed inside the fixture).
MAX_TIME_LIMIT = 1e9  # virtual seconds, about 31 years; None: no limit
MAX_STALL_TIMEOUT = 3600.0  # real seconds
# Virtual time a thread's clock reads with nothing scheduled may be charged before its
# loop is a spin (SimNetwork's spin_budget; sockfake.sim.kernel.core's
# DEFAULT_SPIN_BUDGET, pinned equal by a test: this module imports nothing of the
# simulation).
DEFAULT_SPIN_BUDGET = 60.0
MAX_SPIN_BUDGET = MAX_TIME_LIMIT
MAX_EXPLORE = 10_000  # schedules, one pytest item each
MAX_PREEMPTION_BOUND = 10  # explore="systematic": the schedules grow as n**bound
# explore="systematic" in one item: the schedules it runs at most before it says it
# stopped short (a test too big to exhaust fails instead of running for hours).
SYSTEMATIC_MAX_SCHEDULES = 10_000
MAX_PCT_DEPTH = 1000
MAX_PCT_STEPS = 10_000_000  # decisions a PCT run spreads its change points over
MAX_TRACE_LIMIT = 10**9  # events; trace_limit=None keeps every event
# SimNetwork's default trace ring (sockfake.sim.trace.recorder.DEFAULT_TRACE_LIMIT,
# pinned equal by a test): this module imports nothing of the simulation.
DEFAULT_TRACE_LIMIT = 100_000
MAX_SEED = 2**64 - 1
MAX_DELAY = 86400.0  # latency, jitter: virtual seconds
MAX_CHUNK = 1 << 30  # bytes
_BOUNDS: dict[str, float] = {
    "time_limit": MAX_TIME_LIMIT,
    "stall_timeout": MAX_STALL_TIMEOUT,
    "spin_budget": MAX_SPIN_BUDGET,
}


# handler_errors: a policy name, or the exception classes to ignore.
HandlerErrorPolicy = Literal["fail", "strict", "ignore"]
HandlerErrors = HandlerErrorPolicy | type[BaseException] | tuple[type[BaseException], ...]
# The peer went away: routine for a server, which logs it and goes on.
PEER_GONE: tuple[type[BaseException], ...] = (
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
)
_POLICIES: dict[HandlerErrorPolicy, tuple[type[BaseException], ...]] = {
    "fail": PEER_GONE,
    "strict": (),
    "ignore": (BaseException,),
}


@dataclass
class NetworkSettings:
    """A test's network settings, validated (see :func:`parse_options`)."""

    network: NetworkMode  # both: the test is parametrized
    seed: int | None  # from the marker; None: derived from the base seed
    conditions: dict[str, Any] = field(default_factory=dict)
    time_limit: float | None = DEFAULT_TIME_LIMIT
    scheduling: SchedulingPolicy = "fifo"
    stall_timeout: float = 10.0
    spin_budget: float = DEFAULT_SPIN_BUDGET
    handler_errors: HandlerErrors = "fail"
    # Simulated tests: the stdlib's socket, time, threading... are the simulation in
    # its threads (SimNetwork.intercept()); real clients and sleeps just work.
    intercept: bool = True
    # Under interception, library entropy (os.urandom, secrets, uuid4, random) draws
    # from the seed, so a seed replays third-party protocol bytes too.
    seed_entropy: bool = True
    # Real endpoints C code may use on purpose (the stray-socket detector's opt-out:
    # sockfake.sim.intercept.allow_real), validated; None: the ini option's, or none.
    allow_real: Any = None
    explore: int | None = None  # run under this many schedules (one pytest item each)
    # explore="systematic": every schedule with at most preemption_bound preemptions,
    # in one item (explore stays None).
    systematic: bool = False
    preemption_bound: int = 2
    # None: "calls", or under a swarm drawn per seed.
    switch_points: SwitchPoints | None = None
    pct_depth: int | None = None  # None: 3, or under a swarm drawn per seed
    pct_steps: int | None = None  # None: fitted to the run as it goes
    # Installed packages whose code gets line/opcode switch points too (by top name).
    switch_packages: tuple[str, ...] = ()
    pin_cpu: bool = True  # the simulation's threads on one CPU (sockfake.sim.kernel.cpu_pin)
    # What simulated threads run on (sockfake.sim.kernel.backends); None: the session's.
    backend: BackendName | None = None
    # The sockfake_nemesis fixture's schedule: random_schedule's keywords (None: no key).
    nemesis: dict[str, Any] | None = None
    trace_limit: int | None = DEFAULT_TRACE_LIMIT  # events the trace keeps; None: all


def ignored_errors(policy: HandlerErrors) -> tuple[type[BaseException], ...]:
    """The handler exceptions that do not fail the test under ``policy``.

    - ``"fail"`` (default): every error fails, except the peer going away
      (``ConnectionResetError``, ``BrokenPipeError``, ``ConnectionAbortedError``): a
      client that hangs up mid-request is routine, and servers log it and go on.
    - ``"strict"``: every error fails, the peer going away too.
    - ``"ignore"``: none fails.
    - an exception class, or a tuple of them: exactly those are ignored.
    """
    if isinstance(policy, str):
        if policy not in _POLICIES:
            raise SockfakeValueError(
                f"handler_errors={policy!r} is not one of {', '.join(_POLICIES)}, "
                "or an exception class or tuple of them"
            )
        return _POLICIES[policy]
    classes = policy if isinstance(policy, tuple) else (policy,)
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            raise SockfakeTypeError(
                f"handler_errors={policy!r}: {cls!r} is not an exception class"
            )
    return classes


def _number(key: str, value: Any, *, positive: bool) -> float:
    maximum = _BOUNDS[key]
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (value > 0 if positive else value >= 0)
        or not value <= maximum  # also refuses nan and inf
    ):
        kind = "a positive" if positive else "a non-negative"
        raise SockfakeValueError(f"{key}={value!r} must be {kind} number up to {maximum:g}")
    return float(value)


_Choice = TypeVar("_Choice", bound=str)


def _one_of(kwargs: dict[str, Any], key: str, choices: tuple[_Choice, ...]) -> _Choice:
    value = kwargs[key]
    if value not in choices:
        raise SockfakeValueError(f"{key}={value!r} is not one of {', '.join(choices)}")
    return choices[choices.index(value)]


def _count(kwargs: dict[str, Any], key: str, expected: str, maximum: int) -> int:
    value = kwargs[key]
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise SockfakeValueError(f"{key}={value!r} must be {expected}, at most {maximum}")
    return value


def _flag(kwargs: dict[str, Any], key: str) -> bool:
    value = kwargs[key]
    if not isinstance(value, bool):
        raise SockfakeTypeError(f"{key}={value!r} must be True or False")
    return value


def _systematic(kwargs: dict[str, Any], options: NetworkSettings) -> None:
    """explore="systematic", its preemption_bound, and the scheduling it implies."""
    if kwargs.get("scheduling", "systematic") != "systematic":
        raise SockfakeValueError(
            f"explore=\"systematic\" chooses every decision itself: scheduling="
            f"{kwargs['scheduling']!r} cannot be set with it"
        )
    options.systematic = True
    options.scheduling = "systematic"
    if "preemption_bound" in kwargs:
        bound = kwargs["preemption_bound"]
        if isinstance(bound, bool) or not isinstance(bound, int) or not (
                0 <= bound <= MAX_PREEMPTION_BOUND):
            raise SockfakeValueError(
                f"preemption_bound={bound!r} must be an int from 0 to "
                f"{MAX_PREEMPTION_BOUND} (the schedules grow as threads ** bound)"
            )
        options.preemption_bound = bound


def parse_options(
    kwargs: dict[str, Any], default_network: NetworkMode = "sim"
) -> NetworkSettings:
    """Validated settings from the marker's keywords (or :func:`open_testbed`'s).

    A bad value raises ``SockfakeValueError`` (a ``ValueError``) naming the key.
    """
    unknown = sorted(set(kwargs) - set(OPTION_KEYS))
    if unknown:
        raise SockfakeValueError(
            f"unknown key(s) {', '.join(unknown)}; known keys: {', '.join(OPTION_KEYS)}"
        )
    options = NetworkSettings(network=default_network, seed=None)
    if "network" in kwargs:
        options.network = _one_of(kwargs, "network", NETWORK_MODES)
    if "seed" in kwargs:
        seed = kwargs["seed"]
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise SockfakeValueError(
                f"seed={seed!r} must be a non-negative integer, at most 2**64 - 1"
            )
        options.seed = seed
    if "time_limit" in kwargs:
        options.time_limit = None
    if kwargs.get("time_limit") is not None:
        options.time_limit = _number("time_limit", kwargs["time_limit"], positive=True)
    if "stall_timeout" in kwargs:
        options.stall_timeout = _number("stall_timeout", kwargs["stall_timeout"], positive=True)
    if "spin_budget" in kwargs:
        options.spin_budget = _number("spin_budget", kwargs["spin_budget"], positive=False)
    from sockfake.sim.kernel.scheduling import POLICIES, SWITCH_POINTS

    if "scheduling" in kwargs:
        options.scheduling = _one_of(kwargs, "scheduling", POLICIES)
    if "switch_points" in kwargs:
        options.switch_points = _one_of(kwargs, "switch_points", SWITCH_POINTS)
    if "pct_depth" in kwargs:
        options.pct_depth = _count(kwargs, "pct_depth", "an int of at least 1", MAX_PCT_DEPTH)
    if kwargs.get("pct_steps") is not None:  # None: fitted to the run
        options.pct_steps = _count(
            kwargs, "pct_steps", "an int of at least 1 (or None: fitted to the run)",
            MAX_PCT_STEPS,
        )
    if "switch_packages" in kwargs:
        names = kwargs["switch_packages"]
        if isinstance(names, str) or not isinstance(names, (list, tuple)) or not all(
                isinstance(name, str) and name for name in names):
            raise SockfakeValueError(
                f"switch_packages={names!r} must be a list of installed packages' names "
                "(('requests',)), whose code then gets line and opcode switch points too"
            )
        options.switch_packages = tuple(names)
    if kwargs.get("explore") == "systematic":
        _systematic(kwargs, options)
    elif "preemption_bound" in kwargs:
        raise SockfakeValueError(
            "preemption_bound= is the bound of explore=\"systematic\", which this marker "
            f"does not set (explore={kwargs.get('explore')!r})"
        )
    elif "explore" in kwargs and kwargs["explore"] is not None:
        options.explore = _count(
            kwargs, "explore", "a number of schedules, >= 1, or \"systematic\"", MAX_EXPLORE
        )
        if "scheduling" not in kwargs:
            # Each schedule draws its policy, switch points and PCT depth from its seed
            # (exploring under FIFO would run one schedule N times).
            options.scheduling = "swarm"
    if "handler_errors" in kwargs:
        ignored_errors(kwargs["handler_errors"])  # validates
        options.handler_errors = kwargs["handler_errors"]
    if "intercept" in kwargs:
        options.intercept = _flag(kwargs, "intercept")
    if "seed_entropy" in kwargs:
        options.seed_entropy = _flag(kwargs, "seed_entropy")
    if "allow_real" in kwargs:
        from sockfake.sim.intercept.allow_real import allow_real

        options.allow_real = allow_real(kwargs["allow_real"])
    if "pin_cpu" in kwargs:
        options.pin_cpu = _flag(kwargs, "pin_cpu")
    if "backend" in kwargs:
        from sockfake.sim.kernel.backends import BACKENDS, check_backend

        options.backend = _one_of(kwargs, "backend", BACKENDS)
        check_backend(options.backend)  # greenlet's: installed?
    if "nemesis" in kwargs:
        from sockfake.sim.nemesis import nemesis_options

        options.nemesis = nemesis_options(kwargs["nemesis"])
    if "trace_limit" in kwargs:
        options.trace_limit = None if kwargs["trace_limit"] is None else _count(
            kwargs, "trace_limit", "a number of events >= 1, or None (keep every event)",
            MAX_TRACE_LIMIT)
    conditions = {key: kwargs[key] for key in LINK_KEYS if key in kwargs}
    for key in ("latency", "jitter"):  # types and signs: LinkConditions checks them
        value = conditions.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if value > MAX_DELAY:
                raise SockfakeValueError(f"{key}={value!r} must be at most {MAX_DELAY:g} s")
    chunk = conditions.get("chunk")
    if chunk is not None and not isinstance(chunk, bool) and isinstance(chunk, int):
        if chunk > MAX_CHUNK:
            raise SockfakeValueError(f"chunk={chunk!r} must be at most {MAX_CHUNK} bytes")
    bandwidth = conditions.get("bandwidth")
    if isinstance(bandwidth, (int, float)) and not isinstance(bandwidth, bool):
        if 0 < bandwidth < 1:
            raise SockfakeValueError(
                f"bandwidth={bandwidth!r} must be at least 1 byte per second (or None)"
            )
    if conditions:
        from sockfake.sim.net.links import LinkConditions

        try:
            LinkConditions(**conditions)
        except (TypeError, ValueError) as exc:
            raise SockfakeValueError(str(exc).replace("LinkConditions.", "")) from None
        options.conditions = conditions
    return options

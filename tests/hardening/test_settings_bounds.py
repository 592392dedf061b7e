"""Every setting and option is bounded when it is given, with an error naming it.

Each value here used to pass validation and break something later (a socket timeout
of 1e10 s killed serve_forever at the first connection; max_packet_size=10**12 at the
first datagram; an error_logger that was not a Logger killed the pool's watchdog;
explore=10**7 hung collection...). One table per surface: the servers and the pool,
the command line, the marker, the plugin's options. The documented upper bounds are
accepted, one step past them is refused.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

import pytest

import sockfake
from sockfake import cli
from sockfake._server_checks import (
    MAX_BACKLOG,
    MAX_INTERVAL,
    MAX_PACKET,
    MAX_QUEUED,
    MAX_THREADS,
    MAX_TIMEOUT,
)
from sockfake.settings import (
    MAX_CHUNK,
    MAX_DELAY,
    MAX_EXPLORE,
    MAX_PCT_DEPTH,
    MAX_SEED,
    MAX_STALL_TIMEOUT,
    MAX_TIME_LIMIT,
    parse_options,
)

HOST = "127.0.0.1"
WAIT = 10.0


class Upper(sockfake.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.readline().upper())


# --- the servers and the pool ----------------------------------------------------------

Pool = sockfake.ThreadPoolTCPServer
UDP = sockfake.UDPServer
TCP = sockfake.TCPServer
Forking = sockfake.ForkingTCPServer

# (class, setting, a refused value, the error class, the largest accepted value)
SERVER_BOUNDS: list[tuple[type, str, object, type[Exception], object]] = [
    (TCP, "request_timeout", 1e10, ValueError, MAX_TIMEOUT),
    (TCP, "request_timeout", float("inf"), ValueError, MAX_TIMEOUT),
    (TCP, "timeout", 1e10, ValueError, MAX_TIMEOUT),
    (TCP, "accept_backoff_max", 1e6, ValueError, MAX_INTERVAL),
    (TCP, "request_queue_size", 10**9, ValueError, MAX_BACKLOG),
    (TCP, "error_logger", "errors", TypeError, logging.getLogger("bounds")),
    (TCP, "error_logger", print, TypeError, logging.LoggerAdapter(logging.getLogger("b"), {})),
    (UDP, "max_packet_size", 10**12, ValueError, MAX_PACKET),
    (UDP, "max_packet_size", 0, ValueError, 1),
    (Pool, "max_workers", 10**9, ValueError, MAX_THREADS),
    (Pool, "max_queued_requests", 10**9, ValueError, MAX_QUEUED),
    (Pool, "max_slow_requests", 10**9, ValueError, MAX_THREADS),
    (Pool, "max_slow_requests", -1, ValueError, 0),
    (Pool, "max_slow_requests", "8", TypeError, 8),
    (Pool, "request_deadline", 1e300, ValueError, MAX_TIMEOUT),
    (Pool, "slow_request_after", 3600, ValueError, MAX_INTERVAL),
    (Pool, "queue_poll_interval", float("nan"), ValueError, MAX_INTERVAL),
    (Forking, "max_children", 10**6, ValueError, MAX_THREADS),
    (Forking, "child_poll_interval", 1e6, ValueError, MAX_INTERVAL),
]


@pytest.mark.parametrize(
    ("cls", "name", "bad", "kind", "largest"),
    SERVER_BOUNDS,
    ids=[f"{c.__name__}-{n}={b!r}" for c, n, b, _, _ in SERVER_BOUNDS],
)
def test_a_server_setting_out_of_bounds_fails_at_construction_naming_it(
    cls: type, name: str, bad: object, kind: type[Exception], largest: object
) -> None:
    refused = type("Server", (cls,), {name: bad})
    with pytest.raises(kind, match=name) as caught:
        refused((HOST, 0), Upper)
    assert isinstance(caught.value, sockfake.SockfakeError)
    accepted = type("Server", (cls,), {name: largest})
    accepted((HOST, 0), Upper).server_close()


def test_a_pool_starts_workers_as_requests_need_them_not_max_workers_up_front() -> None:
    class Big(sockfake.ThreadPoolTCPServer):
        max_workers = MAX_THREADS

    server = Big((HOST, 0), Upper)
    serving = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    serving.start()

    def round_trip() -> None:
        with socket.create_connection(server.server_address, timeout=WAIT) as conn:
            conn.sendall(b"ping\n")
            assert conn.makefile("rb").readline() == b"PING\n"

    def workers() -> int:
        # Under the pool's lock: the worker may reply before its starter records it.
        state = vars(server)["_pool_state"]
        with state.lock:
            return len(state.workers)

    try:
        round_trip()
        assert workers() == 1  # not 4,096
        for _ in range(19):
            round_trip()
        # One client at a time: a worker starts only when a request finds none idle
        # (a worker still finishing the previous request may count as busy), so at
        # most one per request, never max_workers.
        assert workers() <= 20
    finally:
        server.shutdown()
        server.server_close()
        serving.join(WAIT)


def test_the_watchdog_survives_a_logger_that_fails() -> None:
    """A Logger whose handler raises: the watchdog keeps cutting at the deadline."""

    class Failing(logging.Logger):
        def info(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("the log is full")

    class Stalling(sockfake.BaseRequestHandler):
        def handle(self) -> None:
            self.request.recv(1)  # the client never sends: only the deadline ends it

    class Guarded(sockfake.ThreadPoolTCPServer):
        max_workers = 1
        request_deadline = 0.05
        error_logger = Failing("failing")

    server = Guarded((HOST, 0), Stalling)
    serving = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    serving.start()
    try:
        for _ in range(2):  # the second is cut only if the watchdog survived the first
            with socket.create_connection(server.server_address, timeout=WAIT) as conn:
                assert conn.recv(1) == b""  # cut at the deadline: the server closed it
        assert vars(server)["_pool_state"].watchdog.is_alive()
    finally:
        server.shutdown()
        server.server_close(timeout=1.0)
        serving.join(WAIT)


# --- the command line ------------------------------------------------------------------

CLI_BOUNDS: list[tuple[list[str], str]] = [
    (["serve", "--unix", ""], "--unix: the socket path must not be empty"),
    (["serve", "--unix-dgram", ""], "--unix-dgram: the socket path must not be empty"),
    (["serve", "--host", ""], "--host: the host (0.0.0.0 for every interface) must not be"),
    (["serve", "--drain", "1e300"], "--drain: must be a number of seconds from 0 to 3600"),
    (["serve", "--drain", "inf"], "--drain: must be a number of seconds from 0 to 3600"),
    (["serve", "--timeout", "1e10"], "--timeout: must be a number of seconds from 0 to 2.592e+06"),
    (["serve", "--max-line", str(10**30)], f"--max-line: must be from 1 to {cli.MAX_LINE}"),
    (["serve", "--pool", str(10**9)], f"--pool: must be from 1 to {MAX_THREADS}"),
    (["serve", "--pool", "0"], f"--pool: must be from 1 to {MAX_THREADS}"),
    (["demo", "--seed", "-1"], "--seed: must be from 0 to 2**64 - 1"),
    (["demo", "--seed", str(2**64)], "--seed: must be from 0 to 2**64 - 1"),
]


@pytest.mark.parametrize(("argv", "message"), CLI_BOUNDS, ids=[" ".join(a) for a, _ in CLI_BOUNDS])
def test_a_cli_option_out_of_bounds_is_a_one_line_error_naming_it(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.build_parser().parse_args(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_the_cli_accepts_the_largest_values() -> None:
    args = cli.build_parser().parse_args(
        [
            "serve",
            "--drain", f"{cli.MAX_DRAIN:g}",
            "--timeout", f"{MAX_TIMEOUT:g}",
            "--max-line", str(cli.MAX_LINE),
            "--pool", str(MAX_THREADS),
        ]
    )  # fmt: skip
    assert (args.drain, args.timeout, args.max_line, args.pool) == (
        cli.MAX_DRAIN, MAX_TIMEOUT, cli.MAX_LINE, MAX_THREADS
    )
    assert cli.build_parser().parse_args(["demo", "--seed", str(MAX_SEED)]).seed == MAX_SEED


# --- the marker (and open_testbed) -----------------------------------------------------

# (key, a refused value, the largest accepted value)
MARKER_BOUNDS: list[tuple[str, object, object]] = [
    ("time_limit", float("inf"), MAX_TIME_LIMIT),
    ("time_limit", 1e300, MAX_TIME_LIMIT),
    ("stall_timeout", float("inf"), MAX_STALL_TIMEOUT),
    ("explore", 10**7, MAX_EXPLORE),
    ("pct_depth", 10**9, MAX_PCT_DEPTH),
    ("seed", 2**64, MAX_SEED),
    ("latency", 1e300, MAX_DELAY),
    ("jitter", 1e300, MAX_DELAY),
    ("chunk", 10**30, MAX_CHUNK),
    ("bandwidth", 1e-300, 1),
]


@pytest.mark.parametrize(
    ("key", "bad", "largest"), MARKER_BOUNDS, ids=[f"{k}={b!r}" for k, b, _ in MARKER_BOUNDS]
)
def test_a_marker_key_out_of_bounds_is_refused_naming_it(
    key: str, bad: object, largest: object
) -> None:
    with pytest.raises(sockfake.SockfakeValueError, match=key):
        parse_options({key: bad})
    parse_options({key: largest})


def test_a_marker_time_limit_of_inf_is_the_one_line_marker_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_it="""
        import pytest

        @pytest.mark.sockfake(time_limit=float("inf"))
        def test_bad(sockfake_network): pass
        """
    )
    result = pytester.runpytest("-p", "no:hypothesispytest")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*test_it.py::test_bad: @pytest.mark.sockfake: time_limit=inf must be a positive*"]
    )
    assert "Traceback" not in result.stdout.str()


# --- the plugin's options --------------------------------------------------------------


PLUGIN_BOUNDS: list[tuple[str, str]] = [
    ("--sockfake-explore=10000000", "*--sockfake-explore='10000000' must be a number of "
     f"schedules, from 1 to {MAX_EXPLORE}*"),
    (f"--sockfake-seed={2**70}", f"*--sockfake-seed='{2**70}' must be at most 2**64 - 1*"),
    ("--sockfake-trace-dir=afile.txt/traces",
     "*--sockfake-trace-dir='afile.txt/traces' is under a file*"),
    ("--sockfake-trace-dir=afile.txt", "*--sockfake-trace-dir='afile.txt' is not a directory*"),
]  # fmt: skip


@pytest.mark.parametrize(("option", "message"), PLUGIN_BOUNDS, ids=[o for o, _ in PLUGIN_BOUNDS])
def test_a_plugin_option_out_of_bounds_is_a_usage_error_at_start(
    pytester: pytest.Pytester, option: str, message: str
) -> None:
    pytester.makepyfile(test_it="def test_fails(sockfake_network):\n    assert False\n")
    pytester.makefile(".txt", afile="not a directory")
    result = pytester.runpytest("-p", "no:hypothesispytest", option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_an_ini_sockfake_timeout_of_inf_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nsockfake_timeout = inf\n")
    pytester.makepyfile(test_it="def test_ok(sockfake_network): pass\n")
    result = pytester.runpytest("-p", "no:hypothesispytest")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: *sockfake_timeout='inf' must be at most 86400*"])

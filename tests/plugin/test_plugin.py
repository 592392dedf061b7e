"""The pytest plugin, tested through pytester: each test states one behaviour."""

import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import digest_of, run_printed

import sockfake.pytest_plugin
import sockfake.testing
from sockfake.pytest_plugin import derive_seed

ROOT = Path(__file__).resolve().parents[2]

HANDLERS = """
import pytest
import sockfake

class Upper(sockfake.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.readline().upper())

class UdpUpper(sockfake.DatagramRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.read().upper())
"""


def make_tests(pytester, body, name="test_it"):
    return pytester.makepyfile(**{name: HANDLERS + textwrap.dedent(body)})


def run(pytester, *args, subprocess=False):
    """pytest on the test files; Hypothesis' plugin costs 0.6 s a run and is not needed,
    and pytest-randomly's, where installed, would reorder the tests and reseed
    ``random`` at each call with its own seed (not the test's)."""
    runner = pytester.runpytest_subprocess if subprocess else pytester.runpytest
    return runner("-p", "no:hypothesispytest", "-p", "no:randomly", *args)


def test_passing_and_failing_tests_report_seed_trace_and_command(pytester):
    make_tests(
        pytester,
        """
        def test_echo(tcp_server):
            srv = tcp_server(Upper)
            with srv.connect() as conn:
                conn.sendall(b"hello\\n")
                assert conn.makefile("rb").readline() == b"HELLO\\n"

        def test_wrong(sockfake_tcp_server):
            srv = sockfake_tcp_server(Upper)
            conn = srv.connect()
            conn.sendall(b"hello\\n")
            assert conn.makefile("rb").readline() == b"hello\\n"
        """,
    )
    result = run(pytester, "--sockfake-seed=7")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "sockfake: network=sim, base seed=7 (from --sockfake-seed), trace=fail, simulation *",
            "*- sockfake -*",
            f"simulated network, seed {derive_seed(7, 'test_it.py::test_wrong')} "
            "(derived from base seed 7 and the test id)",
            "virtual time 0.000000 s, * trace events, trace digest *",
            "last * trace events:",
            "*send*b'HELLO\\n'",
            f"reproduce: cd {pytester.path} && python -m pytest --rootdir=. "
            "test_it.py::test_wrong --sockfake-seed=7",
        ]
    )
    assert "test_echo" not in result.stdout.str().split("FAILURES")[1]


def test_the_printed_command_reproduces_the_failure_with_the_same_digest(pytester):
    make_tests(
        pytester,
        """
        @pytest.mark.sockfake(loss=0.5, latency=0.01, jitter=0.05)
        def test_lossy(udp_server, sockfake_network):
            srv = udp_server(UdpUpper)
            sock = srv.client(timeout=0.2)
            answered = 0
            for n in range(20):
                sock.sendto(b"x%d" % n, srv.address)
                try:
                    sock.recv(100)
                    answered += 1
                except TimeoutError:
                    pass
            assert answered == 20
        """,
    )
    first = run(pytester, "--sockfake-seed=random")
    first.assert_outcomes(failed=1)
    output = first.stdout.str()
    found = re.search(r"reproduce: (.*)", output)
    assert found is not None, output
    command = found.group(1)
    args = shlex.split(command)
    assert args[:7] == ["cd", str(pytester.path), "&&", "python", "-m", "pytest", "--rootdir=."]
    assert args[7] == "test_it.py::test_lossy"
    # Run it as a user would, from another directory: the same seed, the same run.
    elsewhere = pytester.path / "elsewhere"
    elsewhere.mkdir()
    again = run_printed(command, cwd=elsewhere)
    assert "1 failed" in again.stdout, again.stdout + again.stderr
    assert digest_of(again.stdout) == digest_of(output)
    other = run(pytester, args[7], f"--sockfake-seed={int(args[8].split('=')[1]) + 1}")
    assert digest_of(other.stdout.str()) != digest_of(output)


def test_both_runs_each_test_on_each_network(pytester):
    make_tests(
        pytester,
        """
        def test_echo(tcp_server, sockfake_network_kind):
            srv = tcp_server(Upper)
            with srv.connect(timeout=5) as conn:
                line = sockfake_network_kind.encode() + b"\\n"
                conn.sendall(line)
                assert conn.makefile("rb").readline() == line.upper()

        @pytest.mark.sockfake(network="sim")
        def test_pinned(sockfake_network_kind):
            assert sockfake_network_kind == "sim"

        def test_plain():
            pass
        """,
    )
    result = run(pytester, "--sockfake-network=both", "-v")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines_random(
        ["*test_echo?sim? PASSED*", "*test_echo?real? PASSED*", "*test_pinned PASSED*"]
    )


def test_real_network_servers_use_named_daemon_threads(pytester):
    make_tests(
        pytester,
        """
        import threading

        @pytest.mark.sockfake(network="real")
        def test_thread(tcp_server, sockfake_network):
            srv = tcp_server(Upper)
            assert srv.thread.daemon and srv.thread.name == "sockfake-tcp_server-serve"
            assert type(sockfake_network).__name__ == "RealNetwork"
            with srv.connect(timeout=5) as conn:
                conn.sendall(b"a\\n")
                assert conn.makefile("rb").readline() == b"A\\n"
        """,
    )
    run(pytester).assert_outcomes(passed=1)


def test_handler_errors_fail_at_teardown_unless_ignored(pytester):
    make_tests(
        pytester,
        """
        class Boom(sockfake.BaseRequestHandler):
            def handle(self):
                raise RuntimeError("kaboom in the handler")

        def test_boom(tcp_server):
            with tcp_server(Boom).connect() as conn:
                assert conn.recv(10) == b""

        @pytest.mark.sockfake(handler_errors="ignore")
        def test_ignored(tcp_server):
            with tcp_server(Boom).connect() as conn:
                assert conn.recv(10) == b""
        """,
    )
    result = run(pytester, "--sockfake-seed=1")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_boom*",
            "tcp_server: handler error for client *",
            "*RuntimeError: kaboom in the handler",
            "*handler_errors='ignore'*",
        ]
    )


def test_leaked_sockets_and_threads_fail_at_teardown(pytester):
    make_tests(
        pytester,
        """
        import threading

        def test_socket(sockfake_network):
            sockfake_network.socket()

        def test_thread(sockfake_network):
            event = sockfake_network.event()
            threading.Thread(target=event.wait, name="forgotten").start()
        """,
    )
    result = run(pytester)
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines_random(
        ["*leaked simulated socket(s), never closed: *", "*leaked simulated thread(s)*forgotten*"]
    )


def test_a_deadlock_fails_the_test_with_the_dump(pytester):
    make_tests(
        pytester,
        """
        def test_stuck(tcp_server, sockfake_network):
            srv = tcp_server(Upper)
            conn = srv.connect()
            conn.recv(10)  # the handler waits for a line, the test for a reply

        @pytest.mark.sockfake(time_limit=10)
        def test_too_long(sockfake_network):
            sockfake_network.sleep(60)

        def test_timeout(tcp_server):
            tcp_server(Upper).connect(timeout=1).recv(10)
        """,
    )
    result = run(pytester)
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines_random(
        [
            "E*SimDeadlockError: deadlock: every simulated thread is waiting*",
            "E*main: blocked, waiting on recv*",
            "E*Thread-2 (process_request_thread): blocked, waiting on *",
            "E*SimTimeLimitError: virtual time limit of 10 s reached*",
            "tcp_server = <tcp_server factory on SimNetwork(seed=*)>",
            "E   *TimeoutError: timed out",
        ]
    )
    # The simulation's frames are hidden, as the kernel's are on a real socket.
    assert "kernel.py" not in result.stdout.str()
    assert "sockets.py" not in result.stdout.str()


def test_marker_sets_seed_and_link_conditions(pytester):
    make_tests(
        pytester,
        """
        @pytest.mark.sockfake(seed=5, loss=0.25, latency=0.1)
        class TestMarked:
            @pytest.mark.sockfake(latency=0.2, scheduling="random")
            def test_values(self, sockfake_network):
                assert sockfake_network.seed == 5
                conditions = sockfake_network.default_conditions
                assert (conditions.loss, conditions.latency) == (0.25, 0.2)
                assert sockfake_network.kernel.scheduling == "random"
        """,
    )
    run(pytester).assert_outcomes(passed=1)


def test_precedence_is_ini_then_env_then_option(pytester, monkeypatch):
    pytester.makeini("[pytest]\nsockfake_seed = 1\nsockfake_network = real\n")
    make_tests(
        pytester,
        """
        def test_kind(sockfake_network_kind):
            print("KIND", sockfake_network_kind)
        """,
    )
    header = "sockfake: network={}, base seed={} ({}), trace=fail, simulation *"
    result = run(pytester, "-s")
    result.stdout.fnmatch_lines([header.format("real", 1, "from ini sockfake_seed"), "*KIND real*"])
    monkeypatch.setenv("SOCKFAKE_SEED", "2")
    monkeypatch.setenv("SOCKFAKE_NETWORK", "sim")
    result = run(pytester, "-s")
    result.stdout.fnmatch_lines([header.format("sim", 2, "from SOCKFAKE_SEED"), "*KIND sim*"])
    result = run(pytester, "-s", "--sockfake-seed=3", "--sockfake-network=real")
    result.stdout.fnmatch_lines([header.format("real", 3, "from --sockfake-seed"), "*KIND real*"])


def test_the_header_names_the_simulation_build(pytester):
    import sockfake.sim

    make_tests(pytester, "def test_nothing(): pass\n")
    build = "compiled (mypyc)" if sockfake.sim.COMPILED else "pure Python"
    run(pytester).stdout.fnmatch_lines([f"sockfake: *, simulation {build}"])


def test_seed_last_reuses_the_previous_sessions_seed(pytester):
    make_tests(pytester, "def test_nothing(sockfake_network): pass\n")
    run(pytester, "--sockfake-seed=4242").assert_outcomes(passed=1)
    run(pytester, "--sockfake-seed=1", "--collect-only")  # ran no test: seed not replaced
    result = run(pytester, "--sockfake-seed=last")
    result.stdout.fnmatch_lines(["sockfake: network=sim, base seed=4242 (the last session's)*"])


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("--sockfake-network=wifi",), {}, "*--sockfake-network='wifi' is not one of*"),
        (("--sockfake-seed=abc",), {}, "*--sockfake-seed='abc' is not an integer*"),
        ((), {"SOCKFAKE_TRACE": "loud"}, "*SOCKFAKE_TRACE='loud' is not one of fail*"),
    ],
)
def test_a_bad_option_is_a_usage_error_naming_it(pytester, monkeypatch, args, env, message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    make_tests(pytester, "def test_x(sockfake_network): pass\n")
    result = run(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in result.stderr.str()


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("los=0.1", "*@pytest.mark.sockfake: unknown key(s) los; known keys: network*"),
        ("loss=1.5", "*@pytest.mark.sockfake: loss must be a probability in [[]0, 1[]]*"),
        ("network='wifi'", "*network='wifi' is not one of sim, real, both"),
        ("seed='x'", "*seed='x' must be a non-negative integer*"),
    ],
)
def test_a_bad_marker_errors_its_own_test_only(pytester, marker, message):
    make_tests(
        pytester,
        f"""
        @pytest.mark.sockfake({marker})
        def test_bad(sockfake_network): pass

        def test_good(sockfake_network): pass
        """,
    )
    result = run(pytester)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([f"*test_it.py::test_bad: {message}"])
    assert "Traceback" not in result.stdout.str()


def test_trace_always_attaches_the_trace_to_passing_tests(pytester):
    make_tests(
        pytester,
        """
        def test_echo(tcp_server):
            with tcp_server(Upper).connect() as conn:
                conn.sendall(b"a\\n")
                conn.recv(10)
        """,
    )
    result = run(pytester, "--sockfake-trace=always", "-rP")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*- sockfake -*", "*accept*", "reproduce: cd * && python -m pytest --rootdir=. *"]
    )
    quiet = run(pytester, "--sockfake-trace=off", "-k", "nothing-matches")
    assert "sockfake -" not in quiet.stdout.str()


def test_unix_servers_on_the_simulated_network(pytester):
    make_tests(
        pytester,
        """
        def test_unix(unix_stream_server, unix_datagram_server):
            stream = unix_stream_server(Upper, concurrency="pool", max_workers=2)
            with stream.connect() as conn:
                conn.sendall(b"s\\n")
                assert conn.makefile("rb").readline() == b"S\\n"
            datagram = unix_datagram_server(UdpUpper)
            sock = datagram.client()
            sock.sendto(b"d", datagram.address)
            assert sock.recv(10) == b"D"

        def test_unknown_attribute(tcp_server):
            with pytest.raises(TypeError, match="no attribute 'max_wrokers'; did you mean"):
                tcp_server(Upper, concurrency="pool", max_wrokers=2)
        """,
    )
    run(pytester).assert_outcomes(passed=2)


def test_xdist_workers_get_the_controllers_seed_and_a_default_timeout(pytester):
    make_tests(
        pytester,
        """
        def test_a(sockfake_network, request):
            assert request.node.get_closest_marker("timeout").args == (60.0,)
            assert False, "seed %d" % sockfake_network.seed

        def test_b(sockfake_network):
            assert False, "seed %d" % sockfake_network.seed

        @pytest.mark.timeout(5)
        def test_c(sockfake_network, request):
            assert request.node.get_closest_marker("timeout").args == (5,)

        @pytest.mark.sockfake(loss=2)
        def test_bad_marker():
            pass
        """,
    )
    result = run(pytester, "-n", "2", "-p", "xdist", "--sockfake-seed=99", subprocess=True)
    result.assert_outcomes(failed=2, passed=1, errors=1)
    assert "INTERNALERROR" not in result.stdout.str()
    result.stdout.fnmatch_lines(
        ["test_it.py::test_bad_marker: @pytest.mark.sockfake: loss must be a probability*"]
    )
    for name in ("test_a", "test_b"):
        seed = derive_seed(99, f"test_it.py::{name}")
        result.stdout.fnmatch_lines(
            [
                f"*AssertionError: seed {seed}",
                f"reproduce: cd * && python -m pytest --rootdir=. test_it.py::{name} "
                "--sockfake-seed=99",
            ]
        )


def test_every_fixture_is_documented_in_pytest_fixtures(pytester):
    result = run(pytester, "--fixtures")
    names = ["sockfake_network", "sockfake_network_kind", "sockfake_network_factory"]
    for kind in ("tcp", "udp", "unix_stream", "unix_datagram"):
        names += [f"{kind}_server", f"sockfake_{kind}_server"]
    output = result.stdout.str()
    for name in names:
        assert re.search(rf"^{name}( \[session scope\])? -- .*\n    \S", output, re.M), name


def test_a_configured_timeout_is_left_alone_and_xdist_is_optional(pytester):
    make_tests(
        pytester,
        """
        def test_t(sockfake_network, request):
            marker = request.node.get_closest_marker("timeout")
            print("TIMEOUT", marker.args if marker else None)
        """,
    )
    for args, expected in [
        ((), "(60.0,)"),
        (("--timeout=7",), "None"),
        (("-o", "timeout=7"), "None"),
        (("-o", "sockfake_timeout=9"), "(9.0,)"),
        (("-p", "no:timeout"), "None"),
    ]:
        result = run(pytester, "-s", "-p", "no:xdist", *args)
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines([f"*TIMEOUT {expected}"])


def test_a_real_handler_that_never_returns_fails_teardown_within_a_bound(pytester, monkeypatch):
    monkeypatch.setitem(sockfake.testing.STOP_TIMEOUT, "real", 0.2)
    make_tests(
        pytester,
        """
        import threading

        started, never = threading.Event(), threading.Event()

        class Stuck(sockfake.BaseRequestHandler):
            def handle(self):
                started.set()
                never.wait(5)  # blocked outside its connection; ends on its own

        @pytest.mark.sockfake(network="real")
        def test_stuck(tcp_server):
            with tcp_server(Stuck).connect(timeout=5) as conn:
                conn.sendall(b"x")
                assert started.wait(5)
        """,
    )
    result = run(pytester)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["tcp_server: a handler is still running after server_close() (0.4 s)*"]
    )


def test_disabled_with_p_no_sockfake(pytester):
    make_tests(pytester, "def test_x(tcp_server): pass\n")
    result = run(pytester, "-p", "no:sockfake", subprocess=True)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'tcp_server' not found*"])
    assert "sockfake: network=" not in result.stdout.str()


def test_importing_the_plugin_loads_neither_the_simulation_nor_hypothesis():
    code = (
        "import sys, sockfake.pytest_plugin; "
        "print(sorted(m for m in sys.modules if m.startswith(('sockfake.sim', 'hypothesis'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_examples_pass():
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "examples"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_link_conditions_skip_the_real_run_with_a_reason(pytester):
    make_tests(
        pytester,
        """
        class Upper(sockfake.DatagramRequestHandler):
            def handle(self):
                self.wfile.write(self.rfile.read().upper())

        @pytest.mark.sockfake(loss=0.5)
        def test_lossy(udp_server):
            srv = udp_server(Upper)
            sock = srv.client()
            sock.settimeout(1.0)
            for _ in range(50):
                sock.sendto(b"x", srv.address)
                try:
                    assert sock.recvfrom(10)[0] == b"X"
                    return
                except TimeoutError:
                    continue
            raise AssertionError("never answered")
        """,
    )
    result = run(pytester, "--sockfake-network=both", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*link conditions (loss=0.5) need the simulated network*"])


def test_handler_errors_policy_by_exception_type(pytester):
    make_tests(
        pytester,
        """
        class Raises(sockfake.StreamRequestHandler):
            def handle(self):
                kind = self.rfile.readline().strip().decode()
                raise {"reset": ConnectionResetError, "timeout": TimeoutError,
                       "value": ValueError}[kind](kind)

        def ask(tcp_server, kind):
            with tcp_server(Raises).connect() as conn:
                conn.sendall(kind.encode() + b"\\n")
                assert conn.recv(10) == b""

        def test_a_peer_gone_error_is_routine_by_default(tcp_server):
            ask(tcp_server, "reset")

        @pytest.mark.sockfake(handler_errors="strict")
        def test_strict_fails_on_it(tcp_server):
            ask(tcp_server, "reset")

        @pytest.mark.sockfake(handler_errors=(TimeoutError,))
        def test_named_types_are_ignored(tcp_server):
            ask(tcp_server, "timeout")

        @pytest.mark.sockfake(handler_errors=(TimeoutError,))
        def test_other_types_still_fail(tcp_server):
            ask(tcp_server, "value")

        @pytest.mark.sockfake(handler_errors=42)
        def test_a_bad_policy_is_named(tcp_server):
            pass
        """,
    )
    result = run(pytester)
    # A handler error fails at teardown: the test itself passed, its teardown errors.
    result.assert_outcomes(passed=4, errors=3)
    out = result.stdout.str()
    assert "ERROR at teardown of test_strict_fails_on_it" in out
    assert "ERROR at teardown of test_other_types_still_fail" in out
    result.stdout.fnmatch_lines(
        ["*ValueError: value*", "*handler_errors=42: 42 is not an exception class*"]
    )
    assert "ERROR at teardown of test_named_types_are_ignored" not in out
    assert "ERROR at teardown of test_a_peer_gone_error_is_routine_by_default" not in out


def test_teardown_lets_in_flight_packets_land_before_judging_leaks(pytester):
    make_tests(
        pytester,
        """
        class Echo(sockfake.StreamRequestHandler):
            def handle(self):
                for line in self.rfile:
                    self.wfile.write(line)

        @pytest.mark.sockfake(latency=0.01)
        def test_client_closes_last(tcp_server):
            srv = tcp_server(Echo, daemon_threads=True)
            conn = srv.connect()
            conn.sendall(b"a\\n")
            assert conn.makefile("rb").readline() == b"a\\n"
            conn.close()  # its FIN is still on the wire when the test returns

        def test_a_thread_blocked_for_good_is_still_a_leak(sockfake_network):
            import threading
            never = sockfake_network.event()
            threading.Thread(target=never.wait, name="stuck").start()
        """,
    )
    result = run(pytester)
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        ["*leaked simulated thread(s)*stuck (event event-1 (created at test_it.py:*))*"]
    )
    assert "test_client_closes_last - " not in result.stdout.str()


def test_server_state_for_handlers_is_allowed_and_typos_are_caught(pytester):
    make_tests(
        pytester,
        """
        class Store(sockfake.StreamRequestHandler):
            def handle(self):
                key, _, value = self.rfile.readline().strip().partition(b"=")
                self.server.store[key] = value
                self.wfile.write(b"ok\\n")

        def test_state(tcp_server):
            store = {}
            srv = tcp_server(Store, store=store)
            with srv.connect() as conn:
                conn.sendall(b"a=1\\n")
                assert conn.makefile("rb").readline() == b"ok\\n"
            assert store == {b"a": b"1"}

        def test_typo(tcp_server):
            tcp_server(Store, daemon_thread=True)
        """,
    )
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*no attribute 'daemon_thread'; did you mean 'daemon_threads'?*"]
    )


def test_a_stdlib_server_class_runs_rebuilt_on_sockfake(pytester):
    make_tests(
        pytester,
        """
        import http.server
        import socketserver

        class Hello(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = b"hello from " + type(self.server).__name__.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        def test_http(tcp_server):
            srv = tcp_server(Hello, server_class=http.server.ThreadingHTTPServer)
            assert isinstance(srv.server, sockfake.TCPServer)
            with srv.connect() as conn:
                conn.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
                reply = b""
                while chunk := conn.recv(4096):
                    reply += chunk
            assert reply.startswith(b"HTTP/1.0 200")
            assert reply.endswith(b"hello from ThreadingHTTPServer")
        """,
    )
    # Other classes built on the stdlib's socketserver run as they are under
    # interception: tests/plugin/test_stdlib_servers.py.
    result = run(pytester)
    result.assert_outcomes(passed=1)


def test_a_failing_simulated_test_writes_its_trace_files(pytester):
    make_tests(
        pytester,
        """
        def test_fails(tcp_server):
            with tcp_server(Upper).connect() as conn:
                conn.sendall(b"hi\\n")
                assert conn.makefile("rb").readline() == b"hi\\n"
        """,
    )
    result = run(pytester, f"--sockfake-trace-dir={pytester.path / 'traces'}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["trace files (Wireshark, JSON lines, sequence diagram):"])
    names = sorted(path.name for path in (pytester.path / "traces").iterdir())
    assert names == [f"test_it.py_test_fails.{ext}" for ext in ("html", "jsonl", "pcapng")]
    for name in names:
        assert str(pytester.path / "traces" / name) in result.stdout.str()
    assert b"HI" in (pytester.path / "traces" / "test_it.py_test_fails.pcapng").read_bytes()


def test_check_determinism_reruns_a_failure_and_names_the_first_divergence(pytester):
    make_tests(
        pytester,
        """
        import time

        def test_deterministic_failure(tcp_server):
            with tcp_server(Upper).connect() as conn:
                conn.sendall(b"hi\\n")
                assert conn.makefile("rb").readline() == b"hi\\n"

        @pytest.mark.sockfake(intercept=False)  # time.time() is the real clock then
        def test_reads_the_real_clock(tcp_server):
            with tcp_server(Upper).connect() as conn:
                conn.sendall(repr(time.time()).encode() + b"\\n")  # outside the simulation
                assert conn.makefile("rb").readline() == b"never"
        """,
    )
    result = run(pytester, "--sockfake-check-determinism")
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    assert "the failure is deterministic" in out
    result.stdout.fnmatch_lines(
        [
            "*rerun with the same seed DIFFERS: the runs part at event *",
            "*first run:  * send *payload b'1*",
            "*second run: * send *payload b'1*",
            "likely cause: the same step carried other data*time.time()*",
        ]
    )


def test_a_handler_error_is_in_the_trace(pytester):
    make_tests(
        pytester,
        """
        class Broken(sockfake.StreamRequestHandler):
            def handle(self):
                self.rfile.readline()
                raise KeyError("missing")

        def test_it(tcp_server):
            with tcp_server(Broken).connect() as conn:
                conn.sendall(b"x\\n")
                assert conn.recv(1) == b""
        """,
    )
    result = run(pytester)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["* handler-error *tcp_server: KeyError: 'missing'"])


def test_simulated_tests_are_intercepted_so_real_clients_and_sleeps_just_work(pytester):
    make_tests(
        pytester,
        """
        import http.server
        import json
        import time
        import urllib.request

        import requests

        class Hello(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                time.sleep(30)  # virtual: costs nothing
                body = json.dumps({"path": self.path}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        @pytest.mark.sockfake(latency=0.01)
        def test_clients(tcp_server, sockfake_network):
            srv = tcp_server(Hello, server_class=http.server.ThreadingHTTPServer)
            assert srv.url.startswith("http://127.0.0.1:")
            assert requests.get(srv.url + "a", timeout=60).json() == {"path": "/a"}
            with urllib.request.urlopen(srv.url + "b", timeout=60) as reply:
                assert json.loads(reply.read()) == {"path": "/b"}
            assert sockfake_network.time() >= 60

        @pytest.mark.sockfake(intercept=False)
        def test_not_intercepted(sockfake_network):
            start = time.monotonic()
            time.sleep(0)
            assert sockfake_network.time() == 0.0 and time.monotonic() >= start

        @pytest.mark.sockfake(intercept="yes")
        def test_bad_value(sockfake_network):
            pass
        """,
    )
    # In a subprocess: pytester's in-process runs drop and re-import the modules a run
    # imported (the interception's among them), which one process never does.
    result = run(pytester, subprocess=True)
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*intercept='yes' must be True or False*"])


def test_explore_runs_a_test_under_n_schedules_and_summarises(pytester):
    make_tests(
        pytester,
        """
        import threading

        @pytest.mark.sockfake(explore=30, scheduling="random")
        def test_race(sockfake_network):
            box = []
            worker = threading.Thread(target=lambda: box.append("worker"))
            worker.start()  # a switch point: the worker may run first
            box.append("main")
            worker.join()
            assert box == ["main", "worker"]

        def test_plain(sockfake_network):
            pass
        """,
    )
    result = run(pytester, "--sockfake-seed=3")
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] >= 2 and outcomes["failed"] >= 1
    assert outcomes["passed"] + outcomes["failed"] == 31
    found = re.search(
        r"test_it.py::test_race: 30 schedules ran, (\d+) failed; first failing: "
        r"schedule-(\d+); reproduce: cd \S+ && python -m pytest --rootdir=. "
        r"'test_it.py::test_race\[schedule-(\d+)\]' --sockfake-seed=3",
        result.stdout.str(),
    )
    assert found is not None, result.stdout.str()
    assert int(found.group(1)) == outcomes["failed"] and found.group(2) == found.group(3)
    again = run(pytester, "--rootdir=.", f"test_it.py::test_race[schedule-{found.group(2)}]",
                "--sockfake-seed=3")
    again.assert_outcomes(failed=1)
    # Under pytest-xdist the schedules spread over the workers; the controller sums up.
    spread = run(pytester, "-n", "2", "-p", "xdist", "--sockfake-seed=3", "-k", "race",
                 subprocess=True)
    spread.stdout.fnmatch_lines(
        [f"test_it.py::test_race: 30 schedules ran, {outcomes['failed']} failed; first "
         f"failing: schedule-{found.group(2)}; *"]
    )
    # The option explores every simulated test; a bad value is a usage error.
    everywhere = run(pytester, "--sockfake-explore=2", "-k", "plain")
    everywhere.assert_outcomes(passed=2)
    bad = run(pytester, "--sockfake-explore=0")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs sched_setaffinity and at least two CPUs to choose from",
)
def test_the_pin_cpu_marker_key_keeps_or_frees_the_simulations_cpu(pytester):
    make_tests(
        pytester,
        """
        import os

        ALL = len(os.sched_getaffinity(0))

        def test_pinned_by_default(sockfake_network):
            assert len(os.sched_getaffinity(0)) == 1 < ALL

        @pytest.mark.sockfake(pin_cpu=False)
        def test_not_pinned(sockfake_network):
            assert len(os.sched_getaffinity(0)) == ALL

        def test_restored_after_the_network_closes():
            assert len(os.sched_getaffinity(0)) == ALL

        @pytest.mark.sockfake(pin_cpu=1)
        def test_bad_value(sockfake_network):
            pass
        """,
    )
    result = run(pytester, "-p", "no:randomly", subprocess=True)
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*pin_cpu=1 must be True or False*"])


def test_the_commands_of_an_exploration_from_the_option_rerun_its_failure(pytester):
    """Its [schedule-K] items exist only with --sockfake-explore: both commands carry it."""
    make_tests(
        pytester,
        """
        def test_fails(tcp_server):
            srv = tcp_server(Upper)
            with srv.connect() as conn:
                conn.sendall(b"x\\n")
                assert conn.makefile("rb").readline() == b"no\\n"
        """,
    )
    result = run(pytester, "--sockfake-explore=3")
    result.assert_outcomes(failed=3)
    output = result.stdout.str()
    commands = re.findall(r"reproduce: (cd .*?)$", output, re.M)
    summary = [c for c in commands if "schedule-0]" in c]
    assert commands and summary, output
    for command in (commands[0], summary[-1]):
        assert "--sockfake-explore=3" in shlex.split(command), command
        again = run_printed(command)
        assert "1 failed" in again.stdout, again.stdout + again.stderr


def test_library_entropy_follows_the_seed_unless_the_marker_says_seed_entropy_false(pytester):
    """Under interception os.urandom/uuid4/random draw from the test's seed, so a seed
    replays them; the marker's seed_entropy=False leaves them to the OS."""
    make_tests(
        pytester,
        """
        import os, random, uuid

        def draw():
            return f"{os.urandom(8).hex()} {uuid.uuid4()} {random.random()}"

        @pytest.mark.sockfake(seed=5)
        def test_seeded(tcp_server):
            print("SEEDED", draw())

        @pytest.mark.sockfake(seed=5, seed_entropy=False)
        def test_os(tcp_server):
            print("OS", draw())
        """,
    )
    runs = []
    for _ in range(2):
        result = run(pytester, "-s")
        result.assert_outcomes(passed=2)
        out = result.stdout.str()
        drawn = dict(re.findall(r"\b(SEEDED|OS) (\S+ \S+ \S+)", out))
        assert set(drawn) == {"SEEDED", "OS"}, out
        runs.append(drawn)
    assert runs[0]["SEEDED"] == runs[1]["SEEDED"]
    assert runs[0]["OS"] != runs[1]["OS"]
    assert runs[0]["SEEDED"] != runs[0]["OS"]


def test_seed_entropy_must_be_a_bool(pytester):
    make_tests(
        pytester,
        """
        @pytest.mark.sockfake(seed_entropy="yes")
        def test_it(tcp_server):
            pass
        """,
    )
    result = run(pytester)
    result.assert_outcomes(errors=1)
    assert "seed_entropy" in result.stdout.str()

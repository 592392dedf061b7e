"""Under the pytest plugin (every simulated test intercepted), C code's real socket
fails the test that opened it, with the detector's message, and the next test runs
clean."""

from __future__ import annotations

import textwrap

import pytest
from boundary_listener import RealListener


def _c_client_module(port: int, tail: str) -> str:
    """A test module whose first test opens a real TCP connection to ``port`` from C
    (libc through ctypes, looked up before the test), then runs ``tail``; its second
    test closes the connection."""
    return (
        textwrap.dedent(
            f"""
            import ctypes, os, socket, struct, time
            from sockfake.sim.intercept import stray_sockets

            libc = ctypes.CDLL(None, use_errno=True)
            c_socket, c_connect = libc.socket, libc.connect  # looked up before the test

            def test_c_client(sockfake_network):
                fd = c_socket(socket.AF_INET, socket.SOCK_STREAM, 0)
                raw = struct.pack("=H", socket.AF_INET) + struct.pack(
                    "!H4s8x", {port}, socket.inet_aton("127.0.0.1"))
                assert c_connect(fd, raw, len(raw)) == 0
                test_c_client.fd = fd
            """
        )
        + textwrap.indent(tail, "    ")
        + "\n\n\ndef test_after(sockfake_network):\n    os.close(test_c_client.fd)\n"
    )


def test_a_simulated_test_whose_c_code_reaches_the_network_fails_by_name(
    pytester: pytest.Pytester, real_listener: RealListener
) -> None:
    pytester.makepyfile(test_c_client=_c_client_module(real_listener.port, "pass"))
    result = pytester.runpytest("-p", "no:hypothesispytest", "-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [f"*a real socket was opened by C code*-> 127.0.0.1:{real_listener.port} (ESTABLISHED)*"]
    )


@pytest.mark.parametrize(
    ("tail", "outcomes"),
    [
        ("time.monotonic()", {"passed": 1, "failed": 1}),  # raised in the call: once
        ("try:\n    time.monotonic()\nexcept Exception:\n    pass",
         {"passed": 2, "errors": 1}),  # swallowed in the call: raised at teardown
    ],
    ids=["raised-in-the-call", "swallowed-in-the-call"],
)
def test_a_stray_seen_during_the_call_is_reported_exactly_once(
    pytester: pytest.Pytester, real_listener: RealListener, tail: str, outcomes: dict[str, int]
) -> None:
    module = _c_client_module(real_listener.port, "stray_sockets.look_now()\n" + tail)
    pytester.makepyfile(test_c_client=module)
    result = pytester.runpytest("-p", "no:hypothesispytest", "-p", "no:randomly")
    result.assert_outcomes(**outcomes)
    result.stdout.fnmatch_lines(["*a real socket was opened by C code*(ESTABLISHED)*"])


def _decorated(module: str, decorator: str) -> str:
    return module.replace("def test_c_client(", f"{decorator}\ndef test_c_client(", 1)


@pytest.mark.parametrize(
    "decorator",
    ["@pytest.mark.sockfake(allow_real=[('127.0.0.1', {port})])",
     "@pytest.mark.sockfake(allow_real=[('', {port})])",
     "@pytest.mark.sockfake(allow_real='all')"],
    ids=["host-and-port", "any-host", "all"],
)
def test_the_marker_allows_a_real_endpoint_the_test_uses_on_purpose(
    pytester: pytest.Pytester, real_listener: RealListener, decorator: str
) -> None:
    module = _c_client_module(real_listener.port, "stray_sockets.look_now()")
    module = "import pytest\n" + _decorated(module, decorator.format(port=real_listener.port))
    pytester.makepyfile(test_c_client=module)
    result = pytester.runpytest("-p", "no:hypothesispytest", "-p", "no:randomly")
    result.assert_outcomes(passed=2)


def test_the_marker_allowing_another_endpoint_still_reports_the_stray(
    pytester: pytest.Pytester, real_listener: RealListener
) -> None:
    module = _c_client_module(real_listener.port, "pass")
    module = "import pytest\n" + _decorated(
        module, "@pytest.mark.sockfake(allow_real=[('127.0.0.1', 5432), '/run/pg.sock'])")
    pytester.makepyfile(test_c_client=module)
    result = pytester.runpytest("-p", "no:hypothesispytest", "-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*a real socket was opened by C code*allow_real*"])


def test_the_ini_option_allows_real_endpoints_for_every_test(
    pytester: pytest.Pytester, real_listener: RealListener
) -> None:
    pytester.makeini(f"[pytest]\nsockfake_allow_real = [::1]:5432 127.0.0.1:{real_listener.port}\n")
    pytester.makepyfile(test_c_client=_c_client_module(real_listener.port, "pass"))
    result = pytester.runpytest("-p", "no:hypothesispytest", "-p", "no:randomly")
    result.assert_outcomes(passed=2)


@pytest.mark.parametrize(
    ("ini", "marker", "message"),
    [("127.0.0.1", None, "*sockfake_allow_real='127.0.0.1'*host:port*"),
     ("localhost:5432", None, "*'localhost' is not an IP address*"),
     (None, "allow_real=('127.0.0.1', 5432)", "*is one endpoint: give a list*"),
     (None, "allow_real=[('127.0.0.1', 0)]", "*the port is not from 1 to 65535*"),
     (None, "allow_real=True", "*allow_real= is 'all'*"),
     (None, "allow_real=['']", "*not an empty path*")],
)
def test_a_bad_allow_real_is_refused_where_it_is_read(
    pytester: pytest.Pytester, ini: str | None, marker: str | None, message: str
) -> None:
    if ini is not None:
        pytester.makeini(f"[pytest]\nsockfake_allow_real = {ini}\n")
    decorator = f"@pytest.mark.sockfake({marker})\n" if marker else ""
    pytester.makepyfile(
        f"import pytest\n\n{decorator}def test_it(sockfake_network):\n    pass\n"
    )
    result = pytester.runpytest("-p", "no:hypothesispytest", "-p", "no:randomly")
    if ini is not None:
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([message])
    else:
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines([message])

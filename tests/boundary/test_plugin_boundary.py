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

"""Under the pytest plugin (every simulated test intercepted), C code's real socket
fails the test that opened it, with the detector's message, and the next test runs
clean."""

from __future__ import annotations

import textwrap

import pytest
from boundary_listener import RealListener


def test_a_simulated_test_whose_c_code_reaches_the_network_fails_by_name(
    pytester: pytest.Pytester, real_listener: RealListener
) -> None:
    pytester.makepyfile(
        test_c_client=textwrap.dedent(
            f"""
            import ctypes, os, socket, struct

            libc = ctypes.CDLL(None, use_errno=True)
            c_socket, c_connect = libc.socket, libc.connect  # looked up before the test

            def test_c_client(sockfake_network):
                fd = c_socket(socket.AF_INET, socket.SOCK_STREAM, 0)
                raw = struct.pack("=H", socket.AF_INET) + struct.pack(
                    "!H4s8x", {real_listener.port}, socket.inet_aton("127.0.0.1"))
                assert c_connect(fd, raw, len(raw)) == 0
                test_c_client.fd = fd

            def test_after(sockfake_network):
                os.close(test_c_client.fd)
            """
        )
    )
    result = pytester.runpytest("-p", "no:hypothesispytest", "-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [f"*a real socket was opened by C code*-> 127.0.0.1:{real_listener.port} (ESTABLISHED)*"]
    )

"""The plugin installs the interception's patches once for a run of intercepted tests.

Installing and removing some 120 patches was the largest part of a simulated test's
set-up and tear-down; the next intercepted test reuses them (``linger=True``), and a
test that does not intercept runs without them, as does the code after the session.
"""

import textwrap

import pytest

CONFTEST = """
import socket

import pytest

from sockfake.sim.intercept import install

REAL_SOCKET = socket.socket
installs = []
real_install = install._install


def counting_install():
    installs.append(1)
    real_install()


install._install = counting_install


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    # After the plugin's own pytest_unconfigure: nothing of the interception is left.
    print(f"installs={len(installs)} socket_is_real={socket.socket is REAL_SOCKET} "
          f"lingering={install.is_lingering()}")
"""

TESTS = """
import socket

import pytest

from conftest import REAL_SOCKET


def test_first(sockfake_network):
    assert socket.socket is not REAL_SOCKET


def test_second_reuses(sockfake_network):
    assert socket.socket is not REAL_SOCKET


def test_plain_runs_unpatched():
    assert socket.socket is REAL_SOCKET


@pytest.mark.sockfake(intercept=False)
def test_not_intercepted_runs_unpatched(sockfake_network):
    assert socket.socket is REAL_SOCKET


def test_third(sockfake_network):
    assert socket.socket is not REAL_SOCKET
"""


def run_counting_installs(pytester: pytest.Pytester, tests: str) -> pytest.RunResult:
    """``tests`` run with CONFTEST, which counts installations and prints them at the end."""
    pytester.makeconftest(textwrap.dedent(CONFTEST))
    pytester.makepyfile(test_reuse=textwrap.dedent(tests))
    return pytester.runpytest_subprocess(
        "-p", "no:hypothesispytest", "-p", "no:randomly", "-p", "no:cacheprovider", "-s"
    )


def test_intercepted_tests_share_one_installation(pytester: pytest.Pytester) -> None:
    result = run_counting_installs(pytester, TESTS)
    result.assert_outcomes(passed=5)
    # first and second share one installation, the plain tests remove it, third installs
    result.stdout.fnmatch_lines(["*installs=2 socket_is_real=True lingering=False*"])


FACTORY_TESTS = """
import socket

from conftest import REAL_SOCKET, installs


def test_examples_share_one_installation(sockfake_network_factory):
    for seed in range(3):
        with sockfake_network_factory(seed=seed) as bed:
            assert socket.socket is not REAL_SOCKET
            bed.network.sleep(1)
        # between two testbeds: the patches in place, the real OS behind them
        assert socket.socket is not REAL_SOCKET
        left, right = socket.socketpair()
        with left, right:
            assert isinstance(left, REAL_SOCKET)
            left.sendall(b"real")
            assert right.recv(4) == b"real"
    assert len(installs) == 1


def test_plain_after_runs_unpatched():
    assert socket.socket is REAL_SOCKET
"""


def test_factory_testbeds_share_one_installation(pytester: pytest.Pytester) -> None:
    """``sockfake_network_factory`` (Hypothesis examples, loops): one installation for
    a test's testbeds, gone before a test that does not intercept and at the end."""
    result = run_counting_installs(pytester, FACTORY_TESTS)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*installs=1 socket_is_real=True lingering=False*"])

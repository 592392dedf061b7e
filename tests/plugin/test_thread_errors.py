"""A simulated thread that dies of an exception fails the test with its traceback, as
a handler error does, under the same ``handler_errors`` policy."""

from __future__ import annotations

import os
import sys
import textwrap
import threading
from typing import Any

import pytest

import sockfake
from sockfake.testing import TestbedError, open_testbed


def die_of(error: BaseException) -> None:
    def run() -> None:
        raise error

    thread = threading.Thread(target=run, name="doomed")
    thread.start()
    thread.join()


def test_a_thread_that_dies_fails_the_testbed_with_its_traceback() -> None:
    with pytest.raises(TestbedError) as caught:
        with open_testbed(seed=1):
            die_of(ValueError("thread bug"))
    text = str(caught.value)
    assert "simulated thread 'doomed' died of an exception" in text
    assert "in run\n    raise error" in text  # the thread's own frame
    assert "ValueError: thread bug" in text
    assert "handler_errors=" in text  # how to opt out


def test_a_sockfake_refusal_in_a_thread_fails_the_testbed_by_name() -> None:
    # waitress's case: a refusal in a serving thread reached the user only as a
    # warning, and the test failed later with a client's timeout.
    def run() -> None:
        os.system("true")

    with pytest.raises(TestbedError, match=r"(?s)'refuser' died.*NotImplementedError: "
                       r"os.system\(\) in simulated thread 'refuser'"):
        with open_testbed(seed=1):
            thread = threading.Thread(target=run, name="refuser")
            thread.start()
            thread.join()


def test_systemexit_ends_a_thread_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    # The stdlib's threading.excepthook ignores it (pytest's would warn: not here).
    monkeypatch.setattr(threading, "excepthook", lambda args: None)
    with open_testbed(seed=1) as bed:
        die_of(SystemExit(3))
    assert bed.errors == []


@pytest.mark.parametrize(
    ("policy", "error", "fails"),
    [
        ("fail", ConnectionResetError("peer gone"), False),
        ("strict", ConnectionResetError("peer gone"), True),
        ((ValueError,), ValueError("expected"), False),
        ((ValueError,), KeyError("not expected"), True),
        ("ignore", RuntimeError("anything"), False),
    ],
)
def test_the_handler_errors_policy_applies(
    policy: Any, error: BaseException, fails: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    hooked: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: hooked.append(args.exc_value))

    def run() -> None:
        with open_testbed(seed=1, handler_errors=policy):
            die_of(error)

    if fails:
        with pytest.raises(TestbedError, match=type(error).__name__):
            run()
        assert hooked == []  # reported once, as a failure
    else:
        run()
        assert hooked == [error]  # left to threading.excepthook, as before


def test_the_trace_records_the_death() -> None:
    with pytest.raises(TestbedError), open_testbed(seed=1) as bed:
        die_of(ValueError("traced"))
    events = [e for e in bed.network.trace if e.kind == "thread-error"]
    assert [e.details for e in events] == ["doomed: ValueError: traced"]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception notes are 3.11+")
def test_when_the_block_fails_too_its_error_carries_the_threads() -> None:
    class Silent(sockfake.BaseRequestHandler):
        def handle(self) -> None:
            def work() -> None:
                raise ValueError("the real cause")

            threading.Thread(target=work, name="worker").start()
            self.request.recv(1)

    with pytest.raises(TimeoutError) as caught:
        with open_testbed(seed=1) as bed:
            srv = bed.tcp_server(Silent)
            with srv.connect(timeout=5) as conn:
                conn.recv(1)  # no reply ever comes: the worker died
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert "sockfake: the testbed also found:" in notes
    assert "simulated thread 'worker' died" in notes and "ValueError: the real cause" in notes


def test_through_the_plugin_the_test_fails_and_no_warning_is_left(pytester: Any) -> None:
    pytester.makepyfile(
        test_it=textwrap.dedent(
            """
            import threading
            import pytest

            def boom():
                raise ValueError("thread bug")

            def test_dies(sockfake_network):
                t = threading.Thread(target=boom, name="doomed")
                t.start()
                t.join()

            @pytest.mark.sockfake(handler_errors=(ValueError,))
            def test_ignored(sockfake_network):
                t = threading.Thread(target=boom)
                t.start()
                t.join()
            """
        )
    )
    result = pytester.runpytest("-p", "no:hypothesispytest")
    # The death fails test_dies at teardown, as a handler error does, and is not a
    # warning as well; the ignored one stays a warning.
    result.assert_outcomes(passed=2, errors=1, warnings=1)
    result.stdout.fnmatch_lines([
        "*ERROR at teardown of test_dies*",
        "*simulated thread 'doomed' died of an exception*",
        "*ValueError: thread bug*",
    ])
    assert "Exception in thread doomed" not in result.stdout.str()

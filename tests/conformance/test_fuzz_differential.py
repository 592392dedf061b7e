"""The differential fuzzer (``tests/fuzz_differential.py``) on a small budget: random
programs of socket operations give the same outcomes on Linux and on the simulation.

``SOCKFAKE_FUZZ_PROGRAMS`` raises the budget (the default runs in a few seconds);
``python tests/fuzz_differential.py 10000`` runs a large one and lists every divergence.
"""

from __future__ import annotations

import os
import sys

import fuzz_differential
import pytest
from fuzz_differential import Program, compare, programs
from hypothesis import HealthCheck, given, settings

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="Linux's sockets are the reference"
)

PROGRAMS = int(os.environ.get("SOCKFAKE_FUZZ_PROGRAMS", "150"))


# The same programs every run (derandomize): CI is deterministic; the on-demand run
# (python tests/fuzz_differential.py N) draws new ones.
@settings(max_examples=PROGRAMS, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(programs())
def test_random_programs_behave_as_on_linux(program: Program) -> None:
    divergence = compare(program)
    assert divergence is None, f"the simulation differs from Linux:\n{divergence}"


def test_a_difference_is_reported_at_its_operation(monkeypatch: pytest.MonkeyPatch) -> None:
    # The comparison is not vacuous: ports are labelled, not dropped, and an outcome
    # that differs is reported with the operation that gave it.
    program = Program("tcp4", (("socket",), ("bind", 0, "loopback", 0), ("getsockname", 0)))
    real = fuzz_differential.run_real(program)
    assert real[2] == ("ok", ("127.0.0.1", "P0"))
    assert compare(program) is None

    def other(program: Program) -> list[object]:
        return [*real[:2], ("raise", "OSError", "EINVAL", "[Errno 22] Invalid argument")]

    monkeypatch.setattr(fuzz_differential, "run_sim", other)
    divergence = compare(program)
    assert divergence is not None and divergence.index == 2
    assert "getsockname" in str(divergence)


def test_a_bind_refused_by_time_wait_is_the_deliberate_difference() -> None:
    # A socket marked SHUT_RDWR connects to itself: Linux closes the connection into
    # TIME_WAIT, which holds the port; the simulation has no TIME_WAIT and binds
    # (DELIBERATE's tcp4_rebind_after_close_*). The fuzzer sees it and agrees.
    program = Program("tcp4", (("socket",), ("bind", 0, "loopback", 0),
                               ("shutdown", 0, 2), ("connect", 0, "name_of", 0),
                               ("bind", 0, "name_of", 0)))
    real = fuzz_differential.run_real(program)
    assert real[4] == ("ok", fuzz_differential.TIME_WAIT)
    assert fuzz_differential.run_sim(program)[4] == ("ok", None)
    assert compare(program) is None

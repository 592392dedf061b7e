"""unittest at parity: a failing test prints the seed, the last events, the trace files
and a command that reruns it with the same seed, and the command fails the same way."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sockfake.failure_report import last_events
from sockfake.sim import SimNetwork
from sockfake.testing import open_testbed

ROOT = Path(__file__).resolve().parents[2]

LOSSY_TEST = '''
import unittest

import sockfake
from sockfake.testing import TestbedMixin


class Echo(sockfake.DatagramRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.read())


class LossyTest(TestbedMixin, unittest.TestCase):
    testbed_options = {"loss": 0.5}

    def test_naive_client(self):
        srv = self.bed.udp_server(Echo)
        with srv.client(timeout=1.0) as sock:
            for number in range(20):
                sock.sendto(b"ping %d" % number, srv.address)
                self.assertEqual(sock.recv(100), b"ping %d" % number)

    def test_passes(self):
        self.assertEqual(self.bed.network.time(), 0.0)


class Crash(sockfake.BaseRequestHandler):
    def handle(self):
        raise ValueError("the handler's bug")


class HandlerErrorTest(TestbedMixin, unittest.TestCase):
    def test_handler_error(self):
        srv = self.bed.tcp_server(Crash)
        with srv.connect(timeout=1.0) as conn:
            conn.recv(1)


if __name__ == "__main__":
    unittest.main()
'''


def _environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOCKFAKE_", "PYTEST_"))}
    # "python" in the reproduce command is this interpreter.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = str(ROOT)
    env["SOCKFAKE_TRACE_DIR"] = str(tmp_path / "traces")
    env.update(extra)
    return env


def _unittest(tmp_path: Path, *names: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "unittest", *names], cwd=tmp_path, capture_output=True,
        text=True, env=_environment(tmp_path), timeout=120, check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    return result.stdout + result.stderr


def _report(output: str, origin: str = "random") -> dict[str, str]:
    seed = re.search(r"simulated network, seed (\d+) \(derived from base seed (\d+) "
                     rf"\({origin}\) and LossyTest\.test_naive_client\)", output)
    digest = re.search(r"trace digest ([0-9a-f]{64})", output)
    command = re.search(r"^reproduce: (cd .*)$", output, re.M)
    assert seed and digest and command, output
    return {"seed": seed.group(1), "base": seed.group(2), "digest": digest.group(1),
            "command": command.group(1)}


def test_a_failing_unittest_prints_seed_events_files_and_a_reproduce_line(
    tmp_path: Path,
) -> None:
    (tmp_path / "test_lossy.py").write_text(LOSSY_TEST)
    output = _unittest(tmp_path, "test_lossy.LossyTest")
    report = _report(output)
    assert "Ran 2 tests" in output and "FAILED (errors=1)" in output
    assert "TimeoutError" in output
    # The last events: the datagrams and what the network did to them.
    events = output.split("lines of trace events:")[1].split("trace files")[0]
    assert re.search(r"^\s+\d+\.\d{6}  net\s+drop\s", events, re.M)
    assert re.search(r"^\s+\d+\.\d{6}  \S.*sendto\s", events, re.M)
    # The trace files exist and are the run's.
    files = re.findall(r"^  (/\S+\.(?:pcapng|jsonl|html))$", output, re.M)
    assert len(files) == 3 and all(Path(f).stat().st_size > 0 for f in files)
    assert "test_lossy.LossyTest.test_naive_client" in files[0]
    assert report["command"] == (
        f"cd {tmp_path} && SOCKFAKE_SEED={report['base']} python -m unittest "
        "test_lossy.LossyTest.test_naive_client"
    )

    # The reproduce line, run from elsewhere, fails the same way: same seed, same run.
    again = subprocess.run(
        ["bash", "-c", report["command"]], cwd=ROOT, capture_output=True, text=True,
        env=_environment(tmp_path), timeout=120, check=False,
    )
    assert again.returncode == 1
    rerun = _report(again.stdout + again.stderr, "from SOCKFAKE_SEED")
    assert (rerun["seed"], rerun["digest"]) == (report["seed"], report["digest"])
    assert "Ran 1 test" in again.stderr and "TimeoutError" in again.stderr


def test_a_unittest_file_given_by_path_reproduces_too(tmp_path: Path) -> None:
    package = tmp_path / "suite"
    package.mkdir()
    (package / "test_lossy.py").write_text(LOSSY_TEST)
    output = _unittest(tmp_path, "suite/test_lossy.py")  # loaded as suite.test_lossy
    command = _report(output)["command"]
    assert command.startswith(f"cd {tmp_path} && ")
    assert command.endswith(" python -m unittest suite.test_lossy.LossyTest.test_naive_client")
    again = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                           env=_environment(tmp_path), timeout=120, check=False)
    assert again.returncode == 1 and "Ran 1 test" in again.stderr


def test_a_handler_error_is_reported_with_runner_neutral_advice(tmp_path: Path) -> None:
    (tmp_path / "test_lossy.py").write_text(LOSSY_TEST)
    output = _unittest(tmp_path, "test_lossy.HandlerErrorTest")
    assert "ValueError: the handler's bug" in output
    assert "give the testbed handler_errors=(TimeoutError,)" in output
    assert "pytest.mark" not in output
    assert re.search(r"sockfake: simulated network, seed \d+", output)


def test_the_seed_is_pinned_by_sockfake_seed(tmp_path: Path) -> None:
    (tmp_path / "test_lossy.py").write_text(LOSSY_TEST)
    env = _environment(tmp_path, SOCKFAKE_SEED="12")
    runs = [subprocess.run([sys.executable, "-m", "unittest", "test_lossy.LossyTest"],
                           cwd=tmp_path, capture_output=True, text=True, env=env,
                           timeout=120, check=False).stderr for _ in range(2)]
    digests = [re.findall(r"trace digest ([0-9a-f]{64})", run) for run in runs]
    assert digests[0] and digests[0] == digests[1]
    assert "(derived from base seed 12 (from SOCKFAKE_SEED)" in runs[0]
    bad = subprocess.run([sys.executable, "-m", "unittest", "test_lossy.LossyTest"],
                         cwd=tmp_path, capture_output=True, text=True,
                         env=_environment(tmp_path, SOCKFAKE_SEED="many"), timeout=120,
                         check=False)
    assert "SOCKFAKE_SEED='many' is not a seed" in bad.stderr


@pytest.mark.skipif(shutil.which("bash") is None, reason="the reproduce line is for a shell")
def test_pytest_runs_a_mixin_test_case_and_shows_the_same_report(tmp_path: Path) -> None:
    (tmp_path / "test_lossy.py").write_text(LOSSY_TEST)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
         "test_lossy.py::LossyTest"], cwd=tmp_path, capture_output=True, text=True,
        env=_environment(tmp_path), timeout=120, check=False,
    )
    assert "1 failed, 1 passed" in result.stdout, result.stdout + result.stderr
    if sys.version_info >= (3, 11):  # a note on the exception: in pytest's traceback
        assert "sockfake: simulated network, seed" in result.stdout
    else:  # written to stderr: pytest shows it as the test's captured stderr
        assert "sockfake: simulated network, seed" in result.stdout + result.stderr


def test_open_testbed_reports_the_code_that_reproduces_its_network(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(TimeoutError) as caught:
        with open_testbed(seed=5, loss=1.0) as bed:
            with bed.network.socket(2, 2) as sock:
                sock.settimeout(0.5)
                sock.sendto(b"lost", ("127.0.0.1", 9))
                sock.recv(10)
    shown = "\n".join(getattr(caught.value, "__notes__", [])) + capsys.readouterr().err
    assert "sockfake: simulated network, seed 5 (given to open_testbed())" in shown
    assert "reproduce: open_testbed(seed=5, loss=1.0) runs the same network" in shown
    assert re.search(r"net\s+drop\s", shown)


def test_repeated_events_are_summarised_and_earlier_ones_kept() -> None:
    with SimNetwork(seed=1) as net:
        with net.socket(2, 2) as sock:
            sock.sendto(b"before the idle hour", ("127.0.0.1", 9))
        for _ in range(36_000):  # an idle loop ticking every 0.1 s for an hour
            net.sleep(0.1)
        events = net.trace.events
        assert len(events) > 36_000
        lines = last_events(events, 30)
    assert len(lines) <= 30
    summary = [line for line in lines if "more times before" in line]
    assert len(summary) == 1 and "(jump) ran 35999 more times before" in summary[0]
    assert any("sendto" in line for line in lines)  # what came before is still shown
    assert lines[-1].split()[0] == "3600.000000"

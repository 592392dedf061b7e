"""The reproduce commands of an exploration given by ``--sockfake-explore`` rerun it.

Its ``[schedule-K]`` items exist only with the option, so a command without it names a
test pytest cannot find: both the failure report's command and the summary's must
carry it.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

from test_plugin import make_tests, run


def test_the_commands_of_an_exploration_from_the_option_rerun_its_failure(pytester):
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
        shell = command.replace("python -m pytest", f"{shlex.quote(sys.executable)} -m pytest", 1)
        again = subprocess.run(
            shell + " -p no:hypothesispytest", shell=True, capture_output=True, text=True,
            timeout=120,
        )
        assert "1 failed" in again.stdout, again.stdout + again.stderr

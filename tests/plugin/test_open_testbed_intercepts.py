"""``open_testbed()`` intercepts by default, as the pytest fixtures do;
``intercept=False`` opts out."""

from __future__ import annotations

import http.server
import os
import time

import pytest
import requests

from sockfake.sim.intercept import is_intercepted
from sockfake.testing import open_testbed, sim_network


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)


# These run without the plugin's network (no fixture asks for one): the testbed is
# the only simulation in the test's thread.


def test_requests_reaches_a_testbed_server_without_asking_for_interception() -> None:
    with open_testbed(seed=1, latency=0.05) as bed:
        assert is_intercepted()
        srv = bed.tcp_server(Hello, server_class=http.server.ThreadingHTTPServer)
        assert requests.get(srv.url, timeout=10).text == "hello"
        time.sleep(3600)  # virtual
        assert bed.network.time() >= 3600
    assert not is_intercepted()


def test_intercept_false_opts_out() -> None:
    with open_testbed(seed=1, intercept=False) as bed:
        assert not is_intercepted()
        before = time.monotonic()
        bed.network.sleep(3600)
        assert bed.network.time() == 3600
        assert time.monotonic() - before < 60  # the real clock: the hour cost nothing


def test_sim_network_intercepts_too() -> None:
    with sim_network(seed=1) as net:
        assert is_intercepted()
        time.sleep(5)
        assert net.time() == 5
    with sim_network(seed=1, intercept=False):
        assert not is_intercepted()


def test_open_testbed_seeds_library_entropy_unless_told_not_to() -> None:
    def draws(**options: object) -> list[bytes]:
        out = []
        for _ in range(2):
            with open_testbed(seed=7, **options):  # type: ignore[arg-type]
                out.append(os.urandom(16))
        return out

    seeded = draws()
    assert seeded[0] == seeded[1]
    from_os = draws(seed_entropy=False)
    assert from_os[0] != from_os[1]

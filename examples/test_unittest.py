"""sockfake without pytest: unittest test cases on a simulated network.

``sockfake.testing`` is the testing core the pytest plugin is built on, and it does not
import pytest. ``TestbedMixin`` gives each test ``self.bed``, a fresh testbed
(``open_testbed()`` with the class's ``testbed_options``); at cleanup it stops the
servers and fails the test on a handler error or a leaked simulated thread or socket,
and a failing test prints the seed, the last trace events, the trace files and the
command that reruns it with the same seed. The test runs under interception
(``intercept=False`` opts out), so the stdlib's clients reach the simulated servers.
Run it with ``python -m unittest examples/test_unittest.py`` (pytest runs it too).
"""

import http.server
import unittest
import urllib.request

import sockfake
from sockfake.testing import TestbedMixin


class Upper(sockfake.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.readline().upper())


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *args):
        pass


class UpperTest(TestbedMixin, unittest.TestCase):
    testbed_options = {"latency": 0.01}  # or {"network": "real"}; the seed: SOCKFAKE_SEED

    def test_echo(self):
        srv = self.bed.tcp_server(Upper)
        with srv.connect() as conn:
            conn.sendall(b"hello\n")
            self.assertEqual(conn.makefile("rb").readline(), b"HELLO\n")

    def test_an_hour_costs_no_real_time(self):
        net = self.bed.network
        net.sleep(3600)  # virtual seconds
        self.assertGreaterEqual(net.time(), 3600)


class HttpTest(TestbedMixin, unittest.TestCase):
    # Intercepted (open_testbed's default, as the pytest plugin's): urllib, requests,
    # time.sleep and threading in this test's threads run on the simulation.
    testbed_options = {"seed": 1, "latency": 0.05}  # a seed of its own, fixed

    def test_urllib_against_the_stdlib_http_server(self):
        srv = self.bed.tcp_server(Hello, server_class=http.server.ThreadingHTTPServer)
        with urllib.request.urlopen(srv.url, timeout=10) as reply:
            self.assertEqual(reply.read(), b"hello")


if __name__ == "__main__":
    unittest.main()

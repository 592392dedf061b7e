"""sockfake without pytest: unittest test cases on a simulated network.

``sockfake.testing`` is the testing core the pytest plugin is built on, and it does not
import pytest. ``open_testbed()`` is a context manager: entered in ``setUp``, it gives
each test a fresh network; at cleanup it stops the servers and fails the test on a
handler error or a leaked simulated thread or socket. The block runs under
interception (``intercept=False`` opts out), so the stdlib's clients reach the
simulated servers. Run it with
``python -m unittest examples/test_unittest.py`` (pytest runs it too).
"""

import http.server
import unittest
import urllib.request

import sockfake
from sockfake.testing import open_testbed


def use_testbed(case, **options):
    """Enter ``open_testbed(**options)`` for one test; closed and checked at cleanup.

    (On Python 3.11 and later, ``case.enterContext(open_testbed(**options))`` is the same.)
    """
    testbed = open_testbed(**options)
    bed = testbed.__enter__()
    case.addCleanup(testbed.__exit__, None, None, None)
    return bed


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


class UpperTest(unittest.TestCase):
    def setUp(self):
        self.bed = use_testbed(self, seed=3, latency=0.01)  # or use_testbed(self, network="real")

    def test_echo(self):
        srv = self.bed.tcp_server(Upper)
        with srv.connect() as conn:
            conn.sendall(b"hello\n")
            self.assertEqual(conn.makefile("rb").readline(), b"HELLO\n")

    def test_an_hour_costs_no_real_time(self):
        net = self.bed.network
        net.sleep(3600)  # virtual seconds
        self.assertGreaterEqual(net.time(), 3600)


class HttpTest(unittest.TestCase):
    def setUp(self):
        # Intercepted (open_testbed's default, as the pytest plugin's): urllib, requests,
        # time.sleep and threading in this test's threads run on the simulation.
        self.bed = use_testbed(self, seed=1, latency=0.05)

    def test_urllib_against_the_stdlib_http_server(self):
        srv = self.bed.tcp_server(Hello, server_class=http.server.ThreadingHTTPServer)
        with urllib.request.urlopen(srv.url, timeout=10) as reply:
            self.assertEqual(reply.read(), b"hello")


if __name__ == "__main__":
    unittest.main()

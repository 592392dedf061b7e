"""A slow client, in virtual time: the claim of the socketserver documentation.

A synchronous ``TCPServer`` serves one client at a time, so a client that trickles
its request in keeps everyone else waiting; ``ThreadingTCPServer`` keeps answering.
On the simulated network the trickle takes 20 virtual seconds and no real time.
"""

import threading

import pytest

import sockfake

# Simulated network only, whatever --sockfake-network says:
# on real sockets the trickle would take 20 real seconds.
pytestmark = pytest.mark.sockfake(network="sim")


class LineUpper(sockfake.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.readline().upper())


def trickle(network, address, message, interval):
    """Send one byte every ``interval`` (virtual) seconds, then read the reply."""
    with network.create_connection(address) as conn:
        for byte in message:
            conn.sendall(bytes([byte]))
            network.sleep(interval)
        conn.recv(1024)


def ask(network, address, timeout):
    """One quick request; the reply, or None if it did not come within ``timeout``."""
    with network.create_connection(address, timeout=timeout) as conn:
        conn.sendall(b"quick\n")
        try:
            return conn.makefile("rb").readline()
        except TimeoutError:
            return None


@pytest.mark.parametrize(("concurrency", "expected"), [("sync", None), ("threading", b"QUICK\n")])
def test_a_slow_client_blocks_only_a_synchronous_server(
    tcp_server, sockfake_network, concurrency, expected
):
    net = sockfake_network
    srv = tcp_server(LineUpper, concurrency=concurrency)
    slow = threading.Thread(
        target=trickle, args=(net, srv.address, b"s" * 19 + b"\n", 1.0), name="slow-client"
    )
    slow.start()
    net.sleep(0.5)  # the slow client is connected and being served
    started = net.time()
    assert ask(net, srv.address, timeout=5.0) == expected
    assert net.time() - started <= 5.0
    slow.join()
    assert net.time() >= 20.0  # twenty virtual seconds went by, in no real time

"""A UDP client with retries under 30 % loss, 50 ms latency and bursty drops.

Two hundred exchanges with a 1 s retry timer run in a fraction of a real second:
the waiting happens on the simulated network's virtual clock.
"""

import pytest

import sockfake
from sockfake.sim import GilbertElliott

# Simulated network only, whatever --sockfake-network says:
# link faults exist only there.
pytestmark = pytest.mark.sockfake(network="sim")


class Echo(sockfake.DatagramRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.read().upper())


def request(sock, address, payload, *, net, timeout=1.0, attempts=20):
    """Send until the matching reply arrives; stale replies to old tries are skipped."""
    for _ in range(attempts):
        sock.sendto(payload, address)
        deadline = net.time() + timeout
        while (left := deadline - net.time()) > 0:
            sock.settimeout(left)
            try:
                reply = sock.recv(2048)
            except TimeoutError:
                break
            if reply == payload.upper():
                return reply
    raise TimeoutError(f"no reply to {payload!r} after {attempts} attempts")


@pytest.mark.sockfake(loss=0.3, latency=0.05, jitter=0.02)
def test_retrying_client_gets_every_reply(udp_server, sockfake_network):
    srv = udp_server(Echo)
    sock = srv.client()
    for number in range(200):
        payload = b"ping %d" % number
        assert request(sock, srv.address, payload, net=sockfake_network) == payload.upper()
    assert sockfake_network.time() > 10  # many 1 s timeouts happened, virtually


@pytest.mark.sockfake(burst_loss=GilbertElliott(p=0.05, r=0.3), duplicate=0.1)
def test_bursts_and_duplicates(udp_server, sockfake_network):
    srv = udp_server(Echo)
    sock = srv.client()
    for number in range(100):
        payload = b"burst %d" % number
        # A burst drops every datagram while it lasts (about 3 on average, but it stays
        # with probability 0.7 per datagram): allow for long ones, as a real client must.
        reply = request(sock, srv.address, payload, net=sockfake_network, attempts=60)
        assert reply == payload.upper()
    drops = [event for event in sockfake_network.trace.events if event[2] == "drop"]
    assert drops, "the bursty link lost something"

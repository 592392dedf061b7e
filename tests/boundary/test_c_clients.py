"""Third-party C clients (libcurl, libpq, gRPC's core) in a simulated test: given a
simulated address they fail at once, reaching nothing; given a real one they are
detected, and the test fails naming the connection. Each test skips, naming the
package, when it is not installed (the test extra installs them)."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from boundary_listener import RealListener

from sockfake.network import SockfakeRuntimeError
from sockfake.sim import SimNetwork
from sockfake.sim.intercept import stray_sockets


def _detected_peer(error: BaseException, listener: RealListener) -> None:
    text = str(error)
    assert "a real socket was opened by C code" in text
    assert f"-> 127.0.0.1:{listener.port}" in text


def _hold_and_look(conn: socket.socket) -> None:
    """The real listener's on_accept: look while the C client's connection is open,
    then close it (so the client fails at once instead of waiting for a reply)."""
    stray_sockets.look_now()
    conn.shutdown(socket.SHUT_RDWR)


def test_pycurl_given_a_simulated_address_fails_at_once(quiet_listener: RealListener) -> None:
    pycurl = pytest.importorskip("pycurl")
    with SimNetwork(seed=1) as net, net.intercept():
        with socket.create_server(("127.0.0.1", 0)) as server:
            curl = pycurl.Curl()
            curl.setopt(pycurl.URL, f"http://127.0.0.1:{server.getsockname()[1]}/")
            with pytest.raises(pycurl.error) as failed:
                curl.perform()
            curl.close()
    assert failed.value.args[0] == pycurl.E_COULDNT_CONNECT


def test_pycurl_reaching_a_real_server_fails_the_test(real_listener: RealListener) -> None:
    pycurl = pytest.importorskip("pycurl")
    real_listener.on_accept = _hold_and_look
    with pytest.raises(SockfakeRuntimeError) as detected:
        with SimNetwork(seed=1) as net, net.intercept():
            curl = pycurl.Curl()
            curl.setopt(pycurl.URL, f"http://127.0.0.1:{real_listener.port}/")
            with pytest.raises(pycurl.error):
                curl.perform()
            curl.close()
    _detected_peer(detected.value, real_listener)


def test_psycopg2_given_a_simulated_address_fails_at_once(quiet_listener: RealListener) -> None:
    psycopg2 = pytest.importorskip("psycopg2")
    with SimNetwork(seed=1) as net, net.intercept():
        with socket.create_server(("127.0.0.1", 0)) as server:
            port = server.getsockname()[1]
            with pytest.raises(psycopg2.OperationalError, match="Connection refused"):
                psycopg2.connect(f"host=127.0.0.1 port={port} user=u dbname=d connect_timeout=3600")


def test_psycopg2_reaching_a_real_server_fails_the_test(real_listener: RealListener) -> None:
    psycopg2 = pytest.importorskip("psycopg2")
    real_listener.on_accept = _hold_and_look
    with pytest.raises(SockfakeRuntimeError) as detected:
        with SimNetwork(seed=1) as net, net.intercept():
            dsn = f"host=127.0.0.1 port={real_listener.port} user=u dbname=d sslmode=disable"
            with pytest.raises(psycopg2.OperationalError):
                psycopg2.connect(dsn)
    _detected_peer(detected.value, real_listener)


def test_a_grpc_call_with_a_simulated_deadline_fails_at_once(quiet_listener: RealListener) -> None:
    grpc = pytest.importorskip("grpc")
    with SimNetwork(seed=1) as net, net.intercept():
        with socket.create_server(("127.0.0.1", 0)) as server:
            channel = grpc.insecure_channel(f"127.0.0.1:{server.getsockname()[1]}")
            call = channel.unary_unary("/boundary.Test/Call")
            # time.time() + 3600 on the simulation's epoch (2025) is already past on
            # the real clock that gRPC's core waits on: it gives up at once, where a
            # future epoch kept it waiting until pytest-timeout.
            with pytest.raises(grpc.RpcError) as failed:
                call(b"hello", timeout=3600)
            channel.close()
    assert failed.value.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)


def test_a_grpc_channel_reaching_a_real_server_fails_the_test(
    real_listener: RealListener,
) -> None:
    grpc = pytest.importorskip("grpc")
    real_listener.on_accept = _hold_and_look
    with pytest.raises(SockfakeRuntimeError) as detected:
        with SimNetwork(seed=1) as net, net.intercept():
            channel = grpc.insecure_channel(f"127.0.0.1:{real_listener.port}")
            call = channel.unary_unary("/boundary.Test/Call")
            with pytest.raises(grpc.RpcError):
                call(b"hello")  # no deadline: gRPC's core connects for real
            channel.close()
    _detected_peer(detected.value, real_listener)


_GRPC_SERVER_IN_A_SIMULATION = """
from concurrent import futures
import grpc
from sockfake.network import SockfakeRuntimeError
from sockfake.sim import SimNetwork

try:
    # The server's polling thread ends up blocked in gRPC's core, outside the
    # simulation, when the run fails: closing the network gives up on it after
    # stall_timeout seconds (10 by default).
    with SimNetwork(seed=1, stall_timeout=1) as net, net.intercept():
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        port = server.add_insecure_port("127.0.0.1:0")  # a real port, bound in C
        server.start()
        server.wait_for_termination(timeout=3600)
except SockfakeRuntimeError as error:
    print(f"port {port}: {error}", flush=True)
"""


def test_a_grpc_server_in_a_simulated_test_fails_it_at_once() -> None:
    # In a child process of its own: the server's simulated threads are gone when the
    # run fails, so it can never be stopped, and gRPC's core would live on in this one.
    pytest.importorskip("grpc")
    child = subprocess.run(
        [sys.executable, "-c", _GRPC_SERVER_IN_A_SIMULATION],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    first = child.stdout.partition("\n")[0]
    port = first.partition(":")[0].removeprefix("port ")
    assert port.isdigit(), child.stdout + child.stderr
    assert "a real socket was opened by C code" in first
    assert f":{port} -> " in first and "(LISTEN)" in first

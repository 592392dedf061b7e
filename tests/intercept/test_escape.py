"""Nothing escapes: a simulated thread never reaches the real network or a real process."""

from __future__ import annotations

import os
import select
import socket
import ssl
import subprocess
import sys
import threading

import pytest

from sockfake.network import SockfakeRuntimeError
from sockfake.sim import SimNetwork


@pytest.fixture
def real_listener() -> socket.socket:  # type: ignore[misc]
    """A real server on a real loopback port, made outside the simulation."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    yield listener
    listener.close()


def test_a_simulated_client_never_reaches_a_real_server_on_the_same_port(
    real_listener: socket.socket,
) -> None:
    port = real_listener.getsockname()[1]
    with SimNetwork(seed=1) as net, net.intercept():
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
        with socket.socket() as client, pytest.raises(ConnectionRefusedError):
            client.connect(("127.0.0.1", port))
        errors: list[BaseException] = []

        def in_a_handler_thread() -> None:
            try:
                socket.create_connection(("localhost", port), timeout=5)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=in_a_handler_thread)
        thread.start()
        thread.join()
        assert [type(e) for e in errors] == [ConnectionRefusedError]
    with pytest.raises(BlockingIOError):
        real_listener.accept()  # nobody ever connected for real


def test_a_real_socket_made_before_intercept_is_refused_in_a_simulated_thread(
    real_listener: socket.socket,
) -> None:
    real = socket.socket()
    try:
        with SimNetwork(seed=1) as net, net.intercept():
            with pytest.raises(SockfakeRuntimeError, match=r"socket.socket.connect\(\)"):
                real.connect(real_listener.getsockname())
            with pytest.raises(SockfakeRuntimeError, match="never touches the real network"):
                real.sendto(b"x", ("127.0.0.1", 9))
            with pytest.raises(SockfakeRuntimeError, match="accept"):
                real_listener.accept()
    finally:
        real.close()
    with pytest.raises(BlockingIOError):
        real_listener.accept()


def test_a_real_socket_class_captured_at_import_is_refused() -> None:
    from sockfake.sim.intercept.install import _real  # type: ignore[attr-defined]

    captured = _real["socket"]  # as `from socket import socket` would have it
    with SimNetwork(seed=1) as net, net.intercept():
        with pytest.raises(SockfakeRuntimeError, match=r"socket.socket\(\)"):
            captured(socket.AF_INET, socket.SOCK_STREAM)
        with pytest.raises(SockfakeRuntimeError, match="fileno"):
            socket.socket(fileno=0)  # a real descriptor
        with socket.socket() as sim:
            with socket.socket(fileno=sim.fileno()) as same:  # a simulated one: shared
                assert same.fileno() == sim.fileno() and same.type == socket.SOCK_STREAM


def test_select_and_poll_refuse_real_descriptors_in_a_simulated_thread() -> None:
    read_fd, write_fd = os.pipe()
    try:
        with SimNetwork(seed=1) as net, net.intercept():
            with pytest.raises(SockfakeRuntimeError, match=r"select.select\(\)"):
                select.select([read_fd], [], [], 0)
            with pytest.raises(SockfakeRuntimeError, match=r"select.poll\(\)"):
                select.poll().register(read_fd)
            import selectors

            with selectors.DefaultSelector() as sel, pytest.raises(ValueError):
                sel.register(read_fd, selectors.EVENT_READ)
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_a_real_select_on_a_simulated_descriptor_fails_at_once(inet: SimNetwork) -> None:
    from sockfake.sim.intercept.install import _real  # type: ignore[attr-defined]

    with socket.socket() as sock:
        assert sock.fileno() >= 2**20  # above every real descriptor
        with pytest.raises(ValueError, match="out of range"):
            _real["select"]([sock], [], [], 0)


def test_processes_are_refused(inet: SimNetwork) -> None:
    with pytest.raises(NotImplementedError, match=r"os.fork\(\).*processes are not simulated"):
        os.fork()
    with pytest.raises(NotImplementedError, match=r"subprocess.Popen\(\)"):
        subprocess.run(["true"], check=False)
    with pytest.raises(NotImplementedError, match=r"os.system\(\)"):
        os.system("true")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX start methods")
@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_a_process_pool_is_refused_before_a_process_starts(inet: SimNetwork,
                                                           method: str) -> None:
    # multiprocessing starts these with _posixsubprocess.fork_exec, not Popen: the
    # forkserver started for real, and its real Unix socket was not found on the
    # simulation (CPython's test_get_event_loop_new_process).
    import concurrent.futures
    import multiprocessing

    context = multiprocessing.get_context(method)
    with pytest.raises(NotImplementedError, match=r"ProcessPoolExecutor\(\).*processes are "
                                                  "not simulated"):
        # Refused as the pool is made (intercept/processes.py), before its resource
        # tracker or first worker would start through fork_exec.
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
            pool.submit(abs, -1).result()


def test_processes_outside_the_simulation_still_work(inet: SimNetwork) -> None:
    results: list[int] = []
    from sockfake.sim.kernel.thread_hooks import _original_start

    thread = threading.Thread(target=lambda: results.append(subprocess.call(["true"])))
    _original_start(thread)  # a thread that is not part of the simulation
    thread.join()
    assert results == [0]


def test_tls_on_a_simulated_datagram_socket_is_refused_by_name(inet: SimNetwork) -> None:
    context = ssl.create_default_context()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        with pytest.raises(NotImplementedError, match=r"wrap_socket\(\).*DTLS is not simulated"):
            context.wrap_socket(sock, server_hostname="example")


def test_a_real_select_or_poll_outside_the_simulation_refuses_a_simulated_socket(
    inet: SimNetwork,
) -> None:
    from sockfake.sim.kernel.thread_hooks import _original_start

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    errors: list[BaseException] = []

    def outside() -> None:
        for call in (
            lambda: select.select([sock], [], [], 0),
            lambda: select.poll().register(sock, select.POLLIN),
        ):
            try:
                call()
            except BaseException as exc:
                errors.append(exc)

    thread = threading.Thread(target=outside)
    _original_start(thread)  # a thread outside the simulation
    thread.join()
    sock.close()
    assert [type(e) for e in errors] == [SockfakeRuntimeError, SockfakeRuntimeError]
    assert all("is a simulated socket's" in str(e) for e in errors)

"""A real Unix socket's path, from a simulation: a file in the way, never reached.

A real stream listener and a real datagram socket are bound to paths outside every
simulation; a simulated thread that connects, sends or binds there meets a file (a
socket no simulated socket is bound to): ``ECONNREFUSED``, ``EADDRINUSE``. Nothing
reaches the real sockets."""

from __future__ import annotations

import errno
import os
import socket
import stat
from pathlib import Path

import pytest

from sockfake.sim import SimNetwork

pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="Unix sockets")


def test_a_real_unix_socket_is_never_reached_from_the_simulation(tmp_path: Path) -> None:
    stream_path, dgram_path = str(tmp_path / "real.sock"), str(tmp_path / "real-dgram.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener, \
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        listener.bind(stream_path)
        listener.listen()
        receiver.bind(dgram_path)
        with SimNetwork(seed=1) as net, net.intercept():
            assert stat.S_ISSOCK(os.stat(stream_path).st_mode)  # the real file
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                with pytest.raises(ConnectionRefusedError):
                    client.connect(stream_path)
                with pytest.raises(OSError) as bound:
                    client.bind(stream_path)
                assert bound.value.errno == errno.EADDRINUSE
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
                with pytest.raises(ConnectionRefusedError):
                    sender.sendto(b"x", dgram_path)
        listener.setblocking(False)
        receiver.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()
        with pytest.raises(BlockingIOError):
            receiver.recv(1)

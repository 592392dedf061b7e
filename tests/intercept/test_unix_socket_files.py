"""A Unix socket bound to a path has a socket file: ``os.stat``, ``os.path.exists``,
``os.unlink``, ``os.rename`` and ``pathlib`` see it, it outlives its socket, and
connect() finds the socket through it, on the real OS and under interception alike.

Each story runs on the real OS (no simulation) and on the simulation, and the two must
tell the same. The simulation's files are in memory: nothing is written to the real
directory, and they go with their network."""

from __future__ import annotations

import errno
import os
import pathlib
import socket
import stat
import sys
from typing import Any

import pytest

from sockfake.sim import SimNetwork

pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="Unix sockets")
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="Linux's answers are the reference")


def _errno(call: Any) -> int | None:
    try:
        call()
    except OSError as exc:
        return exc.errno
    return None


def _story(directory: pathlib.Path) -> list[Any]:
    told: list[Any] = []
    path = directory / "server.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()
    info = os.stat(path)
    told.append((stat.S_ISSOCK(info.st_mode), stat.S_ISSOCK(os.lstat(str(path)).st_mode),
                 os.path.exists(path), path.exists(), path.is_socket(), path.is_file()))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(str(path))
    server.close()
    told.append(os.path.exists(path))  # the file outlives its socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        told.append(_errno(lambda: client.connect(str(path))))  # ECONNREFUSED
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as again:
        told.append(_errno(lambda: again.bind(str(path))))  # EADDRINUSE
        os.unlink(path)
        told.append(os.path.exists(path))
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            told.append(_errno(lambda: client.connect(str(path))))  # ENOENT
        again.bind(str(path))
        again.listen()
        moved = directory / "moved.sock"
        os.rename(path, moved)  # the socket is found by its file, wherever it is
        told.append((os.path.exists(path), os.path.exists(moved)))
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(moved))
            told.append(again.accept()[0].getsockname() == str(path))
        pathlib.Path(moved).unlink()
        told.append(_errno(lambda: os.stat(moved)))
    told.append(_errno(lambda: socket.socket(socket.AF_UNIX).bind(str(directory / "no" / "s"))))
    return told


@linux_only
def test_the_socket_file_tells_the_same_story_on_the_simulation(tmp_path: pathlib.Path
                                                              ) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "sim").mkdir()
    real = _story(tmp_path / "real")
    with SimNetwork(seed=1) as net, net.intercept():
        sim = _story(tmp_path / "sim")
    assert sim == real
    assert real[2:4] == [errno.ECONNREFUSED, errno.EADDRINUSE]
    assert real[-1] == errno.ENOENT


def test_the_simulated_files_are_in_memory_and_go_with_their_network(
        tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "app.sock")
    with SimNetwork(seed=1) as net, net.intercept():
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        assert os.path.exists(path)
        assert os.listdir(tmp_path) == []  # listings are real: nothing was written
        server.close()
    assert os.listdir(tmp_path) == []
    assert not os.path.exists(path)
    # A next network (another seed, an exploration's next run) starts clean.
    with SimNetwork(seed=2) as net, net.intercept():
        assert not os.path.exists(path)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
            server.bind(path)


def test_a_real_file_at_the_path_is_in_the_way(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "plain"
    path.write_text("")
    with SimNetwork(seed=1) as net, net.intercept():
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            assert _errno(lambda: sock.bind(str(path))) == errno.EADDRINUSE
            assert _errno(lambda: sock.connect(str(path))) == errno.ECONNREFUSED
        os.unlink(path)  # a real file: the real call
    assert not path.exists()

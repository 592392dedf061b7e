"""The real network's stale Unix socket probe (``remove_stale_socket``).

Before a server takes over a Unix socket file it asks whether anyone still listens
there: from the kernel's table (``/proc/net/unix``) when it can, else by a
non-blocking connect. Either way the probe must neither block on a live server's
full backlog nor hand that server a connection, and must still remove a dead file.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import time
from pathlib import Path

import pytest
from helpers import WAIT, in_thread, needs_unix, serving

import sockfake
from sockfake import real


class Upper(sockfake.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.readline().upper())


def _stale_cls(base: type) -> type:
    return type("Server", (base,), {"remove_stale_socket": True})



@needs_unix
def test_stale_probe_does_not_hang_on_a_live_server_with_a_full_backlog(unix_dir: str) -> None:
    path = os.path.join(unix_dir, "s")
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(path)
    live.listen(0)
    fillers = []
    try:
        for _ in range(4):  # fill the backlog (0 means one pending connection)
            filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            filler.setblocking(False)
            try:
                filler.connect(path)
            except BlockingIOError:
                filler.close()
                break
            fillers.append(filler)
        _, outcome = in_thread(lambda: _stale_cls(sockfake.UnixStreamServer)(path, Upper))
        assert outcome["done"].wait(2.0), "the constructor hung on the full backlog"
        assert isinstance(outcome.get("error"), OSError)
        assert outcome["error"].errno == errno.EADDRINUSE
        assert stat.S_ISSOCK(os.stat(path).st_mode)
    finally:
        for filler in fillers:
            filler.close()
        live.close()



@needs_unix
def test_stale_probe_hands_a_live_server_no_connection(unix_dir: str) -> None:
    path = os.path.join(unix_dir, "s")
    with sockfake.UnixStreamServer(path, Upper) as live:
        with pytest.raises(OSError) as caught:
            _stale_cls(sockfake.UnixStreamServer)(path, Upper)
        assert caught.value.errno == errno.EADDRINUSE
        live.socket.setblocking(False)
        with pytest.raises(BlockingIOError):
            live.socket.accept()  # nothing was queued by the probe



@needs_unix
def test_stale_probe_keeps_a_socket_bound_but_not_listening_yet(unix_dir: str) -> None:
    path = os.path.join(unix_dir, "s")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as early:
        early.bind(path)  # a server between bind() and listen()
        with pytest.raises(OSError) as caught:
            _stale_cls(sockfake.UnixStreamServer)(path, Upper)
        assert caught.value.errno == errno.EADDRINUSE
        assert os.path.exists(path)



@needs_unix
@pytest.mark.parametrize("proc", ["with /proc/net/unix", "without"])
def test_stale_probe_still_removes_a_dead_socket_file(
    unix_dir: str, proc: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if proc == "without":
        monkeypatch.setattr(real, "_PROC_NET_UNIX", os.path.join(unix_dir, "no-such-table"))
    path = os.path.join(unix_dir, "s")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(path)
    server = _stale_cls(sockfake.UnixStreamServer)(path, Upper)
    with serving(server):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(WAIT)
            client.connect(path)
            client.sendall(b"hi\n")
            assert client.makefile("rb").readline() == b"HI\n"



@needs_unix
def test_stale_probe_without_proc_treats_a_full_backlog_as_alive(
    unix_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(real, "_PROC_NET_UNIX", os.path.join(unix_dir, "no-such-table"))
    path = os.path.join(unix_dir, "s")
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(path)
    live.listen(0)
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            filler.setblocking(False)
            try:
                filler.connect(path)
            except BlockingIOError:
                filler.close()
                break
            fillers.append(filler)
        started = time.monotonic()
        real.REAL_NETWORK.remove_stale_unix_socket(path, socket.SOCK_STREAM)
        assert time.monotonic() - started < 1.0
        assert os.path.exists(path)
    finally:
        for filler in fillers:
            filler.close()
        live.close()



def test_bound_unix_paths_reads_the_kernel_table(tmp_path: Path) -> None:
    table = tmp_path / "unix"
    table.write_text(
        "Num       RefCount Protocol Flags    Type St Inode Path\n"
        "0000000000000000: 00000002 00000000 00010000 0001 01 1234 /run/a.sock\n"
        "0000000000000000: 00000002 00000000 00000000 0002 01 1235 @abstract\n"
        "0000000000000000: 00000003 00000000 00000000 0001 03 1236\n"
        "0000000000000000: 00000002 00000000 00000000 0001 01 1237 rel/b.sock\n"
    )
    assert real._bound_unix_paths(str(table)) == {"/run/a.sock", "rel/b.sock"}
    assert real._named_in("/run/a.sock", {"/run/a.sock"})
    assert real._named_in("/elsewhere/b.sock", {"rel/b.sock"})  # in doubt: alive
    assert not real._named_in("/run/c.sock", {"/run/a.sock", "rel/b.sock"})

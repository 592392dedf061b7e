"""``intercept(net, linger=True)``: the patches outlive the interception, for the next.

The pytest plugin's: installing and removing the patches was most of a simulated
test's set-up and tear-down. Between interceptions every patched entry point gives the
real OS (no thread is simulated); the next one reuses the patches and still acts on
what modules imported meanwhile bound (``made_before``); ``remove_lingering()`` or a
non-lingering interception's end puts the originals back.
"""

from __future__ import annotations

import importlib
import socket
import sys
import threading
import time
from pathlib import Path

from sockfake.sim import SimNetwork
from sockfake.sim.intercept import install
from sockfake.sim.intercept.dispatch import REAL
from sockfake.sim.intercept.made_before import GuardedLock


def test_patches_linger_serve_the_real_os_and_are_reused(tmp_path: Path) -> None:
    real_socket = socket.socket
    with SimNetwork(seed=1) as net, install.intercept(net, linger=True):
        patched = socket.socket
        assert time.monotonic() != REAL["monotonic"]()  # virtual
    try:
        assert install.is_lingering()
        assert socket.socket is patched  # left in place
        with socket.socket() as sock:  # outside any simulation: a real socket
            assert isinstance(sock, real_socket)
        assert abs(time.monotonic() - REAL["monotonic"]()) < 60  # the real clock
        # A module imported between the two interceptions, with a lock at module level.
        (tmp_path / "late_lock_module.py").write_text("import threading\nlock = threading.Lock()\n")
        sys.path.insert(0, str(tmp_path))
        try:
            late = importlib.import_module("late_lock_module")
        finally:
            sys.path.remove(str(tmp_path))
        real_lock = late.lock
        with SimNetwork(seed=2) as net2, install.intercept(net2):
            assert socket.socket is patched  # reused, not built again
            assert isinstance(late.lock, GuardedLock)  # made_before read the new module
            with late.lock:
                pass
        assert not install.is_lingering()  # a plain interception's end removes them
        assert socket.socket is real_socket
        assert late.lock is real_lock
        assert type(threading.Lock()) is type(REAL["allocate_lock"]())
    finally:
        install.remove_lingering()
        sys.modules.pop("late_lock_module", None)


def test_remove_lingering_puts_the_originals_back() -> None:
    real_socket, real_sleep = socket.socket, time.sleep
    with SimNetwork(seed=1) as net, install.intercept(net, linger=True):
        pass
    assert socket.socket is not real_socket
    install.remove_lingering()
    assert not install.is_lingering()
    assert socket.socket is real_socket and time.sleep is real_sleep
    install.remove_lingering()  # nothing left: nothing to do

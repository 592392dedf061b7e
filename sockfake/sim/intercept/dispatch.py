"""Who is asking: the per-call test every patch of ``net.intercept()`` starts with.

A call is simulated when the calling thread takes part in an intercepted network's
kernel (``current_kernel()`` is that kernel and the thread is registered in it), and
its caller is not the simulation itself (the kernel keeps real time) or test
machinery that measures real time. Also here: the stdlib originals, taken before any
patch, and the rule for primitives that must stay real (stdlib internals, imports).
"""

from __future__ import annotations

import _thread
import os
import queue
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from sockfake.sim.kernel.core import Kernel, current_kernel
from sockfake.sim.net.topology import Host

if TYPE_CHECKING:
    from sockfake.sim.network import SimNetwork

__all__ = ["REAL", "caller_host", "caller_network", "is_intercepted"]

# Intercepted networks by kernel (sockfake.sim.intercept.install adds and removes them).
_active: dict[Kernel, SimNetwork] = {}

# The originals, taken when this module is first imported (before any patch).
REAL: dict[str, Any] = {
    "sleep": time.sleep,
    "pthread_kill": getattr(signal, "pthread_kill", None),
    "kill": os.kill,
    "raise_signal": signal.raise_signal,
    "setitimer": getattr(signal, "setitimer", None),
    "getitimer": getattr(signal, "getitimer", None),
    "alarm": getattr(signal, "alarm", None),
    "monotonic": time.monotonic,
    "monotonic_ns": time.monotonic_ns,
    "time": time.time,
    "time_ns": time.time_ns,
    "perf_counter": time.perf_counter,
    "perf_counter_ns": time.perf_counter_ns,
    "select": select.select,
    "poll": getattr(select, "poll", None),
    "epoll": getattr(select, "epoll", None),
    "socket": socket.socket,
    "create_connection": socket.create_connection,
    "create_server": getattr(socket, "create_server", None),
    "socketpair": getattr(socket, "socketpair", None),
    "getaddrinfo": socket.getaddrinfo,
    "gethostbyname": socket.gethostbyname,
    "gethostbyname_ex": socket.gethostbyname_ex,
    "gethostbyaddr": socket.gethostbyaddr,
    "getfqdn": socket.getfqdn,
    "gethostname": socket.gethostname,
    "Lock": threading.Lock,
    "RLock": threading.RLock,
    "Condition": threading.Condition,
    "Event": threading.Event,
    "Semaphore": threading.Semaphore,
    "BoundedSemaphore": threading.BoundedSemaphore,
    "Barrier": threading.Barrier,
    "Timer": threading.Timer,
    "enumerate": threading.enumerate,
    "active_count": threading.active_count,
    "_count": _thread._count,
    "allocate_lock": _thread.allocate_lock,
    "start_new_thread": _thread.start_new_thread,
    "SimpleQueue": queue.SimpleQueue,
    "Popen.__init__": subprocess.Popen.__init__,
    "pipe": os.pipe,
}

# -- who is asking ---------------------------------------------------------------------


def caller_network() -> SimNetwork | None:
    """The intercepted network of the calling thread, or None (the real OS)."""
    if not _active:
        return None
    kernel = current_kernel()
    if kernel is None:
        return None
    net = _active.get(kernel)
    if net is None:
        return None
    # A thread still on the kernel's stack while it exits is no longer one of its threads.
    if not kernel.is_simulated_caller():
        return None
    return net


def caller_host(net: SimNetwork) -> Host:
    """The host the calling (simulated) thread runs on: the one ``Host.thread()`` made
    it for, or its creator's; the network's default host for the rest."""
    host = net.kernel.thread_for_caller().host
    return host if isinstance(host, Host) else net.default_host


def is_intercepted() -> bool:
    """Is the calling thread a thread of an intercepted simulation?"""
    return caller_network() is not None


# Test machinery that measures real time even when it runs in a simulated thread
# (durations in reports, Hypothesis deadlines, pytest-timeout).
_REAL_TIME_PACKAGES = frozenset(
    {"_pytest", "pytest", "pluggy", "hypothesis", "pytest_timeout", "xdist", "execnet",
     "coverage"}
)  # fmt: skip


def _internal(depth: int) -> bool:
    """Is the caller (``depth`` frames up from the patched function) the simulation itself,
    or test machinery that must keep real time?

    The kernel keeps real time and waits on a real pipe for the turn; those calls
    must reach the OS even from a simulated thread.
    """
    name: str = sys._getframe(depth + 1).f_globals.get("__name__", "")
    return name.startswith("sockfake.sim.") or name.partition(".")[0] in _REAL_TIME_PACKAGES


_REAL_MAKERS = ("threading", "functools", "logging")
_IMPORT_SEARCH_LIMIT = 200  # frames: a bound on the walk, far below any real import


def made_at_import(depth: int) -> str | None:
    """The module whose import is running the caller (``depth`` frames up), or None.

    An import running in a simulated thread makes module-level objects that outlive
    the simulation and are shared with every thread: module code, or any call below it
    (``_cache = Registry()`` whose ``__init__`` makes a Lock, however deep). The walk
    stops at the test machinery (the frames under a test's own code: what calls a test
    is not an import) and at a script's own top-level code (``__main__``)."""
    caller: Any = sys._getframe(depth + 1)
    for _ in range(_IMPORT_SEARCH_LIMIT):
        if caller is None:
            return None
        module: str = caller.f_globals.get("__name__", "")
        if caller.f_code.co_name == "<module>":
            return None if module == "__main__" else module
        if module.partition(".")[0] in _REAL_TIME_PACKAGES:
            return None
        caller = caller.f_back
    return None


def _makes_real(depth: int) -> bool:
    """Should the primitive being made stay real? (stdlib internals, import-time code)."""
    name: str = sys._getframe(depth + 1).f_globals.get("__name__", "")
    if name.startswith("sockfake.sim.") or name.partition(".")[0] in _REAL_MAKERS:
        return True
    return made_at_import(depth + 1) is not None


def _sim_kernel_for_new(depth: int) -> Kernel | None:
    net = caller_network()
    if net is None or _makes_real(depth + 1):
        return None
    return net.kernel



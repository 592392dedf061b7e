"""The backstop: an audit hook that refuses, in simulated threads, what no patch reaches.

The install table patches the stdlib's Python-level entry points; a reference taken
before the interception (``from os import execv``), the C socket type itself
(``socket.SocketType``, ``_socket.socket``) and its methods called on a real socket
(``_socket.socket.connect(s, ...)``, ``super(socket.socket, s).connect(...)``) reach
the C functions directly. CPython raises an audit event (PEP 578) in those C
functions, and a hook added with ``sys.addaudithook`` sees it in the calling thread
before the call happens; raising there makes the call fail.

The hook cannot be removed, so it is added once per process, on the first
interception, and does nothing unless a simulation is intercepted (one set lookup and
one dict test per event). It raises only in a thread of an intercepted simulation, and
never for the simulation's own calls or test machinery's (``dispatch._internal``).

Refused, by event:

* ``socket.__new__``, ``socket.connect``, ``socket.bind``, ``socket.sendto``,
  ``socket.sendmsg``: a real socket made or driven in a simulated thread (a simulated
  socket never reaches the C socket, so any such event there is an escape). ``send``,
  ``recv`` and ``accept`` raise no event: on a real socket connected before the
  interception and driven through the C base's methods they are not seen.
* ``os.exec``, ``os.fork``, ``os.forkpty``, ``os.posix_spawn``, ``os.system``,
  ``subprocess.Popen``: a process (references taken before the interception).
* ``_thread.start_new_thread`` (3.12+) and ``_thread.start_joinable_thread`` (3.13+)
  from anything but ``threading``: a raw thread from a reference taken before the
  interception (the patched ``_thread.start_new_thread`` adopts the thread instead).
* ``ctypes.dlsym``: looking up a C function that makes a socket, a connection or a
  process (``libc.connect``, ``libc.syscall`` ...). A function pointer looked up before
  the interception and called inside it raises no event (CPython has no audit event
  for a foreign call): the stray-socket detector (``stray_sockets``) reports what it
  opens.

It also tells the stray-socket detector about every socket Python makes while a
simulation is intercepted, so a real socket Python did not make is C code's.
"""

from __future__ import annotations

import sys
from typing import Any

from sockfake.network import SockfakeRuntimeError
from sockfake.sim.intercept import stray_sockets
from sockfake.sim.intercept.dispatch import _active, _internal, caller_network
from sockfake.sim.intercept.processes import refusal
from sockfake.sim.intercept.sockets import refuse_real

__all__ = ["install_once", "C_SYMBOLS"]

_SOCKET_EVENTS = {
    "socket.__new__": "_socket.socket() (socket.SocketType, or the C socket type)",
    "socket.connect": "connect() through the C socket type",
    "socket.bind": "bind() through the C socket type",
    "socket.sendto": "sendto() through the C socket type",
    "socket.sendmsg": "sendmsg() through the C socket type",
}
_PROCESS_EVENTS = {
    "os.exec": "os.exec*()",
    "os.fork": "os.fork()",
    "os.forkpty": "os.forkpty()",
    "os.posix_spawn": "os.posix_spawn()",
    "os.system": "os.system()",
    "subprocess.Popen": "subprocess.Popen()",
}
_THREAD_EVENTS = ("_thread.start_new_thread", "_thread.start_joinable_thread")
_CTYPES_EVENTS = ("ctypes.dlsym", "ctypes.dlsym/handle")

# C functions that make a socket, a connection or a process: looked up through ctypes
# in a simulated thread, they would reach the real network or make a real process.
C_SYMBOLS = frozenset({
    "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4", "send",
    "sendto", "sendmsg", "sendmmsg", "recv", "recvfrom", "recvmsg", "recvmmsg",
    "getaddrinfo", "gethostbyname", "gethostbyname2", "gethostbyname_r", "syscall",
    "fork", "vfork", "clone", "clone3", "execv", "execve", "execvp", "execvpe", "execl",
    "execle", "execlp", "fexecve", "posix_spawn", "posix_spawnp", "system", "popen",
})  # fmt: skip

_WATCHED = frozenset([*_SOCKET_EVENTS, *_PROCESS_EVENTS, *_THREAD_EVENTS, *_CTYPES_EVENTS])
_installed = False


def _hook(event: str, args: tuple[Any, ...]) -> None:
    # Called for every audit event of the process, for ever: the first test must be cheap.
    if event not in _WATCHED or not _active:
        return
    if caller_network() is None:
        if event == "socket.__new__":
            stray_sockets.note_python_socket(args[0])
        return
    if _internal(1):
        return
    label = _SOCKET_EVENTS.get(event)
    if label is not None:
        raise refuse_real(label)
    label = _PROCESS_EVENTS.get(event)
    if label is not None:
        raise refusal(f"{label} (a reference taken before the interception)")
    if event in _THREAD_EVENTS:
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if caller != "threading":
            raise SockfakeRuntimeError(
                f"{event}() from {caller or 'C code'} in a simulated thread: a raw thread "
                "started through a reference taken before the interception would run "
                "outside the simulation (real network, real clock); call "
                "_thread.start_new_thread through the module, or use threading.Thread, "
                "whose threads join the simulation"
            )
        return
    name = args[1] if len(args) > 1 else None
    if isinstance(name, str) and name in C_SYMBOLS:
        raise SockfakeRuntimeError(
            f"ctypes lookup of the C function {name}() in a simulated thread: a foreign "
            "function makes its own system calls, which the simulation cannot intercept "
            "(it would reach the real network or make a real process); call it outside "
            "the simulation, or use Python's socket, os and subprocess modules, which "
            "the simulation provides"
        )


def install_once() -> None:
    """Add the hook to this process (once: an audit hook cannot be removed)."""
    global _installed
    if _installed:
        return
    _installed = True
    sys.addaudithook(_hook)

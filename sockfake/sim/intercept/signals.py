"""Signals under interception: a simulated thread's signal runs its handler in virtual time.

``signal.pthread_kill`` to one of the network's threads, ``os.kill`` of the process
itself and ``signal.raise_signal``, from a simulated thread and for a signal with a
Python handler, run the handler on the main thread at its next turn
(``Kernel.deliver_signal``); a blocking call it interrupts goes on, as PEP 475 says.
Anything else is the real call.

``signal.set_wakeup_fd`` from the main thread, when it is a simulated thread, takes a
simulated socket's descriptor (an event loop's self-pipe: ``loop.add_signal_handler``
calls it): the simulation records it, and a signal with a Python handler that a
simulated thread sends the process writes its number to that socket, as CPython's C
handler writes it to the wakeup descriptor. While a simulated descriptor is the
wakeup descriptor, the real one is -1 (a real signal writes nothing anywhere); it is
put back when the simulated one is replaced or cleared, and when the interception of
that network ends.

``signal.setitimer(ITIMER_REAL, ...)``, ``signal.getitimer(ITIMER_REAL)`` and
``signal.alarm`` from a simulated thread set a virtual timer of the network: at its
virtual moment, ``SIGALRM`` comes as a signal from a simulated thread does (the
handler on the main thread's next turn, the number on the wakeup descriptor). A real
timer fired in real time: a loop waiting in virtual time missed it, and once the loop
had put back the default handler it ended the process. The timer ends with the
interception; the other timers and threads outside the simulation get the real calls.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sockfake.sim.intercept.dispatch import REAL as _real, _internal, caller_network
from sockfake.sim.net.descriptors import FIRST_FD

if TYPE_CHECKING:
    from sockfake.sim.kernel.core import Kernel
    from sockfake.sim.kernel.timers import Timer
    from sockfake.sim.net.sockets import SimSocket
    from sockfake.sim.network import SimNetwork

__all__ = [
    "alarm", "getitimer", "kill", "leave", "pthread_kill", "raise_signal", "set_wakeup_fd",
    "setitimer",
]

# Taken when this module is first imported, before any patch.
_real_set_wakeup_fd = signal.set_wakeup_fd


@dataclass
class _Wakeup:
    """A network's simulated wakeup descriptor, and the real one it stands in for."""

    fd: int
    sock: SimSocket
    real_fd: int  # the real wakeup descriptor before; -1 while this one is set


_wakeups: dict[Kernel, _Wakeup] = {}
_ITIMER_REAL = getattr(signal, "ITIMER_REAL", 0)
_DONTWAIT = int(getattr(socket, "MSG_DONTWAIT", 0))


def _write_wakeup(net: SimNetwork, signalnum: int) -> None:
    """What CPython's C handler does for a signal with a Python handler: write the
    signal's number to the wakeup descriptor (a full or closed socket: nothing, as
    the C handler ignores the error)."""
    wakeup = _wakeups.get(net.kernel)
    if wakeup is None or wakeup.sock.ep.closed:
        return
    try:
        wakeup.sock.send(bytes((signalnum,)), _DONTWAIT)
    except OSError:
        pass


def _signal_to_this_process(net: SimNetwork | None, signalnum: object) -> int | None:
    """The signal's number if a simulated thread sends it to the process and it has a
    Python handler (so CPython's C handler would write the wakeup descriptor)."""
    if net is None or not isinstance(signalnum, int) or not 0 < signalnum < signal.NSIG:
        return None
    return int(signalnum) if callable(signal.getsignal(int(signalnum))) else None


def _deliver_simulated(signalnum: object, thread_id: int | None = None) -> bool:
    """Deliver a signal a simulated thread sends to its own process (``thread_id``
    None) or to one of its network's threads in virtual time (see
    ``Kernel.deliver_signal``), if it has a Python handler; False: the caller makes the
    real call."""
    net = caller_network()
    if net is None or _internal(2):
        return False
    if thread_id is not None and not net.kernel.is_simulated_ident(thread_id):
        return False
    if not isinstance(signalnum, int):  # signal.Signals is one
        return False  # the real call raises CPython's TypeError
    if not 0 < signalnum < signal.NSIG:
        return False  # 0 probes whether the target exists; out of range is an error
    handler = signal.getsignal(int(signalnum))
    if callable(handler) and net.kernel.deliver_signal(int(signalnum)):
        _write_wakeup(net, int(signalnum))
        return True
    return False


def _real_signal(signalnum: object) -> None:
    """Before the real call of a simulated thread's signal to its own process: the
    wakeup byte the C handler would have written to the simulated descriptor."""
    net = caller_network()
    number = _signal_to_this_process(net, signalnum)
    if net is not None and number is not None:
        _write_wakeup(net, number)


def pthread_kill(thread_id: int, signalnum: int) -> None:
    if not _deliver_simulated(signalnum, thread_id):
        if isinstance(thread_id, int) and thread_id in _live_thread_idents():
            _real_signal(signalnum)
        _real["pthread_kill"](thread_id, signalnum)


def _live_thread_idents() -> set[int]:
    active: dict[int, Any] = getattr(threading, "_active", {})
    return set(active)


def kill(pid: int, signalnum: int) -> None:
    if pid != os.getpid() or not _deliver_simulated(signalnum):
        if isinstance(pid, int) and pid == os.getpid():
            _real_signal(signalnum)
        _real["kill"](pid, signalnum)


def raise_signal(signalnum: int) -> None:
    if not _deliver_simulated(signalnum):
        _real_signal(signalnum)
        _real["raise_signal"](signalnum)


# -- the interval timer: signal.setitimer(ITIMER_REAL), signal.alarm --------------------


@dataclass
class _Alarm:
    """A network's virtual ``ITIMER_REAL``: its next expiry and its period."""

    timer: Timer
    when: float
    interval: float


_alarms: dict[Kernel, _Alarm] = {}


def _disarm(kernel: Kernel) -> tuple[float, float]:
    """The timer's (remaining, interval) before, and no timer now."""
    current = _alarms.pop(kernel, None)
    if current is None:
        return 0.0, 0.0
    current.timer.cancel()
    return max(current.when - kernel.now, 0.0), current.interval


def _arm(net: SimNetwork, seconds: float, interval: float) -> None:
    kernel = net.kernel
    when = kernel.now + seconds
    _alarms[kernel] = _Alarm(kernel.call_at(when, lambda: _expire(net)), when, interval)


def _expire(net: SimNetwork) -> None:
    """The timer expires: SIGALRM for the main thread in virtual time, as a signal a
    simulated thread sends (its handler on the main thread's next turn, its number on
    the wakeup descriptor); a periodic timer goes again. With no Python handler the
    signal is dropped: its default action would end the test process."""
    kernel = net.kernel
    current = _alarms.pop(kernel, None)
    if current is None:
        return
    if current.interval > 0:
        _arm(net, current.interval, current.interval)
    if callable(signal.getsignal(signal.SIGALRM)) and kernel.deliver_signal(
            int(signal.SIGALRM), from_timer=True):
        _write_wakeup(net, int(signal.SIGALRM))


def _seconds(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number, not {type(value).__name__}")
    return float(value)


def setitimer(which: int, seconds: float, interval: float = 0.0, /) -> tuple[float, float]:
    """``signal.setitimer``: ``ITIMER_REAL`` from a simulated thread counts virtual time
    (a real one would fire at a real moment, and kill the process once the loop that
    handled it is gone); every other timer, and every other thread, the real call."""
    net = caller_network()
    if net is None or _internal(1) or which != _ITIMER_REAL:
        return tuple(_real["setitimer"](which, seconds, interval))
    seconds, interval = _seconds(seconds, "seconds"), _seconds(interval, "interval")
    if seconds < 0 or interval < 0:
        raise _real_itimer_error("setitimer", "invalid value")
    before = _disarm(net.kernel)
    if seconds > 0:
        _arm(net, seconds, interval)
    return before


def getitimer(which: int, /) -> tuple[float, float]:
    """``signal.getitimer``: the virtual ``ITIMER_REAL`` in a simulated thread."""
    net = caller_network()
    if net is None or _internal(1) or which != _ITIMER_REAL:
        return tuple(_real["getitimer"](which))
    current = _alarms.get(net.kernel)
    if current is None:
        return 0.0, 0.0
    return max(current.when - net.kernel.now, 0.0), current.interval


def alarm(seconds: int, /) -> int:
    """``signal.alarm``: the virtual ``ITIMER_REAL`` in a simulated thread; the seconds
    left of the one before, rounded as glibc does."""
    net = caller_network()
    if net is None or _internal(1):
        return int(_real["alarm"](seconds))
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise TypeError(f"'{type(seconds).__name__}' object cannot be interpreted as an integer")
    remaining, _ = _disarm(net.kernel)
    if seconds > 0:
        _arm(net, float(seconds), 0.0)
    whole = int(remaining)
    fraction = remaining - whole
    return whole + 1 if fraction >= 0.5 or (whole == 0 and fraction > 0) else whole


def _real_itimer_error(call: str, why: str) -> Exception:
    error_class = getattr(signal, "ItimerError", OSError)
    return error_class(errno.EINVAL, f"signal.{call}: {why}")


# -- the wakeup descriptor ----------------------------------------------------------------


def _sim_socket(net: SimNetwork, fd: int) -> SimSocket:
    for sock in net.open_sockets():
        if sock.fileno() == fd:
            return sock
    raise OSError(
        errno.EBADF,
        f"signal.set_wakeup_fd({fd}): simulated descriptor {fd} is not an open socket of "
        f"{net!r} (sockfake)",
    )


def set_wakeup_fd(fd: int, /, *, warn_on_full_buffer: bool = True) -> int:
    """``signal.set_wakeup_fd``: on the main thread, when it is a simulated thread, a
    simulated socket's descriptor is recorded for the simulation's signals (see the
    module docstring); any other descriptor, and every other thread, the real call."""
    net = caller_network()
    if net is None or _internal(1) or not isinstance(fd, int):
        return int(_real_set_wakeup_fd(fd, warn_on_full_buffer=warn_on_full_buffer))
    if threading.current_thread() is not threading.main_thread():
        # CPython's refusal, said here: on the greenlet backend every simulated thread
        # is the main OS thread, and the real call would take the descriptor.
        raise ValueError("set_wakeup_fd only works in main thread of the main interpreter")
    kernel = net.kernel
    current = _wakeups.get(kernel)
    if fd >= FIRST_FD:
        sock = _sim_socket(net, fd)
        if sock.gettimeout() is None:  # a timeout is O_NONBLOCK underneath, as on the OS
            raise ValueError(f"the fd {fd} must be in non-blocking mode")
        if current is None:
            real_fd = int(_real_set_wakeup_fd(-1))
            _wakeups[kernel] = _Wakeup(fd, sock, real_fd)
            return real_fd
        _wakeups[kernel] = _Wakeup(fd, sock, current.real_fd)
        return current.fd
    if current is None:
        return int(_real_set_wakeup_fd(fd, warn_on_full_buffer=warn_on_full_buffer))
    del _wakeups[kernel]
    restore = current.real_fd if fd == -1 else fd
    _real_set_wakeup_fd(restore, warn_on_full_buffer=warn_on_full_buffer)
    return current.fd


def leave(kernel: Kernel) -> None:
    """The interception of ``kernel``'s network ends: the real wakeup descriptor is
    put back (from the main thread, the only one that may set it)."""
    _disarm(kernel)
    current = _wakeups.pop(kernel, None)
    if current is not None and threading.current_thread() is threading.main_thread():
        try:
            _real_set_wakeup_fd(current.real_fd)
        except (OSError, ValueError):
            pass  # the real descriptor was closed meanwhile: leave none

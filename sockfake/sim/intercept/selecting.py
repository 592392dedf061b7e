"""``select.select``, ``poll``, ``epoll`` and ``selectors`` under ``net.intercept()``.

In a simulated thread they wait in virtual time on simulated sockets (through the
network's ``SimSelector``) and refuse real descriptors by name; in any other thread
they are the real ones, refusing simulated descriptors (from ``SIM_FD_BASE`` up).

The ``selectors`` classes bound what they poll with at import (``PollSelector.
_selector_cls`` is ``select.poll``), and a class bound at import elsewhere
(``socketserver._ServerSelector``) is the real class: ``bound_at_import_patches``
makes those bindings dispatch too, and makes a selector made outside the simulation
refuse a simulated socket at ``register()``.
"""

from __future__ import annotations

import select
import selectors
import threading
from typing import TYPE_CHECKING, Any

from sockfake.network import SockfakeRuntimeError
from sockfake.sim.intercept.dispatch import REAL as _real, _active, _internal, caller_network
from sockfake.sim.net.descriptors import FIRST_FD
from sockfake.sim.net.sockets import SimSocket

if TYPE_CHECKING:
    from sockfake.sim.network import SimNetwork

__all__ = ["SIM_FD_BASE", "SimPoll", "SimEpoll", "bound_at_import_patches"]


def _fd_of(obj: Any) -> int:
    if isinstance(obj, int):
        fd = obj
    else:
        try:
            fd = int(obj.fileno())
        except AttributeError:
            raise TypeError(
                "argument must be an int, or have a fileno() method."
            ) from None
    if fd < 0:
        raise ValueError(f"file descriptor cannot be a negative integer ({fd})")
    return fd


def _refuse_real_fd(what: str, obj: Any, fd: int) -> SockfakeRuntimeError:
    return SockfakeRuntimeError(
        f"{what} on {obj!r} (descriptor {fd}) in simulated thread "
        f"{threading.current_thread().name!r}: it is not a simulated socket of this "
        "network. A simulated thread only waits on simulated sockets; a real descriptor "
        "would block outside virtual time (and reach the real world)."
    )


def _register(what: str, sel: selectors.BaseSelector, obj: Any, fd: int, events: int) -> None:
    try:
        sel.register(fd, events)
    except ValueError:
        raise _refuse_real_fd(what, obj, fd) from None


def _sim_select(
    net: SimNetwork, rlist: Any, wlist: Any, xlist: Any, timeout: float | None
) -> tuple[list[Any], list[Any], list[Any]]:
    if timeout is not None:
        if not isinstance(timeout, (int, float)):
            raise TypeError("timeout must be a float or None")
        if timeout < 0:
            raise ValueError("timeout must be non-negative")
    rlist, wlist, xlist = list(rlist), list(wlist), list(xlist)
    wanted: dict[int, int] = {}
    objects: dict[int, Any] = {}
    for objs, event in ((rlist, selectors.EVENT_READ), (wlist, selectors.EVENT_WRITE)):
        for obj in objs:
            fd = _fd_of(obj)
            wanted[fd] = wanted.get(fd, 0) | event
            objects.setdefault(fd, obj)
    for obj in xlist:
        fd = _fd_of(obj)
        objects.setdefault(fd, obj)
        wanted.setdefault(fd, 0)
    sel = net.selector()
    try:
        for fd, events in wanted.items():
            # Exceptional conditions (out-of-band data) never happen on the simulation;
            # an fd watched only for them must still be a simulated one.
            _register("select.select()", sel, objects[fd], fd, events or selectors.EVENT_READ)
        if not any(wanted.values()):
            if timeout is None:
                net.kernel.wait((), None, "select() on nothing")
            else:
                net.kernel.sleep(float(timeout))
            return [], [], []
        for fd, events in wanted.items():
            if not events:
                sel.unregister(fd)
        ready = {key.fd: mask for key, mask in sel.select(timeout)}
    finally:
        sel.close()
    readable = [o for o in rlist if ready.get(_fd_of(o), 0) & selectors.EVENT_READ]
    writable = [o for o in wlist if ready.get(_fd_of(o), 0) & selectors.EVENT_WRITE]
    return readable, writable, []


# Simulated descriptors start here (sockfake.sim.network allocates them), above any
# real one: a real select/poll that is handed one is refused by name.
SIM_FD_BASE: int = FIRST_FD


def _refuse_sim_fds(what: str, objects: Any) -> None:
    """In a thread outside the simulation: a real wait cannot watch a simulated socket."""
    for obj in objects:
        try:
            fd = obj if isinstance(obj, int) else int(obj.fileno())
        except Exception:
            continue  # the real call reports it
        if fd >= SIM_FD_BASE:
            raise SockfakeRuntimeError(
                f"{what} on {obj!r} in thread {threading.current_thread().name!r}: "
                f"descriptor {fd} is a simulated socket's (simulated descriptors start at "
                f"{SIM_FD_BASE}), and a real {what} cannot wait on it. Wait on it from a "
                "thread of its simulation, under net.intercept()."
            )


def _select(rlist: Any, wlist: Any, xlist: Any, timeout: float | None = None) -> Any:
    net = caller_network()
    if net is None or _internal(1):
        if net is None and _active:
            rlist, wlist, xlist = list(rlist), list(wlist), list(xlist)
            _refuse_sim_fds("select.select()", rlist + wlist + xlist)
        return _real["select"](rlist, wlist, xlist, timeout)
    return _sim_select(net, rlist, wlist, xlist, timeout)


_select.__doc__ = select.select.__doc__

_POLL_READ = select.POLLIN | select.POLLPRI | getattr(select, "POLLRDNORM", 0)
_POLL_WRITE = select.POLLOUT | getattr(select, "POLLWRNORM", 0)
_POLL_ALWAYS = select.POLLHUP | select.POLLERR | select.POLLNVAL  # reported unasked


class SimPoll:
    """``select.poll()`` on simulated sockets; ``poll(ms)`` waits in virtual time."""

    _what = "select.poll()"

    def __init__(self, net: SimNetwork) -> None:
        self._net = net
        self._masks: dict[int, int] = {}

    def _check(self, fd: int, obj: Any) -> None:
        probe = self._net.selector()
        try:
            _register(f"{self._what}.register()", probe, obj, fd, selectors.EVENT_READ)
        finally:
            probe.close()

    def register(self, fd: Any, eventmask: int = _POLL_READ | select.POLLOUT) -> None:
        number = _fd_of(fd)
        self._check(number, fd)
        self._masks[number] = eventmask

    def modify(self, fd: Any, eventmask: int) -> None:
        number = _fd_of(fd)
        if number not in self._masks:
            raise FileNotFoundError(2, "No such file or directory")
        self._masks[number] = eventmask

    def unregister(self, fd: Any) -> None:
        number = _fd_of(fd)
        if number not in self._masks:
            raise KeyError(number)
        del self._masks[number]

    def _wait(self, timeout: float | None) -> list[tuple[int, int]]:
        sel = self._net.selector()
        gone: list[tuple[int, int]] = []
        try:
            for fd, mask in self._masks.items():
                events = (selectors.EVENT_READ if mask & _POLL_READ else 0) | (
                    selectors.EVENT_WRITE if mask & _POLL_WRITE else 0
                )
                try:
                    sel.register(fd, events or selectors.EVENT_READ)
                except ValueError:
                    gone.append((fd, select.POLLNVAL))  # closed since it was registered
                    continue
                if not events:
                    sel.unregister(fd)
            if gone:
                return gone
            if not sel.get_map():
                if timeout is None:
                    self._net.kernel.wait((), None, f"{self._what} on nothing")
                else:
                    self._net.kernel.sleep(timeout)
                return []
            result = []
            for key, ready in sel.select(timeout):
                mask = self._masks[key.fd]
                target = sel.target(key.fd)
                if isinstance(target, SimSocket):  # Linux's bits: POLLHUP, POLLERR too
                    revents = target.poll_events() & (mask | _POLL_ALWAYS)
                    if revents:
                        result.append((key.fd, revents))
                    continue
                revents = (mask & _POLL_READ & (select.POLLIN | getattr(select, "POLLRDNORM", 0))
                           if ready & selectors.EVENT_READ else 0)
                if ready & selectors.EVENT_WRITE:
                    revents |= mask & _POLL_WRITE
                if revents:
                    result.append((key.fd, revents))
            return result
        finally:
            sel.close()

    def poll(self, timeout: float | None = None) -> list[tuple[int, int]]:
        if timeout is not None and timeout >= 0:
            return self._wait(timeout / 1000.0)
        return self._wait(None)


class _GuardedPoll:
    """A real ``select.poll()`` object (outside the simulation) that refuses simulated
    descriptors: the real one would report them as ``POLLNVAL`` and spin."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def register(self, fd: Any, *args: Any) -> None:
        _refuse_sim_fds("select.poll()", (fd,))
        self._real.register(fd, *args)

    def modify(self, fd: Any, *args: Any) -> None:
        _refuse_sim_fds("select.poll()", (fd,))
        self._real.modify(fd, *args)

    def unregister(self, fd: Any) -> None:
        self._real.unregister(fd)

    def poll(self, *args: Any) -> Any:
        return self._real.poll(*args)


def _poll() -> Any:
    net = caller_network()
    if net is None or _internal(1):
        if net is None and _active:
            return _GuardedPoll(_real["poll"]())
        return _real["poll"]()
    return SimPoll(net)


class SimEpoll(SimPoll):
    """``select.epoll()`` on simulated sockets; ``poll(seconds)`` waits in virtual time."""

    _what = "select.epoll()"

    def __init__(self, net: SimNetwork) -> None:
        super().__init__(net)
        self.closed = False

    def register(self, fd: Any, eventmask: int = _POLL_READ | select.POLLOUT) -> None:
        if _fd_of(fd) in self._masks:
            raise FileExistsError(17, "File exists")
        super().register(fd, eventmask)

    def unregister(self, fd: Any) -> None:
        if _fd_of(fd) not in self._masks:
            raise FileNotFoundError(2, "No such file or directory")
        super().unregister(fd)

    def poll(self, timeout: float | None = None, maxevents: int = -1) -> list[tuple[int, int]]:
        if self.closed:
            raise ValueError("I/O operation on closed epoll object")
        events = self._wait(None if timeout is None or timeout < 0 else float(timeout))
        return events if maxevents < 0 else events[:maxevents]

    def fileno(self) -> int:
        raise NotImplementedError("select.epoll().fileno() on the simulation: no OS descriptor")

    def close(self) -> None:
        self.closed = True
        self._masks.clear()

    def __enter__(self) -> SimEpoll:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()


class _EpollDispatch:
    """Stands in for ``select.epoll`` (a type that cannot be subclassed)."""

    def __new__(cls, sizehint: int = -1, flags: int = 0) -> Any:
        net = caller_network()
        if net is None or _internal(1):
            return _real["epoll"](sizehint, flags)
        return SimEpoll(net)

    @staticmethod
    def fromfd(fd: int) -> Any:
        if caller_network() is not None:
            raise _refuse_real_fd("select.epoll.fromfd()", fd, fd)
        return _real["epoll"].fromfd(fd)


_EpollDispatch.__name__ = _EpollDispatch.__qualname__ = "epoll"
_EpollDispatch.__module__ = "select"

_SELECTOR_NAMES = (
    "SelectSelector", "PollSelector", "EpollSelector", "DevpollSelector", "KqueueSelector",
)  # fmt: skip


def _selector_class(real_cls: type[selectors.BaseSelector]) -> type[selectors.BaseSelector]:
    def __new__(cls: type[Any], *args: Any, **kwargs: Any) -> Any:
        net = caller_network()
        if cls is patched and net is not None and not _internal(1):
            return net.selector()  # a SimSelector: waits in virtual time
        return object.__new__(cls)

    patched: type[selectors.BaseSelector] = type(
        real_cls.__name__,
        (real_cls,),
        {"__new__": __new__, "__module__": real_cls.__module__, "__doc__": real_cls.__doc__},
    )
    patched.__qualname__ = real_cls.__qualname__
    return patched




def _guard_real_poller(original: Any) -> Any:
    """``_PollLikeSelector.register`` that refuses, in a simulated thread, to hand a
    simulated descriptor to a real ``poll``/``epoll`` (a selector made before the
    interception or in a real thread): the real ``poll`` would report it as
    ``POLLNVAL``, ready at once, and the caller would block where readiness was
    promised (``accept()`` in ``serve_forever``), far from the cause."""

    def register(self: Any, fileobj: Any, events: int, data: Any = None) -> Any:
        key = original(self, fileobj, events, data)
        poller = getattr(self, "_selector", None)
        if (
            key.fd >= SIM_FD_BASE
            and not isinstance(poller, SimPoll)
            and caller_network() is not None
            and not _internal(1)
        ):
            self.unregister(fileobj)
            name = type(self).__qualname__
            raise SockfakeRuntimeError(
                f"selectors.{name}.register({fileobj!r}) in simulated thread "
                f"{threading.current_thread().name!r}: this {name} was made outside the "
                "simulation (before net.intercept(), or in a thread that is not simulated), "
                f"so it holds a real {type(poller).__name__}, which would report simulated "
                f"descriptor {key.fd} as always ready (POLLNVAL). Make the selector in a "
                "simulated thread while the interception is active."
            )
        return key

    register.__doc__ = original.__doc__
    return register


def bound_at_import_patches() -> list[tuple[Any, str, Any]]:
    """``(object, attribute, value)``: what the stdlib's selector classes bound at
    import, so a class captured before the interception (``socketserver.
    _ServerSelector`` is ``selectors.PollSelector``, werkzeug's and dnslib's servers
    use it) builds its poller per call: ``PollSelector._selector_cls`` is
    ``select.poll``, ``EpollSelector._selector_cls`` ``select.epoll``,
    ``SelectSelector._select`` ``select.select``."""
    patches: list[tuple[Any, str, Any]] = []
    for name, attribute, real, dispatch in (
        ("PollSelector", "_selector_cls", _real["poll"], staticmethod(_poll)),
        ("EpollSelector", "_selector_cls", _real["epoll"], _EpollDispatch),
        ("SelectSelector", "_select", _real["select"], staticmethod(_select)),
    ):
        cls = getattr(selectors, name, None)
        if cls is not None and real is not None and cls.__dict__.get(attribute) is real:
            patches.append((cls, attribute, dispatch))
    poll_like = getattr(selectors, "_PollLikeSelector", None)
    if poll_like is not None and "register" in poll_like.__dict__:
        patches.append((poll_like, "register", _guard_real_poller(poll_like.register)))
    return patches

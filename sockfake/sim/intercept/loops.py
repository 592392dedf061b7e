"""asyncio under interception: a real descriptor handed to a simulated loop fails its caller.

A loop made in a simulated thread waits on a simulated selector, which watches only
simulated sockets. ``loop.connect_read_pipe(pipe)`` and ``connect_write_pipe`` register
the pipe's descriptor in a callback the loop runs later, so a real one (``os.pipe()``,
a file, a terminal) failed there: a line in the loop's exception handler, and a reader
that waited forever. Here the check comes first, in the caller: a real descriptor is
refused with a ``SockfakeRuntimeError`` that says what to use instead; so is one given
to ``loop.add_reader``/``add_writer`` (a ``SockfakeValueError``, the ``ValueError`` the
selector raised). A simulated socket's descriptor is accepted (``fdcalls`` makes its
``os.read``/``os.write``/``os.fstat`` work), and every loop whose selector is real is
left alone.

A loop a simulated thread runs must wait on its network: ``loop.run_forever()`` (and so
``run_until_complete``) refuses, saying what to do, a loop made before the interception
or outside the simulation (its real selector would wait in real time while the clock
is virtual: a hang) and one made on a network that has closed or is another's (a loop
kept across tests, as pytest-asyncio's ``loop_scope="module"`` keeps one).
"""

from __future__ import annotations

import selectors
import threading
from collections.abc import Callable
from typing import Any

from sockfake.network import SockfakeRuntimeError, SockfakeValueError
from sockfake.sim.intercept.dispatch import caller_network
from sockfake.sim.net.descriptors import FIRST_FD
from sockfake.sim.net.selectors import SimSelector

__all__ = ["guard_add", "guard_pipe_transport", "guard_run_forever"]


def _real_descriptor(loop: Any, fileobj: Any) -> int | None:
    """The real descriptor ``fileobj`` names if ``loop`` waits on a simulated selector."""
    if not isinstance(getattr(loop, "_selector", None), SimSelector):
        return None
    if isinstance(fileobj, int):
        fd = fileobj
    else:
        try:
            fd = fileobj.fileno()
        except Exception:  # noqa: BLE001 - the original call raises its own error
            return None
    if isinstance(fd, bool) or not isinstance(fd, int) or not 0 <= fd < FIRST_FD:
        return None
    return fd


def _explain(call: str, fd: int) -> str:
    return (
        f"{call} with real descriptor {fd} in simulated thread "
        f"{threading.current_thread().name!r}: this event loop waits on the simulation's "
        "selector, which cannot watch an OS descriptor (a pipe from os.pipe(), a file, a "
        "terminal) and would wait forever. Use a simulated socket pair instead "
        "(socket.socketpair() under net.intercept(); loop.connect_read_pipe() takes one), "
        "or run this code outside the simulation"
    )


def guard_pipe_transport(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """``loop._make_read_pipe_transport``/``_make_write_pipe_transport`` (what
    ``connect_read_pipe``/``connect_write_pipe`` call), refusing a real descriptor."""
    call = "loop.connect_read_pipe()" if "read" in name else "loop.connect_write_pipe()"

    def make_transport(self: Any, pipe: Any, *args: Any, **kwargs: Any) -> Any:
        fd = _real_descriptor(self, pipe)
        if fd is not None:
            raise SockfakeRuntimeError(_explain(call, fd))
        return original(self, pipe, *args, **kwargs)

    make_transport.__name__ = make_transport.__qualname__ = name
    make_transport.__doc__ = original.__doc__
    return make_transport


def guard_add(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """``loop.add_reader``/``add_writer``, refusing a real descriptor with a clear error."""

    def add(self: Any, fd: Any, callback: Any, *args: Any) -> Any:
        real = _real_descriptor(self, fd)
        if real is not None:
            raise SockfakeValueError(_explain(f"loop.{name}()", real))
        return original(self, fd, callback, *args)

    add.__name__ = add.__qualname__ = name
    add.__doc__ = original.__doc__
    return add


_KEPT_LOOP_ADVICE = (
    "Make the loop in the test, inside the interception (asyncio.run(), or "
    "asyncio.new_event_loop() and close it in the test); with pytest-asyncio, keep its "
    'default loop_scope="function" for tests on the simulation (a module- or '
    "session-scoped loop outlives each test's network)"
)


# The stdlib's selectors (select, poll, epoll ...) share this base: a loop on one waits
# on the OS.
_OS_SELECTORS: tuple[type, ...] = (selectors._BaseSelectorImpl,)


def loop_problem(loop: Any) -> str | None:
    """Why a simulated thread cannot run ``loop``, or None."""
    net = caller_network()
    if net is None:
        return None
    selector = getattr(loop, "_selector", None)
    if selector is None:  # not a selector loop: its own business
        return None
    if not isinstance(selector, SimSelector):
        if not isinstance(selector, _OS_SELECTORS):
            # A stand-in of the caller's own (CPython's test_base_events has one): it
            # never blocks on the OS, so it is its author's business.
            return None
        return (
            f"simulated thread {threading.current_thread().name!r} runs event loop "
            f"{loop!r}, made before net.intercept() or outside the simulation: it waits on "
            "the OS's selector, in real time, while the simulation's clock is virtual (a "
            f"hang). {_KEPT_LOOP_ADVICE}"
        )
    if selector._kernel.closed:
        return (
            f"event loop {loop!r} was made on a simulated network that has closed (an earlier "
            f"test's): its sockets and selector went with it. {_KEPT_LOOP_ADVICE}"
        )
    if selector._kernel is not net.kernel:
        return (
            f"event loop {loop!r} was made on another simulated network than {net!r}, whose "
            f"thread runs it. {_KEPT_LOOP_ADVICE}"
        )
    return None


def guard_run_forever(original: Callable[..., Any]) -> Callable[..., Any]:
    """``loop.run_forever()`` (``run_until_complete`` calls it): a loop a simulated thread
    cannot run is refused at once, saying what to do."""

    def run_forever(self: Any) -> Any:
        problem = loop_problem(self)
        if problem is not None:
            raise SockfakeRuntimeError(problem)
        return original(self)

    run_forever.__name__ = run_forever.__qualname__ = "run_forever"
    run_forever.__doc__ = original.__doc__
    return run_forever

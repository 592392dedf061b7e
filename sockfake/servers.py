"""The socketserver server hierarchy, on a pluggable network.

Same class names, hook order, defaults and error paths as CPython 3.13's
``socketserver``; the differences are fixes, each opt-in or invisible to code written
for the stdlib (see README "Differences from the stdlib"). Everything that blocks goes
through ``self.network`` (see ``sockfake.network``).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import queue
import selectors
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sockfake.errors import SockfakeTypeError, SockfakeValueError
from sockfake.network import EventLike, Network, Waker, _ServerSelector, default_network

__all__ = [
    "BaseServer",
    "TCPServer",
    "UDPServer",
    "UnixStreamServer",
    "UnixDatagramServer",
    "ThreadingMixIn",
    "ForkingMixIn",
    "ThreadPoolMixIn",
]

# Accept errors that mean "the system is out of something": back off instead of
# spinning, because the listening socket stays readable until a descriptor frees up.
_AF_UNIX = getattr(socket, "AF_UNIX", -1)
_RESOURCE_ERRNOS = frozenset(
    code
    for code in (
        getattr(errno, "EMFILE", None),
        getattr(errno, "ENFILE", None),
        getattr(errno, "ENOBUFS", None),
        getattr(errno, "ENOMEM", None),
    )
    if code is not None
)


_Server = TypeVar("_Server", bound="BaseServer")


def _selectable(server: BaseServer) -> Any:
    """The server itself: selectors call its ``fileno()`` (defined by TCPServer)."""
    return server


# --- settings, checked at construction ------------------------------------------------
#
# A bad setting (a negative timeout, a worker count of "4") used to be accepted and
# fail later, on the first connection, inside serve_forever(). Every setting is now
# checked when the server is built, with an error that names it.


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_seconds(owner: object, name: str, *, optional: bool) -> None:
    """``name`` must be a positive, finite number of seconds (or None if ``optional``)."""
    value = getattr(owner, name)
    if value is None and optional:
        return
    expected = "a positive number of seconds" + (" or None" if optional else "")
    if not _is_number(value):
        raise SockfakeTypeError(f"{name} must be {expected}, not {type(value).__name__} {value!r}")
    if not (value > 0 and math.isfinite(value)):
        raise SockfakeValueError(f"{name} must be {expected}, not {value!r}")


def _check_count(owner: object, name: str, minimum: int = 1) -> None:
    """``name`` must be an int of at least ``minimum``."""
    value = getattr(owner, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SockfakeTypeError(
            f"{name} must be an int of at least {minimum}, not {type(value).__name__} "
            f"{value!r}"
        )
    if value < minimum:
        raise SockfakeValueError(f"{name} must be at least {minimum}, not {value!r}")


def _check_poll_timeout(owner: object, name: str) -> None:
    """``name`` (``handle_request()``'s timeout) must be None or finite seconds >= 0."""
    value = getattr(owner, name)
    if value is None:
        return
    expected = "a number of seconds (0 or more) or None"
    if not _is_number(value):
        raise SockfakeTypeError(f"{name} must be {expected}, not {type(value).__name__} {value!r}")
    if not (value >= 0 and math.isfinite(value)):
        raise SockfakeValueError(f"{name} must be {expected}, not {value!r}")


class BaseServer:
    """Base class for server classes (see ``socketserver.BaseServer``).

    Beyond the stdlib: ``shutdown()`` wakes the loop instead of waiting for the next
    poll, never deadlocks when called from the serving thread or before
    ``serve_forever()``, and takes ``timeout=``; accept errors go to
    ``handle_accept_error``; ``error_logger`` replaces stderr tracebacks.
    """

    timeout: float | None = None
    # Opt-in: a logging.Logger that receives handler errors instead of stderr.
    error_logger: logging.Logger | None = None
    # Longest pause after a resource-exhaustion accept error (doubles from 10 ms).
    accept_backoff_max: float = 1.0

    # Provided by subclasses (TCPServer), as in the stdlib; declared for the type checker.
    socket: Any
    get_request: Callable[[], tuple[Any, Any]]

    def __init__(
        self,
        server_address: Any,
        RequestHandlerClass: Any,
        *,
        network: Network | None = None,
    ) -> None:
        """Constructor.  May be extended, do not override."""
        self._check_settings()
        self.server_address = server_address
        self.RequestHandlerClass = RequestHandlerClass
        self.network: Network = network if network is not None else default_network()
        self.__is_shut_down = self.network.event()
        self.__shutdown_request = False
        # The wake-up pipe exists only while serve_forever() runs, so a server
        # that is built and closed (or fails to bind) holds no extra descriptors.
        self.__waker: Waker | None = None
        self.__serving_thread: int | None = None
        self.__accept_backoff = 0.0
        self.__accept_failed = False

    def _check_settings(self) -> None:
        """Check every setting (class or instance attribute) at construction.

        Each class checks its own and calls ``super()``; an error names the setting.
        """
        _check_seconds(self, "accept_backoff_max", optional=False)
        _check_poll_timeout(self, "timeout")

    def server_activate(self) -> None:
        """Called by constructor to activate the server.  May be overridden."""

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Handle one request at a time until shutdown.

        ``shutdown()`` wakes the loop at once; ``poll_interval`` only bounds how late
        an externally set ``_BaseServer__shutdown_request`` is noticed and how often
        ``service_actions()`` runs when idle.
        """
        self.__is_shut_down.clear()
        waker = self.__waker = self.__make_waker()
        # Published before the flag is read: a shutdown() that finds no serving
        # thread has set the flag before this loop reads it (see shutdown()).
        self.__serving_thread = threading.get_ident()
        try:
            if self.__shutdown_request:
                # shutdown() already returned, and server_close() may have closed
                # the socket since: stop without touching it.
                return
            with self.network.selector() as selector:
                selector.register(_selectable(self), selectors.EVENT_READ)
                if waker is not None:
                    selector.register(waker, selectors.EVENT_READ)
                while not self.__shutdown_request:
                    if self.__accept_backoff:
                        if waker is None:
                            # No wake-up to wait on: sleep, but notice a
                            # shutdown() within poll_interval as the stdlib does.
                            self.network.sleep(min(self.__accept_backoff, poll_interval))
                        else:
                            self.__pause_accepting(selector, waker, self.__accept_backoff)
                        if self.__shutdown_request:
                            break
                    ready = selector.select(poll_interval)
                    if self.__shutdown_request:
                        break
                    for key, _events in ready:
                        if key.fileobj is waker:
                            waker.clear()
                        else:
                            self._handle_request_noblock()
                    self.service_actions()
        finally:
            self.__shutdown_request = False
            self.__serving_thread = None
            self.__waker = None
            if waker is not None:
                waker.close()
            self.__is_shut_down.set()

    def __make_waker(self) -> Waker | None:
        """The wake-up for an instant ``shutdown()``, or None if the system is out of
        descriptors: the loop then polls every ``poll_interval`` as the stdlib does,
        instead of dying of EMFILE."""
        try:
            return self.network.waker()
        except OSError as exc:
            if exc.errno not in _RESOURCE_ERRNOS:
                raise
            if self.error_logger is not None:
                self.error_logger.warning(
                    "serve_forever: no wake-up (%s); shutdown() waits for the next poll", exc
                )
            return None

    def __pause_accepting(
        self, selector: selectors.BaseSelector, waker: Waker, delay: float
    ) -> None:
        # Wait on the waker alone: the listening socket stays readable while
        # descriptors are exhausted, so selecting on it would spin.
        selector.unregister(_selectable(self))
        try:
            with self.network.selector() as waker_only:
                waker_only.register(waker, selectors.EVENT_READ)
                waker_only.select(delay)
        finally:
            selector.register(_selectable(self), selectors.EVENT_READ)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Stop the serve_forever loop and wait (up to ``timeout``) until it has stopped.

        Returns True once the loop has stopped (or was not running). Called from the
        serving thread itself, it asks the loop to stop and returns without waiting.
        Called before ``serve_forever()`` runs, the request stays set, so a loop
        started afterwards returns at once (as the stdlib's flag would).
        """
        self.__shutdown_request = True
        serving = self.__serving_thread
        if serving is None:
            return True
        waker = self.__waker
        if waker is not None:
            waker.set()
        if serving == threading.get_ident():
            return False
        return self.__is_shut_down.wait(timeout)

    def service_actions(self) -> None:
        """Called by the serve_forever() loop.  May be overridden."""

    def handle_request(self) -> None:
        """Handle one request, possibly blocking.  Respects self.timeout."""
        timeout = self.socket.gettimeout()
        if timeout is None:
            timeout = self.timeout
        elif self.timeout is not None:
            timeout = min(timeout, self.timeout)
        deadline = 0.0
        if timeout is not None:
            deadline = self.network.time() + timeout
        with self.network.selector() as selector:
            selector.register(_selectable(self), selectors.EVENT_READ)
            while True:
                if selector.select(timeout):
                    self._handle_request_noblock()
                    if self.__accept_failed and self.__accept_backoff:
                        # Out of descriptors: the socket stays readable, so a
                        # handle_request() loop would spin. Pause as serve_forever
                        # does (within this call's timeout).
                        pause = self.__accept_backoff
                        if timeout is not None:
                            pause = min(pause, max(0.0, deadline - self.network.time()))
                        self.network.sleep(pause)
                    return None
                if timeout is not None:
                    timeout = deadline - self.network.time()
                    # <= 0, not the stdlib's < 0: on a clock that only moves when
                    # everyone waits (the simulation), select(0) at the deadline
                    # would otherwise spin forever.
                    if timeout <= 0:
                        return self.handle_timeout()

    def _handle_request_noblock(self) -> None:
        """Handle one request, without blocking (the selector said it is ready)."""
        try:
            request, client_address = self.get_request()
        except OSError as exc:
            self.__accept_failed = True
            self.handle_accept_error(exc)
            return
        self.__accept_failed = False
        self.__accept_backoff = 0.0
        if self.verify_request(request, client_address):
            try:
                self.process_request(request, client_address)
            except Exception:
                self.handle_error(request, client_address)
                self.shutdown_request(request)
            except:  # noqa: E722 - the stdlib closes the request on BaseException too
                self.shutdown_request(request)
                raise
        else:
            self.shutdown_request(request)

    def handle_accept_error(self, error: OSError) -> None:
        """Called when ``get_request()`` fails.  May be overridden.

        The stdlib ignores the error, which spins at 100 % CPU while descriptors are
        exhausted. Here resource errors (EMFILE, ENFILE, ENOBUFS, ENOMEM) pause
        accepting, doubling from 10 ms up to ``accept_backoff_max``; other errors
        (a client that reset before accept, EAGAIN) are ignored as in the stdlib.
        """
        if error.errno in _RESOURCE_ERRNOS:
            self.__accept_backoff = min(
                max(self.__accept_backoff * 2, 0.01), self.accept_backoff_max
            )
            if self.error_logger is not None:
                self.error_logger.warning(
                    "accept failed (%s); pausing %.3f s", error, self.__accept_backoff
                )

    def handle_timeout(self) -> None:
        """Called if no new request arrives within self.timeout."""

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Verify the request.  May be overridden."""
        return True

    def process_request(self, request: Any, client_address: Any) -> None:
        """Call finish_request.  Overridden by the mix-ins."""
        self.finish_request(request, client_address)
        self.shutdown_request(request)

    def server_close(self) -> None:
        """Called to clean-up the server.  May be overridden."""

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Finish one request by instantiating RequestHandlerClass."""
        self.RequestHandlerClass(request, client_address, self)

    def shutdown_request(self, request: Any) -> None:
        """Called to shutdown and close an individual request."""
        self.close_request(request)

    def close_request(self, request: Any) -> None:
        """Called to clean up an individual request."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Handle an error gracefully.  May be overridden.

        The default prints a traceback to stderr and continues, as the stdlib does;
        with ``error_logger`` set, the traceback goes to that logger instead.
        """
        if self.error_logger is not None:
            self.error_logger.exception(
                "Exception occurred during processing of request from %s", client_address
            )
            return
        print("-" * 40, file=sys.stderr)
        print(
            "Exception occurred during processing of request from",
            client_address,
            file=sys.stderr,
        )
        import traceback

        traceback.print_exc()
        print("-" * 40, file=sys.stderr)

    def __enter__(self: _Server) -> _Server:
        return self

    def __exit__(self, *args: object) -> None:
        self.server_close()


class TCPServer(BaseServer):
    """Base class for socket-based servers; IP stream (TCP) by default.

    Beyond the stdlib: ``request_queue_size`` is ``socket.SOMAXCONN``; an IPv6 literal
    address selects ``AF_INET6``; ``dual_stack`` accepts IPv4 on an IPv6 socket;
    ``request_timeout`` sets a timeout on every accepted connection.
    """

    address_family: int = socket.AF_INET
    socket_type: int = socket.SOCK_STREAM
    request_queue_size: int = socket.SOMAXCONN
    allow_reuse_address: bool = False
    allow_reuse_port: bool = False
    # Opt-in: on an AF_INET6 socket, also accept IPv4 (IPV6_V6ONLY off).
    dual_stack: bool = False
    # Opt-in: a timeout (seconds) set on each accepted connection.
    request_timeout: float | None = None
    # Opt-in (Unix servers): before binding, remove a socket file nobody listens on.
    remove_stale_socket: bool = False
    # Opt-in (Unix servers): remove the socket file in server_close().
    remove_socket_on_close: bool = False
    # Opt-in (Unix servers): the socket file's permission bits (0o600: owner only),
    # set between bind() and listen() so nobody connects while the umask's mode holds.
    socket_mode: int | None = None

    def __init__(
        self,
        server_address: Any,
        RequestHandlerClass: Any,
        bind_and_activate: bool = True,
        *,
        network: Network | None = None,
    ) -> None:
        """Constructor.  May be extended, do not override."""
        BaseServer.__init__(self, server_address, RequestHandlerClass, network=network)
        family = self._family_for(server_address)
        if family != self.address_family:
            self.address_family = family
        self.socket = self.network.socket(self.address_family, self.socket_type)
        if bind_and_activate:
            try:
                self.server_bind()
                self.server_activate()
            except:  # noqa: E722 - close on anything, as the stdlib does
                self.server_close()
                raise

    def _check_settings(self) -> None:
        super()._check_settings()
        _check_seconds(self, "request_timeout", optional=True)
        _check_count(self, "request_queue_size", minimum=0)
        mode = self.socket_mode
        if mode is not None:
            if isinstance(mode, bool) or not isinstance(mode, int):
                raise SockfakeTypeError(
                    f"socket_mode must be an int (0o600) or None, not {type(mode).__name__} "
                    f"{mode!r}"
                )
            if not 0 <= mode <= 0o7777:
                raise SockfakeValueError(
                    f"socket_mode must be permission bits between 0 and 0o7777, not {mode!r}"
                )

    def _family_for(self, server_address: Any) -> int:
        """An IPv6 literal (``"::1"``) on an AF_INET class means AF_INET6."""
        if (
            self.address_family == socket.AF_INET
            and isinstance(server_address, tuple)
            and server_address
            and isinstance(server_address[0], str)
            and ":" in server_address[0]
        ):
            return socket.AF_INET6
        return self.address_family

    def server_bind(self) -> None:
        """Called by constructor to bind the socket.  May be overridden."""
        if self.allow_reuse_address and hasattr(socket, "SO_REUSEADDR"):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # As CPython 3.13: Linux 6.12.9+ refuses SO_REUSEPORT outside AF_INET/AF_INET6.
        if (
            self.allow_reuse_port
            and hasattr(socket, "SO_REUSEPORT")
            and self.address_family in (socket.AF_INET, socket.AF_INET6)
        ):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if self.dual_stack and self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        unix = self.address_family == _AF_UNIX
        if unix and self.remove_stale_socket:
            self.network.remove_stale_unix_socket(self.server_address, self.socket_type)
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()
        if unix:
            if self.socket_mode is not None:
                # Before listen() (server_activate): a stream client cannot connect
                # to a socket that does not listen yet, so no one gets in under the
                # umask's mode. (A datagram socket receives from bind() on.)
                self.network.chmod_unix_socket(self.server_address, self.socket_mode)
            identity = self.network.unix_file_identity(self.server_address)
            if identity is not None:
                self._bound_path = (self.server_address, identity)

    def server_activate(self) -> None:
        """Called by constructor to activate the server.  May be overridden."""
        self.socket.listen(self.request_queue_size)

    def server_close(self) -> None:
        """Called to clean-up the server.  May be overridden."""
        self.socket.close()
        bound = vars(self).pop("_bound_path", None)
        if bound and self.remove_socket_on_close:
            self.network.remove_unix_socket(*bound)

    def fileno(self) -> int:
        """Return socket file number (the selector's interface)."""
        return int(self.socket.fileno())

    def get_request(self) -> tuple[Any, Any]:
        """Get the request and client address from the socket.  May be overridden."""
        request, client_address = self.socket.accept()
        if self.request_timeout is not None:
            request.settimeout(self.request_timeout)
        return request, client_address

    def shutdown_request(self, request: Any) -> None:
        """Called to shutdown and close an individual request."""
        try:
            # Explicitly shut down: socket.close() merely releases the socket
            # and waits for GC to perform the actual close.
            request.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # some platforms may raise ENOTCONN here
        self.close_request(request)

    def close_request(self, request: Any) -> None:
        """Called to clean up an individual request."""
        request.close()


class UDPServer(TCPServer):
    """UDP server class."""

    allow_reuse_address = False
    allow_reuse_port = False
    socket_type: int = socket.SOCK_DGRAM
    max_packet_size = 8192

    def _check_settings(self) -> None:
        super()._check_settings()
        _check_count(self, "max_packet_size")

    def get_request(self) -> tuple[Any, Any]:
        data, client_addr = self.socket.recvfrom(self.max_packet_size)
        return (data, self.socket), client_addr

    def server_activate(self) -> None:
        # No need to call listen() for UDP.
        pass

    def shutdown_request(self, request: Any) -> None:
        # No need to shutdown anything.
        self.close_request(request)

    def close_request(self, request: Any) -> None:
        # No need to close anything.
        pass


class ForkingMixIn:
    """Mix-in class to handle each request in a new process.

    Beyond the stdlib: only children this server started are ever reaped (the
    stdlib's ``waitpid(-1)`` steals other children's exit statuses), and reaching
    ``max_children`` polls those children instead of blocking in ``waitpid``.
    """

    timeout: float | None = 300
    active_children: set[int] | None = None
    max_children = 40
    # If true, server_close() waits until all child processes complete.
    block_on_close = True
    # How often to poll for an exited child once max_children are running.
    child_poll_interval = 0.01

    network: Network

    def _check_settings(self) -> None:
        super()._check_settings()  # type: ignore[misc]
        _check_count(self, "max_children")
        _check_seconds(self, "child_poll_interval", optional=False)

    def collect_children(self, *, blocking: bool = False) -> None:
        """Internal routine to wait for children that have exited."""
        if self.active_children is None:
            return
        self._reap_children(blocking=blocking)
        # Bound the number of children: poll our own children only.
        while len(self.active_children) >= self.max_children:
            if getattr(self, "_BaseServer__shutdown_request", False):
                # shutdown() is waiting for the loop: let it stop now rather than
                # when a child exits; server_close() reaps the children.
                return
            self.network.sleep(self.child_poll_interval)
            self._reap_children(blocking=False)

    def _reap_children(self, *, blocking: bool) -> None:
        assert self.active_children is not None
        for pid in sorted(self.active_children):
            try:
                flags = 0 if blocking else os.WNOHANG
                waited, _ = self.network.waitpid(pid, flags)
                if waited:
                    self.active_children.discard(pid)
            except ChildProcessError:
                # Someone else reaped it: it is gone all the same.
                self.active_children.discard(pid)
            except OSError:
                pass

    def server_activate(self) -> None:
        """Refuse at once on a network that cannot fork (the simulated one), then activate."""
        self.network.check_fork()
        super().server_activate()  # type: ignore[misc]

    def handle_timeout(self) -> None:
        """Wait for zombies after self.timeout seconds of inactivity."""
        self.collect_children()

    def service_actions(self) -> None:
        """Collect the zombie child processes regularly."""
        self.collect_children()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Fork a new subprocess to process the request."""
        pid = self.network.fork()
        if pid:
            # Parent process
            if self.active_children is None:
                self.active_children = set()
            self.active_children.add(pid)
            self.close_request(request)  # type: ignore[attr-defined]
            return
        # Child process.
        # This must never return, hence os._exit()!
        status = 1
        try:
            self.finish_request(request, client_address)  # type: ignore[attr-defined]
            status = 0
        except Exception:
            self.handle_error(request, client_address)  # type: ignore[attr-defined]
        finally:
            try:
                self.shutdown_request(request)  # type: ignore[attr-defined]
            finally:
                self.network.exit_child(status)

    def server_close(self) -> None:
        super().server_close()  # type: ignore[misc]
        self.collect_children(blocking=self.block_on_close)


class _Threads(list):  # type: ignore[type-arg]
    """Joinable list of the non-daemon handler threads; threads leave it as they finish.

    A thread leaves the list when its request is done, but is still alive for a moment
    after (unwinding, or reporting an uncaught exception through
    ``threading.excepthook``). Those are kept aside in ``_finishing`` until they are
    dead, so ``join()`` (``server_close()``) still waits for them, as the stdlib does.

    Daemon threads are not in the list (``len()`` counts what the stdlib counts) but
    are tracked aside, so a draining ``server_close(timeout=)`` can abort them too.
    The lock comes from the server's network (a simulated lock on the simulation).
    """

    def __init__(self, network: Network | None = None) -> None:
        super().__init__()
        self._lock = (network if network is not None else default_network()).lock()
        self._finishing: list[Any] = []
        self._daemons: list[Any] = []

    def append(self, thread: Any) -> None:
        with self._lock:
            if thread.daemon:
                self._daemons.append(thread)
            else:
                super().append(thread)

    def discard(self, thread: Any) -> None:
        with self._lock:
            try:
                super().remove(thread)
            except ValueError:
                with contextlib.suppress(ValueError):
                    self._daemons.remove(thread)
                return
            finishing = [t for t in self._finishing if t.is_alive()]
            finishing.append(thread)
            self._finishing = finishing

    def pop_all(self, daemons: bool = False) -> list[Any]:
        with self._lock:
            self[:], result = [], self[:]
            result.extend(self._finishing)
            self._finishing = []
            if daemons:
                result.extend(self._daemons)
                self._daemons = []
        return result

    def join(
        self, timeout: float | None = None, clock: Any = None, daemons: bool = False
    ) -> list[Any]:
        """Join every thread; with ``timeout``, return those still alive after it.

        With ``daemons``, daemon threads are joined too (the stdlib never joins them).
        """
        threads = self.pop_all(daemons)
        if timeout is None:
            for thread in threads:
                thread.join()
            return []
        deadline = clock() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - clock()))
        return [thread for thread in threads if thread.is_alive()]

    def reap(self) -> None:
        with self._lock:
            self[:] = [thread for thread in self if thread.is_alive()]
            self._daemons = [thread for thread in self._daemons if thread.is_alive()]


class _NoThreads:
    """Degenerate version of _Threads."""

    def append(self, thread: Any) -> None:
        pass

    def discard(self, thread: Any) -> None:
        pass

    def join(
        self, timeout: float | None = None, clock: Any = None, daemons: bool = False
    ) -> list[Any]:
        return []

    def __len__(self) -> int:
        return 0


@dataclass
class _Running:
    """One request in flight: what it is, when it started, on which thread."""

    request: Any
    started: float
    thread: Any
    cut: bool = False  # its connection was shut down (deadline or eviction)
    spilled: bool = False  # it left the pool (its worker was replaced)


class _InFlight:
    """The requests being handled right now, with when each started.

    A draining close aborts them all; the pool's watchdog cuts those past
    ``request_deadline`` (and remembers them, so the handler's resulting error is not
    reported as a failure of the server) and moves slow ones off the pool.
    """

    def __init__(self, network: Network) -> None:
        self._lock = network.lock()
        self._requests: dict[int, _Running] = {}
        # id() of cut requests: membership only, never ordering.
        self._cut: set[int] = set()
        self._next = 0
        self.spilled = 0  # requests running off the pool right now

    def add(self, request: Any, now: float, thread: Any = None) -> int:
        with self._lock:
            self._next += 1
            self._requests[self._next] = _Running(request, now, thread)
            return self._next

    def remove(self, token: int) -> bool:
        """Forget a finished request; True if it had left the pool (its thread exits)."""
        with self._lock:
            entry = self._requests.pop(token, None)
            if entry is None:
                return False
            self._cut.discard(id(entry.request))
            if entry.spilled:
                self.spilled -= 1
            return entry.spilled

    def was_cut(self, request: Any) -> bool:
        with self._lock:
            return id(request) in self._cut

    def threads(self) -> list[Any]:
        with self._lock:
            return [entry.thread for entry in self._requests.values() if entry.thread]

    def police(
        self, now: float, deadline: float | None, spill_after: float | None, max_spilled: int
    ) -> tuple[list[Any], list[Any], float | None]:
        """One watchdog pass: cut requests past ``deadline``; mark requests running
        longer than ``spill_after`` as spilled (up to ``max_spilled`` at once; when full,
        the longest-running spilled request is cut to make room).

        Returns the requests to cut, the threads that left the pool, and when the
        next request reaches a limit (None: nothing in flight).
        """
        to_cut: list[Any] = []
        spilled_threads: list[Any] = []
        next_event: float | None = None

        def cut(entry: _Running) -> None:
            entry.cut = True
            self._cut.add(id(entry.request))
            to_cut.append(entry.request)

        with self._lock:
            # Spilled requests already cut, on their way out: room that is coming.
            coming = sum(1 for e in self._requests.values() if e.spilled and e.cut)
            waiting = 0  # requests due to spill that found no room
            # Tokens grow with start time: this is oldest first.
            for entry in self._requests.values():
                if entry.cut:
                    continue
                if deadline is not None:
                    if entry.started + deadline <= now:
                        cut(entry)
                        continue
                    expiry = entry.started + deadline
                    next_event = expiry if next_event is None else min(next_event, expiry)
                if spill_after is None or entry.spilled:
                    continue
                due = entry.started + spill_after
                if due > now:
                    next_event = due if next_event is None else min(next_event, due)
                    continue
                if self.spilled >= max_spilled:
                    # Full: cut the longest-running spilled request (unless enough
                    # are already on their way out); this one spills once it is gone.
                    waiting += 1
                    if waiting > coming:
                        oldest = next(
                            (e for e in self._requests.values() if e.spilled and not e.cut),
                            None,
                        )
                        if oldest is not None:
                            cut(oldest)
                            coming += 1
                    retry = now + min(spill_after, 0.01)
                    next_event = retry if next_event is None else min(next_event, retry)
                    continue
                entry.spilled = True
                self.spilled += 1
                spilled_threads.append(entry.thread)
        for request in to_cut:
            _abort_request(request)
        return to_cut, spilled_threads, next_event

    def abort_all(self) -> None:
        """Shut down every in-flight stream so handlers blocked on it unwind."""
        with self._lock:
            requests = [entry.request for entry in self._requests.values()]
        for request in requests:
            _abort_request(request)


def _abort_request(request: Any) -> None:
    """Shut a stream request down so a handler blocked on it unwinds."""
    if request is None or isinstance(request, tuple):
        return  # datagram requests share the server socket
    try:
        request.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _cut_at_deadline(server: Any, request: Any) -> bool:
    """Did the pool's deadline watchdog cut this request (so its error is expected)?"""
    state = vars(server).get("_pool_state")
    return isinstance(state, _PoolState) and state.inflight.was_cut(request)


def _handle_request(server: Any, request: Any, client_address: Any) -> None:
    """A request on its own thread: errors go to handle_error, the request is always shut.

    A request the pool cut at ``request_deadline`` fails by design (a broken pipe, a
    reset): that goes to ``error_logger`` at INFO, not to ``handle_error``, so an
    attack does not flood stderr with tracebacks.
    """
    try:
        server.finish_request(request, client_address)
    except Exception as exc:
        if _cut_at_deadline(server, request):
            logger = getattr(server, "error_logger", None)
            if logger is not None:
                logger.info("request from %s cut at its deadline: %r", client_address, exc)
        else:
            server.handle_error(request, client_address)
    finally:
        server.shutdown_request(request)


def _join_or_warn(server: Any, threads: list[Any], timeout: float, what: str) -> None:
    """Join ``threads`` for at most ``timeout`` in all; name those left to error_logger."""
    deadline = server.network.time() + timeout
    stuck = []
    for thread in threads:
        thread.join(max(0.0, deadline - server.network.time()))
        if thread.is_alive():
            stuck.append(thread.name)
    logger = getattr(server, "error_logger", None)
    if stuck and logger is not None:
        logger.warning("server_close: %s still running after abort: %s", what, ", ".join(stuck))


class ThreadingMixIn:
    """Mix-in class to handle each request in a new thread.

    Beyond the stdlib: finished threads leave ``_threads`` as they finish;
    ``server_close(timeout=)`` drains in-flight requests, then aborts the rest (daemon
    threads included); datagram servers let in-flight replies finish before closing
    the shared socket.
    """

    # Decides how threads will act upon termination of the main process
    daemon_threads = False
    # If true, server_close() waits until all non-daemonic threads terminate.
    block_on_close = True
    # Threads object used to track the handler threads (only with block_on_close).
    _threads: Any = _NoThreads()

    network: Network
    socket_type: int

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Same as in BaseServer but as a thread; exceptions are handled here."""
        try:
            _handle_request(self, request, client_address)
        finally:
            self._threads.discard(threading.current_thread())

    def process_request(self, request: Any, client_address: Any) -> None:
        """Start a new thread to process the request."""
        if self.block_on_close and "_threads" not in vars(self):
            self._threads = _Threads(self.network)
        t = self.network.thread(
            target=self.process_request_thread, args=(request, client_address)
        )
        t.daemon = self.daemon_threads
        # Kept on the thread so a draining server_close(timeout=) can abort it.
        t._sockfake_request = request  # type: ignore[attr-defined]
        self._threads.append(t)
        t.start()

    def server_close(self, timeout: float | None = None) -> None:
        """Close the server; join handler threads.

        With ``timeout``, wait at most that long for in-flight requests (daemon
        threads too: ``daemon_threads`` only decides whether a plain
        ``server_close()`` waits), then shut their sockets down so blocked handlers
        unwind, and wait as long again for them. A handler that still does not return
        (it blocks on something other than its connection) is left running, with a
        warning to ``error_logger`` if set: ``server_close(timeout=)`` always returns
        within about twice ``timeout``.
        """
        datagram = self.socket_type == socket.SOCK_DGRAM
        if not datagram:
            super().server_close()  # type: ignore[misc]
        try:
            if timeout is None:
                self._threads.join()
            else:
                left = self._threads.join(timeout, self.network.time, daemons=True)
                for thread in left:
                    _abort_request(getattr(thread, "_sockfake_request", None))
                _join_or_warn(self, left, timeout, "handler thread(s)")
        finally:
            if datagram:
                super().server_close()  # type: ignore[misc]


def _report_thread_exception(exc: BaseException) -> None:
    """Report ``exc`` through ``threading.excepthook``, as an uncaught thread error is."""
    threading.excepthook(
        threading.ExceptHookArgs(
            (type(exc), exc, exc.__traceback__, threading.current_thread())
        )
    )


class _PoolStop:
    """Sentinel telling a pool worker to exit."""


def _pass_stop(work: Any) -> None:
    """A worker leaving a closing pool passes a stop on to the next idle one.

    ``server_close()`` cannot always queue one stop per worker (the queue may hold
    fewer items than there are workers); each worker that stops hands one on, so
    every idle worker blocked in ``get()`` is reached. A full queue means requests
    are left: the worker that takes the last one hands the stop on instead.
    """
    with contextlib.suppress(queue.Full):
        work.put_nowait(_PoolStop())


@dataclass
class _PoolState:
    """Everything a running pool holds, in one place (``server._pool_state``).

    Made by the serving thread with the first request; ``server_close()`` stops it
    and drops it, so the next request starts a fresh pool. Workers and the watchdog
    are handed this object, so a straggler from a closed pool never touches the next.
    """

    work: Any  # the network's queue of (request, client_address) and _PoolStop items
    # Set whenever a worker takes an item (the queue has room) and by shutdown(): the
    # accept loop, waiting for room, wakes at once for either.
    room: EventLike
    inflight: _InFlight
    # Set by server_close(): the watchdog exits.
    stopping: EventLike
    # Set when a request starts (and by server_close()): an idle watchdog waits on it
    # with no timeout, so an idle pool schedules nothing (no polling; on the
    # simulation, no clock deadline that would hide a deadlock).
    busy: EventLike
    # Guards ``workers`` and ``started``: the serving thread and the watchdog both
    # start workers.
    lock: Any
    workers: list[Any] = field(default_factory=list)
    started: int = 0  # workers started so far (names them)
    lost: bool = False  # a worker died of an exception: start a replacement
    closing: bool = False  # server_close() is draining: workers exit once it is empty
    watchdog: Any = None


class ThreadPoolMixIn:
    """Mix-in class to handle requests on a bounded pool of worker threads.

    ``max_workers`` threads take requests from a queue of at most
    ``max_queued_requests``; when it is full the accept loop waits, leaving further
    connections in the kernel's backlog. Workers call ``process_request_thread``, so
    overrides written for ThreadingMixIn keep working.

    A bounded pool is what a few slow clients can starve: six connections that
    trickle their request (slowloris) or never read their response hold six workers.
    With ``max_slow_requests = N``, a request still running after
    ``slow_request_after`` seconds leaves the pool: a watchdog thread starts a new
    worker in its place and the request finishes on its old thread (at most N such at
    once; when N are out, the longest-running is cut). ``request_deadline`` bounds a
    request's total time: past it the watchdog shuts the connection down, so a handler
    blocked reading or writing unwinds. ``request_timeout`` bounds any one read or
    write. A deadline alone does not protect a pool from many slow connections (they
    queue ahead of good clients, each holding a worker until its deadline); moving
    them off the pool does. See README "Hardening".
    """

    max_workers = min(32, (os.cpu_count() or 1) + 4)
    max_queued_requests = 256
    # How often a full queue rechecks an externally set shutdown flag (shutdown()
    # itself wakes the accept loop at once).
    queue_poll_interval = 0.1
    # Opt-in: the most seconds a request may run, reading and writing included;
    # past it its connection is shut down (None: no limit).
    request_deadline: float | None = None
    # Opt-in: up to this many slow requests leave the pool (0: none). A request still
    # running after slow_request_after seconds gives its worker's place to a new
    # worker and finishes on its own thread, so slow clients cannot hold every worker;
    # when that many are out, the longest-running one is cut to make room.
    max_slow_requests = 0
    slow_request_after = 0.02
    daemon_threads = True
    block_on_close = True

    network: Network
    socket_type: int

    def _check_settings(self) -> None:
        super()._check_settings()  # type: ignore[misc]
        _check_count(self, "max_workers")
        _check_count(self, "max_queued_requests")
        _check_seconds(self, "queue_poll_interval", optional=False)
        _check_seconds(self, "request_deadline", optional=True)
        value = self.max_slow_requests
        if isinstance(value, bool) or not isinstance(value, int):
            raise SockfakeTypeError(
                f"max_slow_requests must be an int (0: off), not {type(value).__name__} "
                f"{value!r}"
            )
        if value < 0:
            raise SockfakeValueError(f"max_slow_requests must be 0 or more, not {value!r}")
        _check_seconds(self, "slow_request_after", optional=False)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Handle one request on a worker thread; exceptions are handled here."""
        _handle_request(self, request, client_address)

    def _pool(self) -> _PoolState:
        state: _PoolState | None = vars(self).get("_pool_state")
        if state is None:
            # Checked at construction too; here for a setting changed since.
            _check_count(self, "max_workers")
            _check_count(self, "max_queued_requests")
            network = self.network
            state = _PoolState(
                work=network.queue(self.max_queued_requests),
                room=network.event(),
                inflight=_InFlight(network),
                stopping=network.event(),
                busy=network.event(),
                lock=network.lock(),
            )
            vars(self)["_pool_state"] = state
        return state

    def _pool_worker(self, state: _PoolState) -> None:
        try:
            self._pool_work(state)
        except BaseException:
            # Dying of an exception: leave the pool so the accept loop replaces us.
            with contextlib.suppress(ValueError):
                state.workers.remove(threading.current_thread())
            state.lost = True
            raise

    def _pool_work(self, state: _PoolState) -> None:
        work, inflight = state.work, state.inflight
        while True:
            item = work.get()
            state.room.set()
            if isinstance(item, _PoolStop):
                _pass_stop(work)
                return
            request, client_address = item
            token = inflight.add(request, self.network.time(), threading.current_thread())
            if state.watchdog is not None:
                state.busy.set()
            spilled = False
            try:
                self.process_request_thread(request, client_address)
            except (SystemExit, KeyboardInterrupt) as exc:
                # On ThreadingMixIn this ends the request's own thread and nothing
                # else; here it must not cost the pool a worker. The request is
                # already closed (process_request_thread's finally); report as a
                # dying thread would (threading is silent about SystemExit).
                if state.closing:
                    raise
                if not isinstance(exc, SystemExit):
                    _report_thread_exception(exc)
            finally:
                spilled = inflight.remove(token)
            if spilled:
                return  # this thread left the pool; a replacement took its place
            if state.closing and work.empty():
                _pass_stop(work)
                return

    def _pool_watchdog(self, state: _PoolState) -> None:
        """Police in-flight requests: ``request_deadline`` and ``max_slow_requests``."""
        network = self.network
        deadline = self.request_deadline
        max_spilled = self.max_slow_requests
        spill_after = self.slow_request_after if max_spilled else None
        logger = self.error_logger  # type: ignore[attr-defined]
        granularity = min(x for x in (deadline, spill_after) if x is not None)
        while not state.stopping.is_set():
            # Cleared before looking, so a request that starts after the look wakes
            # the untimed wait below. The timed wait is at most ``granularity``: a
            # request starting later reaches a limit no sooner than that after it.
            state.busy.clear()
            now = network.time()
            cut, spilled, next_event = state.inflight.police(
                now, deadline, spill_after, max_spilled
            )
            if spilled:
                with state.lock:
                    for thread in spilled:
                        with contextlib.suppress(ValueError):
                            state.workers.remove(thread)
                if not state.closing:
                    # Their places in the pool are free: fill them now (queued
                    # requests would otherwise wait for the next connection).
                    self._start_workers(state)
                state.room.set()
            if cut and logger is not None:
                logger.info("pool: cut %d slow request(s)", len(cut))
            if next_event is None:
                # Nothing to police (idle, or only requests already cut or off the
                # pool with no deadline): sleep until a request starts or the pool stops.
                state.busy.wait()
                continue
            state.stopping.wait(max(0.001, min(next_event - now, granularity)))

    def process_request(self, request: Any, client_address: Any) -> None:
        """Queue the request for a worker (the pool starts with the first request).

        While the queue is full the accept loop waits here, but not past a
        ``shutdown()``: a request that cannot be queued by then is closed.
        """
        state = self._pool()
        item = (request, client_address)
        while True:
            if len(state.workers) < self.max_workers or state.lost:
                state.lost = False
                self._start_workers(state)
            state.room.clear()
            try:
                state.work.put_nowait(item)
                return
            except queue.Full:
                pass
            if getattr(self, "_BaseServer__shutdown_request", False):
                self.shutdown_request(request)  # type: ignore[attr-defined]
                return
            # Set when a worker takes an item or by shutdown(); the timeout only
            # bounds how late an externally set shutdown flag is noticed.
            state.room.wait(self.queue_poll_interval)

    def shutdown(self, timeout: float | None = None) -> bool:
        """As ``BaseServer.shutdown``; also wakes an accept loop waiting for queue room."""
        # The flag first, then the wake-up: the accept loop rechecks it when it wakes.
        setattr(self, "_BaseServer__shutdown_request", True)  # noqa: B010 - BaseServer's
        state: _PoolState | None = vars(self).get("_pool_state")
        if state is not None:
            state.room.set()
        return bool(super().shutdown(timeout))  # type: ignore[misc]

    def _start_workers(self, state: _PoolState) -> None:
        """Start workers up to ``max_workers``, replacing any that died.

        A handler raising a BaseException other than SystemExit/KeyboardInterrupt
        (which workers survive) ends its worker, as it ends a ThreadingMixIn thread;
        the worker leaves the pool and the accept loop starts a replacement before
        queueing the next request. The serving thread starts workers, and the
        watchdog replaces those whose slow request left the pool (never while the
        pool closes), so a network unwinding its threads gets no new ones.
        """
        workers = state.workers
        name = type(self).__name__
        with state.lock:
            while len(workers) < self.max_workers:
                state.started += 1
                worker = self.network.thread(
                    target=self._pool_worker,
                    args=(state,),
                    name=f"{name}-worker-{state.started}",
                )
                worker.daemon = self.daemon_threads
                workers.append(worker)
                worker.start()
        policed = self.request_deadline is not None or self.max_slow_requests > 0
        if policed and state.watchdog is None:
            state.watchdog = self.network.thread(
                target=self._pool_watchdog, args=(state,), name=f"{name}-watchdog"
            )
            state.watchdog.daemon = True
            state.watchdog.start()

    def server_close(self, timeout: float | None = None) -> None:
        """Close the server; let queued requests finish; stop the workers.

        With ``timeout``, requests still running after it are aborted (their
        sockets shut down so blocked handlers unwind) and queued ones are closed;
        a worker that still does not return (its handler blocks on something other
        than its connection) is left running after as long again, with a warning to
        ``error_logger``: ``server_close(timeout=)`` returns within about twice
        ``timeout``, as on ThreadingMixIn.
        """
        datagram = self.socket_type == socket.SOCK_DGRAM
        if not datagram:
            super().server_close()  # type: ignore[misc]
        try:
            state: _PoolState | None = vars(self).get("_pool_state")
            if state is not None:
                self._stop_pool(state, timeout)
                # Two overlapping server_close() calls both wait for the pool; the
                # first to finish drops it (not a pool started since).
                if vars(self).get("_pool_state") is state:
                    vars(self).pop("_pool_state", None)
        finally:
            if datagram:
                super().server_close()  # type: ignore[misc]

    def _stop_pool(self, state: _PoolState, timeout: float | None) -> None:
        work, workers = state.work, state.workers
        state.closing = True
        # One stop per worker; a full queue means busy workers, which exit on
        # their own once the queue is drained (they check state.closing).
        for _ in workers:
            try:
                work.put_nowait(_PoolStop())
            except queue.Full:
                break
        if not self.block_on_close:
            state.stopping.set()
            state.busy.set()
            return
        try:
            # A snapshot: the watchdog (still cutting at request_deadline while we
            # drain) moves slow requests' threads out of ``workers``.
            threads = list(workers)
            threads += [t for t in state.inflight.threads() if t not in threads]
            deadline = None if timeout is None else self.network.time() + timeout
            for worker in threads:
                if deadline is None:
                    worker.join()
                else:
                    worker.join(max(0.0, deadline - self.network.time()))
            if timeout is None or not any(worker.is_alive() for worker in threads):
                return
            # Out of time: close what is still queued, abort what is running.
            while True:
                try:
                    item = work.get_nowait()
                except queue.Empty:
                    break
                if not isinstance(item, _PoolStop):
                    self.shutdown_request(item[0])  # type: ignore[attr-defined]
            for _ in threads:
                try:
                    work.put_nowait(_PoolStop())
                except queue.Full:
                    break
            state.inflight.abort_all()
            _join_or_warn(self, [w for w in threads if w.is_alive()], timeout, "pool worker(s)")
        finally:
            state.stopping.set()
            state.busy.set()
            if state.watchdog is not None:
                state.watchdog.join(1.0)


class UnixStreamServer(TCPServer):
    address_family = socket.AF_UNIX


class UnixDatagramServer(UDPServer):
    address_family = socket.AF_UNIX


class ForkingUDPServer(ForkingMixIn, UDPServer):
    pass


class ForkingTCPServer(ForkingMixIn, TCPServer):
    pass


class ThreadingUDPServer(ThreadingMixIn, UDPServer):
    pass


class ThreadingTCPServer(ThreadingMixIn, TCPServer):
    pass


class ThreadingUnixStreamServer(ThreadingMixIn, UnixStreamServer):
    pass


class ThreadingUnixDatagramServer(ThreadingMixIn, UnixDatagramServer):
    pass


class ForkingUnixStreamServer(ForkingMixIn, UnixStreamServer):
    pass


class ForkingUnixDatagramServer(ForkingMixIn, UnixDatagramServer):
    pass


class ThreadPoolTCPServer(ThreadPoolMixIn, TCPServer):
    pass


class ThreadPoolUDPServer(ThreadPoolMixIn, UDPServer):
    pass


class ThreadPoolUnixStreamServer(ThreadPoolMixIn, UnixStreamServer):
    pass


class ThreadPoolUnixDatagramServer(ThreadPoolMixIn, UnixDatagramServer):
    pass


# Names real code touches.
_ServerSelector = _ServerSelector

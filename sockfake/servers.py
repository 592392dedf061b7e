"""The socketserver server hierarchy, on a pluggable network.

Same class names, hook order, defaults and error paths as CPython 3.13's
``socketserver``; the differences are fixes, each opt-in or invisible to code written
for the stdlib (see "Differences from the stdlib" in the documentation). Everything
that blocks goes through ``self.network`` (see ``sockfake.network``).

The servers are here; the mix-ins that run requests concurrently are in
``sockfake.mixins`` (threading, forking) and ``sockfake.pool`` (the bounded pool), and
the combination classes (``ThreadingTCPServer``...) join them at the end of this file.
"""

from __future__ import annotations

import errno
import logging
import selectors
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sockfake._server_checks import (
    MAX_BACKLOG,
    MAX_INTERVAL,
    MAX_PACKET,
    _check_count,
    _check_logger,
    _check_poll_timeout,
    _check_seconds,
)
from sockfake.errors import SockfakeTypeError, SockfakeValueError
from sockfake.mixins import ForkingMixIn, ThreadingMixIn
from sockfake.network import Network, Waker, _ServerSelector, default_network
from sockfake.pool import ThreadPoolMixIn

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
        _check_seconds(self, "accept_backoff_max", optional=False, maximum=MAX_INTERVAL)
        _check_poll_timeout(self, "timeout")
        _check_logger(self, "error_logger")

    def server_activate(self) -> None:
        """Called by constructor to activate the server.  May be overridden."""

    def serve_forever(self, poll_interval: float | None = 0.5) -> None:
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
                            pause = self.__accept_backoff
                            if poll_interval is not None:
                                pause = min(pause, poll_interval)
                            self.network.sleep(pause)
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
        accepting, doubling from 10 ms up to ``accept_backoff_max``, until a
        connection closes (``serve_forever()`` retries at once then); other errors
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

    def _descriptor_freed(self) -> None:
        """A request was closed: if accepting is paused for want of descriptors, retry now.

        Called by ``close_request``. The back-off (up to ``accept_backoff_max``) would
        otherwise keep sleeping after the descriptor it waits for is free. Only while
        backing off: on the hot path this is one attribute read.
        """
        if self.__accept_backoff:
            waker = self.__waker
            if waker is not None:
                waker.set()

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
        _check_count(self, "request_queue_size", minimum=0, maximum=MAX_BACKLOG)
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
        self._descriptor_freed()


class UDPServer(TCPServer):
    """UDP server class."""

    allow_reuse_address = False
    allow_reuse_port = False
    socket_type: int = socket.SOCK_DGRAM
    max_packet_size = 8192

    def _check_settings(self) -> None:
        super()._check_settings()
        _check_count(self, "max_packet_size", maximum=MAX_PACKET)

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

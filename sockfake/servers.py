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
import os
import queue
import selectors
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sockfake.network import Network, Waker, _ServerSelector, default_network

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

    def server_activate(self) -> None:
        """Called by constructor to activate the server.  May be overridden."""

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Handle one request at a time until shutdown.

        ``shutdown()`` wakes the loop at once; ``poll_interval`` only bounds how late
        an externally set ``_BaseServer__shutdown_request`` is noticed and how often
        ``service_actions()`` runs when idle.
        """
        self.__is_shut_down.clear()
        waker = self.__waker = self.network.waker()
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
                selector.register(waker, selectors.EVENT_READ)
                while not self.__shutdown_request:
                    if self.__accept_backoff:
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
            waker.close()
            self.__is_shut_down.set()

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
                    return self._handle_request_noblock()
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
            self.handle_accept_error(exc)
            return
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
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._finishing: list[Any] = []

    def append(self, thread: Any) -> None:
        if thread.daemon:
            return
        with self._lock:
            super().append(thread)

    def discard(self, thread: Any) -> None:
        with self._lock:
            try:
                super().remove(thread)
            except ValueError:
                return
            finishing = [t for t in self._finishing if t.is_alive()]
            finishing.append(thread)
            self._finishing = finishing

    def pop_all(self) -> list[Any]:
        with self._lock:
            self[:], result = [], self[:]
            result.extend(self._finishing)
            self._finishing = []
        return result

    def join(self, timeout: float | None = None, clock: Any = None) -> list[Any]:
        """Join every thread; with ``timeout``, return those still alive after it."""
        threads = self.pop_all()
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


class _NoThreads:
    """Degenerate version of _Threads."""

    def append(self, thread: Any) -> None:
        pass

    def discard(self, thread: Any) -> None:
        pass

    def join(self, timeout: float | None = None, clock: Any = None) -> list[Any]:
        return []

    def __len__(self) -> int:
        return 0


class _InFlight:
    """The requests being handled right now, so a draining close can abort them."""

    def __init__(self, network: Network) -> None:
        self._lock = network.lock()
        self._requests: dict[int, Any] = {}
        self._next = 0

    def add(self, request: Any) -> int:
        with self._lock:
            self._next += 1
            self._requests[self._next] = request
            return self._next

    def remove(self, token: int) -> None:
        with self._lock:
            self._requests.pop(token, None)

    def abort_all(self) -> None:
        """Shut down every in-flight stream so handlers blocked on it unwind."""
        with self._lock:
            requests = list(self._requests.values())
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


def _inflight(server: Any) -> _InFlight:
    inflight: _InFlight | None = vars(server).get("_inflight")
    if inflight is None:
        inflight = vars(server).setdefault("_inflight", _InFlight(server.network))
    return inflight


def _handle_request(server: Any, request: Any, client_address: Any) -> None:
    """A request on its own thread: errors go to handle_error, the request is always shut."""
    try:
        server.finish_request(request, client_address)
    except Exception:
        server.handle_error(request, client_address)
    finally:
        server.shutdown_request(request)


class ThreadingMixIn:
    """Mix-in class to handle each request in a new thread.

    Beyond the stdlib: finished threads leave ``_threads`` as they finish;
    ``server_close(timeout=)`` drains in-flight requests, then aborts the rest;
    datagram servers let in-flight replies finish before closing the shared socket.
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
            self._threads = _Threads()
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

        With ``timeout``, wait at most that long for in-flight requests, then shut
        their sockets down so blocked handlers unwind, and wait as long again for
        them. A handler that still does not return (it blocks on something other than
        its connection) is left running, with a warning to ``error_logger`` if set:
        ``server_close(timeout=)`` always returns within about twice ``timeout``.
        """
        datagram = self.socket_type == socket.SOCK_DGRAM
        if not datagram:
            super().server_close()  # type: ignore[misc]
        try:
            if timeout is None:
                self._threads.join()
            else:
                left = self._threads.join(timeout, self.network.time)
                for thread in left:
                    _abort_request(getattr(thread, "_sockfake_request", None))
                deadline = self.network.time() + timeout
                stuck = []
                for thread in left:
                    thread.join(max(0.0, deadline - self.network.time()))
                    if thread.is_alive():
                        stuck.append(thread.name)
                logger = getattr(self, "error_logger", None)
                if stuck and logger is not None:
                    logger.warning(
                        "server_close: handler thread(s) still running after abort: %s",
                        ", ".join(stuck),
                    )
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


class ThreadPoolMixIn:
    """Mix-in class to handle requests on a bounded pool of worker threads.

    ``max_workers`` threads take requests from a queue of at most
    ``max_queued_requests``; when it is full the accept loop waits, leaving further
    connections in the kernel's backlog. Workers call ``process_request_thread``, so
    overrides written for ThreadingMixIn keep working.
    """

    max_workers = min(32, (os.cpu_count() or 1) + 4)
    max_queued_requests = 256
    # How often a full queue rechecks for shutdown() while the accept loop waits.
    queue_poll_interval = 0.1
    daemon_threads = True
    block_on_close = True

    network: Network
    socket_type: int

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Handle one request on a worker thread; exceptions are handled here."""
        _handle_request(self, request, client_address)

    def _pool(self) -> tuple[Any, list[Any]]:
        state = vars(self)
        if "_pool_queue" not in state:
            if self.max_workers < 1:
                raise ValueError(f"max_workers must be at least 1, not {self.max_workers}")
            state["_pool_queue"] = self.network.queue(max(1, self.max_queued_requests))
            state["_pool_workers"] = []
        return state["_pool_queue"], state["_pool_workers"]

    def _pool_worker(self) -> None:
        work, workers = self._pool()
        try:
            self._pool_work(work)
        except BaseException:
            # Dying of an exception: leave the pool so the accept loop replaces us.
            with contextlib.suppress(ValueError):
                workers.remove(threading.current_thread())
            vars(self)["_pool_lost"] = True
            raise

    def _pool_work(self, work: Any) -> None:
        inflight = _inflight(self)
        while True:
            item = work.get()
            if isinstance(item, _PoolStop):
                return
            request, client_address = item
            token = inflight.add(request)
            try:
                self.process_request_thread(request, client_address)
            except (SystemExit, KeyboardInterrupt) as exc:
                # On ThreadingMixIn this ends the request's own thread and nothing
                # else; here it must not cost the pool a worker. The request is
                # already closed (process_request_thread's finally); report as a
                # dying thread would (threading is silent about SystemExit).
                if vars(self).get("_pool_closing"):
                    raise
                if not isinstance(exc, SystemExit):
                    _report_thread_exception(exc)
            finally:
                inflight.remove(token)
            if vars(self).get("_pool_closing") and work.empty():
                return

    def process_request(self, request: Any, client_address: Any) -> None:
        """Queue the request for a worker (the pool starts with the first request).

        While the queue is full the accept loop waits here, but not past a
        ``shutdown()``: a request that cannot be queued by then is closed.
        """
        work, workers = self._pool()
        if not workers or "_pool_lost" in vars(self):
            vars(self).pop("_pool_lost", None)
            self._start_workers(workers)
        while True:
            try:
                work.put((request, client_address), timeout=self.queue_poll_interval)
                return
            except queue.Full:
                if getattr(self, "_BaseServer__shutdown_request", False):
                    self.shutdown_request(request)  # type: ignore[attr-defined]
                    return

    def _start_workers(self, workers: list[Any]) -> None:
        """Start workers up to ``max_workers``, replacing any that died.

        A handler raising a BaseException other than SystemExit/KeyboardInterrupt
        (which workers survive) ends its worker, as it ends a ThreadingMixIn thread;
        the worker leaves ``workers`` and the accept loop starts a replacement before
        queueing the next request. Only the serving thread starts workers, so a
        network that is unwinding its threads (the simulation's close) gets no new ones.
        """
        number = vars(self).get("_pool_started", 0)
        while len(workers) < self.max_workers:
            number += 1
            worker = self.network.thread(
                target=self._pool_worker, name=f"{type(self).__name__}-worker-{number}"
            )
            worker.daemon = self.daemon_threads
            workers.append(worker)
            worker.start()
        vars(self)["_pool_started"] = number

    def server_close(self, timeout: float | None = None) -> None:
        """Close the server; let queued requests finish; stop the workers.

        With ``timeout``, requests still running after it are aborted (their
        sockets shut down so blocked handlers unwind) and queued ones are closed.
        """
        datagram = self.socket_type == socket.SOCK_DGRAM
        if not datagram:
            super().server_close()  # type: ignore[misc]
        try:
            state = vars(self)
            if "_pool_queue" in state:
                self._stop_pool(state["_pool_queue"], state["_pool_workers"], timeout)
                # pop, not del: two overlapping server_close() calls both get here.
                state.pop("_pool_queue", None)
                state.pop("_pool_workers", None)
                state.pop("_pool_closing", None)
        finally:
            if datagram:
                super().server_close()  # type: ignore[misc]

    def _stop_pool(self, work: Any, workers: list[Any], timeout: float | None) -> None:
        vars(self)["_pool_closing"] = True
        # One stop per worker; a full queue means busy workers, which exit on
        # their own once the queue is drained (they check _pool_closing).
        for _ in workers:
            try:
                work.put_nowait(_PoolStop())
            except queue.Full:
                break
        if not self.block_on_close:
            return
        deadline = None if timeout is None else self.network.time() + timeout
        for worker in workers:
            if deadline is None:
                worker.join()
            else:
                worker.join(max(0.0, deadline - self.network.time()))
        if any(worker.is_alive() for worker in workers):
            # Out of time: close what is still queued, abort what is running.
            while True:
                try:
                    item = work.get_nowait()
                except queue.Empty:
                    break
                if not isinstance(item, _PoolStop):
                    self.shutdown_request(item[0])  # type: ignore[attr-defined]
            for _ in workers:
                try:
                    work.put_nowait(_PoolStop())
                except queue.Full:
                    break
            _inflight(self).abort_all()
            for worker in workers:
                worker.join()


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

"""The testing core, free of pytest: testbeds, server handles, and their settings.

A :class:`Testbed` is one network (simulated or real) plus the servers and clients a
test started on it; closing it stops every server and reports what went wrong
(handler errors, leaked simulated threads or sockets). :func:`open_testbed` makes one as
a context manager, for unittest, scripts, loops and ``@given`` examples alike; the
pytest plugin (``sockfake.pytest_plugin``) builds one per test from the marker and
options, with the same validation (:func:`parse_options`), and adds reporting.

Why this module passes 600 lines: the testbed, its server handles and
:func:`open_testbed` are the one object a test holds, and closing it (stop every
server within its bound, then the handler-error and leak checks) reads every part of
it. What can live apart does: settings and their validation (``settings``),
exploration (``exploration``), the conformance checks (``conformance``), the failure
report (``failure_report``), the plugin and its reports (``pytest_plugin``,
``plugin_reports``). ``TestbedMixin`` and ``enter_testbed`` bring the testbed and
the failure report to unittest.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import hashlib
import inspect
import os
import shutil
import socket
import sys
import tempfile
import time
import traceback
import types
import unittest
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from sockfake.conformance import check_network
from sockfake.errors import SockfakeRuntimeError, SockfakeTypeError, SockfakeValueError
from sockfake.exploration import Exploration, explore
from sockfake.failure_report import FailureReport
from sockfake.settings import (
    DEFAULT_TIME_LIMIT,
    LINK_KEYS,
    NETWORK_MODES,
    OPTION_KEYS,
    PEER_GONE,
    HandlerErrors,
    NetworkKind,
    NetworkMode,
    NetworkSettings,
    ignored_errors,
    parse_options,
)

if TYPE_CHECKING:
    from sockfake.sim import SimNetwork
    from sockfake.sim.kernel.scheduling import SchedulingPolicy

__all__ = [
    "LINK_KEYS",
    "PEER_GONE",
    "HandlerErrors",
    "check_network",
    "ignored_errors",
    "NETWORK_MODES",
    "Concurrency",
    "NetworkSettings",
    "ServerKind",
    "OPTION_KEYS",
    "ServerHandle",
    "Testbed",
    "TestbedError",
    "TestbedMixin",
    "Exploration",
    "FailureReport",
    "enter_testbed",
    "derive_seed",
    "explore",
    "make_network",
    "on_sockfake",
    "parse_options",
    "sim_network",
    "open_testbed",
    "interception_kept",
]

# Bounds for stopping servers at teardown: virtual seconds on the simulation (cheap),
# real seconds on the real network.
STOP_TIMEOUT: dict[NetworkKind, float] = {"sim": 60.0, "real": 5.0}
# Virtual seconds the simulation may run on after the servers stopped, before the leak
# check: in-flight packets land and the threads they wake finish.
SETTLE_TIMEOUT = 10.0


class TestbedError(AssertionError):
    """A testbed closed with problems: handler errors, leaked threads or sockets."""

    __test__ = False  # not a test class, whatever pytest's naming rules say


def derive_seed(base_seed: int, node_id: str) -> int:
    """A test's seed: a stable function of the session's base seed and the test's id."""
    digest = hashlib.sha256(f"{base_seed}\0{node_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


# The servers a testbed starts (tcp_server(), udp_server()...), and how each handles
# its requests: one at a time, a thread each, or a bounded pool of threads.
ServerKind = Literal["tcp", "udp", "unix_stream", "unix_datagram"]
Concurrency = Literal["sync", "threading", "pool"]


def _server_class(kind: ServerKind, concurrency: Concurrency) -> type[Any]:
    import sockfake

    names = {
        "tcp": ("TCPServer", "ThreadingTCPServer", "ThreadPoolTCPServer"),
        "udp": ("UDPServer", "ThreadingUDPServer", "ThreadPoolUDPServer"),
        "unix_stream": (
            "UnixStreamServer",
            "ThreadingUnixStreamServer",
            "ThreadPoolUnixStreamServer",
        ),
        "unix_datagram": (
            "UnixDatagramServer",
            "ThreadingUnixDatagramServer",
            "ThreadPoolUnixDatagramServer",
        ),
    }[kind]
    index = {"sync": 0, "threading": 1, "pool": 2}.get(concurrency)  # any value may come
    if index is None:
        raise SockfakeValueError(
            f"concurrency={concurrency!r} is not one of 'threading', 'pool', 'sync'"
        )
    cls: type[Any] = getattr(sockfake, names[index])
    return cls


class ServerHandle:
    """A server started by a sockfake fixture: ``.address``, ``.server``, clients.

    ``connect()`` (stream servers) returns a connected client socket, ``client()``
    (datagram servers) a datagram socket, both on the server's network. The fixture
    closes these sockets and stops the server at teardown; :meth:`stop` does it early.
    """

    def __init__(self, testbed: Testbed, kind: ServerKind, server: Any, name: str,
                 thread: Any) -> None:
        self.testbed = testbed
        self.kind = kind
        self.server = server
        self.name = name
        self.thread = thread
        self.network = testbed.network
        self.address: Any = server.server_address
        self.host: str | None = None  # the simulated host it runs on (None: the default)
        self.stopped = False

    def __repr__(self) -> str:
        return f"<ServerHandle {self.name} {type(self.server).__name__} at {self.address!r}>"

    @property
    def family(self) -> int:
        return int(self.server.address_family)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:61000/`` for a TCP server: ``requests.get(srv.url)`` and
        ``urlopen(srv.url)`` reach it (on the simulated network, under interception)."""
        if self.kind != "tcp":
            raise SockfakeTypeError(f"{self.name}: only a TCP server has a URL")
        host, port = self.address[0], self.address[1]
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}/"

    def connect(self, timeout: float | None = None) -> Any:
        """A client socket connected to this (stream) server; closed at teardown."""
        if self.kind not in ("tcp", "unix_stream"):
            raise SockfakeTypeError(
                f"{self.name}: a datagram server has no connect(); use client()"
            )
        if self.kind == "tcp":
            sock = self.network.create_connection(self.address[:2], timeout)
        else:
            sock = self.network.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                if timeout is not None:
                    sock.settimeout(timeout)
                sock.connect(self.address)
            except BaseException:
                sock.close()
                raise
        self.testbed._clients.append(sock)
        return sock

    def client(self, timeout: float | None = None) -> Any:
        """A datagram socket on the server's network (Unix: bound, so replies reach it)."""
        if self.kind not in ("udp", "unix_datagram"):
            raise SockfakeTypeError(f"{self.name}: a stream server has no client(); use connect()")
        sock = self.network.socket(self.family, socket.SOCK_DGRAM)
        try:
            if timeout is not None:
                sock.settimeout(timeout)
            if self.kind == "unix_datagram":
                sock.bind(self.testbed._unix_path("client"))
        except BaseException:
            sock.close()
            raise
        self.testbed._clients.append(sock)
        return sock

    def stop(self) -> list[str]:
        """Stop serving and close the server (idempotent); returns problems met."""
        if self.stopped:
            return []
        self.stopped = True
        problems = []
        bound = STOP_TIMEOUT[self.testbed.kind]
        if self.thread is not None and not self._shutdown(bound):
            problems.append(f"{self.name}: serve_forever() did not stop within {bound:g} s")
        close = self.server.server_close
        kwargs = {"timeout": bound} if "timeout" in inspect.signature(close).parameters else {}
        try:
            if self.testbed.kind == "real":
                problems.extend(self._close_within(close, kwargs, 2 * bound))
            else:
                close(**kwargs)  # a handler stuck on the simulation is a deadlock, reported
        finally:
            if self.thread is not None and not problems:
                self.thread.join(bound)
        return problems

    def _shutdown(self, bound: float) -> bool:
        """``shutdown()``, bounded: did ``serve_forever()`` stop?"""
        shutdown = self.server.shutdown
        if "timeout" in inspect.signature(shutdown).parameters:
            return bool(shutdown(timeout=bound))
        # The stdlib's shutdown() (a server not built on sockfake) waits without a bound:
        # on the simulation a loop that never stops is a deadlock, which the kernel
        # reports; on the real network it is waited for in a helper thread.
        if self.testbed.kind == "sim":
            shutdown()
            return True
        return _finishes_within(shutdown, bound, f"sockfake-{self.name}-shutdown")

    def _close_within(self, close: Callable[..., Any], kwargs: Any, bound: float) -> list[str]:
        """``server_close()`` on the real network, given up on after ``bound`` seconds.

        ``server_close(timeout=)`` aborts the connections of handlers still running
        after its timeout, but a handler blocked on something else (an event, a sleep,
        another server) keeps its thread alive and the join waiting: wait for that in
        a helper thread, so teardown stays bounded and the test says what is stuck.
        """
        import threading

        server = self.server
        # This server's handler threads (and pool workers): their target is bound to it.
        handlers = [
            t for t in threading.enumerate()
            if getattr(getattr(t, "_target", None), "__self__", None) is server
        ]
        started = time.monotonic()
        closed = _finishes_within(lambda: close(**kwargs), bound, f"sockfake-{self.name}-close")
        if closed:
            # A server not built on sockfake does not wait for its daemon handler
            # threads (werkzeug's, dnslib's): one that just saw its client hang up is
            # still finishing. Give them what is left of the bound.
            for thread in handlers:
                thread.join(max(0.0, bound - (time.monotonic() - started)))
        stuck = sorted(t.name for t in handlers if t.is_alive())
        if closed and not stuck:
            return []
        # server_close(timeout=) gives up on a handler its abort cannot wake; without
        # a timeout parameter the close itself is what does not return.
        return [
            f"{self.name}: a handler is still running after server_close() "
            f"({bound:g} s), blocked outside its connection (threads alive: "
            f"{', '.join(stuck) or 'none'})"
        ]


def _finishes_within(call: Callable[[], object], bound: float, name: str) -> bool:
    """Run ``call`` in a helper thread (real network): did it return within ``bound``
    seconds? Its exception, if it raised in time, is raised here."""
    import threading

    errors: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:
            errors.append(exc)

    helper = threading.Thread(target=run, name=name, daemon=True)
    helper.start()
    helper.join(bound)
    if errors:
        raise errors[0]
    return not helper.is_alive()


_rebuilt: dict[str, Any] = {}


def on_sockfake(cls: type[Any], where: str = "server_class") -> type[Any]:
    """``cls`` as a server class a testbed can start.

    A sockfake class is returned as it is. A class of the stdlib's own users of
    socketserver (``http.server.ThreadingHTTPServer``, ``xmlrpc.server.
    SimpleXMLRPCServer``, ``wsgiref.simple_server.WSGIServer``...) is the same class
    rebuilt on sockfake (``replace_socketserver``; rebuilt once per process), so it
    takes ``network=``. Any other class built on the stdlib's socketserver (werkzeug's
    ``ThreadedWSGIServer``, dnslib's ``UDPServer``...) is returned as it is: it makes
    its socket with ``socket.socket()``, which is the simulation under interception.
    """
    import socketserver

    import sockfake
    from sockfake._standin import STDLIB_DEPENDANTS, replace_socketserver

    if not isinstance(cls, type):
        raise SockfakeTypeError(f"{where}: expected a server class, not {cls!r}")
    if issubclass(cls, sockfake.BaseServer):
        return cls
    module = cls.__module__
    if module in STDLIB_DEPENDANTS:
        if not _rebuilt:
            # All together: wsgiref.simple_server builds on http.server's classes.
            with replace_socketserver() as modules:
                _rebuilt.update(modules)
        rebuilt: type[Any] = getattr(_rebuilt[module], cls.__qualname__)
        return rebuilt
    if issubclass(cls, socketserver.BaseServer):
        return cls
    raise SockfakeTypeError(
        f"{where}: {cls.__qualname__} is not a server class (derived from sockfake's or "
        "the stdlib's socketserver.BaseServer); for a server whose constructor is not "
        "(address, handler), pass server_factory= instead"
    )


def _on_host(host: Any, fixture: str, build: Callable[[], Any]) -> Any:
    """``build()`` in a simulated thread on ``host``: under interception the sockets it
    makes with ``socket.socket()`` are that host's."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = build()
        except BaseException as exc:
            out["error"] = exc

    thread = host.thread(target=run, name=f"sockfake-{fixture}-build")
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["result"]


def _is_sockfake_class(cls: Any) -> bool:
    import sockfake

    return isinstance(cls, type) and issubclass(cls, sockfake.BaseServer)


def _is_sockfake_server(server: Any) -> bool:
    return _is_sockfake_class(type(server))


def _needs_interception(fixture: str, what: str, made_by: Any) -> str:
    name = getattr(made_by, "__qualname__", None) or repr(made_by)
    return (
        f"{fixture}({what}={name}): this server makes its socket with socket.socket(), "
        "which is the simulated network only under interception, and this test runs "
        "without it (intercept=False): leave interception on (the default), or build "
        "the server on sockfake's classes with network="
    )


def _is_simulated_socket(sock: Any) -> bool:
    from sockfake.sim.net.descriptors import FIRST_FD

    try:
        return int(sock.fileno()) >= FIRST_FD
    except (OSError, ValueError, TypeError, AttributeError):
        return False


def _check_attributes(fixture: str, base: type[Any], attributes: dict[str, Any]) -> None:
    """Keywords become class attributes of the server: settings the class has
    (``daemon_threads``...) and state of the test's own for its handlers
    (``store={}`` is ``self.server.store`` in a handler, the socketserver idiom). A name
    the class lacks but that is one slip from a setting it has is refused as a typo."""
    for name in attributes:
        if hasattr(base, name):
            continue
        # dir() only for a name the class lacks: it walks the whole MRO.
        public = [attribute for attribute in dir(base) if not attribute.startswith("_")]
        close = difflib.get_close_matches(name, public, n=1, cutoff=0.85)
        if close:
            raise SockfakeTypeError(
                f"{fixture}(): {base.__name__} has no attribute {name!r}; did you mean "
                f"{close[0]!r}? (a name it has no near match for is set as server state, "
                "self.server.<name> for handlers)"
            )


def _starter(kind: ServerKind, doc: str) -> Callable[..., ServerHandle]:
    """One of Testbed's server starters (tcp_server, udp_server...), all alike."""

    def start(
        self: Testbed,
        handler: Any = None,
        *,
        address: Any = None,
        concurrency: Concurrency = "threading",
        server_class: type[Any] | None = None,
        server_factory: Callable[..., Any] | None = None,
        host: Any = None,
        serve: bool = True,
        poll_interval: float | None = None,
        _fixture: str = f"{kind}_server",
        **server_attributes: Any,
    ) -> ServerHandle:
        return self._start(
            kind,
            _fixture,
            handler,
            address,
            concurrency,
            server_class,
            server_factory,
            host,
            serve,
            poll_interval,
            server_attributes,
        )

    start.__name__ = start.__qualname__ = f"{kind}_server"
    start.__doc__ = doc
    return start


class Testbed:
    """One network plus the servers and clients a test started on it.

    The fixtures build one per test; :func:`open_testbed` builds one as a context manager
    (for ``@given`` and loops). :meth:`close` stops every server, then fails if a
    handler raised, or (on the simulated network) if a simulated thread or socket
    was left behind.
    """

    __test__ = False

    def __init__(
        self,
        network: Any,
        kind: NetworkKind,
        *,
        seed: int | None = None,
        handler_errors: HandlerErrors = "fail",
    ) -> None:
        self.network = network
        self.kind = kind
        self.seed = seed
        self.handler_errors = handler_errors
        self._ignored = ignored_errors(handler_errors)
        self.servers: list[ServerHandle] = []
        self.errors: list[str] = []
        self._clients: list[Any] = []
        self._tmpdir: str | None = None
        self._paths = 0
        self._names: dict[str, int] = {}
        self.closed = False
        # What a failure prints (seed, last events, trace files, how to reproduce);
        # open_testbed() and TestbedMixin fill it in.
        self.report = FailureReport(seed)
        if kind == "sim":
            network.kernel.on_thread_error = self._thread_died

    def _thread_died(self, thread: str, error: BaseException) -> bool:
        """A simulated thread died of ``error``: a failure, as a handler error is (with
        the same ``handler_errors`` policy). True: reported here, so not again by
        ``threading.excepthook`` (a pytest warning)."""
        self.network.record("thread-error", f"{thread}: {type(error).__name__}: {error}",
                            reason=type(error).__name__)
        if isinstance(error, self._ignored):
            return False
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        self.errors.append(f"simulated thread {thread!r} died of an exception\n{text}")
        return True

    def _unix_path(self, what: str) -> str:
        self._paths += 1
        if self.kind == "sim":
            # A fixed path (the run's trace must not depend on a temporary name) in a
            # directory that exists, as a simulated bind() needs; its socket file is
            # the network's, in memory: nothing is written there.
            return f"/tmp/sockfake-{what}-{self._paths}.sock"
        if self._tmpdir is None:
            self._tmpdir = tempfile.mkdtemp(prefix="sockfake-")
        return os.path.join(self._tmpdir, f"{what}-{self._paths}.sock")

    def _start(
        self,
        kind: ServerKind,
        fixture: str,
        handler: Any,
        address: Any,
        concurrency: Concurrency,
        server_class: type[Any] | None,
        server_factory: Callable[..., Any] | None,
        host: Any,
        serve: bool,
        poll_interval: float | None,
        attributes: dict[str, Any],
    ) -> ServerHandle:
        if self.closed:
            raise SockfakeRuntimeError(f"{fixture}: the testbed is closed")
        if kind.startswith("unix") and not hasattr(socket, "AF_UNIX"):
            raise unittest.SkipTest("Unix sockets are not available here")
        network = self._host(fixture, host)
        if address is None:
            if kind.startswith("unix"):
                address = self._unix_path("server")
            else:
                address = (network.ipv4[0] if host is not None else "127.0.0.1", 0)
        if server_factory is not None:
            server = self._from_factory(kind, fixture, network, handler, address, server_class,
                                        server_factory, attributes)
        else:
            server = self._from_class(fixture, network, handler, address, concurrency,
                                      server_class, attributes, kind)
        number = self._names[fixture] = self._names.get(fixture, 0) + 1
        name = fixture if number == 1 else f"{fixture}-{number}"
        self._watch_errors(server, name)
        thread = None
        if serve:
            # A server not built on sockfake only notices shutdown() when its poll
            # times out: it keeps its own serve_forever() default (0.5 s).
            ours = _is_sockfake_server(server)
            thread = network.thread(
                target=server.serve_forever,
                args=(poll_interval,) if ours or poll_interval is not None else (),
                name=f"sockfake-{name}-serve",
                daemon=True,
            )
            thread.start()
        handle = ServerHandle(self, kind, server, name, thread)
        handle.host = None if host is None else network.name
        self.servers.append(handle)
        return handle

    def _host(self, fixture: str, host: Any) -> Any:
        """The network view a server is placed on: the testbed's network, or a host of
        it (``host="db"``: added if the network has no host of that name)."""
        if host is None:
            return self.network
        if self.kind != "sim":
            raise unittest.SkipTest(
                f"{fixture}(host={host!r}): hosts are the simulated network's; the real "
                "network is this machine only"
            )
        from sockfake.sim.network import Host

        if isinstance(host, Host):
            return self.network.host(host)  # checked to be this network's
        if not isinstance(host, str) or not host:
            raise SockfakeTypeError(
                f"{fixture}(host=): expected a host name (or a Host), not {host!r}"
            )
        if host in {h.name for h in self.network.hosts}:
            return self.network.host(host)
        return self.network.add_host(host)

    def _from_class(
        self,
        fixture: str,
        network: Any,
        handler: Any,
        address: Any,
        concurrency: Concurrency,
        server_class: type[Any] | None,
        attributes: dict[str, Any],
        kind: ServerKind,
    ) -> Any:
        if handler is None:
            raise SockfakeTypeError(
                f"{fixture}() needs a request handler class (or server_factory=, a "
                "callable that builds the whole server)"
            )
        if server_class is not None:
            base = on_sockfake(server_class, f"{fixture}(server_class=)")
        else:
            base = _server_class(kind, concurrency)
        _check_attributes(fixture, base, attributes)
        cls = type(base.__name__, (base,), dict(attributes)) if attributes else base
        if "network" in inspect.signature(cls).parameters:
            return cls(address, handler, network=network)
        # A class whose __init__ does not pass network= on (SimpleXMLRPCServer, and
        # every class built on the stdlib's socketserver): the ambient default network
        # reaches a sockfake one, interception the stdlib's.
        self._check_stdlib_server(fixture, "server_class", base)
        return self._build(fixture, network, "server_class", base, lambda: cls(address, handler))

    def _from_factory(
        self,
        kind: str,
        fixture: str,
        network: Any,
        handler: Any,
        address: Any,
        server_class: type[Any] | None,
        factory: Callable[..., Any],
        attributes: dict[str, Any],
    ) -> Any:
        where = f"{fixture}(server_factory=)"
        if not callable(factory):
            raise SockfakeTypeError(f"{where}: expected a callable, not {factory!r}")
        for given, what in ((handler, "a handler class"), (server_class, "server_class=")):
            if given is not None:
                raise SockfakeTypeError(
                    f"{where}: the factory builds the whole server; {what} ({given!r}) "
                    "cannot be given too"
                )
        if attributes:
            names = ", ".join(sorted(attributes))
            raise SockfakeTypeError(
                f"{where}: server attributes ({names}) cannot be set on a server the "
                "factory builds; set them in the factory"
            )
        args = (address,) if kind.startswith("unix") else (address[0], address[1])
        server = self._build(fixture, network, "server_factory", factory, lambda: factory(*args))
        missing = [
            name for name in ("serve_forever", "shutdown", "server_close", "server_address")
            if not hasattr(server, name)
        ]
        if missing:
            raise SockfakeTypeError(
                f"{where}: {factory!r} returned {server!r}, not a server (it has no "
                f"{', '.join(missing)})"
            )
        return server

    def _check_stdlib_server(self, fixture: str, what: str, cls: Any) -> None:
        """A server built on the stdlib's socketserver runs on the simulation only
        under interception; say so before it binds a real socket."""
        if self.kind != "sim" or _is_sockfake_class(cls):
            return
        from sockfake.sim.intercept import is_intercepted

        if not is_intercepted():
            raise SockfakeRuntimeError(_needs_interception(fixture, what, cls))

    def _build(
        self, fixture: str, network: Any, what: str, made_by: Any, build: Callable[[], Any]
    ) -> Any:
        """Build a server that takes no ``network=``, on ``network`` (the testbed's, or
        one of its hosts: then in a thread on that host, whose sockets are the host's)."""
        from sockfake.network import use_network

        with use_network(network):
            server = build() if network is self.network else _on_host(network, fixture, build)
        if self.kind == "sim":
            sock = getattr(server, "socket", None)
            if sock is not None and not _is_simulated_socket(sock):
                with contextlib.suppress(Exception):
                    server.server_close()
                raise SockfakeRuntimeError(_needs_interception(fixture, what, made_by))
        return server

    def _watch_errors(self, server: Any, name: str) -> None:
        original = server.handle_error
        errors = self.errors
        ignored = self._ignored
        record = getattr(self.network, "record", None)  # the simulation's trace

        def handle_error(request: Any, client_address: Any) -> Any:
            error = sys.exc_info()[1]
            if record is not None and error is not None:
                record("handler-error", f"{name}: {type(error).__name__}: {error}",
                       src=client_address, reason=type(error).__name__)
            if not isinstance(error, ignored):
                text = traceback.format_exc()
                errors.append(f"{name}: handler error for client {client_address!r}\n{text}")
            return original(request, client_address)

        server.handle_error = handle_error

    tcp_server = _starter(
        "tcp", "Start a TCP server (threading by default) serving in the background."
    )
    udp_server = _starter(
        "udp", "Start a UDP server (threading by default) serving in the background."
    )
    unix_stream_server = _starter(
        "unix_stream", "Start a Unix stream server on a fresh path, serving in the background."
    )
    unix_datagram_server = _starter(
        "unix_datagram", "Start a Unix datagram server on a fresh path, serving in the background."
    )

    def close(self, *, check_leaks: bool = True) -> list[str]:
        """Stop everything; return the problems (handler errors, leaks), if any."""
        if self.closed:
            return []
        self.closed = True
        problems: list[str] = []
        failed = self.kind == "sim" and self.network.kernel.failure is not None
        try:
            if failed:
                # The simulation already failed (deadlock, stall, time limit) and the
                # test saw it: unwind the simulated threads, then close quietly.
                self.network.close()
            for sock in self._clients:
                with contextlib.suppress(Exception):
                    sock.close()
            for handle in self.servers:
                if failed:
                    handle.stopped = True
                    with contextlib.suppress(Exception):
                        handle.server.socket.close()
                    continue
                try:
                    problems.extend(handle.stop())
                except Exception as exc:
                    problems.append(f"{handle.name}: stopping the server failed: {exc}")
                    break
            problems[:0] = self.errors
            if self.errors:
                problems.append(
                    "(handler errors and exceptions that end a simulated thread fail the "
                    "test; to let some pass, give the testbed handler_errors=(TimeoutError,) "
                    "(open_testbed(), TestbedMixin.testbed_options, or the pytest marker), "
                    "or handler_errors='ignore' for all)"
                )
            if self.kind == "sim" and not failed and not self.network.closed:
                if check_leaks:
                    # What is in flight (a FIN on a slow link) lands first: judge only
                    # what would really be left behind.
                    self.network.settle(SETTLE_TIMEOUT)
                    problems.extend(self._leaks())
                self.network.close()
        finally:
            if self.kind == "sim" and not self.network.closed:
                self.network.close()
            if self._tmpdir is not None:
                shutil.rmtree(self._tmpdir, ignore_errors=True)
        return problems

    def failure_report(self) -> str:
        """What a failure on this testbed prints: seed, virtual time and digest, last
        trace events, trace files (where ``report.trace_dir`` says), how to reproduce."""
        return self.report.text(self.network if self.kind == "sim" else None)

    def _leaks(self) -> list[str]:
        problems = []
        kernel = self.network.kernel
        threads = [t for t in kernel._threads if t is not kernel.root and t.state != "finished"]
        if threads:
            described = "; ".join(f"{t.name} ({_waiting_on(t)})" for t in threads)
            problems.append(f"leaked simulated thread(s), still running at teardown: {described}")
        sockets = self.network.open_sockets()
        if sockets:
            described = "; ".join(repr(s) for s in sockets)
            problems.append(f"leaked simulated socket(s), never closed: {described}"
                            + _kept_loops(sockets))
        return problems


def _kept_loops(sockets: list[Any]) -> str:
    """What to do when leaked sockets are an open event loop's self-pipe: a loop kept past
    the test (pytest-asyncio's ``loop_scope="module"``, a loop never closed)."""
    import asyncio
    import gc

    leaked = {id(sock) for sock in sockets}
    loops = [
        obj for obj in gc.get_objects()
        # type(), not isinstance(): isinstance() asks a weakref.proxy for its referent's
        # __class__, and a dead proxy among the heap's objects raises ReferenceError.
        if issubclass(type(obj), asyncio.AbstractEventLoop) and not obj.is_closed()
        # the loop's self-pipe is an intercepted socket around a simulated one
        and id(getattr(getattr(obj, "_ssock", None), "_sf_sim", None)) in leaked
    ]
    if not loops:
        return ""
    return (
        f". They include the self-pipe of {len(loops)} event loop(s) still open "
        f"({loops[0]!r}): a loop that outlives the test outlives its simulated network "
        "(made in a fixture of a wider scope, pytest-asyncio's loop_scope=\"module\" or "
        "\"session\", or never closed). Close the loop in the test (asyncio.run() does), "
        'and keep pytest-asyncio\'s default loop_scope="function" for tests on the simulation'
    )


def _waiting_on(thread: Any) -> str:
    """What a simulated thread waits on (descriptions are built lazily by the kernel)."""
    if thread.state != "blocked":
        return str(thread.state)
    what = thread.waiting_on
    return str(what() if callable(what) else what)


def make_network(
    kind: NetworkKind,
    seed: int,
    options: NetworkSettings,
    replay: list[str] | None = None,
) -> Any:
    """The network a test runs on; ``replay``: the decisions a simulated one follows
    (explore="systematic" gives each run its prefix)."""
    if kind == "real":
        from sockfake.network import REAL_NETWORK

        return REAL_NETWORK
    from sockfake.sim import SimNetwork

    return SimNetwork(
        seed=seed,
        scheduling=options.scheduling,
        time_limit=options.time_limit,
        stall_timeout=options.stall_timeout,
        spin_budget=options.spin_budget,
        switch_points=options.switch_points,
        pct_depth=options.pct_depth,
        pct_steps=options.pct_steps,
        switch_packages=options.switch_packages,
        pin_cpu=options.pin_cpu,
        backend=options.backend,
        trace_limit=options.trace_limit,
        replay=replay,
        **options.conditions,
    )


@contextlib.contextmanager
def open_testbed(
    network: NetworkMode = "sim",
    *,
    seed: int = 0,
    handler_errors: HandlerErrors = "fail",
    time_limit: float | None = DEFAULT_TIME_LIMIT,
    scheduling: SchedulingPolicy = "fifo",
    stall_timeout: float = 10.0,
    intercept: bool = True,
    seed_entropy: bool = True,
    linger: bool = False,
    **conditions: Any,
) -> Iterator[Testbed]:
    """A fresh network with server helpers, closed and checked on exit.

    On the simulated network the block runs under ``SimNetwork.intercept()``, as the
    pytest fixtures do: the stdlib's clients (``requests``, ``urllib``...), sleeps,
    clocks and threading primitives in its threads are the simulation.
    ``intercept=False`` opts out, for a block that must keep the real clock (then use
    ``bed.network.time()``/``.sleep()`` and the network's sockets). Under interception
    library entropy (``os.urandom``, ``secrets``, ``uuid4``, ``random``) draws from the
    seed; ``seed_entropy=False`` leaves it to the OS.

    For ``@given`` tests and loops, where function-scoped fixtures are not reset
    between examples::

        with open_testbed(seed=seed, loss=0.2) as bed:
            srv = bed.udp_server(Handler)
            ...

    On exit, a handler error or a leaked simulated thread or socket raises
    :class:`TestbedError` (unless the block already raised).

    ``linger=True`` leaves the interception's patches installed after the block (every
    patched call then goes to the real OS) for the next interception to reuse: the
    pytest plugin's ``sockfake_network_factory``, which takes them away before a test
    that does not intercept and at the session's end. In a loop outside pytest use
    :func:`interception_kept` instead, which takes them away at its end.
    """
    kwargs = {
        **conditions,
        "network": network,
        "seed": seed,
        "scheduling": scheduling,
        "handler_errors": handler_errors,
        "stall_timeout": stall_timeout,
        "intercept": intercept,
        "seed_entropy": seed_entropy,
        "time_limit": time_limit,
    }
    options = parse_options(kwargs, "sim")
    if options.network == "both":
        raise SockfakeValueError("open_testbed(network='both'): pick 'sim' or 'real'")
    net = make_network(options.network, seed, options)
    bed = Testbed(
        net,
        options.network,
        seed=seed if options.network == "sim" else None,
        handler_errors=options.handler_errors,
    )
    given: dict[str, Any] = {"network": network} if network != "sim" else {}
    given.update({"seed": seed, **conditions})
    given.update({name: value for name, value, default in (
        ("handler_errors", handler_errors, "fail"), ("time_limit", time_limit, DEFAULT_TIME_LIMIT),
        ("scheduling", scheduling, "fifo"), ("stall_timeout", stall_timeout, 10.0),
        ("intercept", intercept, True), ("seed_entropy", seed_entropy, True),
    ) if value != default})
    bed.report.seed_origin = "given to open_testbed()"
    bed.report.reproduce = [f"open_testbed({_arguments(given)}) runs the same network"]
    trace_dir = os.environ.get("SOCKFAKE_TRACE_DIR", "").strip()
    bed.report.trace_dir = Path(trace_dir) if trace_dir else None
    bed.report.name = f"testbed-seed-{seed}"
    with contextlib.ExitStack() as stack:
        if options.intercept and options.network == "sim":
            from sockfake.sim.intercept.install import intercept as intercept_network

            stack.enter_context(intercept_network(net, options.seed_entropy, linger=linger))
        try:
            yield bed
        except BaseException as exc:
            problems = bed.close(check_leaks=False)
            if isinstance(exc, Exception):  # not KeyboardInterrupt, SystemExit
                # The block's error may be only a symptom (a client's timeout after a
                # server thread died): keep the testbed's findings with it.
                found = "the testbed also found:\n" + "\n".join(problems) + "\n" \
                    if problems else ""
                show_with(exc, found + bed.failure_report())
            raise
        problems = bed.close()
    if problems:
        raise TestbedError("\n".join(problems) + "\n\nsockfake: " + bed.failure_report())


@contextlib.contextmanager
def interception_kept() -> Iterator[None]:
    """Keep the interception's patches installed between the iterations of a loop::

        with interception_kept():
            for seed in range(1000):
                with open_testbed(seed=seed) as bed:
                    ...

    Each ``open_testbed`` (each ``net.intercept()``) otherwise installs and removes
    some 120 patches of the stdlib, a quarter of a small test's cost. Between two
    iterations the patches stay, and every patched call goes to the real OS (no thread
    is simulated then); the block's end takes them away, so nothing stays patched
    after it. :func:`explore` keeps them for its own loop. Under pytest the plugin
    already does this between intercepted tests."""
    from sockfake.sim.intercept.install import keep_patches

    with keep_patches():
        yield


def _arguments(given: dict[str, Any]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in given.items())


def show_with(error: BaseException, report: str) -> None:
    """Show ``report`` with ``error``: a note on Python 3.11 and later (every runner
    prints an exception's notes), on stderr before it on 3.10."""
    text = "sockfake: " + report
    add_note = getattr(error, "add_note", None)
    if add_note is not None:
        if text not in getattr(error, "__notes__", ()):
            add_note(text)
    else:
        sys.stderr.write(f"\n{text}\n")


# -- unittest ----------------------------------------------------------------------------

_base_seed: tuple[int, str] | None = None


def unittest_base_seed() -> tuple[int, str]:
    """This process's base seed for unittest tests, and where it came from:
    ``SOCKFAKE_SEED`` (an integer, or ``random``, the default, as with pytest)."""
    global _base_seed
    if _base_seed is None:
        value = os.environ.get("SOCKFAKE_SEED", "").strip()
        if not value or value == "random":
            import random

            _base_seed = random.SystemRandom().randrange(2**32), "random"
        else:
            try:
                seed = int(value, 0)
            except ValueError:
                seed = -1
            if not 0 <= seed < 2**64:
                raise SockfakeValueError(
                    f"SOCKFAKE_SEED={value!r} is not a seed: give an integer from 0 to "
                    "2**64 - 1, or 'random'"
                )
            _base_seed = seed, "from SOCKFAKE_SEED"
    return _base_seed


def _unittest_command(case: unittest.TestCase, base_seed: int) -> str:
    """A shell command that reruns ``case`` with its seed, from any directory: it goes
    to the directory its module imports from (so the runner that loaded it, and how,
    does not matter)."""
    import shlex

    cls = type(case)
    name = cls.__module__
    module = sys.modules.get(name)
    file = getattr(module, "__file__", None)
    root = Path.cwd()
    if file is not None:
        path = Path(file).resolve()
        if name == "__main__":
            name = path.stem
        root = path.parent
        for _ in name.split(".")[1:]:
            root = root.parent
    test = f"{name}.{cls.__qualname__}.{case._testMethodName}"
    return (f"cd {shlex.quote(str(root))} && SOCKFAKE_SEED={base_seed} python -m unittest "
            f"{shlex.quote(test)}")


def enter_testbed(case: unittest.TestCase, **options: Any) -> Testbed:
    """``open_testbed(**options)`` for one unittest test, closed and checked at cleanup.

    Without ``seed=`` the test's seed derives from the base seed (``SOCKFAKE_SEED``,
    random by default) and the test's class and method names. A failure report (seed,
    last events, trace files, the command that reruns the test) goes with the
    testbed's own errors at cleanup; :class:`TestbedMixin` adds it to the test's.
    """
    base, origin = unittest_base_seed()
    key = f"{type(case).__qualname__}.{case._testMethodName}"
    given = "seed" in options
    seed = int(options.pop("seed")) if given else derive_seed(base, key)
    context = open_testbed(seed=seed, **options)
    bed = context.__enter__()
    if given:
        bed.report.seed_origin = "given in the test"
    else:
        bed.report.seed_origin = f"derived from base seed {base} ({origin}) and {key}"
        bed.report.reproduce.insert(0, _unittest_command(case, base))
    directory = os.environ.get("SOCKFAKE_TRACE_DIR", "").strip()
    bed.report.trace_dir = Path(directory) if directory else \
        Path(tempfile.gettempdir()) / "sockfake-traces"
    bed.report.name = case.id()
    case.addCleanup(context.__exit__, None, None, None)
    return bed


class TestbedMixin:
    """Mix into a ``unittest.TestCase``: ``self.bed``, a fresh testbed per test, and on
    failure the report pytest users get (seed, last trace events, trace files, the
    command that reruns the test with its seed)::

        class EchoTest(TestbedMixin, unittest.TestCase):
            testbed_options = {"latency": 0.01, "loss": 0.1}

            def test_echo(self):
                srv = self.bed.udp_server(Echo)
                ...

    ``testbed_options`` are ``open_testbed()``'s keywords. The report is a note on
    the test's exception (Python 3.11 and later; on 3.10 it is written to stderr),
    so any runner that prints the traceback prints it.
    """

    __test__ = False  # pytest: a mixin, not a test class
    testbed_options: ClassVar[dict[str, Any]] = {}
    bed: Testbed

    def __init__(self, methodName: str = "runTest") -> None:
        super().__init__(methodName)  # type: ignore[call-arg]
        test = getattr(self, methodName, None)
        if callable(test):
            reporting = self._reporting(test)
            setattr(self, methodName, reporting)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__test__" not in vars(cls):
            cls.__test__ = True  # a test class made from the mixin is one

    def _reporting(self, test: Callable[[], Any]) -> Callable[[], Any]:
        """``test``, adding the report to its exception. A bound method, as the test
        method it stands for: unittest's loader takes a plain function found on an
        instance for a static method."""

        @functools.wraps(test)
        def run(case: TestbedMixin) -> Any:
            try:
                return test()
            except Exception as exc:
                bed = getattr(case, "bed", None)
                if bed is not None and not isinstance(exc, unittest.SkipTest):
                    show_with(exc, bed.failure_report())
                raise

        return types.MethodType(run, self)

    def setUp(self) -> None:
        super().setUp()  # type: ignore[misc]
        self.bed = enter_testbed(self, **dict(self.testbed_options))  # type: ignore[arg-type]


@contextlib.contextmanager
def sim_network(seed: int = 0, **options: Any) -> Iterator[SimNetwork]:
    """A fresh ``SimNetwork`` (keyword link conditions as the marker's), closed on exit;
    intercepted, as :func:`open_testbed` (``intercept=False`` opts out).

    Servers started on it are yours to stop; use :func:`open_testbed` for servers that
    stop themselves and for handler-error and leak checks.
    """
    with open_testbed("sim", seed=seed, **options) as bed:
        yield bed.network

"""The command line: ``python -m sockfake COMMAND`` (also installed as ``sockfake``).

``serve`` runs a request handler on real sockets until SIGINT or SIGTERM. Each
subcommand is one ``_add_<name>_command(subcommands)`` function that declares its
arguments and sets ``run`` (a function ``(args, parser) -> exit status``) and
``command_parser`` (its own parser, for errors) with ``set_defaults``; ``main`` parses
and dispatches. Bad arguments go through ``parser.error``: one line on stderr, status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import socket
import socketserver as _stdlib
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from sockfake._server_checks import MAX_THREADS, MAX_TIMEOUT
from sockfake.handlers import BaseRequestHandler, DatagramRequestHandler, StreamRequestHandler
from sockfake.servers import (
    BaseServer,
    TCPServer,
    ThreadingTCPServer,
    ThreadingUDPServer,
    ThreadPoolTCPServer,
    ThreadPoolUDPServer,
    UDPServer,
)

__all__ = ["build_parser", "main"]

_HAS_UNIX = hasattr(socket, "AF_UNIX")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9999
# How long a stopping server lets in-flight requests finish before aborting them.
DEFAULT_DRAIN = 0.02
# The echo handler's longest line (newline included): a longer one closes the connection.
DEFAULT_MAX_LINE = 64 * 1024
# Seconds a stream connection may wait for any one read or write (0: no limit).
DEFAULT_TIMEOUT = 60.0
# With --pool: how many slow requests may leave the pool (see ThreadPoolMixIn).
POOL_MAX_SLOW = 512  # the pool's default, set explicitly
# Upper bounds of the options (documented in docs/how-to/hardening.md): far above any
# sensible value, below where a value breaks the server later.
MAX_LINE = 16 * 1024 * 1024  # --max-line: a line is buffered whole, per connection
MAX_DRAIN = 3600.0  # --drain: an hour
MAX_SEED = 2**64 - 1  # demo --seed
# What a client that goes away (or is cut at stop) makes a handler raise: not a bug of
# the handler, so no traceback.
_CLIENT_GONE = (ConnectionError, TimeoutError)


# --- the built-in handler -------------------------------------------------------------


class EchoStreamHandler(StreamRequestHandler):
    """Reply to every line with the same line upper-cased, until the client closes.

    A line longer than the server's ``max_line`` (newline included) closes the
    connection instead of being buffered whole: memory per connection stays bounded.
    """

    def handle(self) -> None:
        limit = int(getattr(self.server, "max_line", DEFAULT_MAX_LINE))
        while True:
            line = self.rfile.readline(limit)
            if not line:
                return
            if len(line) >= limit and not line.endswith(b"\n"):
                return  # too long: close rather than buffer it
            self.wfile.write(line.upper())


class EchoDatagramHandler(DatagramRequestHandler):
    """Reply to every datagram with the same bytes upper-cased."""

    def handle(self) -> None:
        self.wfile.write(self.rfile.read().upper())


# --- argument types -------------------------------------------------------------------


def _port(text: str) -> int:
    try:
        port = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}")
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is out of range (0-65535)")
    return port


def _count(maximum: int) -> Callable[[str], int]:
    """An argument type: an int from 1 to ``maximum``."""

    def count(text: str) -> int:
        try:
            number = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not 1 <= number <= maximum:
            raise argparse.ArgumentTypeError(f"must be from 1 to {maximum}, not {number}")
        return number

    return count


def _seconds(maximum: float) -> Callable[[str], float]:
    """An argument type: seconds from 0 to ``maximum``."""

    def seconds(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not 0 <= value <= maximum:
            raise argparse.ArgumentTypeError(
                f"must be a number of seconds from 0 to {maximum:g}, not {text}"
            )
        return value

    return seconds


def _non_empty(what: str) -> Callable[[str], str]:
    """An argument type: a string that is not empty (or blank)."""

    def non_empty(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"{what} must not be empty")
        return text

    return non_empty


def _file_mode(text: str) -> int:
    try:
        mode = int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an octal mode: {text!r}") from None
    if not 0 <= mode <= 0o777:
        raise argparse.ArgumentTypeError(f"{text} is not a mode between 000 and 777")
    return mode


# --- serve ----------------------------------------------------------------------------


def _add_serve_command(subcommands: Any) -> None:
    serve = subcommands.add_parser(
        "serve",
        help="run a request handler on real sockets until Ctrl-C",
        description=(
            "Run a request handler on TCP (default), UDP or a Unix socket, one thread per "
            "request (default), on a pool of threads or synchronously. Prints one line "
            "saying where it listens; SIGINT or SIGTERM stops it with status 0."
        ),
    )
    serve.add_argument(
        "handler",
        nargs="?",
        default="echo",
        help="'echo' (built in: replies upper-cased) or module:Class, a BaseRequestHandler "
        "subclass (sockfake's or socketserver's); default: echo",
    )
    transport = serve.add_mutually_exclusive_group()
    transport.add_argument("--tcp", action="store_true", help="serve TCP (the default)")
    transport.add_argument("--udp", action="store_true", help="serve UDP")
    transport.add_argument(
        "--unix",
        type=_non_empty("the socket path"),
        metavar="PATH",
        help="serve a Unix stream socket at PATH",
    )
    transport.add_argument(
        "--unix-dgram",
        type=_non_empty("the socket path"),
        metavar="PATH",
        help="serve a Unix datagram socket at PATH",
    )
    serve.add_argument(
        "--host",
        type=_non_empty("the host (0.0.0.0 for every interface)"),
        default=None,
        help=f"address to bind (default {DEFAULT_HOST}; '::1' for IPv6)",
    )
    serve.add_argument(
        "--port", type=_port, default=None, help=f"port (default {DEFAULT_PORT}; 0 picks one)"
    )
    mode = serve.add_mutually_exclusive_group()
    mode.add_argument(
        "--threaded", action="store_true", help="one thread per request (the default)"
    )
    mode.add_argument(
        "--pool",
        type=_count(MAX_THREADS),
        metavar="N",
        help=f"handle requests on a pool of N threads (at most {MAX_THREADS})",
    )
    mode.add_argument(
        "--sync", action="store_true", help="handle one request at a time in the serving thread"
    )
    serve.add_argument(
        "--max-line",
        type=_count(MAX_LINE),
        default=DEFAULT_MAX_LINE,
        metavar="BYTES",
        help="the echo handler's longest line, newline included; a longer one closes the "
        f"connection (default {DEFAULT_MAX_LINE}, at most {MAX_LINE})",
    )
    serve.add_argument(
        "--timeout",
        type=_seconds(MAX_TIMEOUT),
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="close a stream connection that waits longer than this for any one read or "
        f"write, so idle clients do not hold threads (default {DEFAULT_TIMEOUT:g}; 0: never; "
        f"at most {MAX_TIMEOUT:g})",
    )
    serve.add_argument(
        "--mode",
        type=_file_mode,
        default=None,
        metavar="OCTAL",
        help="permission bits of the Unix socket file, set before it listens (e.g. 600); "
        "default: what the umask leaves",
    )
    serve.add_argument(
        "--drain",
        type=_seconds(MAX_DRAIN),
        default=DEFAULT_DRAIN,
        metavar="SECONDS",
        help="on stop, let in-flight requests finish for this long, then abort them "
        f"(default {DEFAULT_DRAIN}, at most {MAX_DRAIN:g})",
    )
    serve.set_defaults(run=_run_serve, command_parser=serve)


def _load_handler(spec: str, parser: argparse.ArgumentParser, datagram: bool) -> type:
    """Resolve 'echo' or 'module:Class' to a handler class, or fail with parser.error."""
    if spec == "echo":
        return EchoDatagramHandler if datagram else EchoStreamHandler
    module_name, sep, qualname = spec.partition(":")
    if not sep or not module_name or not qualname:
        parser.error(f"handler must be 'echo' or module:Class, not {spec!r}")
    # Like `python -m`, let the console script find modules in the current directory.
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        parser.error(f"handler {spec!r}: no module named {exc.name!r}")
    except Exception as exc:  # the module itself failed: still one line
        parser.error(f"handler {spec!r}: importing {module_name!r} failed: {exc!r}")
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            parser.error(f"handler {spec!r}: {module_name!r} has no attribute {qualname!r}")
    bases = (BaseRequestHandler, _stdlib.BaseRequestHandler)
    if not isinstance(obj, type) or not issubclass(obj, bases):
        parser.error(f"handler {spec!r} is not a BaseRequestHandler subclass")
    stream_kinds = (StreamRequestHandler, _stdlib.StreamRequestHandler)
    datagram_kinds = (DatagramRequestHandler, _stdlib.DatagramRequestHandler)
    if datagram and issubclass(obj, stream_kinds):
        parser.error(f"handler {spec!r} is a stream handler; it cannot serve datagrams")
    if not datagram and issubclass(obj, datagram_kinds):
        parser.error(f"handler {spec!r} is a datagram handler; it needs --udp or --unix-dgram")
    return obj


# What `serve` listens on: the flag that chose it (--udp, --unix, --unix-dgram; tcp by
# default), and the word its messages use.
_Family = Literal["tcp", "udp", "unix", "unix-dgram"]


def _server_class(args: argparse.Namespace, family: _Family) -> type:
    """The server class for the transport and concurrency mode asked for."""
    datagram = family in ("udp", "unix-dgram")
    if args.sync:
        base: type = UDPServer if datagram else TCPServer
        attrs: dict[str, Any] = {}
    elif args.pool:
        base = ThreadPoolUDPServer if datagram else ThreadPoolTCPServer
        # Slow clients leave the pool instead of holding its workers.
        attrs = {"max_workers": args.pool, "max_slow_requests": POOL_MAX_SLOW}
    else:
        base = ThreadingUDPServer if datagram else ThreadingTCPServer
        attrs = {}
    attrs["max_line"] = args.max_line
    attrs["handle_error"] = _handle_error
    if not datagram and args.timeout:
        attrs["request_timeout"] = args.timeout
    if args.mode is not None:
        attrs["socket_mode"] = args.mode
    if family.startswith("unix"):
        # The Unix path is ours for the server's lifetime: take over a stale socket
        # file left by a crashed run, and remove it on the way out.
        attrs.update(
            address_family=socket.AF_UNIX, remove_stale_socket=True, remove_socket_on_close=True
        )
    else:
        attrs["allow_reuse_address"] = not datagram
    return type(f"Cli{base.__name__}", (base,), attrs)


def _handle_error(server: Any, request: Any, client_address: Any) -> None:
    """A client that went away, timed out or was cut at stop is not a handler bug:
    nothing is printed. Anything else gets the usual traceback."""
    if isinstance(sys.exc_info()[1], _CLIENT_GONE):
        return
    BaseServer.handle_error(server, request, client_address)


def _describe(family: _Family, address: Any) -> str:
    if family.startswith("unix"):
        path = os.fsdecode(address) if isinstance(address, bytes) else str(address)
        return f"{family} {path}"
    host, port = address[0], address[1]
    if ":" in host:
        host = f"[{host}]"
    return f"{family} {host}:{port}"


def _run_serve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    unix_path = args.unix if args.unix is not None else args.unix_dgram
    if unix_path is not None:
        if not _HAS_UNIX:
            parser.error("Unix sockets are not available on this platform")
        if args.host is not None or args.port is not None:
            parser.error("--host and --port do not apply to a Unix socket")
        family: _Family = "unix" if args.unix else "unix-dgram"
        address: Any = unix_path
    else:
        family = "udp" if args.udp else "tcp"
        host = DEFAULT_HOST if args.host is None else args.host
        address = (host, DEFAULT_PORT if args.port is None else args.port)
    if args.mode is not None and unix_path is None:
        parser.error("--mode applies to a Unix socket (--unix or --unix-dgram)")
    handler = _load_handler(args.handler, parser, datagram=family in ("udp", "unix-dgram"))
    server_class = _server_class(args, family)
    try:
        server = server_class(address, handler)
    except socket.gaierror as exc:
        parser.error(f"cannot resolve host {address[0]!r}: {exc.strerror}")
    except OSError as exc:
        print(
            f"{parser.prog}: error: cannot listen on {_describe(family, address)}: {exc}",
            file=sys.stderr,
        )
        return 1
    mode = "sync" if args.sync else f"pool of {args.pool}" if args.pool else "threaded"
    where = _describe(family, server.server_address)
    banner = f"sockfake: serving {args.handler} on {where} ({mode})"
    return _serve_until_signalled(server, drain=args.drain, threaded=not args.sync, banner=banner)


def _serve_until_signalled(server: Any, *, drain: float, threaded: bool, banner: str) -> int:
    """Run ``serve_forever`` in a thread; stop at SIGINT/SIGTERM; close; return 0.

    The signal handler only writes a byte to a pipe (no locks, so it cannot deadlock
    whatever the main thread was doing); the main thread waits on that pipe, then uses
    the server's instant ``shutdown()`` and a draining ``server_close``. Further
    signals change nothing: the cleanup (a Unix socket file removed) always runs, and
    it is bounded (the close returns within about twice ``drain``; threads still
    running then are daemons). Once stopped by a signal, later ones stay ignored
    until the process exits, so a signal arriving during the exit cannot turn the
    status 0 into 130 (GNU ``timeout -s INT`` sends two close together).
    """
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signals_seen = [0]

    def on_signal(signum: int, frame: object) -> None:
        signals_seen[0] += 1
        if signals_seen[0] == 1:
            with contextlib.suppress(OSError):
                os.write(write_fd, bytes([signum]))

    def serve() -> None:
        try:
            server.serve_forever()
        finally:
            with contextlib.suppress(OSError):
                os.write(write_fd, b"\0")  # the loop ended by itself (it crashed)

    previous = _install_handlers(on_signal)
    # The kernel may deliver the signal to the serving thread, whose C-level handler
    # only sets a flag: the main thread, blocked in os.read, would never run the
    # Python handler. The wake-up fd makes the C handler write to our pipe too.
    previous_wakeup = signal.set_wakeup_fd(write_fd)
    try:
        loop = threading.Thread(target=serve, name="sockfake-serve", daemon=True)
        loop.start()
        # Announce only now: a signal sent as soon as the line is read is handled.
        print(banner, flush=True)
        why = os.read(read_fd, 1)
        server.shutdown(timeout=max(drain, 0.01))
        if threaded:
            server.server_close(timeout=drain)
        else:
            server.server_close()
    finally:
        signal.set_wakeup_fd(previous_wakeup)
        # Stopped by a signal: keep ignoring them (see above); else put back the old.
        _install_handlers(_ignore_signal if signals_seen[0] else previous)
        os.close(read_fd)
        os.close(write_fd)
    return 0 if why != b"\0" else 1


def _ignore_signal(signum: int, frame: object) -> None:
    """A SIGINT or SIGTERM after the stop began: the stop is already under way."""


def _install_handlers(handlers: Callable[..., Any] | dict[int, Any]) -> dict[int, Any]:
    """Install one handler (or a saved mapping) for SIGINT and SIGTERM; return the old."""
    previous: dict[int, Any] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        new = handlers[signum] if isinstance(handlers, dict) else handlers
        previous[signum] = signal.signal(signum, new)
    return previous


# --- entry point ----------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (status 2), pointing at --help."""

    def error(self, message: str) -> Any:  # NoReturn, as argparse's
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``sockfake`` argument parser, one subparser per command."""
    parser = _Parser(prog="sockfake", description="socketserver on a pluggable network.")
    subcommands = parser.add_subparsers(
        dest="command", metavar="COMMAND", title="commands", required=True
    )
    _add_serve_command(subcommands)
    _add_demo_command(subcommands)
    # More commands register here, one _add_<name>_command(subcommands) each, setting
    # `run` and `command_parser` with set_defaults.
    return parser


def _add_demo_command(subcommands: Any) -> None:
    demo = subcommands.add_parser(
        "demo",
        help="run the socketserver documentation's examples on the simulated network",
        description=(
            "Run the socketserver documentation's examples on a simulated network with "
            "datagram loss and a slow client; print a readable trace, what the "
            "simulation did (virtual against real time, the faults injected), then the "
            "trace digest. The same seed prints the same output but for the real time."
        ),
    )
    demo.add_argument("--seed", type=_seed, default=1, help="the simulation's seed (default 1)")
    demo.add_argument(
        "--trace-dir",
        type=_trace_dir,
        default=None,
        metavar="DIR",
        help="also write the trace to DIR: demo.pcapng (Wireshark, tcpdump), demo.html "
        "(the sequence diagram), demo.jsonl",
    )
    demo.set_defaults(run=_run_demo, command_parser=demo)


def _seed(text: str) -> int:
    try:
        seed = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 0 <= seed <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be from 0 to 2**64 - 1, not {text}")
    return seed


def _trace_dir(text: str) -> Path:
    """An argument type: a directory the trace files can go to (made if missing)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("the directory must not be empty")
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} exists and is not a directory")
    return path


def _run_demo(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from sockfake.demo import run_demo  # the simulation loads only for this command

    run_demo(args.seed, sys.stdout, trace_dir=args.trace_dir)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the command, return its status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace, argparse.ArgumentParser], int] = args.run
    return run(args, args.command_parser)

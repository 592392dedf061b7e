"""Simulated sockets: the ``socket.socket`` surface servers, handlers and clients use.

Errors are the real ``OSError`` subclasses with the real errno. Blocking, timeout and
non-blocking modes behave as on Linux, with timeouts in virtual time. A socket turns
calls into changes of its ``Endpoint`` and calls on the ``Transport`` (the seam in
``sockfake.sim.net.endpoint``); delivery, loss and partitions are the transport's.

Why this module passes 600 lines: ``SimSocket`` is one class, the whole
``socket.socket`` surface (some fifty methods whose blocking, timeout and errno rules
read and change the same socket state); one class over several modules would take
mixins, which mypyc's compiled build accepts only as traits. What is not the surface
lives apart: CPython's argument conversion (``socket_args``), the option tables and
``setsockopt``/``getsockopt`` parsing (``socket_options``), ancillary data
(``ancillary``), the state table (``socket_state``).
"""

from __future__ import annotations

import errno
import select
import selectors
import socket
from typing import TYPE_CHECKING, Any, cast

import sockfake.sim.trace.texts as texts
from sockfake.sim.kernel.core import Kernel
from sockfake.sim.kernel.threads import WaitQueue
from sockfake.sim.net import ancillary, socket_options
from sockfake.sim.net.datagram import Datagram as _Datagram
from sockfake.sim.net.endpoint import Endpoint, Transport, poll_events
from sockfake.sim.net.oserror import blocking_error, os_error, raise_errno
from sockfake.sim.net.socket_args import (
    INT_MAX,
    INT_MIN,
    SSIZE_MAX,
    SSIZE_MIN,
    byte_view,
    c_flags,
    c_int,
    ssize,
    timeout_value,
    writable_view,
)
from sockfake.sim.net.socket_state import ACCEPTS, BACKLOG, DATAGRAMS, Event, State, advance, allows
from sockfake.sim.trace.recorder import Lazy

if TYPE_CHECKING:
    from sockfake.sim.net.topology import Host

# What poll() reports whatever events were asked for.
_POLL_ALWAYS = select.POLLHUP | select.POLLERR | select.POLLNVAL

__all__ = ["SimSocket"]

_AF_UNIX = getattr(socket, "AF_UNIX", -1)
_FAMILIES = {socket.AF_INET: "AF_INET", socket.AF_INET6: "AF_INET6", _AF_UNIX: "AF_UNIX"}
_TYPE_MASK = ~(getattr(socket, "SOCK_NONBLOCK", 0) | getattr(socket, "SOCK_CLOEXEC", 0))
# Plain ints: ``flags & socket.MSG_PEEK`` goes through IntFlag's Python-level __rand__.
_MSG_DONTWAIT = int(socket.MSG_DONTWAIT)
_MSG_PEEK = int(socket.MSG_PEEK)
_MSG_WAITALL = int(socket.MSG_WAITALL)
_MSG_TRUNC = int(socket.MSG_TRUNC)
_MSG_OOB = int(socket.MSG_OOB)
_NODELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY)
MAX_DATAGRAM = 65507
_UNCONNECTED = (State.FRESH, State.BOUND, State.LISTENING)
# A failed attempt whose error may still wait (its port given back at the failure).
_ATTEMPT_OVER = (State.FAILED, State.DISCONNECTING)
_UDPLITE = getattr(socket, "IPPROTO_UDPLITE", 136)
_ALLOWED_PROTOCOLS: dict[tuple[int, int], tuple[int, ...]] = {
    (_AF_UNIX, socket.SOCK_STREAM): (0, 1),
    (_AF_UNIX, socket.SOCK_DGRAM): (0, 1),
    **{(family, socket.SOCK_STREAM): (0, socket.IPPROTO_TCP)
       for family in (socket.AF_INET, socket.AF_INET6)},
    # UDP-Lite is carried as UDP (its partial checksums are not simulated).
    **{(family, socket.SOCK_DGRAM): (0, socket.IPPROTO_UDP, _UDPLITE)
       for family in (socket.AF_INET, socket.AF_INET6)},
}


def unix_name(name: Any) -> Any:
    """A Unix address as Linux reports it: an abstract name (leading NUL) is bytes."""
    if isinstance(name, str) and name.startswith("\0"):
        return name.encode("utf-8", "surrogateescape")
    return name


class SimSocket:
    """One simulated socket, owned by a host of a ``SimNetwork`` (``host.socket()``)."""

    def __init__(
        self,
        transport: Transport,
        kernel: Kernel,
        host: Host,
        family: int = socket.AF_INET,
        type: int = socket.SOCK_STREAM,
        proto: int = 0,
    ) -> None:
        if family not in _FAMILIES:
            raise os_error(errno.EAFNOSUPPORT)
        kind = type & _TYPE_MASK
        if not 0 <= kind <= 10:
            raise os_error(errno.EINVAL)  # Linux: beyond SOCK_PACKET
        if kind not in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            raise os_error(errno.ESOCKTNOSUPPORT)
        if proto not in _ALLOWED_PROTOCOLS.get((family, kind), (0,)):
            raise os_error(errno.EPROTONOSUPPORT)  # SCTP, TCP on a datagram socket...
        self._transport = transport
        self._kernel = kernel
        self.family = socket.AddressFamily(family)
        self.type = socket.SocketKind(kind)
        self.proto = proto
        self.ep = Endpoint(host, self.family, self.type, -1)
        self.ep.owner = self
        self.ep.fd = transport.register_fd(self)
        default = socket.getdefaulttimeout()
        self._timeout: float | None = default
        if type & getattr(socket, "SOCK_NONBLOCK", 0):
            self._timeout = 0.0
        # makefile() objects still open (the stdlib's socket.makefile counts them here).
        self._io_refs = 0
        # Linux and CPython: a connect() that finished while the caller was not
        # waiting in it (non-blocking, or CPython's timeout mode) reports 0 once more.
        self._connect_reported = True
        # sendto()'s last address and what it resolved to: a client or server sends to
        # the same address object again and again (an address tuple cannot change).
        self._last_destination: tuple[Any, Any] | None = None
        # Python socket objects on this one (socket.dup()): net.intercept() counts them.
        self._sf_handles = 1
        # What bind() fixed (Linux's SOCK_BINDPORT_LOCK, SOCK_BINDADDR_LOCK): a failed
        # connect() gives back the rest. The name getsockname() still shows after that.
        self._bound_ip = False
        self._released_name: Any = None

    @property
    def changed(self) -> WaitQueue:
        """Notified whenever the socket's state or buffers change (for selectors)."""
        return self.ep.changed

    def ready_mask(self) -> int:
        return self.ep.ready_mask()

    def poll_events(self) -> int:
        """What ``select.poll()`` reports, Linux's bits (``POLLHUP``...)."""
        return poll_events(self.ep)

    # -- identity -----------------------------------------------------------------

    def fileno(self) -> int:
        return self.ep.fd

    def __repr__(self) -> str:
        return repr(self.ep)

    def __enter__(self) -> SimSocket:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()

    def _check_thread(self) -> None:
        self._kernel.thread_for_caller()

    def _check_open(self) -> None:
        # As socket.socket: close() with makefile() objects still open keeps the
        # descriptor (and so the connection) usable until the last one closes.
        if self.ep.fd < 0:
            raise os_error(errno.EBADF)
        self._kernel.thread_for_caller()  # _check_thread(), inlined: on every call

    # -- timeouts -----------------------------------------------------------------

    def settimeout(self, value: object) -> None:  # float | None, checked as CPython does
        # CPython stores the timeout, then sets the descriptor's mode (EBADF if closed).
        self._timeout = timeout_value(value)
        if self.ep.fd < 0:
            raise os_error(errno.EBADF)

    def gettimeout(self) -> float | None:
        return self._timeout

    @property
    def timeout(self) -> float | None:
        return self._timeout

    def setblocking(self, flag: object) -> None:  # any truth value, as CPython takes
        self._timeout = None if flag else 0.0  # kept even if closed, as CPython
        if self.ep.fd < 0:
            raise os_error(errno.EBADF)

    def getblocking(self) -> bool:
        return self._timeout != 0.0

    def _deadline(self) -> float | None:
        timeout = self._timeout
        if timeout is None:
            return None
        clock = self.ep.host.clock  # _true_seconds(), inline: on every timed call
        return self._kernel.now + (timeout if clock is None else clock.local_seconds(timeout))

    def _true_seconds(self, seconds: float) -> float:
        """How long ``seconds`` of this socket's host clock take in the network's time:
        a timeout is counted on the host's clock, as the OS counts it (a host whose
        clock runs fast times out early, as its ``time.sleep`` ends early)."""
        clock = self.ep.host.clock
        return seconds if clock is None else clock.local_seconds(seconds)

    def _host_seconds(self, seconds: float) -> float:
        """The inverse of ``_true_seconds``: network seconds as the host's clock counts them."""
        clock = self.ep.host.clock
        return seconds if clock is None else clock.host_seconds(seconds)

    def _would_block(self) -> BlockingIOError:
        """EAGAIN, after letting the kernel see the empty poll (a loop may be spinning)."""
        self._kernel.idle_poll(f"non-blocking call on {self!r}")
        return blocking_error()

    def _block(self, deadline: float | None, what: str) -> None:
        """Wait for this socket to change; raise as the OS would if we may not wait."""
        if self._timeout == 0.0:
            raise self._would_block()
        if not self._kernel.wait((self.ep.changed,), deadline, lambda: f"{what} on {self!r}"):
            self._transport.trace("timeout", Lazy((texts.TIMEOUT, what, self.ep.local,
                                                   self.ep.fd)))
            raise TimeoutError("timed out")

    def _await_ready(self, event: int, what: str) -> None:
        """CPython's timeout mode polls before it calls (``sock_call``): wait until the
        socket polls ready for ``event`` (readable, writable, hung up or in error), so
        a call that can never succeed (accept() on a UDP socket) times out, as there."""
        timeout = self._timeout
        if not timeout:  # blocking or non-blocking: the call itself decides
            return
        clock = self.ep.host.clock  # _true_seconds(), inline: on every timed call
        deadline = self._kernel.now + (timeout if clock is None else clock.local_seconds(timeout))
        while not self.ep.ready_mask() & event:
            # poll() reports a hang-up or an error whatever was asked (a Unix listener
            # shut down both ways is not writable, but hung up: send() fails at once).
            if poll_events(self.ep) & _POLL_ALWAYS:
                return
            self._block(deadline, what)

    # -- options ------------------------------------------------------------------

    def setsockopt(self, level: object, option: object, value: Any,
                   optlen: object = None) -> None:
        self._check_open()
        key, value = socket_options.setting(self.ep, level, option, value, optlen)
        self.ep.options[key] = value
        if key == _NODELAY:
            # Read on every send, so kept on the endpoint; turning it on sends at once
            # what Nagle holds (Linux: tcp_push_pending_frames).
            self.ep.nodelay = bool(value)
            if self.ep.nodelay and self.ep.tx_held:
                self._transport.push(self.ep)

    def getsockopt(self, level: object, option: object, buflen: object = None) -> Any:
        self._check_open()
        return socket_options.read_option(self.ep, self.proto, level, option, buflen)

    # -- addresses ----------------------------------------------------------------

    def getsockname(self) -> Any:
        self._check_open()
        if self.ep.local is not None:
            return unix_name(self.ep.local)
        if self._released_name is not None:
            return self._released_name
        return self._transport.unbound_name(self.family)

    def _tcp_closed(self) -> bool:
        """Closed both ways (``Endpoint.closed_both_ways``): getpeername() and
        shutdown() are ENOTCONN; reads give EOF."""
        return self.ep.closed_both_ways()

    def getpeername(self) -> Any:
        self._check_open()
        if (self.ep.remote is None or self.ep.state is not State.CONNECTED or self.ep.dead
                or self._tcp_closed()):
            remote = self.ep.remote
            if self.type == socket.SOCK_DGRAM and remote is not None and (
                self.family == _AF_UNIX or remote[1]  # Linux: port 0 is no peer
            ):
                return unix_name(remote)
            raise os_error(errno.ENOTCONN)
        return unix_name(self.ep.remote)

    def bind(self, address: Any) -> None:
        self._check_open()
        if self.ep.state in _ATTEMPT_OVER and not self.ep.port_fixed:
            # The port went back when the attempt failed (the error still waits for
            # connect() or SO_ERROR): the socket can bind again.
            self._give_back_port()
        if self.family == _AF_UNIX:
            # Linux's unix_bind looks at the address only: a connected socket that has
            # none (a client's connect() or sendto() binds nothing) may bind one.
            bindable = not self.ep.local
        elif self._tcp_closed() and not self.ep.port_fixed:
            # Closed both ways, Linux's socket is TCP_CLOSE and gave back the port
            # bind() did not fix: it binds again (connect() is still EISCONN).
            self._give_back_port()
            bindable = True
        else:
            bindable = allows(self.ep.state, Event.BIND) and self.ep.local is None
        if not bindable:
            if self.family == _AF_UNIX:
                if self.ep.local and self._transport.resolve_remote(self.ep, address) == "":
                    return  # Linux: an autobind of a bound Unix socket does nothing
                self._check_unix_path_free(address)
            raise os_error(errno.EINVAL)
        failed = self.ep.state in _ATTEMPT_OVER
        self.ep.local = self._transport.bind(self.ep, address)
        self._released_name = None
        if self.family != _AF_UNIX:
            # Port 0 asks for any: not fixed. (After a failed attempt Linux keeps even
            # that one when connect() reports the failure: the socket is closed already.)
            self.ep.port_fixed = bool(address[1]) or failed
            ip = self.ep.local[0]
            self._bound_ip = ip not in ("0.0.0.0", "::")
            if self.family == socket.AF_INET6 and self._bound_ip and not ip.startswith("::ffff:"):
                # Linux: a socket bound to one IPv6 address takes no IPv4.
                self.ep.options[(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)] = 1
        elif self.type == socket.SOCK_STREAM and self.ep.peer is not None:
            self.ep.peer.remote = self.ep.local  # Linux's getpeername() reads it live
        if allows(self.ep.state, Event.BIND):
            self.ep.state = advance(self.ep.state, Event.BIND)
        self._transport.trace("bind", f"{self.ep.local}")

    def _check_unix_path_free(self, address: Any) -> None:
        """Linux makes a path's file before it sees the socket is bound: a path in use
        is EADDRINUSE even then, a missing directory ENOENT (an abstract name is
        checked after: EINVAL)."""
        path = self._transport.resolve_remote(self.ep, address)
        if path and not path.startswith("\0"):
            self._transport.check_unix_path_free(path)

    def listen(self, backlog: object = 128) -> None:  # an int, checked as CPython does
        self._check_open()
        backlog = c_int(backlog, parse_arg=True)
        if self.type != socket.SOCK_STREAM:
            raise os_error(errno.EOPNOTSUPP)
        if self.ep.state is State.ERROR_REPORTED and self.ep.local is None:
            # Linux (6.x) binds an ephemeral port, then refuses: the port stays bound.
            self._listen_autobind()
        if not allows(self.ep.state, Event.LISTEN):
            raise os_error(errno.EINVAL)
        if self.family == _AF_UNIX and not self.ep.local:
            raise os_error(errno.EINVAL)  # Linux: no listen on an unbound Unix socket
        if self.ep.local is None:
            self._listen_autobind()
        # Linux caps the backlog at somaxconn and queues backlog + 1 connections.
        self.ep.backlog = max(0, min(int(backlog), socket.SOMAXCONN)) + 1
        if self.ep.state is not State.LISTENING and self.family != _AF_UNIX:
            # A shutdown() before listen() marked a socket that is now a listener: on
            # Linux those marks mean nothing to a TCP listener (only a later SHUT_RD
            # stops it). A Unix listener keeps them: after SHUT_RD it is readable,
            # refuses connections and accept() is EINVAL.
            self.ep.shut_rd = self.ep.shut_wr = False
        self.ep.state = advance(self.ep.state, Event.LISTEN)
        self._transport.trace("listen", f"{self.ep.local} backlog {backlog}")

    def _listen_autobind(self) -> None:
        address = self._transport.any_address(self.family)
        released = self._released_name
        if self._bound_ip and released is not None:
            # The port went back (tcp_disconnect) but not the address bind() named
            # (SOCK_BINDADDR_LOCK): the new port is on that address.
            address = (released[0], 0, *address[2:])
        self.ep.local = self._transport.bind(self.ep, address)
        self._released_name = None

    # -- streams: connect / accept ------------------------------------------------

    def connect(self, address: Any) -> None:
        raise_errno(self._connect(address, raising=True))

    def connect_ex(self, address: Any) -> int:
        if self.ep.fd < 0:
            self._check_thread()
            return errno.EBADF  # CPython returns connect(2)'s errno, EBADF included
        try:
            return self._connect(address, raising=False)
        except TimeoutError:
            return errno.EAGAIN if self._timeout == 0 else errno.ETIMEDOUT
        except OSError as exc:
            # CPython returns connect(2)'s errno (ENETUNREACH, EAFNOSUPPORT...); what
            # the address parsing raised (a gaierror, a long path) it raises.
            if isinstance(exc, socket.gaierror) or exc.errno is None:
                raise
            return exc.errno

    def _unix_peer_error(self, remote: Any) -> int:
        """For a Unix socket, the errno of connecting to ``remote`` (0 if a peer of our
        type is bound there, as a real path lookup would find)."""
        if self.family != _AF_UNIX:
            return 0
        try:
            target = self._transport.unix_peer(remote, self.type)
        except OSError as exc:
            return exc.errno or errno.EINVAL
        if self.type == socket.SOCK_STREAM and (target.state is not State.LISTENING
                                                or target.shut_rd):
            return errno.ECONNREFUSED  # Linux: at once, nobody listens there
        if self.type == socket.SOCK_DGRAM and target.remote is not None \
                and target.remote != self.ep.local:
            return errno.EPERM  # it is connected to another socket (unix_may_send)
        return 0

    def _connect(self, address: Any, *, raising: bool) -> int:
        self._check_open()
        if self.type == socket.SOCK_DGRAM:
            remote = self._transport.resolve_remote(self.ep, address)
            code = self._unix_peer_error(remote)
            if code:
                return code
            self.ep.remote = remote
            if self.ep.local is None:
                self.ep.local = self._transport.autobind(self.ep, self.ep.remote)
                self.ep.state = advance(self.ep.state, Event.BIND)
            else:
                self._transport.pin_source(self.ep, self.ep.remote)
            return 0
        if self.family == _AF_UNIX:
            # Linux looks the name up before it looks at this socket's state.
            code = self._unix_peer_error(self._transport.resolve_remote(self.ep, address))
            if code:
                return code
        if self.ep.state is State.CONNECTED:
            if not self._connect_reported:
                self._connect_reported = True
                return 0
            return errno.EISCONN
        if self.ep.state is State.LISTENING:
            return errno.EINVAL if self.family == _AF_UNIX else errno.EISCONN
        if self.ep.state is State.DISCONNECTED or self.ep.state is State.DISCONNECTING:
            # Linux: a listener that SHUT_RD stopped connects no more; nor does an
            # attempt that failed and was shut down. (The stopped listener is
            # unconnected again: tcp_v6_connect checks the address first.)
            if self.ep.state is State.DISCONNECTED:
                # (with the address bind() named, which it keeps: SOCK_BINDADDR_LOCK)
                kept = self._released_name if self._bound_ip else None
                self.ep.local, local = self.ep.local or kept, self.ep.local
                try:
                    self._transport.resolve_remote(self.ep, address)
                finally:
                    self.ep.local = local
                # Linux fails it in tcp_v4_connect, whose failure path closes the
                # socket (TCP_CLOSE): a port bind() did not fix goes back again.
                self._give_back_port()
            return errno.EINVAL
        if self.ep.state is State.FAILED:
            # The attempt failed while nobody waited in connect(): report it once
            # (ECONNABORTED if SO_ERROR already took the error), as Linux does.
            self.ep.state = advance(self.ep.state, Event.REPORT_ERROR)
            self._disconnect()
            code, self.ep.pending_error = self.ep.pending_error, 0
            return code or errno.ECONNABORTED
        if self.ep.state is State.CONNECTING:
            if self._timeout == 0.0:
                return errno.EALREADY
        else:
            remote = self._transport.resolve_remote(self.ep, address)
            code = self._unix_peer_error(remote)
            if code:
                return code
            self.ep.remote = remote
            self._released_name = None
            self._connect_reported = False
            self._transport.start_connect(self.ep)
            self._kernel.preemption_point("connect", BACKLOG)
            if self._timeout == 0.0:
                return errno.EINPROGRESS
        deadline = self._deadline()
        while self.ep.state is State.CONNECTING:
            self._block(deadline, "connect")
        state = cast(State, self.ep.state)  # moved while we waited
        if self.ep.pending_error or state is State.FAILED:
            # CPython's timeout mode reads the failure with SO_ERROR: Linux still has
            # the attempt, so the next connect() reports it (ECONNABORTED), as after a
            # non-blocking connect(); a blocking connect() is over.
            timeout_mode = self._timeout is not None and self.family != _AF_UNIX
            if timeout_mode and not self.ep.pending_error:
                # Closed with no error (a self-connect marked SHUT_WR): SO_ERROR reads
                # 0, so CPython's connect() succeeds; the next connect() says
                # ECONNABORTED.
                return 0
            # (Closed with no error: ECONNABORTED, as Linux says.)
            code, self.ep.pending_error = self.ep.pending_error or errno.ECONNABORTED, 0
            if allows(state, Event.REPORT_ERROR) and not (timeout_mode and state is State.FAILED):
                self.ep.state = advance(self.ep.state, Event.REPORT_ERROR)
                self._disconnect()
            return code
        # A blocking connect() leaves the socket connected; CPython's timeout mode
        # is a non-blocking connect() plus a wait, so Linux says 0 once more (not for
        # a Unix socket: its connect() never is in progress).
        self._connect_reported = self._timeout is None or self.family == _AF_UNIX
        return 0

    def _disconnect(self) -> None:
        """connect() reported a failure, or SHUT_RD stopped a listener: as Linux's
        tcp_disconnect, give back what bind() did not fix (the autobound port, a source
        address picked by the route)."""
        if self.type != socket.SOCK_STREAM or self.family == _AF_UNIX:
            return
        self.ep.shut_rd = self.ep.shut_wr = False  # tcp_disconnect() clears them too
        self._give_back_port()

    def _give_back_port(self) -> None:
        """As Linux when a TCP socket closes (TCP_CLOSE): the port goes back unless
        bind() fixed it, and the address unless bind() named one."""
        local = self.ep.local
        if local is None:
            return
        if not self._bound_ip:
            local = ("0.0.0.0" if self.family == socket.AF_INET else "::", *local[1:])
        if self.ep.port_fixed:
            self.ep.local = local
            return
        self._transport.release_address(self.ep)
        self.ep.local = None
        self._released_name = local  # getsockname() still shows the old port

    def accept(self) -> tuple[SimSocket, Any]:
        self._check_open()
        self._await_ready(selectors.EVENT_READ, "accept")
        if self.type != socket.SOCK_STREAM:
            raise os_error(errno.EOPNOTSUPP)
        if self.ep.state is not State.LISTENING:
            raise os_error(errno.EINVAL)
        deadline = self._deadline()
        while not self.ep.accept_queue:
            if self.ep.state is not State.LISTENING or (self.ep.shut_rd and self._timeout is None):
                # Stopped (SHUT_RD) while we waited. Linux (unix_accept) says so only to
                # a blocking accept: on an O_NONBLOCK socket it is EAGAIN, and CPython's
                # timeout mode, non-blocking underneath, tries again until it times out.
                raise os_error(errno.EINVAL)
            self._block(deadline, "accept")
            self._check_open()
        conn: SimSocket = self.ep.accept_queue.popleft().owner
        # Blocking by default: Linux does not inherit O_NONBLOCK; CPython applies the
        # default timeout. The descriptor was taken when the SYN arrived.
        conn._timeout = socket.getdefaulttimeout()
        self._transport.trace("accept", Lazy((texts.ACCEPTED, self.ep.local, conn.ep.remote)))
        self._kernel.preemption_point("accept", ACCEPTS)
        return conn, unix_name(conn.ep.remote)

    # -- streams: data ------------------------------------------------------------

    def send(self, data: Any, flags: object = 0) -> int:
        if type(flags) is not int or not INT_MIN <= flags <= INT_MAX:  # c_flags(), inline
            if data.__class__ is not bytes:
                byte_view(data).release()  # CPython parses the payload first
            flags = c_int(flags, parse_arg=True)
        self._check_open()
        # bytes, the common case, is used as it is: no view to make, nothing to copy.
        if data.__class__ is bytes:
            return self._send_view(data, data, flags)
        view = byte_view(data)
        # Released on the way out, an error (EAGAIN) included: a frame the kernel keeps
        # (the main thread's last call into it) must not keep the caller's buffer
        # exported, or a bytearray trimmed after a partial send raises BufferError
        # (asyncio's write buffer on 3.10 and 3.11).
        try:
            return self._send_view(data, view, flags)
        finally:
            view.release()

    def _send_view(self, data: Any, view: Any, flags: int) -> int:
        if self.type == socket.SOCK_DGRAM:
            if self.ep.remote is None:
                if self.family == _AF_UNIX:
                    self._check_shut_wr()
                    raise os_error(errno.ENOTCONN)
                self._autobind_wildcard()  # Linux binds a UDP socket before it looks
                raise os_error(errno.EDESTADDRREQ)
            return self.sendto(data if type(data) is _Datagram else view, flags, self.ep.remote)
        if self._timeout:
            self._await_ready(selectors.EVENT_WRITE, "send")
        if self.family == _AF_UNIX and self.ep.state in _UNCONNECTED:
            raise os_error(errno.ENOTCONN)
        nowait = flags != 0 and self._no_wait(flags)  # the calls only when they matter
        deadline = None if nowait or self._timeout is None else self._deadline()
        while True:
            if self.ep.pending_error:
                self._raise_pending()
            if self.ep.shut_wr or self.ep.dead:
                raise os_error(errno.EPIPE)
            peer = self.ep.peer
            if self.family == _AF_UNIX and peer is not None and (peer.closed or peer.shut_rd):
                # A Unix peer's close, or its shutdown(SHUT_RD), is known at once.
                raise os_error(errno.EPIPE)
            if self.ep.state is State.CONNECTING:
                if nowait:
                    raise self._would_block()
                self._block(deadline, "send")
                continue
            if self.ep.state is not State.CONNECTED or self.ep.peer is None:
                # Linux: writing on a stream socket that is not connected is EPIPE.
                raise os_error(errno.EPIPE)
            space = self.ep.capacity() - self.ep.outstanding
            if space > 0 or not len(view):
                break
            if nowait:
                raise self._would_block()
            self._block(deadline, "send")
        count = min(len(view), space)
        if count:
            self.ep.outstanding += count
            chunk = view if count == len(view) and isinstance(view, bytes) else bytes(view[:count])
            self._transport.send_stream(self.ep, chunk)
        if self._kernel.preempts:
            self._kernel.preemption_point("send", self.ep.sending)
        return count

    def sendall(self, data: Any, flags: object = 0) -> None:
        if type(flags) is not int or not INT_MIN <= flags <= INT_MAX:
            if data.__class__ is not bytes:
                byte_view(data).release()  # CPython parses the payload first
            flags = c_int(flags, parse_arg=True)
        if data.__class__ is bytes:
            if self._timeout is None and self.type == socket.SOCK_STREAM:
                # The common case: one send() takes it all, with no loop to set up.
                self._check_open()
                sent = self._send_view(data, data, flags)
                if sent < len(data):  # a full buffer took part: the rest as below
                    rest = memoryview(data)[sent:]
                    try:
                        self._sendall_view(rest, flags)
                    finally:
                        rest.release()
                return
            self._sendall_view(data, flags)
            return
        view = byte_view(data)
        try:  # the caller's buffer is let go on the way out, as send()'s
            self._sendall_view(view, flags)
        finally:
            view.release()

    def _sendall_view(self, view: Any, flags: int) -> None:
        # As CPython since 3.5: the timeout bounds the whole call.
        timeout = self._timeout
        deadline = None if timeout is None else self._kernel.now + self._true_seconds(timeout)
        sent = 0
        total = len(view)
        while True:
            if deadline is not None and timeout:
                left = deadline - self._kernel.now
                if left <= 0:
                    raise TimeoutError("timed out")
                self._timeout = self._host_seconds(left)
            part = view[sent:] if sent else view
            try:
                self._check_open()  # send(), less the flags it has already checked
                sent += self._send_view(part, part, flags)
            finally:
                self._timeout = timeout
                if part is not view:
                    part.release()
            if sent >= total:
                return
            if view.__class__ is bytes:
                # A partial send: from here on slice a view, not copies of what is left
                # (a bulk write in buffer-sized pieces would copy its rest every time).
                view = memoryview(view)

    def _no_wait(self, flags: int) -> bool:
        """MSG_DONTWAIT: CPython first waits out a socket timeout, so it only counts
        on a blocking socket (on a non-blocking one every call is already EAGAIN)."""
        return bool(flags & _MSG_DONTWAIT) and self._timeout is None

    def _raise_pending(self) -> None:
        if self.ep.pending_error:
            code, self.ep.pending_error = self.ep.pending_error, 0
            raise_errno(code)

    def recv(self, bufsize: object, flags: object = 0) -> bytes:
        if type(bufsize) is not int or not SSIZE_MIN <= bufsize <= SSIZE_MAX:  # inline
            bufsize = ssize(bufsize)
        if type(flags) is not int or not INT_MIN <= flags <= INT_MAX:
            flags = c_int(flags, parse_arg=True)
        if bufsize <= 0:
            if bufsize < 0:
                raise ValueError("negative buffersize in recv")
            # CPython asks the OS for nothing: b'' at once, even on a closed socket.
            self._check_thread()
            return b""
        return self._recv(bufsize, flags)

    def _recv(self, bufsize: int, flags: int) -> bytes:
        """recv() past CPython's shortcut for 0 bytes (recvfrom(0) asks the OS)."""
        self._check_open()
        if self._timeout:
            self._await_ready(selectors.EVENT_READ, "recv")
        if self.type == socket.SOCK_DGRAM:
            return self._recv_datagram(bufsize, flags)[0]
        if flags & _MSG_OOB:
            raise os_error(errno.EINVAL)  # no urgent data is ever pending
        if self.family == _AF_UNIX and self.ep.state in _UNCONNECTED:
            raise os_error(errno.EINVAL)
        if self.ep.state is State.LISTENING:
            raise os_error(errno.ENOTCONN)  # even shut down: Linux closed it, no EOF
        # MSG_WAITALL waits on a blocking socket only (CPython's timeout mode is a
        # non-blocking descriptor, where Linux returns what is there).
        if flags & _MSG_WAITALL and self._timeout is None and not flags & _MSG_PEEK and bufsize:
            return self._recv_waitall(bufsize, flags & ~_MSG_WAITALL)
        nowait = flags != 0 and self._no_wait(flags)  # the calls only when they matter
        deadline = None if nowait or self._timeout is None else self._deadline()
        while True:
            pending = self.ep.pending_error
            if pending and pending != errno.EPIPE:  # Linux: after the FIN, reads are EOF
                self._raise_pending()
            if self.ep.rx:
                break
            if self.ep.rx_eof or self.ep.shut_rd or self.ep.dead or self.ep.state in _ATTEMPT_OVER:
                # (A failed attempt that connect() has not reported is shut both ways.)
                if bufsize:
                    self._transport.trace("recv", f"{self.ep.describe()} EOF", src=self.ep.remote,
                                          dst=self.ep.local, conn=self.ep.connection_id,
                                          length=0)
                self._kernel.preemption_point("recv", self.ep.receiving)
                return b""
            if self.ep.state not in (State.CONNECTED, State.CONNECTING):
                raise os_error(errno.ENOTCONN)
            if nowait:
                raise self._would_block()
            self._block(deadline, "recv")
        peek = flags & _MSG_PEEK
        data = self.ep.read_rx(bufsize, peek != 0)
        if not peek:
            self._transport.consumed(self.ep, len(data))
        self._transport.trace("recv", Lazy((texts.LENGTH, self.ep.local, self.ep.fd, len(data))),
                              src=self.ep.remote,
                              dst=self.ep.local, conn=self.ep.connection_id,
                              length=len(data), payload=data)
        if self._kernel.preempts:
            self._kernel.preemption_point("recv", self.ep.receiving)
        return data

    def _recv_waitall(self, bufsize: int, flags: int) -> bytes:
        """MSG_WAITALL: wait for ``bufsize`` bytes, or EOF, an error or the timeout
        after some arrived (then the bytes so far, as Linux)."""
        timeout = self._timeout
        deadline = self._deadline()
        data = b""
        try:
            while len(data) < bufsize:
                if deadline is not None and timeout:
                    self._timeout = self._host_seconds(max(deadline - self._kernel.now, 1e-9))
                try:
                    chunk = self.recv(bufsize - len(data), flags)
                except (TimeoutError, BlockingIOError):
                    if data:
                        break
                    raise
                except OSError:
                    if data:
                        break
                    raise
                if not chunk:
                    break
                data += chunk
        finally:
            self._timeout = timeout
        return data

    def recv_into(self, buffer: Any, nbytes: object = 0, flags: object = 0) -> int:
        view = writable_view(buffer, "recv_into")
        try:  # the caller's buffer is let go on the way out, as send()'s
            return self._recv_into_view(view, nbytes, flags)
        finally:
            view.release()

    def _recv_into_view(self, view: memoryview, nbytes: object, flags: object) -> int:
        nbytes, flags = ssize(nbytes), c_flags(flags)
        if nbytes < 0:
            raise ValueError("negative buffersize in recv_into")
        size = nbytes or len(view)
        if size > len(view):
            raise ValueError("buffer too small for requested bytes")
        if not size:
            self._check_thread()
            return 0  # as recv(0): CPython asks the OS for nothing
        if self.type == socket.SOCK_DGRAM and flags & _MSG_TRUNC:
            self._check_open()
            payload, _ = self._recv_datagram(size, flags, whole=True)
            view[: min(size, len(payload))] = payload[:size]
            return len(payload)  # Linux: the datagram's real length
        data = self.recv(size, flags)
        view[: len(data)] = data
        return len(data)

    def shutdown(self, how: object) -> None:
        how = c_int(how)
        self._check_open()
        if how not in (socket.SHUT_RD, socket.SHUT_WR, socket.SHUT_RDWR):
            raise os_error(errno.EINVAL)
        if self.family == _AF_UNIX and self.ep.state is not State.CONNECTED:
            # Linux: shutdown() of an unconnected Unix socket only marks it.
            self.ep.shut_rd = self.ep.shut_rd or how != socket.SHUT_WR
            self.ep.shut_wr = self.ep.shut_wr or how != socket.SHUT_RD
            self.ep.changed.notify_all()
            return
        if self.ep.state is State.LISTENING:
            # Linux: SHUT_WR does nothing to a listener; SHUT_RD stops it: its queue is
            # reset and it is an unconnected socket again (tcp_disconnect), whose
            # autobound port goes back, and which may listen again.
            if how != socket.SHUT_WR:
                self._transport.stop_listening(self.ep)
                self._disconnect()
            return
        if self._tcp_closed():
            raise os_error(errno.ENOTCONN)
        if self.type == socket.SOCK_DGRAM or self.ep.state is not State.CONNECTED:
            # Linux marks the socket even where it then says ENOTCONN (an unconnected
            # UDP or TCP socket): a read after SHUT_RD is EOF, a write after SHUT_WR
            # EPIPE. Datagrams still arrive; a read takes them, then gets EOF.
            self.ep.shut_rd = self.ep.shut_rd or how != socket.SHUT_WR
            self.ep.shut_wr = self.ep.shut_wr or how != socket.SHUT_RD
            if self.ep.state is State.FAILED:
                # Linux: the attempt is over for good (SS_DISCONNECTING).
                self.ep.state = advance(self.ep.state, Event.DISCONNECT)
            self.ep.changed.notify_all()
            if self.ep.remote is None or self.type == socket.SOCK_STREAM:
                raise os_error(errno.ENOTCONN)
            return
        if how in (socket.SHUT_RD, socket.SHUT_RDWR):
            self.ep.shut_rd = True
        if how in (socket.SHUT_WR, socket.SHUT_RDWR) and not self.ep.shut_wr:
            self.ep.shut_wr = True
            if not self.ep.dead:
                self._transport.send_fin(self.ep)
        self.ep.changed.notify_all()

    # -- datagrams ----------------------------------------------------------------

    def sendto(self, data: Any, flags_or_address: Any, address: Any = None) -> int:
        self._check_open()
        flags = 0
        if address is None:
            address = flags_or_address
        else:
            flags = c_flags(flags_or_address)
        # (send() has waited; a datagram socket always polls writable: no wait)
        if self._timeout and address is not self.ep.remote and self.type != socket.SOCK_DGRAM:
            self._await_ready(selectors.EVENT_WRITE, "sendto")
        if self.type == socket.SOCK_STREAM:
            if self.family == _AF_UNIX:
                raise os_error(errno.EISCONN if self.ep.state is State.CONNECTED
                               else errno.EOPNOTSUPP)
            if self.ep.state is State.CONNECTED:
                return self.send(data, flags)  # Linux ignores the address
            self._raise_pending()  # a failed connect()'s error comes first
            raise os_error(errno.EPIPE)
        if self.family != _AF_UNIX:
            if flags & _MSG_OOB and self.family == socket.AF_INET:
                raise os_error(errno.EOPNOTSUPP)  # Linux's IPv4 UDP refuses it; IPv6 not
        elif address is not self.ep.remote:
            if not self._transport.resolve_remote(self.ep, address):
                raise os_error(errno.EINVAL)  # no name at all
            if self.ep.shut_wr:  # a Unix socket looks before it finds the address
                raise os_error(errno.EPIPE)
        elif self.ep.shut_wr:
            raise os_error(errno.EPIPE)
        kind = data.__class__
        payload = data if kind is bytes or kind is _Datagram else bytes(byte_view(data))
        if len(payload) > MAX_DATAGRAM:
            raise os_error(errno.EMSGSIZE)
        last = self._last_destination
        if last is not None and last[0] is address:
            remote = last[1]
        else:
            try:
                remote = self._transport.resolve_remote(self.ep, address)
            except OSError as exc:
                # Linux refuses port 0 before it sees that an IPv4-mapped socket has
                # no IPv6 peer.
                if exc.errno == errno.EAFNOSUPPORT and address[1] == 0:
                    raise os_error(errno.EINVAL) from None
                raise
            if address.__class__ is tuple:
                self._last_destination = (address, remote)
        if self.family == _AF_UNIX:
            target = self._transport.unix_peer(remote, socket.SOCK_DGRAM,
                                               connected=address is self.ep.remote)
            if target.remote is not None and target.remote != self.ep.local:
                raise os_error(errno.EPERM)  # connected to another socket
            if target.shut_rd:
                raise os_error(errno.EPIPE)  # it will read no more
        if self.ep.local is None:
            self._autobind_wildcard(remote)
        if self.family != _AF_UNIX:
            # After the autobind, as Linux: no datagram goes to port 0 (but a socket
            # connected to port 0 sends); then an ICMP error from an earlier datagram,
            # then SHUT_WR.
            if not remote[1] and (address is not self.ep.remote
                                  or remote[0].startswith("::ffff:")):
                # (IPv6 hands a connected IPv4-mapped peer to IPv4 as an address.)
                raise os_error(errno.EINVAL)
            if self.ep.remote is not None:
                self._raise_pending()
            if self.ep.shut_wr:
                raise os_error(errno.EPIPE)
        self._transport.send_datagram(self.ep, payload, remote)
        if self._kernel.preempts:
            self._kernel.preemption_point("sendto", DATAGRAMS)
        return len(payload)

    def _check_shut_wr(self) -> None:
        if self.ep.shut_wr:
            raise os_error(errno.EPIPE)

    def _autobind_wildcard(self, remote: Any = None) -> None:
        """An unbound datagram socket that sends is bound to an ephemeral port on the
        wildcard address first (``getsockname()`` then says ``0.0.0.0``)."""
        if self.ep.local is None:
            self.ep.local = self._transport.autobind(self.ep, remote, wildcard=True)
            self.ep.state = advance(self.ep.state, Event.BIND)

    def recvfrom(self, bufsize: object, flags: object = 0) -> tuple[bytes, Any]:
        if type(bufsize) is not int or not SSIZE_MIN <= bufsize <= SSIZE_MAX:  # inline
            bufsize = ssize(bufsize)
        if type(flags) is not int or not INT_MIN <= flags <= INT_MAX:
            flags = c_int(flags, parse_arg=True)
        self._check_open()
        if bufsize < 0:
            raise ValueError("negative buffersize in recvfrom")
        if self.type == socket.SOCK_STREAM:
            return self._recv(bufsize, flags), None
        if self._timeout and not self.ep.datagrams:  # (a datagram polls readable)
            self._await_ready(selectors.EVENT_READ, "recvfrom")
        return self._recv_datagram(bufsize, flags)

    def recvfrom_into(self, buffer: Any, nbytes: object = 0, flags: object = 0
                      ) -> tuple[int, Any]:
        view = writable_view(buffer, "recvfrom_into")
        try:  # the caller's buffer is let go on the way out, as send()'s
            nbytes = ssize(nbytes)
            if nbytes < 0:
                raise ValueError("negative buffersize in recvfrom_into")
            if nbytes > len(view):  # before receiving: nothing is taken and lost
                raise ValueError("nbytes is greater than the length of the buffer")
            data, address = self.recvfrom(nbytes or len(view), flags)
            view[: len(data)] = data
            return len(data), address
        finally:
            view.release()

    def _recv_datagram(self, bufsize: int, flags: int, whole: bool = False
                       ) -> tuple[bytes, Any]:
        nowait = flags != 0 and self._no_wait(flags)  # the calls only when they matter
        deadline = None if nowait or self._timeout is None else self._deadline()
        if self.ep.pending_error and self.family != _AF_UNIX:
            # Linux's UDP reports an error (a port unreachable) before the datagrams
            # that came in ahead of it.
            self._raise_pending()
        while not self.ep.datagrams:
            if self.ep.pending_error:
                self._raise_pending()
            if self.ep.shut_rd and self._timeout is None and not nowait:
                # Linux: only a read that would wait sees the shutdown (EOF); one that
                # may not wait is EAGAIN, and CPython's timeout mode polls (readable)
                # and reads (EAGAIN) until the timeout.
                return b"", None
            if nowait:
                raise self._would_block()
            self._block(deadline, "recvfrom")
        if flags & _MSG_PEEK:
            payload, address = self.ep.datagrams[0]
        else:
            payload, address = self.ep.datagrams.popleft()
            self.ep.datagram_bytes -= len(payload)
        if self.family == _AF_UNIX:
            address = unix_name(address.local or None)  # the sender (udp.py's _deliver)
        self._transport.trace("recvfrom", Lazy((texts.RECEIVED_FROM, self.ep.local, self.ep.fd,
                                                address, len(payload))),
                              src=address, dst=self.ep.local, length=len(payload),
                              payload=payload[:bufsize])
        if self._kernel.preempts:
            self._kernel.preemption_point("recvfrom", DATAGRAMS)
        if whole:
            return payload, address
        # Truncated at the receiver's buffer size; the rest is discarded, as UDP does.
        return payload[:bufsize], address

    # -- scatter/gather -------------------------------------------------------------

    def sendmsg(self, buffers: Any, ancdata: Any = (), flags: object = 0,
                address: Any = None) -> int:
        """``send``/``sendto`` of the buffers joined; ancillary data is not simulated."""
        try:
            parts = list(buffers)
        except TypeError:
            raise TypeError("sendmsg() argument 1 must be an iterable") from None
        payload = b"".join(bytes(byte_view(part)) for part in parts)
        items = ancillary.checked_items(ancdata)
        flags = c_flags(flags)
        if address is not None:
            self._transport.resolve_remote(self.ep, address)  # CPython parses it first
        if items:
            payload = ancillary.attach(self.ep, payload, items)
        if address is not None:
            return self.sendto(payload, flags, address)
        return self.send(payload, flags)

    def recvmsg(self, bufsize: object, ancbufsize: object = 0, flags: object = 0
                ) -> tuple[bytes, list[Any], int, Any]:
        """``(data, [], msg_flags, address)``; ``MSG_TRUNC`` in msg_flags when a datagram
        was longer than ``bufsize``. A stream reports no address (None), as Linux."""
        bufsize, ancbufsize, flags = ssize(bufsize), ssize(ancbufsize), c_flags(flags)
        if bufsize < 0:
            raise ValueError("negative buffer size in recvmsg()")
        if not 0 <= ancbufsize <= INT_MAX:
            raise ValueError("invalid ancillary data buffer length")
        self._check_open()
        if self.type == socket.SOCK_DGRAM:
            payload, address = self._recv_datagram(bufsize, flags, whole=True)
            ancdata, msg_flags = ancillary.received(self.ep, payload, ancbufsize)
            if len(payload) > bufsize:
                msg_flags |= _MSG_TRUNC
            return bytes(payload[:bufsize]), ancdata, msg_flags, address
        return self._recv(bufsize, flags), [], 0, None

    def recvmsg_into(self, buffers: Any, ancbufsize: object = 0, flags: object = 0
                     ) -> tuple[int, list[Any], int, Any]:
        try:
            views = [memoryview(buffer).cast("B") for buffer in buffers]
        except TypeError:
            raise TypeError("recvmsg_into() argument 1 must be an iterable") from None
        if any(view.readonly for view in views):
            raise TypeError("recvmsg_into() argument 1 must be an iterable of "
                            "single-segment read-write buffers")
        try:  # the caller's buffers are let go on the way out, as send()'s
            data, ancdata, msg_flags, address = self.recvmsg(sum(map(len, views)),
                                                             ancbufsize, flags)
            offset = 0
            for view in views:
                part = data[offset : offset + len(view)]
                view[: len(part)] = part
                offset += len(part)
        finally:
            for view in views:
                view.release()
        return len(data), ancdata, msg_flags, address

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        """The stdlib's ``socket.sendfile`` by ``send()`` (no OS descriptor to give
        ``os.sendfile``): the same checks, the file positioned after what was sent."""
        if self.type != socket.SOCK_STREAM:
            raise ValueError("only SOCK_STREAM type sockets are supported")
        if "b" not in getattr(file, "mode", "b"):
            raise ValueError("file should be opened in binary mode")
        if count is not None:
            if not isinstance(count, int):
                raise TypeError(f"count must be a positive integer (got {count!r})")
            if count <= 0:
                raise ValueError(f"count must be a positive integer (got {count!r})")
        if offset:
            file.seek(offset)
        total = 0
        try:
            while count is None or total < count:
                size = 8192 if count is None else min(8192, count - total)
                data = memoryview(file.read(size))
                if not data:
                    break
                while data:
                    try:
                        sent = self.send(data)
                    except BlockingIOError:
                        if self._timeout == 0.0:
                            raise
                        continue
                    total += sent
                    data = data[sent:]
            return total
        finally:
            if total > 0 and hasattr(file, "seek"):
                file.seek(offset + total)

    # -- files and closing --------------------------------------------------------

    def makefile(
        self,
        mode: str = "r",
        buffering: int | None = None,
        *,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> Any:
        """The stdlib's own ``socket.makefile`` (real ``io`` buffering) on this socket."""
        stdlib_makefile: Any = socket.socket.makefile
        return stdlib_makefile(
            self, mode, buffering, encoding=encoding, errors=errors, newline=newline
        )

    def _decref_socketios(self) -> None:
        if self._io_refs > 0:
            self._io_refs -= 1
        if self.ep.closed:
            self._real_close()

    def close(self) -> None:
        if self.ep.closed:
            return
        self.ep.closed = True
        if self._io_refs <= 0:
            self._real_close()
        if not self._kernel.closed and self._kernel.is_simulated_caller():
            self._kernel.preemption_point("close", self.ep.resource)

    def _real_close(self) -> None:
        if self.ep.fd < 0:
            return
        self._transport.close(self.ep)
        self.ep.fd = -1
        self.ep.state = advance(self.ep.state, Event.CLOSE)
        self.ep.changed.notify_all()

    def detach(self) -> int:
        raise NotImplementedError("SimSocket.detach(): simulated sockets have no OS descriptor")

    def dup(self) -> SimSocket:
        raise NotImplementedError("SimSocket.dup() is not simulated")

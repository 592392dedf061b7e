"""Simulated sockets: the ``socket.socket`` surface servers, handlers and clients use.

Errors are the real ``OSError`` subclasses with the real errno. Blocking, timeout and
non-blocking modes behave as on Linux, with timeouts in virtual time. The transport
(delivery, loss, partitions) lives in ``sockfake.sim.network``; a socket only keeps
its own buffers and state.
"""

from __future__ import annotations

import errno
import math
import operator
import os
import selectors
import socket
import struct
from collections import deque
from typing import TYPE_CHECKING, Any

from sockfake.sim.kernel import WaitQueue

if TYPE_CHECKING:
    from sockfake.sim.network import Host

__all__ = ["SimSocket"]

_AF_UNIX = getattr(socket, "AF_UNIX", -1)
_FAMILIES = {socket.AF_INET: "AF_INET", socket.AF_INET6: "AF_INET6", _AF_UNIX: "AF_UNIX"}
_TYPE_MASK = ~(getattr(socket, "SOCK_NONBLOCK", 0) | getattr(socket, "SOCK_CLOEXEC", 0))
# Plain ints: ``flags & socket.MSG_PEEK`` goes through IntFlag's Python-level __rand__.
_MSG_DONTWAIT = int(socket.MSG_DONTWAIT)
_MSG_PEEK = int(socket.MSG_PEEK)
DEFAULT_BUFFER = 65536
MAX_DATAGRAM = 65507


def os_error(code: int, cls: type[OSError] = OSError) -> OSError:
    """An OSError (or subclass) exactly as the OS would raise it."""
    return cls(code, os.strerror(code))


# Options Linux stores as a flag: any non-zero value reads back as 1.
_FLAG_OPTIONS = {
    (socket.SOL_SOCKET, socket.SO_REUSEADDR),
    (socket.SOL_SOCKET, socket.SO_KEEPALIVE),
    (socket.SOL_SOCKET, socket.SO_BROADCAST),
    (socket.SOL_SOCKET, socket.SO_OOBINLINE),
    (socket.IPPROTO_TCP, socket.TCP_NODELAY),
}
if hasattr(socket, "SO_REUSEPORT"):
    _FLAG_OPTIONS.add((socket.SOL_SOCKET, socket.SO_REUSEPORT))


def _timeout_value(value: Any) -> float | None:
    """Check a timeout as ``socket.settimeout`` does (same errors, same messages)."""
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            raise ValueError("Invalid value NaN (not a number)")
        seconds = value
    else:
        try:
            seconds = operator.index(value)
        except TypeError:
            raise TypeError(
                f"'{type(value).__name__}' object cannot be interpreted as an integer"
            ) from None
    if seconds < 0:
        raise ValueError("Timeout value out of range")
    return float(seconds)


def _blocking_error() -> BlockingIOError:
    return BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")


class SimSocket:
    """One simulated socket, owned by a host of a ``SimNetwork``."""

    def __init__(
        self,
        host: Host,
        family: int = socket.AF_INET,
        type: int = socket.SOCK_STREAM,
        proto: int = 0,
    ) -> None:
        if family not in _FAMILIES:
            raise os_error(errno.EAFNOSUPPORT)
        kind = type & _TYPE_MASK
        if kind not in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            raise os_error(errno.ESOCKTNOSUPPORT)
        self._host = host
        self._net = host.network
        self._kernel = host.network.kernel
        self.family = socket.AddressFamily(family)
        self.type = socket.SocketKind(kind)
        self.proto = proto
        self._fd = self._net._register_fd(self)
        default = socket.getdefaulttimeout()
        self._timeout: float | None = default
        if type & getattr(socket, "SOCK_NONBLOCK", 0):
            self._timeout = 0.0
        self._closed = False
        self._io_refs = 0
        self._changed = WaitQueue()
        self._state = "fresh"  # fresh, bound, listening, connecting, connected, closed
        self._local: Any = None
        self._remote: Any = None
        self._options: dict[tuple[int, int], Any] = {}
        # Streams.
        self._peer: SimSocket | None = None
        self._connection_id = 0
        self._rx = bytearray()
        # Segment sizes in _rx: [size, kept apart]. Re-chunked segments stay apart so a
        # recv() never returns more than one of them (short reads, as the link model asks).
        self._rx_segments: deque[list[Any]] = deque()
        self._rx_eof = False
        self._shut_rd = False
        self._shut_wr = False
        self._pending_error = 0
        self._dead = False  # reset: reads give EOF after the error, writes EPIPE
        self._outstanding = 0  # bytes sent and not yet read by the peer's application
        self._accept_queue: deque[SimSocket] = deque()
        self._backlog = 0
        self._syn_attempts = 0
        self._inflight = 0  # segments on their way, so later ones never overtake them
        # Linux and CPython: a connect() that finished while the caller was not
        # waiting in it (non-blocking, or CPython's timeout mode) reports 0 once more.
        self._connect_reported = True
        # Datagrams.
        self._datagrams: deque[tuple[bytes, Any]] = deque()
        self._datagram_bytes = 0

    # -- identity -----------------------------------------------------------------

    def fileno(self) -> int:
        return self._fd

    def __repr__(self) -> str:
        closed = " [closed]" if self._closed else ""
        kind = "stream" if self.type == socket.SOCK_STREAM else "dgram"
        where = self._local if self._local is not None else "unbound"
        peer = f" -> {self._remote}" if self._remote is not None else ""
        return f"<SimSocket fd={self._fd} {kind} {where}{peer}{closed}>"

    def __enter__(self) -> SimSocket:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()

    def _check_thread(self) -> None:
        self._kernel.thread_for_caller()

    def _check_open(self) -> None:
        # As socket.socket: close() with makefile() objects still open keeps the
        # descriptor (and so the connection) usable until the last one closes.
        if self._fd < 0:
            raise os_error(errno.EBADF)
        self._check_thread()

    # -- timeouts -----------------------------------------------------------------

    def settimeout(self, value: float | None) -> None:
        timeout = _timeout_value(value)
        if self._fd < 0:
            raise os_error(errno.EBADF)
        self._timeout = timeout

    def gettimeout(self) -> float | None:
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        if self._fd < 0:
            raise os_error(errno.EBADF)
        self._timeout = None if flag else 0.0

    def getblocking(self) -> bool:
        return self._timeout != 0.0

    def _deadline(self) -> float | None:
        if self._timeout is None:
            return None
        return self._kernel.now + self._timeout

    def _would_block(self) -> BlockingIOError:
        """EAGAIN, after letting the kernel see the empty poll (a loop may be spinning)."""
        self._kernel.idle_poll(f"non-blocking call on {self!r}")
        return _blocking_error()

    def _block(self, deadline: float | None, what: str) -> None:
        """Wait for this socket to change; raise as the OS would if we may not wait."""
        if self._timeout == 0.0:
            raise self._would_block()
        if not self._kernel.wait((self._changed,), deadline, lambda: f"{what} on {self!r}"):
            self._net._trace("timeout", f"{what} {self._describe()}")
            raise TimeoutError("timed out")

    def _describe(self) -> str:
        return str(self._local if self._local is not None else f"fd{self._fd}")

    # -- options ------------------------------------------------------------------

    def setsockopt(self, level: int, option: int, value: Any, optlen: int | None = None) -> None:
        self._check_open()
        key = (level, option)
        if key == (socket.SOL_SOCKET, socket.SO_LINGER) and (
            not isinstance(value, (bytes, bytearray)) or len(value) < 8
        ):
            raise os_error(errno.EINVAL)  # a struct linger is 8 bytes
        if key in _FLAG_OPTIONS and isinstance(value, int):
            value = int(bool(value))
        self._options[key] = value

    def getsockopt(self, level: int, option: int, buflen: int | None = None) -> Any:
        self._check_open()
        if level == socket.SOL_SOCKET and option == socket.SO_ERROR:
            code, self._pending_error = self._pending_error, 0
            return code
        if level == socket.SOL_SOCKET and option == socket.SO_TYPE:
            return int(self.type)
        if level == socket.SOL_SOCKET and option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            return int(self._options.get((level, option), DEFAULT_BUFFER))
        if level == socket.SOL_SOCKET and option == socket.SO_ACCEPTCONN:
            return int(self._state == "listening")
        value = self._options.get((level, option), 0)
        if buflen is not None:
            if isinstance(value, int):
                value = struct.pack("i", value)
            return bytes(value)[:buflen].ljust(buflen, b"\0")
        if isinstance(value, (bytes, bytearray)):
            return struct.unpack("i", bytes(value)[:4])[0] if len(value) >= 4 else 0
        return int(value)

    def _linger_zero(self) -> bool:
        value = self._options.get((socket.SOL_SOCKET, socket.SO_LINGER))
        if isinstance(value, (bytes, bytearray)) and len(value) >= 8:
            onoff, seconds = struct.unpack("ii", bytes(value)[:8])
            return bool(onoff) and seconds == 0
        return False

    def _buffer_size(self, option: int) -> int:
        return int(self._options.get((socket.SOL_SOCKET, option), DEFAULT_BUFFER))

    # -- addresses ----------------------------------------------------------------

    def getsockname(self) -> Any:
        self._check_open()
        if self._local is not None:
            return self._local
        return self._net._unbound_name(self.family)

    def getpeername(self) -> Any:
        self._check_open()
        if self._remote is None or self._state not in ("connected",) or self._dead:
            if self.type == socket.SOCK_DGRAM and self._remote is not None:
                return self._remote
            raise os_error(errno.ENOTCONN)
        return self._remote

    def bind(self, address: Any) -> None:
        self._check_open()
        if self._state != "fresh":
            raise os_error(errno.EINVAL)
        self._local = self._net._bind(self, address)
        self._state = "bound"
        self._net._trace("bind", f"{self._local}")

    def listen(self, backlog: int = 128) -> None:
        self._check_open()
        if self.type != socket.SOCK_STREAM:
            raise os_error(errno.EOPNOTSUPP)
        if self._state == "fresh":
            self._local = self._net._bind(self, self._net._any_address(self.family))
        elif self._state not in ("bound", "listening"):
            raise os_error(errno.EINVAL)
        # Linux caps the backlog at somaxconn and queues backlog + 1 connections.
        self._backlog = max(0, min(int(backlog), socket.SOMAXCONN)) + 1
        self._state = "listening"
        self._net._trace("listen", f"{self._local} backlog {backlog}")

    # -- streams: connect / accept ------------------------------------------------

    def connect(self, address: Any) -> None:
        code = self._connect(address, raising=True)
        if code:
            raise os_error(code, _ERRNO_CLASSES.get(code, OSError))

    def connect_ex(self, address: Any) -> int:
        try:
            return self._connect(address, raising=False)
        except TimeoutError:
            return errno.EAGAIN if self._timeout == 0 else errno.ETIMEDOUT

    def _unix_peer_error(self, remote: Any) -> int:
        """For a Unix socket, the errno of connecting to ``remote`` (0 if a peer of our
        type is bound there, as a real path lookup would find)."""
        if self.family != _AF_UNIX:
            return 0
        try:
            self._net._unix_peer(remote, self.type)
        except OSError as exc:
            return exc.errno or errno.EINVAL
        return 0

    def _connect(self, address: Any, *, raising: bool) -> int:
        self._check_open()
        if self.type == socket.SOCK_DGRAM:
            remote = self._net._resolve_remote(self, address)
            code = self._unix_peer_error(remote)
            if code:
                return code
            self._remote = remote
            if self._local is None:
                self._local = self._net._autobind(self, self._remote)
                self._state = "bound"
            else:
                self._net._pin_source(self, self._remote)
            return 0
        if self._state == "connected":
            if not self._connect_reported:
                self._connect_reported = True
                return 0
            return errno.EISCONN
        if self._state == "listening":
            return errno.EINVAL
        if self._state == "failed":
            # The attempt failed while nobody waited in connect(): report it once
            # (ECONNABORTED if SO_ERROR already took the error), as Linux does.
            self._state = "closed-by-error"
            code, self._pending_error = self._pending_error, 0
            return code or errno.ECONNABORTED
        if self._state == "connecting":
            if self._timeout == 0.0:
                return errno.EALREADY
        else:
            remote = self._net._resolve_remote(self, address)
            code = self._unix_peer_error(remote)
            if code:
                return code
            self._remote = remote
            self._connect_reported = False
            self._net._start_connect(self)
            if self._timeout == 0.0:
                return errno.EINPROGRESS
        deadline = self._deadline()
        while self._state == "connecting":
            self._block(deadline, "connect")
        if self._pending_error:
            code, self._pending_error = self._pending_error, 0
            self._state = "closed-by-error"
            return code
        # A blocking connect() leaves the socket connected; CPython's timeout mode
        # is a non-blocking connect() plus a wait, so Linux says 0 once more.
        self._connect_reported = self._timeout is None
        return 0

    def accept(self) -> tuple[SimSocket, Any]:
        self._check_open()
        if self._state != "listening":
            raise os_error(errno.EINVAL)
        deadline = self._deadline()
        while not self._accept_queue:
            if self._shut_rd:
                raise os_error(errno.EINVAL)
            self._block(deadline, "accept")
            self._check_open()
        conn = self._accept_queue.popleft()
        conn._accepted()
        self._net._trace("accept", f"{self._local} <- {conn._remote}")
        self._kernel.preemption_point("accept")
        return conn, conn._remote

    def _accepted(self) -> None:
        # The accepted socket inherits the listener's host; blocking by default
        # (Linux does not inherit O_NONBLOCK; CPython applies the default timeout).
        self._timeout = socket.getdefaulttimeout()
        self._net._adopt_fd(self)

    # -- streams: data ------------------------------------------------------------

    def send(self, data: Any, flags: int = 0) -> int:
        self._check_open()
        if self.type == socket.SOCK_DGRAM:
            if self._remote is None:
                raise os_error(errno.EDESTADDRREQ)
            return self.sendto(data, self._remote)
        view = memoryview(data).cast("B")
        nowait = self._no_wait(flags)
        deadline = None if nowait else self._deadline()
        while True:
            self._raise_pending()
            if self._shut_wr or self._dead:
                raise os_error(errno.EPIPE, BrokenPipeError)
            if self._state == "connecting":
                if nowait:
                    raise self._would_block()
                self._block(deadline, "send")
                continue
            if self._state != "connected" or self._peer is None:
                # Linux: writing on a stream socket that is not connected is EPIPE.
                raise os_error(errno.EPIPE, BrokenPipeError)
            space = self._capacity() - self._outstanding
            if space > 0 or not len(view):
                break
            if nowait:
                raise self._would_block()
            self._block(deadline, "send")
        count = min(len(view), space)
        if count:
            self._outstanding += count
            self._net._send_stream(self, bytes(view[:count]))
        self._kernel.preemption_point("send")
        return count

    def sendall(self, data: Any, flags: int = 0) -> None:
        view = memoryview(data).cast("B")
        # As CPython since 3.5: the timeout bounds the whole call.
        timeout = self._timeout
        deadline = None if timeout is None else self._kernel.now + timeout
        sent = 0
        total = len(view)
        while True:
            if deadline is not None and timeout:
                left = deadline - self._kernel.now
                if left <= 0:
                    raise TimeoutError("timed out")
                self._timeout = left
            try:
                sent += self.send(view[sent:], flags)
            finally:
                self._timeout = timeout
            if sent >= total:
                return

    def _no_wait(self, flags: int) -> bool:
        """MSG_DONTWAIT: CPython first waits out a socket timeout, so it only counts
        on a blocking socket (on a non-blocking one every call is already EAGAIN)."""
        return bool(flags & _MSG_DONTWAIT) and self._timeout is None

    def _capacity(self) -> int:
        peer = self._peer
        receive = peer._buffer_size(socket.SO_RCVBUF) if peer is not None else 0
        return self._buffer_size(socket.SO_SNDBUF) + receive

    def _raise_pending(self) -> None:
        if self._pending_error:
            code, self._pending_error = self._pending_error, 0
            raise os_error(code, _ERRNO_CLASSES.get(code, OSError))

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self._check_open()
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        if self.type == socket.SOCK_DGRAM:
            return self._recv_datagram(bufsize, flags)[0]
        nowait = self._no_wait(flags)
        deadline = None if nowait else self._deadline()
        while True:
            self._raise_pending()
            if self._rx:
                break
            if self._rx_eof or self._shut_rd or self._dead or bufsize == 0:
                self._kernel.preemption_point("recv")
                return b""
            if self._state not in ("connected", "connecting"):
                raise os_error(errno.ENOTCONN)
            if nowait:
                raise self._would_block()
            self._block(deadline, "recv")
        limit = bufsize
        if self._rx_segments:
            limit = min(bufsize, self._rx_segments[0][0])
        data = bytes(self._rx[:limit])
        if not flags & _MSG_PEEK:
            del self._rx[: len(data)]
            self._take_segment_bytes(len(data))
            self._net._consumed(self, len(data))
        self._kernel.preemption_point("recv")
        return data

    def _append_rx(self, segment: bytes, apart: bool) -> None:
        """Queue received bytes; ``apart`` keeps a segment from merging with its neighbours."""
        if not segment:
            return
        self._rx += segment
        segments = self._rx_segments
        if not apart and segments and not segments[-1][1]:
            segments[-1][0] += len(segment)
        else:
            segments.append([len(segment), apart])

    def _take_segment_bytes(self, count: int) -> None:
        segments = self._rx_segments
        while count and segments:
            head = segments[0]
            taken = min(count, head[0])
            head[0] -= taken
            count -= taken
            if head[0] == 0:
                segments.popleft()

    def _clear_rx(self) -> None:
        self._rx.clear()
        self._rx_segments.clear()

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        view = memoryview(buffer).cast("B")
        if nbytes < 0:
            raise ValueError("negative buffersize in recv_into")
        size = nbytes or len(view)
        if size > len(view):
            raise ValueError("buffer too small for requested bytes")
        data = self.recv(size, flags)
        view[: len(data)] = data
        return len(data)

    def shutdown(self, how: int) -> None:
        self._check_open()
        if how not in (socket.SHUT_RD, socket.SHUT_WR, socket.SHUT_RDWR):
            raise os_error(errno.EINVAL)
        if self._state == "listening":
            self._shut_rd = True
            self._changed.notify_all()
            return
        if self._state != "connected":
            raise os_error(errno.ENOTCONN)
        if how in (socket.SHUT_RD, socket.SHUT_RDWR):
            self._shut_rd = True
        if how in (socket.SHUT_WR, socket.SHUT_RDWR) and not self._shut_wr:
            self._shut_wr = True
            if not self._dead:
                self._net._send_fin(self)
        self._changed.notify_all()

    # -- datagrams ----------------------------------------------------------------

    def sendto(self, data: Any, flags_or_address: Any, address: Any = None) -> int:
        self._check_open()
        flags = 0
        if address is None:
            address = flags_or_address
        else:
            flags = flags_or_address
        if self.type == socket.SOCK_STREAM:
            if self._state == "connected":
                return self.send(data, flags)  # Linux ignores the address
            raise os_error(errno.EPIPE, BrokenPipeError)
        payload = bytes(memoryview(data).cast("B"))
        if len(payload) > MAX_DATAGRAM:
            raise os_error(errno.EMSGSIZE)
        remote = self._net._resolve_remote(self, address)
        if self.family == _AF_UNIX:
            self._net._unix_peer(remote, socket.SOCK_DGRAM)
        elif self._remote is not None:
            self._raise_pending()  # ICMP port unreachable from an earlier datagram
        if self._local is None:
            self._local = self._net._autobind(self, remote, wildcard=True)
            self._state = "bound"
        self._net._send_datagram(self, payload, remote)
        self._kernel.preemption_point("sendto")
        return len(payload)

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        self._check_open()
        if bufsize < 0:
            raise ValueError("negative buffersize in recvfrom")
        if self.type == socket.SOCK_STREAM:
            return self.recv(bufsize, flags), None
        return self._recv_datagram(bufsize, flags)

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> tuple[int, Any]:
        view = memoryview(buffer).cast("B")
        data, address = self.recvfrom(nbytes or len(view), flags)
        view[: len(data)] = data
        return len(data), address

    def _recv_datagram(self, bufsize: int, flags: int) -> tuple[bytes, Any]:
        nowait = self._no_wait(flags)
        deadline = None if nowait else self._deadline()
        while not self._datagrams:
            self._raise_pending()
            if self._shut_rd:
                return b"", None
            if nowait:
                raise self._would_block()
            self._block(deadline, "recvfrom")
        if flags & _MSG_PEEK:
            payload, address = self._datagrams[0]
        else:
            payload, address = self._datagrams.popleft()
            self._datagram_bytes -= len(payload)
        self._kernel.preemption_point("recvfrom")
        # Truncated at the receiver's buffer size; the rest is discarded, as UDP does.
        return payload[:bufsize], address

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
        if self._closed:
            self._real_close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._io_refs <= 0:
            self._real_close()

    def _real_close(self) -> None:
        if self._fd < 0:
            return
        self._net._close_socket(self)
        self._fd = -1
        self._state = "closed"
        self._changed.notify_all()

    def detach(self) -> int:
        raise NotImplementedError("SimSocket.detach(): simulated sockets have no OS descriptor")

    def dup(self) -> SimSocket:
        raise NotImplementedError("SimSocket.dup() is not simulated")

    # -- selector support ---------------------------------------------------------

    def _sim_ready(self) -> int:
        if self._fd < 0:
            return selectors.EVENT_READ | selectors.EVENT_WRITE
        mask = 0
        if self.type == socket.SOCK_DGRAM:
            if self._datagrams or self._pending_error:
                mask |= selectors.EVENT_READ
            return mask | selectors.EVENT_WRITE
        if self._state == "listening":
            if self._accept_queue or self._shut_rd:
                mask |= selectors.EVENT_READ
            return mask
        if self._rx or self._rx_eof or self._shut_rd or self._dead or self._pending_error:
            mask |= selectors.EVENT_READ
        if self._state == "connected":
            if self._capacity() > self._outstanding or self._shut_wr or self._dead:
                mask |= selectors.EVENT_WRITE
        elif self._state != "connecting":
            mask |= selectors.EVENT_WRITE
        return mask

    def _sim_queue(self) -> WaitQueue:
        return self._changed


_ERRNO_CLASSES: dict[int, type[OSError]] = {
    errno.ECONNREFUSED: ConnectionRefusedError,
    errno.ECONNRESET: ConnectionResetError,
    errno.ECONNABORTED: ConnectionAbortedError,
    errno.EPIPE: BrokenPipeError,
    errno.ETIMEDOUT: TimeoutError,
    errno.ENOENT: FileNotFoundError,
}

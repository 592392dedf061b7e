"""TLS on simulated sockets: ``ssl.SSLContext.wrap_socket`` through ``MemoryBIO``.

The real ``SSLSocket`` needs an OS descriptor: OpenSSL reads and writes it itself. On a
simulated socket, ``net.intercept()`` instead returns a ``SimTLSSocket``: OpenSSL's
``SSLObject`` runs the real TLS protocol (handshake, certificates, hostname checks,
ciphers, ALPN) between two memory buffers, and this class moves the bytes between
those buffers and the simulated stream. Everything OpenSSL decides is real; only the
transport is simulated, so latency, chunking and partitions apply to the records.

A ``SimTLSSocket`` is a ``socket.socket`` (an ``InterceptSocket`` over the same
simulated socket) with the ``SSLSocket`` methods clients and servers use:
``do_handshake``, ``recv``/``recv_into``/``read``, ``send``/``sendall``/``write``,
``makefile``, ``accept`` (a listening socket wrapped with ``server_side=True``),
``connect``, ``getpeercert``, ``cipher``, ``version``, ``selected_alpn_protocol``,
``pending``, ``unwrap``. It is not an instance of ``ssl.SSLSocket``. Certificate
validity is checked by OpenSSL against the real clock, not the virtual one. Keys and
nonces come from OpenSSL's random generator, not the network's seed: the bytes on the
wire (which the trace previews) differ from run to run, so ``net.digest()`` of a run
with TLS does too.
"""

from __future__ import annotations

import errno
import ssl
from typing import TYPE_CHECKING, Any

from sockfake.sim.intercept.dispatch import caller_network
from sockfake.sim.intercept.sockets import InterceptSocket
from sockfake.sim.net.descriptors import FIRST_FD
from sockfake.sim.net.sockets import SimSocket

__all__ = ["SimTLSSocket", "wrap_simulated", "wrap_socket_guard"]

_RECORD = 16 * 1024 + 512  # one TLS record, with room for its header and MAC


if TYPE_CHECKING:
    _TLSBase = InterceptSocket
else:

    class _TLSBase(InterceptSocket, ssl.SSLSocket):
        """InterceptSocket first: its simulated methods win over OpenSSL-on-a-descriptor."""


class SimTLSSocket(_TLSBase):
    """A TLS connection over a simulated stream socket (see the module docstring).

    An ``ssl.SSLSocket`` for ``isinstance`` (ftplib, poplib check it), but none of the
    real class's methods run: they need OpenSSL on a descriptor. After ``unwrap()``
    the same object goes on as a plain simulated socket, as the real one does.
    """

    _tls: ssl.SSLObject | None = None
    _plain = False

    @property
    def _sslobj(self) -> ssl.SSLObject | None:
        # Code that peeks at the real class's private attribute (CPython's own test
        # servers check ``sock._sslobj is not None``) sees the SSLObject doing the work.
        return self._tls

    @property
    def context(self) -> ssl.SSLContext:
        return self._sf_context

    @context.setter
    def context(self, context: ssl.SSLContext) -> None:
        self._sf_context = context
        if self._tls is not None:
            self._tls.context = context

    def _setup(
        self,
        context: ssl.SSLContext,
        server_side: bool,
        server_hostname: str | None,
        do_handshake_on_connect: bool,
        suppress_ragged_eofs: bool,
        session: Any,
    ) -> None:
        self._sf_context = context
        self.server_side = server_side
        self.server_hostname = server_hostname
        self.do_handshake_on_connect = do_handshake_on_connect
        self.suppress_ragged_eofs = suppress_ragged_eofs
        self._session = session
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._record = bytearray()
        self._tls = None

    def _start(self) -> None:
        self._tls = self.context.wrap_bio(
            self._incoming,
            self._outgoing,
            server_side=self.server_side,
            server_hostname=self.server_hostname,
            session=self._session,
        )

    def _connected(self) -> bool:
        try:
            self.getpeername()
        except OSError:
            return False
        return True

    # -- moving records -------------------------------------------------------------

    def _flush(self) -> None:
        data = self._outgoing.read()
        if data:
            super().sendall(data)

    def _fill(self) -> bool:
        """Read one more TLS record from the stream; False at EOF.

        Record by record, never further, as OpenSSL reads a descriptor (no read-ahead):
        after ``unwrap()`` the bytes that follow the close_notify are still in the
        stream for the plain socket. A partial record (a non-blocking socket) waits
        in ``_record`` for the rest.
        """
        record = self._record
        while True:
            need = 5 if len(record) < 5 else 5 + int.from_bytes(record[3:5], "big")
            if len(record) >= need:
                self._incoming.write(bytes(record))
                record.clear()
                return True
            piece = super().recv(need - len(record))  # BlockingIOError: see _run()
            if not piece:
                if record:
                    self._incoming.write(bytes(record))
                    record.clear()
                self._incoming.write_eof()
                return False
            record += piece

    def _run(self, operation: Any, *args: Any) -> Any:
        while True:
            try:
                result = operation(*args)
            except ssl.SSLWantReadError as want:
                self._flush()
                try:
                    self._fill()
                except BlockingIOError:
                    # A non-blocking socket: OpenSSL's own error, as the real SSLSocket.
                    raise want from None
            except ssl.SSLWantWriteError:
                self._flush()
            else:
                self._flush()
                return result

    def _object(self) -> ssl.SSLObject:
        if self._tls is None:
            if not self._connected():
                raise OSError(107, "Transport endpoint is not connected")
            self._start()
            assert self._tls is not None
            self._run(self._tls.do_handshake)
        return self._tls

    # -- the SSLSocket surface ------------------------------------------------------

    def do_handshake(self, block: bool = False) -> None:
        if self._tls is None:
            self._start()
        assert self._tls is not None
        self._run(self._tls.do_handshake)

    def connect(self, address: Any) -> None:
        if self._tls is not None:
            raise ValueError("attempt to connect already-connected SSLSocket!")
        super().connect(address)
        self._start()
        if self.do_handshake_on_connect:
            self.do_handshake()

    def connect_ex(self, address: Any) -> int:
        try:
            self.connect(address)
        except OSError as exc:
            return exc.errno or 0
        return 0

    def accept(self) -> tuple[Any, Any]:
        conn, address = super().accept()
        sim = conn._sf_sim
        assert sim is not None
        conn._sf_sim, conn._closed = None, True  # detached: the TLS socket owns it now
        tls = wrap_simulated(
            sim,
            self.context,
            server_side=True,
            do_handshake_on_connect=self.do_handshake_on_connect,
            suppress_ragged_eofs=self.suppress_ragged_eofs,
        )
        return tls, address

    def read(self, len: int = 1024, buffer: Any = None) -> Any:
        if self._plain:
            raise ValueError("Read on closed or unwrapped SSL socket.")
        tls = self._object()
        try:
            if buffer is not None:
                return self._run(tls.read, len, buffer)
            return self._run(tls.read, len)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            if self.suppress_ragged_eofs:
                return 0 if buffer is not None else b""
            raise

    def write(self, data: Any) -> int:
        if self._plain:
            raise ValueError("Write on closed or unwrapped SSL socket.")
        return int(self._run(self._object().write, data))

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        if self._plain:
            return bytes(InterceptSocket.recv(self, buflen, flags))
        if flags:
            raise ValueError(f"non-zero flags not allowed in calls to recv() on {type(self)}")
        if buflen == 0:
            return b""
        return bytes(self.read(buflen))

    def recv_into(self, buffer: Any, nbytes: int | None = None, flags: int = 0) -> int:
        if self._plain:
            return int(InterceptSocket.recv_into(self, buffer, nbytes or 0, flags))
        if flags:
            raise ValueError(f"non-zero flags not allowed in calls to recv_into() on {type(self)}")
        view = memoryview(buffer).cast("B")
        size = nbytes or len(view)
        if size == 0:
            return 0
        return int(self.read(size, view))

    def send(self, data: Any, flags: int = 0) -> int:
        if self._plain:
            return int(InterceptSocket.send(self, data, flags))
        if flags:
            raise ValueError(f"non-zero flags not allowed in calls to send() on {type(self)}")
        return self.write(data)

    def sendall(self, data: Any, flags: int = 0) -> None:
        if self._plain:
            InterceptSocket.sendall(self, data, flags)
            return
        view = memoryview(data).cast("B")
        while view:
            view = view[self.send(view[:_RECORD], flags):]

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        return int(self._sendfile_use_send(file, offset, count))  # type: ignore[attr-defined]

    def recvfrom(self, buflen: int = 1024, flags: int = 0) -> Any:
        if self._plain:
            return InterceptSocket.recvfrom(self, buflen, flags)
        return self.recv(buflen, flags), None

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> Any:
        if self._plain:
            return InterceptSocket.recvfrom_into(self, buffer, nbytes, flags)
        return self.recv_into(buffer, nbytes, flags), None

    def sendto(self, data: Any, flags_or_addr: Any, addr: Any = None) -> Any:
        if self._plain:
            return InterceptSocket.sendto(self, data, flags_or_addr, addr)
        raise ValueError(f"sendto not allowed on instances of {type(self)}")

    def shutdown(self, how: int) -> None:
        self._tls = None if self._plain else self._tls
        InterceptSocket.shutdown(self, how)

    def verify_client_post_handshake(self) -> None:
        self._object().verify_client_post_handshake()

    def selected_npn_protocol(self) -> str | None:
        return None

    def pending(self) -> int:
        return self._tls.pending() if self._tls is not None else 0

    def getpeercert(self, binary_form: bool = False) -> Any:
        return self._object().getpeercert(binary_form)

    def cipher(self) -> Any:
        return self._tls.cipher() if self._tls is not None else None

    def shared_ciphers(self) -> Any:
        return self._tls.shared_ciphers() if self._tls is not None else None

    def version(self) -> str | None:
        return self._tls.version() if self._tls is not None else None

    def compression(self) -> str | None:
        return self._tls.compression() if self._tls is not None else None

    def selected_alpn_protocol(self) -> str | None:
        return self._tls.selected_alpn_protocol() if self._tls is not None else None

    def get_channel_binding(self, cb_type: str = "tls-unique") -> bytes | None:
        return self._tls.get_channel_binding(cb_type) if self._tls is not None else None

    @property
    def session(self) -> Any:
        return self._tls.session if self._tls is not None else self._session

    @property
    def session_reused(self) -> bool | None:
        return self._tls.session_reused if self._tls is not None else None

    def unwrap(self) -> SimTLSSocket:
        """Send close_notify and wait for the peer's; then this object is a plain socket
        (the real ``unwrap()`` returns the same object too)."""
        if self._tls is None or self._plain:
            raise ValueError("No SSL wrapper around " + str(self))
        try:
            self._run(self._tls.unwrap)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            pass
        self._plain = True
        self._tls = None
        return self

    def dup(self) -> Any:
        raise NotImplementedError(f"Can't dup() {type(self).__name__} instances")

    def __repr__(self) -> str:
        return super().__repr__().replace("<socket.socket", "<ssl.SSLSocket", 1)


SimTLSSocket.__name__ = SimTLSSocket.__qualname__ = "SSLSocket"
SimTLSSocket.__module__ = "ssl"


def wrap_simulated(
    sock: SimSocket,
    context: ssl.SSLContext,
    *,
    server_side: bool = False,
    do_handshake_on_connect: bool = True,
    suppress_ragged_eofs: bool = True,
    server_hostname: str | None = None,
    session: Any = None,
) -> SimTLSSocket:
    """``context.wrap_socket(sock, ...)`` for a simulated stream socket."""
    import socket

    if sock.type != socket.SOCK_STREAM:
        raise NotImplementedError(
            "ssl.SSLContext.wrap_socket() on a simulated datagram socket: DTLS is not "
            "simulated (TLS on simulated stream sockets is)"
        )
    if server_side and server_hostname:
        raise ValueError("server_hostname can only be specified in client mode")
    if context.check_hostname and not server_side and not server_hostname:
        raise ValueError("check_hostname requires server_hostname")
    tls = SimTLSSocket.__new__(SimTLSSocket)
    tls._io_refs = 0
    tls._closed = False
    tls._sf_sim = sock
    tls._setup(
        context, server_side, server_hostname, do_handshake_on_connect, suppress_ragged_eofs,
        session,
    )
    if tls._connected():
        tls._start()
        if do_handshake_on_connect:
            try:
                tls.do_handshake()
            except (OSError, ValueError):
                tls.close()  # as the real wrap_socket: a failed handshake closes it
                raise
    return tls


# -- the guard on SSLContext.wrap_socket (installed by net.intercept()) ---------------


def _is_simulated_socket(sock: Any) -> bool:
    return isinstance(sock, SimSocket) or (
        isinstance(sock, InterceptSocket) and sock._sf_sim is not None
    )


def _simulated_under(sock: Any) -> SimSocket | None:
    """The simulated socket under a socket-like object (one that delegates
    ``fileno()`` to a simulated socket, which CPython's ``wrap_socket`` accepts: it
    asks only for ``fileno``, ``getsockopt``, ``gettimeout`` and ``detach``), or None."""
    if isinstance(sock, InterceptSocket) or not callable(getattr(sock, "detach", None)):
        return None
    try:
        fd = sock.fileno()
    except Exception:  # noqa: BLE001 - not ours to judge: the real wrap_socket decides
        return None
    if not isinstance(fd, int) or fd < FIRST_FD:
        return None
    net = caller_network()
    if net is None:
        return None
    for sim in net.open_sockets():
        if sim.fileno() == fd:
            return sim
    return None


def wrap_socket_guard(original: Any) -> Any:
    def wrap_socket(
        self: Any,
        sock: Any,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: Any = None,
        session: Any = None,
    ) -> Any:
        under = None if _is_simulated_socket(sock) else _simulated_under(sock)
        if under is None and not _is_simulated_socket(sock):
            return original(
                self, sock, server_side, do_handshake_on_connect, suppress_ragged_eofs,
                server_hostname, session,
            )
        sim = under if under is not None else sock if isinstance(sock, SimSocket) else sock._sf_sim
        if not isinstance(sim, SimSocket) or sim.fileno() < 0:  # closed (or detached)
            raise OSError(errno.EBADF, "Bad file descriptor")
        if not isinstance(sock, SimSocket):
            # As the real wrap_socket detaches the socket it wraps: the old object's calls
            # then fail with EBADF (socketserver's shutdown_request() expects an OSError).
            sock.detach()
        return wrap_simulated(
            sim,
            self,
            server_side=server_side,
            do_handshake_on_connect=do_handshake_on_connect,
            suppress_ragged_eofs=suppress_ragged_eofs,
            server_hostname=server_hostname,
            session=session,
        )

    wrap_socket.__doc__ = original.__doc__
    return wrap_socket

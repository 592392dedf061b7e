"""The differential probe: one small snippet per socket behaviour, run on the real OS and
on the simulation, with Linux's answer the reference.

A snippet is a function ``(S, path)`` of the stdlib ``socket`` module ``S`` (on the
simulation it runs under ``net.intercept()``, so ``S.socket`` is simulated) and a
factory of fresh Unix paths. What it returns (or the exception it raises: type, errno,
message) is its outcome; the probe compares the two outcomes. Snippets return stable
values only (no port numbers, no descriptors).

The simulation runs with 1 ms of latency and without re-chunking (``chunk=None``):
some snippets compare what one ``recv`` returns, which loopback gives whole and a
re-chunked link deliberately does not.

``DELIBERATE`` lists behaviours that differ on purpose, each with its reason.

``python tests/differential.py`` prints each
behaviour's outcome on both networks and the counts.
"""

from __future__ import annotations

import errno
import gc
import os
import shutil
import socket
import stat
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sockfake.sim import SimNetwork

Paths = Callable[[str], str]
Snippet = Callable[[Any, Paths], Any]
PROBES: dict[str, Snippet] = {}

AF_UNIX = getattr(socket, "AF_UNIX", None)
KINDS: dict[str, tuple[int, int]] = {
    "tcp4": (socket.AF_INET, socket.SOCK_STREAM),
    "tcp6": (socket.AF_INET6, socket.SOCK_STREAM),
    "udp4": (socket.AF_INET, socket.SOCK_DGRAM),
    "udp6": (socket.AF_INET6, socket.SOCK_DGRAM),
}
if AF_UNIX is not None:
    KINDS["unix_stream"] = (AF_UNIX, socket.SOCK_STREAM)
    KINDS["unix_dgram"] = (AF_UNIX, socket.SOCK_DGRAM)
STREAMS = [k for k in KINDS if KINDS[k][1] == socket.SOCK_STREAM]
DGRAMS = [k for k in KINDS if KINDS[k][1] == socket.SOCK_DGRAM]

# Behaviours that differ on purpose: name -> the reason (docs/concepts/simulation.md,
# "Deliberate differences from Linux").
_TIME_WAIT = (
    "TIME_WAIT is not modelled: a port is free as soon as its sockets close, so servers "
    "and tests rebind at once (Linux keeps the closing side's port for 60 s)"
)
DELIBERATE: dict[str, str] = {
    "tcp4_rebind_after_close_without_reuseaddr": _TIME_WAIT,
    "tcp4_rebind_after_close_with_reuseaddr": _TIME_WAIT,
    "tcp4_maxseg_connected": (
        "segment sizes are not modelled: TCP_MAXSEG reads 536 (Linux's default before a "
        "connection); Linux then reports the route's MSS (32741 on loopback, other "
        "values after a failed attempt)"
    ),
    "rcvbuf_default_and_doubling": (
        "buffer sizes are taken as given: Linux doubles SO_RCVBUF/SO_SNDBUF (and has "
        "other defaults per protocol); the simulation's flow control uses the value set"
    ),
}


def probe(name: str) -> Callable[[Snippet], Snippet]:
    def register(function: Snippet) -> Snippet:
        assert name not in PROBES, name
        PROBES[name] = function
        return function

    return register


def per_kind(kinds: list[str], stem: str) -> Callable[[Callable[..., Any]], Any]:
    """Register ``function(S, path, kind)`` once per kind, as ``stem[kind]``."""

    def register(function: Callable[..., Any]) -> Any:
        for kind in kinds:
            def snippet(S: Any, path: Paths, kind: str = kind) -> Any:
                return function(S, path, kind)

            probe(f"{stem}[{kind}]")(snippet)
        return function

    return register


# -- helpers --------------------------------------------------------------------------


def new(S: Any, kind: str) -> Any:
    family, type_ = KINDS[kind]
    return S.socket(family, type_)


def local(kind: str, path: Paths, name: str = "a") -> Any:
    family = KINDS[kind][0]
    if family == socket.AF_INET:
        return ("127.0.0.1", 0)
    if family == socket.AF_INET6:
        return ("::1", 0)
    return path(name)


def stream_pair(S: Any, kind: str, path: Paths) -> tuple[Any, Any, Any]:
    """(client, accepted, listener), connected."""
    listener = new(S, kind)
    listener.bind(local(kind, path, "listener"))
    listener.listen()
    client = new(S, kind)
    client.settimeout(10)
    client.connect(listener.getsockname())
    conn, _ = listener.accept()
    conn.settimeout(10)
    return client, conn, listener


def dgram_pair(S: Any, kind: str, path: Paths) -> tuple[Any, Any]:
    """Two bound datagram sockets, each connected to the other."""
    a, b = new(S, kind), new(S, kind)
    a.bind(local(kind, path, "da"))
    b.bind(local(kind, path, "db"))
    a.connect(b.getsockname())
    b.connect(a.getsockname())
    a.settimeout(10)
    b.settimeout(10)
    return a, b


def pair(S: Any, kind: str, path: Paths) -> tuple[Any, Any]:
    if kind in STREAMS:
        c, s, listener = stream_pair(S, kind, path)
        listener.close()
        return c, s
    return dgram_pair(S, kind, path)


def shape(address: Any) -> Any:
    """An address without its port: its type and host part."""
    if isinstance(address, tuple):
        return (address[0], len(address), *address[2:])
    return address


def err(function: Callable[[], Any]) -> Any:
    """The errno (or exception type) a call raises, or 'ok'."""
    try:
        function()
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, type(exc).__name__)
    except Exception as exc:  # noqa: BLE001 - the type is the answer
        return type(exc).__name__
    return "ok"


def recv_all(sock: Any, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            break
        data += chunk
    return data


# -- generic behaviours, per kind ---------------------------------------------------


@per_kind(list(KINDS), "sockopt_type_domain_protocol")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        return (s.getsockopt(S.SOL_SOCKET, S.SO_TYPE), s.getsockopt(S.SOL_SOCKET, S.SO_DOMAIN),
                s.getsockopt(S.SOL_SOCKET, S.SO_PROTOCOL))


@per_kind(list(KINDS), "attributes")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        return (s.family, s.type, s.proto, s.timeout, s.gettimeout(), s.getblocking())


@per_kind(list(KINDS), "timeout_attribute_follows_settimeout")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        s.settimeout(2.5)
        first = s.timeout
        s.setblocking(False)
        return first, s.timeout, s.getblocking()


@per_kind(list(KINDS), "getsockname_unbound")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        return s.getsockname()


@per_kind(list(KINDS), "getpeername_unconnected")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        return err(s.getpeername)


@per_kind(list(KINDS), "so_error_fresh")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        return s.getsockopt(S.SOL_SOCKET, S.SO_ERROR)


@per_kind(list(KINDS), "so_acceptconn_fresh")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        return s.getsockopt(S.SOL_SOCKET, S.SO_ACCEPTCONN)


@per_kind(list(KINDS), "reuseaddr_reads_back_as_flag")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        before = s.getsockopt(S.SOL_SOCKET, S.SO_REUSEADDR)
        s.setsockopt(S.SOL_SOCKET, S.SO_REUSEADDR, 5)
        return before, s.getsockopt(S.SOL_SOCKET, S.SO_REUSEADDR)


@per_kind(list(KINDS), "reuseport_settable")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        return err(lambda: s.setsockopt(S.SOL_SOCKET, S.SO_REUSEPORT, 1)), \
            s.getsockopt(S.SOL_SOCKET, S.SO_REUSEPORT)


@per_kind(list(KINDS), "unknown_sockopt_level")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        return err(lambda: s.getsockopt(S.SOL_SOCKET, 9999)), \
            err(lambda: s.setsockopt(S.SOL_SOCKET, 9999, 1))


@per_kind(list(KINDS), "tcp_nodelay_level")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        return err(lambda: s.setsockopt(S.IPPROTO_TCP, S.TCP_NODELAY, 1)), \
            err(lambda: s.getsockopt(S.IPPROTO_TCP, S.TCP_NODELAY))


@per_kind(list(KINDS), "keepalive_reads_back")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        s.setsockopt(S.SOL_SOCKET, S.SO_KEEPALIVE, 7)
        return s.getsockopt(S.SOL_SOCKET, S.SO_KEEPALIVE)


@per_kind(list(KINDS), "getsockopt_buflen_bytes")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        s.setsockopt(S.SOL_SOCKET, S.SO_KEEPALIVE, 1)
        return s.getsockopt(S.SOL_SOCKET, S.SO_KEEPALIVE, 4)


@per_kind(list(KINDS), "ops_after_close")
def _(S: Any, path: Paths, kind: str) -> Any:
    s = new(S, kind)
    s.close()
    s.close()  # twice is fine
    return (s.fileno(), err(lambda: s.getsockname()), err(lambda: s.send(b"x")),
            err(lambda: s.bind(local(kind, path))), err(lambda: s.settimeout(1)),
            "[closed]" in repr(s))


@per_kind(list(KINDS), "bind_twice")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        s.bind(local(kind, path, "b1"))
        return err(lambda: s.bind(local(kind, path, "b2")))


@per_kind(list(KINDS), "bind_then_getsockname_shape")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        s.bind(local(kind, path))
        name = s.getsockname()
        return shape(name) if not isinstance(name, str) else os.path.basename(name)


@per_kind(list(KINDS), "inheritable")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        before = s.get_inheritable()
        s.set_inheritable(True)
        middle = s.get_inheritable()
        s.set_inheritable(False)
        return before, middle, s.get_inheritable()


@per_kind(list(KINDS), "dup_is_independent")
def _(S: Any, path: Paths, kind: str) -> Any:
    s = new(S, kind)
    s.bind(local(kind, path))
    d = s.dup()
    same = d.getsockname() == s.getsockname()
    s.close()
    alive = d.getsockname() is not None
    kinds = (d.family, d.type, type(d).__name__)
    d.close()
    return same, alive, kinds, d.fileno()


@per_kind(list(KINDS), "detach_returns_descriptor")
def _(S: Any, path: Paths, kind: str) -> Any:
    s = new(S, kind)
    fd = s.fileno()
    detached = s.detach()
    again = S.socket(fileno=detached)
    result = (detached == fd, s.fileno(), again.family, again.type)
    again.close()
    return result


@per_kind(list(KINDS), "shutdown_bad_how")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        return err(lambda: s.shutdown(7)), err(lambda: s.shutdown(2**31)), \
            err(lambda: s.shutdown("x"))


@per_kind(list(KINDS), "shutdown_unconnected")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        return err(lambda: s.shutdown(S.SHUT_RDWR))


@per_kind(["udp4", "udp6"], "shutdown_connected_datagram_socket")
def _(S: Any, path: Paths, kind: str) -> Any:
    def after_shutdown(how: int) -> tuple[Any, ...]:
        a, b = dgram_pair(S, kind, path)
        with a, b:
            a.settimeout(1.0)
            a.shutdown(how)
            sent = err(lambda: a.send(b"x"))
            b.send(b"y")
            queued = a.recv(10)  # what arrived is still read after SHUT_RD
            a.setblocking(False)
            return how, sent, queued, err(lambda: a.recv(10))  # and no EOF: EAGAIN

    out: list[tuple[Any, ...]] = [after_shutdown(how)
                                  for how in (S.SHUT_RD, S.SHUT_WR, S.SHUT_RDWR)]
    a, b = dgram_pair(S, kind, path)
    with a, b:
        out.append(("MSG_OOB", err(lambda: a.send(b"x", S.MSG_OOB)),
                    err(lambda: a.sendto(b"x", S.MSG_OOB, b.getsockname()))))
    return out


@per_kind(list(KINDS), "recv_nonblocking_fresh")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        s.setblocking(False)
        return err(lambda: s.recv(10))


@per_kind(list(KINDS), "recv_negative")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        try:
            s.recv(-1)
        except ValueError as exc:
            return str(exc)
        return None


@per_kind(list(KINDS), "send_str_type_error")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        try:
            s.send("text")
        except TypeError as exc:
            return str(exc)
        return None


@per_kind(list(KINDS), "settimeout_checks")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        out = []
        for value in (-1, float("nan"), "x", 1e300):
            try:
                s.settimeout(value)
                out.append("ok")
            except Exception as exc:  # noqa: BLE001
                out.append(f"{type(exc).__name__}: {exc}")
        return out


@per_kind(list(KINDS), "send_on_fresh")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        return err(lambda: s.send(b"x"))


@per_kind(list(KINDS), "connect_to_nothing")
def _(S: Any, path: Paths, kind: str) -> Any:
    probe_sock = new(S, kind)
    probe_sock.bind(local(kind, path, "gone"))
    address = probe_sock.getsockname()
    probe_sock.close()
    if KINDS[kind][0] == AF_UNIX:
        address = path("never-bound")
    with new(S, kind) as s:
        s.settimeout(10)
        return err(lambda: s.connect(address))


@per_kind(list(KINDS), "repr_shape")
def _(S: Any, path: Paths, kind: str) -> Any:
    import re

    with new(S, kind) as s:
        text = re.sub(r"fd=\d+", "fd=N", repr(s)).replace(" [simulated]", "")
        return re.sub(r"\d{4,5}\)", "PORT)", text)


@per_kind(list(KINDS), "resource_warning_on_gc")
def _(S: Any, path: Paths, kind: str) -> Any:
    s = new(S, kind)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del s
        # The simulation's kernel keeps the main thread's last call frame (for its
        # stall watchdog) until the next call: one more call lets the socket go.
        S.getdefaulttimeout()
        new(S, kind).close()
        gc.collect()
    return [(w.category.__name__, str(w.message).split(" ")[0]) for w in caught]


# -- connected pairs, per kind ------------------------------------------------------


@per_kind(list(KINDS), "echo")
def _(S: Any, path: Paths, kind: str) -> Any:
    a, b = pair(S, kind, path)
    with a, b:
        a.sendall(b"hello")
        got = recv_all(b, 5) if kind in STREAMS else b.recv(100)
        return got


@per_kind(list(KINDS), "sendmsg_recvmsg")
def _(S: Any, path: Paths, kind: str) -> Any:
    a, b = pair(S, kind, path)
    with a, b:
        sent = a.sendmsg([b"ab", b"cd", memoryview(b"ef")])
        data, ancdata, flags, address = b.recvmsg(100)
        return sent, data, ancdata, flags, type(address).__name__


@per_kind(list(KINDS), "recvmsg_into")
def _(S: Any, path: Paths, kind: str) -> Any:
    a, b = pair(S, kind, path)
    with a, b:
        a.sendall(b"abcdef")
        first, second = bytearray(2), bytearray(10)
        if kind in STREAMS:
            recv_all(b, 0)
        count, ancdata, flags, _ = b.recvmsg_into([first, second])
        if kind in STREAMS and count < 6:
            rest = recv_all(b, 6 - count)
            return bytes(first) + bytes(second[: count - 2]) + rest, ancdata
        return count, bytes(first), bytes(second[: count - 2]), ancdata, flags


@per_kind(list(KINDS), "recvmsg_negative")
def _(S: Any, path: Paths, kind: str) -> Any:
    a, b = pair(S, kind, path)
    with a, b:
        return err(lambda: b.recvmsg(-1)), err(lambda: b.recvmsg(10, -1))


@per_kind(list(KINDS), "msg_peek")
def _(S: Any, path: Paths, kind: str) -> Any:
    a, b = pair(S, kind, path)
    with a, b:
        a.sendall(b"peekaboo")
        if kind in STREAMS:
            peeked = b""
            while len(peeked) < 8:
                peeked = b.recv(8, S.MSG_PEEK)
        else:
            peeked = b.recv(8, S.MSG_PEEK)
        return peeked, recv_all(b, 8) if kind in STREAMS else b.recv(8)


@per_kind(list(KINDS), "dontwait_empty")
def _(S: Any, path: Paths, kind: str) -> Any:
    a, b = pair(S, kind, path)
    with a, b:
        b.settimeout(None)
        return err(lambda: b.recv(10, S.MSG_DONTWAIT))


@per_kind(list(KINDS), "getpeername_connected_shape")
def _(S: Any, path: Paths, kind: str) -> Any:
    a, b = pair(S, kind, path)
    with a, b:
        name = a.getpeername()
        return shape(name) if not isinstance(name, str) else os.path.basename(name)


@per_kind(list(KINDS), "recv_timeout")
def _(S: Any, path: Paths, kind: str) -> Any:
    a, b = pair(S, kind, path)
    with a, b:
        b.settimeout(0.05)
        try:
            b.recv(10)
        except TimeoutError as exc:
            return type(exc).__name__, str(exc)
        return None


@per_kind(list(KINDS), "recv_into_sizes")
def _(S: Any, path: Paths, kind: str) -> Any:
    a, b = pair(S, kind, path)
    with a, b:
        buf = bytearray(4)
        return err(lambda: b.recv_into(buf, 10)), err(lambda: b.recv_into(buf, -1))


@per_kind(list(KINDS), "makefile_roundtrip")
def _(S: Any, path: Paths, kind: str) -> Any:
    if kind in DGRAMS:
        return "n/a"
    a, b = pair(S, kind, path)
    with a, b:
        w, r = a.makefile("wb"), b.makefile("rb")
        w.write(b"line one\nline two\n")
        w.flush()
        lines = [r.readline(), r.readline()]
        w.close()
        r.close()
        return lines


# -- streams ----------------------------------------------------------------------


@per_kind(STREAMS, "half_close_eof")
def _(S: Any, path: Paths, kind: str) -> Any:
    c, s = pair(S, kind, path)
    with c, s:
        c.sendall(b"req")
        c.shutdown(S.SHUT_WR)
        got = recv_all(s, 10)
        s.sendall(b"resp")
        return got, recv_all(c, 4), err(lambda: c.send(b"more"))


@per_kind(STREAMS, "send_after_peer_close")
def _(S: Any, path: Paths, kind: str) -> Any:
    import time

    c, s = pair(S, kind, path)
    s.close()
    out = []
    for _ in range(3):
        time.sleep(0.05)
        out.append(err(lambda: c.send(b"x" * 10)))
    out.append(c.recv(10))
    c.close()
    return out


@per_kind(STREAMS, "recv_after_reset_in_close_wait")
def _(S: Any, path: Paths, kind: str) -> Any:
    import time

    c, s = pair(S, kind, path)
    s.close()
    out = [c.recv(10), err(lambda: c.sendall(b"into the void"))]
    time.sleep(0.05)
    out += [err(lambda: c.recv(10)), err(lambda: c.recv(10)), err(lambda: c.send(b"x"))]
    c.close()
    return out


@per_kind(STREAMS, "send_after_own_shutdown")
def _(S: Any, path: Paths, kind: str) -> Any:
    c, s = pair(S, kind, path)
    with c, s:
        c.shutdown(S.SHUT_WR)
        return err(lambda: c.send(b"x")), err(lambda: c.sendall(b"x"))


@per_kind(STREAMS, "msg_waitall")
def _(S: Any, path: Paths, kind: str) -> Any:
    import threading
    import time

    c, s = pair(S, kind, path)
    with c, s:
        # Only b"ab" is there when the first recv runs (written before it, not by the
        # thread: under load the thread could write all six bytes first, and the
        # blocking recv below would then wait forever).
        c.sendall(b"ab")
        data = s.recv(6, S.MSG_WAITALL)  # a timeout: the descriptor is non-blocking

        def writer() -> None:
            for part in (b"cd", b"ef"):
                c.sendall(part)
                time.sleep(0.02)

        t = threading.Thread(target=writer)
        t.start()
        s.settimeout(None)
        data += b"|" + s.recv(4, S.MSG_WAITALL)  # blocking: waits for both parts
        t.join()
        return data


@per_kind(STREAMS, "msg_waitall_eof_short")
def _(S: Any, path: Paths, kind: str) -> Any:
    c, s = pair(S, kind, path)
    with c, s:
        c.sendall(b"abc")
        c.shutdown(S.SHUT_WR)
        return s.recv(10, S.MSG_WAITALL)


@per_kind(STREAMS, "msg_oob_recv_without_urgent")
def _(S: Any, path: Paths, kind: str) -> Any:
    c, s = pair(S, kind, path)
    with c, s:
        s.setblocking(False)
        return err(lambda: s.recv(1, S.MSG_OOB))


@per_kind(STREAMS, "listen_then_connect_on_listener")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        s.bind(local(kind, path))
        s.listen()
        return err(lambda: s.connect(s.getsockname())), \
            s.getsockopt(S.SOL_SOCKET, S.SO_ACCEPTCONN)


@per_kind(STREAMS, "listen_backlog_checks")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        s.bind(local(kind, path))
        out = []
        for backlog in (-5, 0, 2**31, "x"):
            try:
                s.listen(backlog)
                out.append("ok")
            except Exception as exc:  # noqa: BLE001
                out.append(f"{type(exc).__name__}: {exc}")
        return out


@per_kind(STREAMS, "accept_nonblocking_empty")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        s.bind(local(kind, path))
        s.listen()
        s.setblocking(False)
        return err(s.accept)


@per_kind(STREAMS, "accept_on_unlistened")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        return err(s.accept)


@per_kind(STREAMS, "connect_twice")
def _(S: Any, path: Paths, kind: str) -> Any:
    c, s, listener = stream_pair(S, kind, path)
    with c, s, listener:
        return err(lambda: c.connect(listener.getsockname())), \
            c.connect_ex(listener.getsockname())


@per_kind(STREAMS, "accepted_inherits_nothing")
def _(S: Any, path: Paths, kind: str) -> Any:
    listener = new(S, kind)
    listener.bind(local(kind, path))
    listener.listen()
    listener.settimeout(5)
    c = new(S, kind)
    c.connect(listener.getsockname())
    conn, _ = listener.accept()
    result = conn.gettimeout(), conn.getblocking(), conn.timeout
    for sock in (c, conn, listener):
        sock.close()
    return result


@per_kind(STREAMS, "sendto_on_connected_stream")
def _(S: Any, path: Paths, kind: str) -> Any:
    c, s = pair(S, kind, path)
    with c, s:
        n = c.sendto(b"xy", local(kind, path, "ignored"))
        return n, recv_all(s, 2)


@per_kind(STREAMS, "sendto_on_unconnected_stream")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        return err(lambda: s.sendto(b"xy", local(kind, path, "nobody")))


@per_kind(STREAMS, "recv_fresh_blocking")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        return err(lambda: s.recv(1))


@per_kind(STREAMS, "sendfile")
def _(S: Any, path: Paths, kind: str) -> Any:
    c, s = pair(S, kind, path)
    with c, s, tempfile.TemporaryFile() as f:
        f.write(b"0123456789" * 100)
        f.seek(0)
        sent = c.sendfile(f, offset=5, count=500)
        return sent, f.tell(), recv_all(s, 500) == (b"0123456789" * 100)[5:505]


@per_kind(STREAMS, "reset_by_linger_zero")
def _(S: Any, path: Paths, kind: str) -> Any:
    import struct
    import time

    c, s = pair(S, kind, path)
    s.setsockopt(S.SOL_SOCKET, S.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    time.sleep(0.05)
    out = [err(lambda: c.recv(10)), c.recv(10), err(lambda: c.send(b"x"))]
    c.close()
    return out


@per_kind(STREAMS, "close_with_unread_data_resets")
def _(S: Any, path: Paths, kind: str) -> Any:
    import time

    c, s = pair(S, kind, path)
    c.sendall(b"unread")
    time.sleep(0.05)
    s.close()
    time.sleep(0.05)
    out = [err(lambda: c.recv(10))]
    c.close()
    return out


@per_kind(STREAMS, "shutdown_rd_then_recv")
def _(S: Any, path: Paths, kind: str) -> Any:
    c, s = pair(S, kind, path)
    with c, s:
        s.shutdown(S.SHUT_RD)
        return s.recv(10)


@per_kind(STREAMS, "shutdown_after_peer_close")
def _(S: Any, path: Paths, kind: str) -> Any:
    import time

    c, s = pair(S, kind, path)
    s.close()
    time.sleep(0.05)
    result = err(lambda: c.shutdown(S.SHUT_RDWR))
    c.close()
    return result


# -- datagrams --------------------------------------------------------------------


@per_kind(DGRAMS, "listen_on_datagram")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        return err(s.listen), err(s.accept)


@per_kind(DGRAMS, "truncated_by_short_buffer")
def _(S: Any, path: Paths, kind: str) -> Any:
    a, b = dgram_pair(S, kind, path)
    with a, b:
        a.send(b"0123456789")
        a.send(b"abc")
        return b.recv(4), b.recv(100)


@per_kind(DGRAMS, "recvmsg_trunc_flag")
def _(S: Any, path: Paths, kind: str) -> Any:
    a, b = dgram_pair(S, kind, path)
    with a, b:
        a.send(b"0123456789")
        data, _, flags, _ = b.recvmsg(4)
        return data, bool(flags & S.MSG_TRUNC)


@per_kind(DGRAMS, "recv_into_msg_trunc_length")
def _(S: Any, path: Paths, kind: str) -> Any:
    a, b = dgram_pair(S, kind, path)
    with a, b:
        a.send(b"0123456789")
        buf = bytearray(4)
        return b.recv_into(buf, 4, S.MSG_TRUNC), bytes(buf)


@per_kind(DGRAMS, "datagram_boundaries")
def _(S: Any, path: Paths, kind: str) -> Any:
    a, b = dgram_pair(S, kind, path)
    with a, b:
        for part in (b"one", b"", b"three"):
            a.send(part)
        return [b.recv(100) for _ in range(3)]


@per_kind(DGRAMS, "send_unconnected_dgram")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        return err(lambda: s.send(b"x"))


@per_kind(DGRAMS, "recvfrom_sender_shape")
def _(S: Any, path: Paths, kind: str) -> Any:
    a, b = dgram_pair(S, kind, path)
    with a, b:
        a.send(b"x")
        data, address = b.recvfrom(10)
        return data, shape(address) if not isinstance(address, str) else os.path.basename(address)


@per_kind(DGRAMS, "recvfrom_into")
def _(S: Any, path: Paths, kind: str) -> Any:
    a, b = dgram_pair(S, kind, path)
    with a, b:
        a.send(b"abcdef")
        buf = bytearray(10)
        n, _ = b.recvfrom_into(buf)
        return n, bytes(buf[:n])


@per_kind(DGRAMS, "oversize_datagram")
def _(S: Any, path: Paths, kind: str) -> Any:
    a, b = dgram_pair(S, kind, path)
    with a, b:
        if KINDS[kind][0] == AF_UNIX:
            return "n/a"  # Unix datagram limits follow the send buffer
        return err(lambda: a.send(b"x" * 70000))


@per_kind(DGRAMS, "datagram_larger_than_rcvbuf_on_empty_queue")
def _(S: Any, path: Paths, kind: str) -> Any:
    if KINDS[kind][0] == AF_UNIX:
        return "n/a"
    a, b = dgram_pair(S, kind, path)
    with a, b:
        b.setsockopt(S.SOL_SOCKET, S.SO_RCVBUF, 1024)  # Linux: 2304, its minimum
        a.send(b"x" * 8000)
        b.settimeout(0.2)
        try:
            return len(b.recv(10000))
        except TimeoutError:
            return "dropped"


@per_kind(DGRAMS, "connected_dgram_filters_other_senders")
def _(S: Any, path: Paths, kind: str) -> Any:
    a, b = dgram_pair(S, kind, path)
    other = new(S, kind)
    other.bind(local(kind, path, "other"))
    with a, b, other:
        other.sendto(b"stranger", a.getsockname())
        b.send(b"peer")
        return a.recv(100)


@per_kind(DGRAMS, "sendmsg_with_address")
def _(S: Any, path: Paths, kind: str) -> Any:
    r = new(S, kind)
    r.bind(local(kind, path, "receiver"))
    s = new(S, kind)
    if KINDS[kind][0] == AF_UNIX:
        s.bind(path("sender"))
    with r, s:
        r.settimeout(10)
        n = s.sendmsg([b"to", b"you"], [], 0, r.getsockname())
        return n, r.recv(100)


# -- specific behaviours -------------------------------------------------------------


@probe("udp4_port_unreachable_on_connected")
def _(S: Any, path: Paths) -> Any:
    import time

    gone = S.socket(S.AF_INET, S.SOCK_DGRAM)
    gone.bind(("127.0.0.1", 0))
    address = gone.getsockname()
    gone.close()
    with S.socket(S.AF_INET, S.SOCK_DGRAM) as s:
        s.connect(address)
        s.send(b"x")
        time.sleep(0.05)
        return err(lambda: s.recv(10))


@probe("udp4_sendto_unbound_autobinds_wildcard")
def _(S: Any, path: Paths) -> Any:
    r = S.socket(S.AF_INET, S.SOCK_DGRAM)
    r.bind(("127.0.0.1", 0))
    with r, S.socket(S.AF_INET, S.SOCK_DGRAM) as s:
        s.sendto(b"x", r.getsockname())
        return shape(s.getsockname())


@probe("udp4_connect_pins_source")
def _(S: Any, path: Paths) -> Any:
    with S.socket(S.AF_INET, S.SOCK_DGRAM) as s:
        s.connect(("127.0.0.1", 9))
        return shape(s.getsockname())


@probe("tcp4_connect_autobinds_loopback")
def _(S: Any, path: Paths) -> Any:
    c, s, listener = stream_pair(S, "tcp4", path)
    with c, s, listener:
        return shape(c.getsockname()), shape(s.getsockname())


@probe("tcp4_rebind_after_close_without_reuseaddr")
def _(S: Any, path: Paths) -> Any:
    c, s, listener = stream_pair(S, "tcp4", path)
    address = listener.getsockname()
    s.close()  # the server closes first: its side keeps TIME_WAIT
    c.close()
    listener.close()
    with S.socket() as again:
        return err(lambda: again.bind(address))


@probe("tcp4_rebind_after_close_with_reuseaddr")
def _(S: Any, path: Paths) -> Any:
    c, s, listener = stream_pair(S, "tcp4", path)
    address = listener.getsockname()
    s.close()
    c.close()
    listener.close()
    with S.socket() as again:
        again.setsockopt(S.SOL_SOCKET, S.SO_REUSEADDR, 1)
        return err(lambda: again.bind(address))


@probe("tcp4_bind_in_use")
def _(S: Any, path: Paths) -> Any:
    with S.socket() as a, S.socket() as b:
        a.bind(("127.0.0.1", 0))
        a.listen()
        return err(lambda: b.bind(a.getsockname()))


@probe("tcp4_bind_in_use_both_reuseaddr_listening")
def _(S: Any, path: Paths) -> Any:
    with S.socket() as a, S.socket() as b:
        for s in (a, b):
            s.setsockopt(S.SOL_SOCKET, S.SO_REUSEADDR, 1)
        a.bind(("127.0.0.1", 0))
        a.listen()
        return err(lambda: b.bind(a.getsockname()))


@probe("tcp4_bind_both_reuseaddr_not_listening")
def _(S: Any, path: Paths) -> Any:
    with S.socket() as a, S.socket() as b:
        for s in (a, b):
            s.setsockopt(S.SOL_SOCKET, S.SO_REUSEADDR, 1)
        a.bind(("127.0.0.1", 0))
        return err(lambda: b.bind(a.getsockname()))


@probe("tcp4_reuseport_both")
def _(S: Any, path: Paths) -> Any:
    with S.socket() as a, S.socket() as b:
        for s in (a, b):
            s.setsockopt(S.SOL_SOCKET, S.SO_REUSEPORT, 1)
        a.bind(("127.0.0.1", 0))
        a.listen()
        b_result = err(lambda: b.bind(a.getsockname()))
        return b_result, err(b.listen)


@probe("udp4_reuseaddr_both_bind")
def _(S: Any, path: Paths) -> Any:
    with S.socket(S.AF_INET, S.SOCK_DGRAM) as a, S.socket(S.AF_INET, S.SOCK_DGRAM) as b:
        for s in (a, b):
            s.setsockopt(S.SOL_SOCKET, S.SO_REUSEADDR, 1)
        a.bind(("127.0.0.1", 0))
        return err(lambda: b.bind(a.getsockname()))


@probe("tcp4_bind_wildcard_after_specific")
def _(S: Any, path: Paths) -> Any:
    with S.socket() as a, S.socket() as b:
        a.bind(("127.0.0.1", 0))
        return err(lambda: b.bind(("0.0.0.0", a.getsockname()[1])))


@probe("tcp4_bind_foreign_address")
def _(S: Any, path: Paths) -> Any:
    with S.socket() as a:
        return err(lambda: a.bind(("192.0.2.1", 0)))


@probe("tcp4_bind_bad_port")
def _(S: Any, path: Paths) -> Any:
    with S.socket() as a:
        try:
            a.bind(("127.0.0.1", 70000))
        except OverflowError as exc:
            return str(exc)
        return None


@probe("tcp4_bind_wrong_tuple")
def _(S: Any, path: Paths) -> Any:
    with S.socket() as a:
        out = []
        for address in (("127.0.0.1",), "127.0.0.1", ("127.0.0.1", "80"), ("::1", 0)):
            try:
                a.bind(address)
                out.append("ok")
            except Exception as exc:  # noqa: BLE001
                out.append(f"{type(exc).__name__}: {exc}")
        return out


@probe("tcp6_bind_flowinfo_range")
def _(S: Any, path: Paths) -> Any:
    with S.socket(S.AF_INET6) as a:
        try:
            a.bind(("::1", 0, 2**20, 0))
        except OverflowError as exc:
            return str(exc)
        return None


@probe("tcp6_bind_ipv4_address")
def _(S: Any, path: Paths) -> Any:
    with S.socket(S.AF_INET6) as a:
        return err(lambda: a.bind(("127.0.0.1", 0)))


@probe("tcp6_v6only_default")
def _(S: Any, path: Paths) -> Any:
    with S.socket(S.AF_INET6) as a:
        return a.getsockopt(S.IPPROTO_IPV6, S.IPV6_V6ONLY)


@probe("tcp4_v6only_on_ipv4")
def _(S: Any, path: Paths) -> Any:
    with S.socket() as a:
        return err(lambda: a.getsockopt(S.IPPROTO_IPV6, S.IPV6_V6ONLY))


@probe("tcp6_dual_stack_accepts_ipv4")
def _(S: Any, path: Paths) -> Any:
    with S.socket(S.AF_INET6) as server:
        server.setsockopt(S.IPPROTO_IPV6, S.IPV6_V6ONLY, 0)
        server.bind(("::", 0))
        server.listen()
        port = server.getsockname()[1]
        with S.create_connection(("127.0.0.1", port), timeout=10) as c:
            conn, address = server.accept()
            with conn:
                c.sendall(b"v4")
                return shape(address), shape(conn.getsockname()), recv_all(conn, 2)


@probe("tcp6_v6only_refuses_ipv4")
def _(S: Any, path: Paths) -> Any:
    with S.socket(S.AF_INET6) as server:
        server.setsockopt(S.IPPROTO_IPV6, S.IPV6_V6ONLY, 1)
        server.bind(("::", 0))
        server.listen()
        port = server.getsockname()[1]
        with S.socket() as c:
            c.settimeout(10)
            return err(lambda: c.connect(("127.0.0.1", port)))


@probe("tcp6_dual_stack_bind_conflicts_with_ipv4")
def _(S: Any, path: Paths) -> Any:
    with S.socket(S.AF_INET6) as server, S.socket() as v4:
        server.setsockopt(S.IPPROTO_IPV6, S.IPV6_V6ONLY, 0)
        server.bind(("::", 0))
        return err(lambda: v4.bind(("127.0.0.1", server.getsockname()[1])))


@probe("tcp6_v6only_bind_beside_ipv4")
def _(S: Any, path: Paths) -> Any:
    with S.socket(S.AF_INET6) as server, S.socket() as v4:
        server.setsockopt(S.IPPROTO_IPV6, S.IPV6_V6ONLY, 1)
        server.bind(("::", 0))
        return err(lambda: v4.bind(("127.0.0.1", server.getsockname()[1])))


@probe("udp6_dual_stack_receives_ipv4")
def _(S: Any, path: Paths) -> Any:
    with S.socket(S.AF_INET6, S.SOCK_DGRAM) as r, S.socket(S.AF_INET, S.SOCK_DGRAM) as s:
        r.setsockopt(S.IPPROTO_IPV6, S.IPV6_V6ONLY, 0)
        r.bind(("::", 0))
        r.settimeout(10)
        s.settimeout(10)
        s.sendto(b"hi", ("127.0.0.1", r.getsockname()[1]))
        data, address = r.recvfrom(10)
        r.sendto(b"back", address)
        return data, shape(address), s.recv(10)


@probe("create_server_dualstack")
def _(S: Any, path: Paths) -> Any:
    with S.create_server(("", 0), family=S.AF_INET6, dualstack_ipv6=True) as server:
        port = server.getsockname()[1]
        out = []
        for host in ("127.0.0.1", "::1"):
            with S.create_connection((host, port), timeout=10):
                conn, address = server.accept()
                conn.close()
                out.append(shape(address))
        return out


@probe("create_server_ipv6_default_v6only")
def _(S: Any, path: Paths) -> Any:
    with S.create_server(("::", 0), family=S.AF_INET6) as server:
        return server.getsockopt(S.IPPROTO_IPV6, S.IPV6_V6ONLY)


@probe("sockfake_dual_stack_server")
def _(S: Any, path: Paths) -> Any:
    import threading

    import sockfake

    class Handler(sockfake.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(self.rfile.readline().upper())

    class Server(sockfake.ThreadingTCPServer):
        address_family = S.AF_INET6
        dual_stack = True

    with Server(("::", 0), Handler) as server:
        t = threading.Thread(target=server.serve_forever)
        t.start()
        try:
            port = server.server_address[1]
            with S.create_connection(("127.0.0.1", port), timeout=10) as c:
                c.sendall(b"ping\n")
                reply = c.makefile("rb").readline()
        finally:
            server.shutdown()
            t.join()
        return reply


@probe("sockopt_defaults")
def _(S: Any, path: Paths) -> Any:
    out = {}
    with S.socket() as t, S.socket(S.AF_INET, S.SOCK_DGRAM) as u, S.socket(S.AF_INET6) as t6:
        out["SO_RCVLOWAT"] = t.getsockopt(S.SOL_SOCKET, S.SO_RCVLOWAT)
        out["SO_SNDLOWAT"] = t.getsockopt(S.SOL_SOCKET, S.SO_SNDLOWAT)
        out["IP_TTL"] = t.getsockopt(S.IPPROTO_IP, S.IP_TTL)
        out["IP_TOS"] = t.getsockopt(S.IPPROTO_IP, S.IP_TOS)
        out["TCP_KEEPIDLE"] = t.getsockopt(S.IPPROTO_TCP, S.TCP_KEEPIDLE)
        out["TCP_KEEPINTVL"] = t.getsockopt(S.IPPROTO_TCP, S.TCP_KEEPINTVL)
        out["TCP_KEEPCNT"] = t.getsockopt(S.IPPROTO_TCP, S.TCP_KEEPCNT)
        out["TCP_NODELAY"] = t.getsockopt(S.IPPROTO_TCP, S.TCP_NODELAY)
        out["SO_BROADCAST"] = u.getsockopt(S.SOL_SOCKET, S.SO_BROADCAST)
        out["IP_MULTICAST_TTL"] = u.getsockopt(S.IPPROTO_IP, S.IP_MULTICAST_TTL)
        out["IP_MULTICAST_LOOP"] = u.getsockopt(S.IPPROTO_IP, S.IP_MULTICAST_LOOP)
        out["IPV6_UNICAST_HOPS"] = t6.getsockopt(S.IPPROTO_IPV6, S.IPV6_UNICAST_HOPS)
        out["SO_LINGER"] = t.getsockopt(S.SOL_SOCKET, S.SO_LINGER, 8)
        out["SO_OOBINLINE"] = t.getsockopt(S.SOL_SOCKET, S.SO_OOBINLINE)
    return out


@probe("sockopt_set_and_read_back")
def _(S: Any, path: Paths) -> Any:
    with S.socket() as t:
        t.setsockopt(S.IPPROTO_IP, S.IP_TTL, 7)
        t.setsockopt(S.IPPROTO_TCP, S.TCP_KEEPIDLE, 30)
        t.setsockopt(S.IPPROTO_TCP, S.TCP_NODELAY, 9)
        return (t.getsockopt(S.IPPROTO_IP, S.IP_TTL), t.getsockopt(S.IPPROTO_TCP, S.TCP_KEEPIDLE),
                t.getsockopt(S.IPPROTO_TCP, S.TCP_NODELAY))


@probe("sockopt_ipv4_option_on_unix")
def _(S: Any, path: Paths) -> Any:
    with S.socket(S.AF_UNIX) as u:
        return err(lambda: u.setsockopt(S.IPPROTO_IP, S.IP_TTL, 5)), \
            err(lambda: u.getsockopt(S.IPPROTO_IP, S.IP_TTL))


@probe("sockopt_linger_bad_value")
def _(S: Any, path: Paths) -> Any:
    with S.socket() as t:
        return err(lambda: t.setsockopt(S.SOL_SOCKET, S.SO_LINGER, b"\0\0"))


@probe("sockopt_so_error_read_only")
def _(S: Any, path: Paths) -> Any:
    with S.socket() as t:
        return err(lambda: t.setsockopt(S.SOL_SOCKET, S.SO_ERROR, 1)), \
            err(lambda: t.setsockopt(S.SOL_SOCKET, S.SO_TYPE, 1))


@probe("sockopt_bad_value_type")
def _(S: Any, path: Paths) -> Any:
    with S.socket() as t:
        try:
            t.setsockopt(S.SOL_SOCKET, S.SO_REUSEADDR, "yes")
        except TypeError as exc:
            return str(exc)
        return None


@probe("socket_bad_family")
def _(S: Any, path: Paths) -> Any:
    return err(lambda: S.socket(12345, S.SOCK_STREAM))


@probe("socket_bad_type")
def _(S: Any, path: Paths) -> Any:
    return err(lambda: S.socket(S.AF_INET, 12345))


@probe("socket_nonblock_flag")
def _(S: Any, path: Paths) -> Any:
    with S.socket(S.AF_INET, S.SOCK_STREAM | S.SOCK_NONBLOCK) as s:
        return s.type, s.getblocking(), s.timeout


@probe("socket_cloexec_flag")
def _(S: Any, path: Paths) -> Any:
    with S.socket(S.AF_INET, S.SOCK_STREAM | S.SOCK_CLOEXEC) as s:
        return s.type, s.get_inheritable()


@probe("default_timeout_applies")
def _(S: Any, path: Paths) -> Any:
    old = S.getdefaulttimeout()
    S.setdefaulttimeout(3.0)
    try:
        with S.socket() as s:
            return s.gettimeout(), s.timeout
    finally:
        S.setdefaulttimeout(old)


@probe("connect_ex_refused")
def _(S: Any, path: Paths) -> Any:
    gone = S.socket()
    gone.bind(("127.0.0.1", 0))
    address = gone.getsockname()
    gone.close()
    with S.socket() as s:
        return errno.errorcode[s.connect_ex(address)]


@probe("connect_nonblocking_in_progress")
def _(S: Any, path: Paths) -> Any:
    import select

    with S.socket() as listener, S.socket() as c:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        c.setblocking(False)
        first = errno.errorcode.get(c.connect_ex(listener.getsockname()), "0")
        select.select([], [c], [], 5)
        return first, c.getsockopt(S.SOL_SOCKET, S.SO_ERROR), \
            errno.errorcode.get(c.connect_ex(listener.getsockname()), "0")


@probe("create_connection_refused")
def _(S: Any, path: Paths) -> Any:
    gone = S.socket()
    gone.bind(("127.0.0.1", 0))
    address = gone.getsockname()
    gone.close()
    return err(lambda: S.create_connection(address, timeout=5))


@probe("socketpair_default")
def _(S: Any, path: Paths) -> Any:
    a, b = S.socketpair()
    with a, b:
        a.sendall(b"pair")
        return a.family, a.type, recv_all(b, 4), a.getsockname(), b.getpeername()


@probe("socketpair_dgram")
def _(S: Any, path: Paths) -> Any:
    a, b = S.socketpair(S.AF_UNIX, S.SOCK_DGRAM)
    with a, b:
        a.send(b"one")
        a.send(b"two")
        return b.recv(10), b.recv(10)


@probe("unix_bind_path_too_long")
def _(S: Any, path: Paths) -> Any:
    with S.socket(S.AF_UNIX) as s:
        try:
            s.bind("/tmp/" + "x" * 120)
        except OSError as exc:
            return type(exc).__name__, exc.errno, str(exc)
        return None


@probe("unix_bind_108_bytes")
def _(S: Any, path: Paths) -> Any:
    with S.socket(S.AF_UNIX) as s:
        try:
            s.bind("/tmp/" + "y" * 103)
        except OSError as exc:
            return type(exc).__name__, exc.errno, str(exc)
        return None


@probe("unix_bind_in_use")
def _(S: Any, path: Paths) -> Any:
    with S.socket(S.AF_UNIX) as a, S.socket(S.AF_UNIX) as b:
        a.bind(path("s"))
        return err(lambda: b.bind(path("s")))


@probe("unix_autobind_abstract")
def _(S: Any, path: Paths) -> Any:
    with S.socket(S.AF_UNIX) as s:
        s.bind("")
        name = s.getsockname()
        return type(name).__name__, len(name), name[:1]


@probe("unix_abstract_names_are_bytes")
def _(S: Any, path: Paths) -> Any:
    name = b"\0sockfake-probe-%d" % os.getpid()
    with S.socket(S.AF_UNIX) as listener:
        listener.bind(name)
        listener.listen()
        with S.socket(S.AF_UNIX) as c:
            c.connect(name)
            conn, address = listener.accept()
            with conn:
                return listener.getsockname(), c.getpeername(), conn.getsockname(), address


@probe("unix_abstract_str_name")
def _(S: Any, path: Paths) -> Any:
    name = f"\0sockfake-probe-str-{os.getpid()}"
    with S.socket(S.AF_UNIX) as s:
        s.bind(name)
        return s.getsockname()


@probe("unix_connect_wrong_type")
def _(S: Any, path: Paths) -> Any:
    with S.socket(S.AF_UNIX, S.SOCK_DGRAM) as d, S.socket(S.AF_UNIX) as s:
        d.bind(path("d"))
        return err(lambda: s.connect(path("d")))


@probe("unix_stream_client_names")
def _(S: Any, path: Paths) -> Any:
    c, s, listener = stream_pair(S, "unix_stream", path)
    with c, s, listener:
        return c.getsockname(), s.getpeername(), os.path.basename(s.getsockname())


@probe("unix_dgram_unbound_sender")
def _(S: Any, path: Paths) -> Any:
    with S.socket(S.AF_UNIX, S.SOCK_DGRAM) as r, S.socket(S.AF_UNIX, S.SOCK_DGRAM) as s:
        r.bind(path("r"))
        r.settimeout(10)
        s.sendto(b"x", path("r"))
        return r.recvfrom(10), s.getsockname()


@probe("unix_dgram_sendto_nobody")
def _(S: Any, path: Paths) -> Any:
    with S.socket(S.AF_UNIX, S.SOCK_DGRAM) as s:
        return err(lambda: s.sendto(b"x", path("nobody")))


@probe("unix_bad_address_type")
def _(S: Any, path: Paths) -> Any:
    with S.socket(S.AF_UNIX) as s:
        try:
            s.bind(5)
        except TypeError as exc:
            return str(exc)
        return None


@probe("unix_bind_creates_file")
def _(S: Any, path: Paths) -> Any:
    with S.socket(S.AF_UNIX) as s:
        s.bind(path("file"))
        return os.path.exists(path("file"))


@probe("unix_socket_file_is_a_socket")
def _(S: Any, path: Paths) -> Any:
    with S.socket(S.AF_UNIX) as s:
        s.bind(path("file"))
        info = os.stat(path("file"))
        return stat.S_ISSOCK(info.st_mode), os.path.lexists(path("file")), info.st_size


@probe("unix_connect_after_unlink")
def _(S: Any, path: Paths) -> Any:
    with S.socket(S.AF_UNIX) as server, S.socket(S.AF_UNIX) as client:
        server.bind(path("gone"))
        server.listen()
        os.unlink(path("gone"))
        return err(lambda: client.connect(path("gone"))), os.path.exists(path("gone"))


@probe("unix_rebind_after_unlink_while_open")
def _(S: Any, path: Paths) -> Any:
    with S.socket(S.AF_UNIX) as old, S.socket(S.AF_UNIX) as new:
        old.bind(path("again"))
        os.unlink(path("again"))
        new.bind(path("again"))
        new.listen()
        with S.socket(S.AF_UNIX) as client:
            client.connect(path("again"))
            return new.accept()[0].getsockname() == old.getsockname() == path("again")


@probe("unix_connect_after_rename")
def _(S: Any, path: Paths) -> Any:
    with S.socket(S.AF_UNIX) as server, S.socket(S.AF_UNIX) as client:
        server.bind(path("before"))
        server.listen()
        os.rename(path("before"), path("after"))
        with S.socket(S.AF_UNIX) as other:
            first = err(lambda: other.connect(path("before")))
        client.connect(path("after"))
        # (the socket's name stays the one it bound)
        return first, server.accept()[0].getsockname() == path("before")


@probe("unix_connect_to_a_regular_file")
def _(S: Any, path: Paths) -> Any:
    with open(path("plain"), "w"), S.socket(S.AF_UNIX) as s:
        return err(lambda: s.connect(path("plain"))), err(lambda: s.bind(path("plain")))


@probe("unix_bind_after_close")
def _(S: Any, path: Paths) -> Any:
    with S.socket(S.AF_UNIX) as s:
        s.bind(path("again"))
    with S.socket(S.AF_UNIX) as s:
        return err(lambda: s.bind(path("again")))


@probe("unix_bind_missing_directory")
def _(S: Any, path: Paths) -> Any:
    with S.socket(S.AF_UNIX) as s:
        return err(lambda: s.bind(path("no-such-dir/s")))


@probe("unix_connect_after_close")
def _(S: Any, path: Paths) -> Any:
    with S.socket(S.AF_UNIX) as s:
        s.bind(path("stale"))
        s.listen()
    with S.socket(S.AF_UNIX) as c:
        return err(lambda: c.connect(path("stale")))


@probe("rcvbuf_default_and_doubling")
def _(S: Any, path: Paths) -> Any:
    with S.socket() as t:
        t.setsockopt(S.SOL_SOCKET, S.SO_RCVBUF, 8192)
        return t.getsockopt(S.SOL_SOCKET, S.SO_RCVBUF)


@probe("tcp4_maxseg_before_connect")
def _(S: Any, path: Paths) -> Any:
    with S.socket() as t:
        return t.getsockopt(S.IPPROTO_TCP, S.TCP_MAXSEG)


@probe("sendall_timeout_message")
def _(S: Any, path: Paths) -> Any:
    c, s = pair(S, "tcp4", path)
    with c, s:
        c.settimeout(0.1)
        try:
            while True:
                c.sendall(b"x" * 65536)
        except TimeoutError as exc:
            return type(exc).__name__, str(exc)


@probe("send_nonblocking_full")
def _(S: Any, path: Paths) -> Any:
    c, s = pair(S, "tcp4", path)
    with c, s:
        c.setblocking(False)
        try:
            while True:
                c.send(b"x" * 65536)
        except BlockingIOError as exc:
            return exc.errno, str(exc)


@probe("getaddrinfo_localhost_stream")
def _(S: Any, path: Paths) -> Any:
    return sorted({(f, t, p) for f, t, p, _, _ in
                   S.getaddrinfo("127.0.0.1", 80, S.AF_INET, S.SOCK_STREAM)})


@probe("getaddrinfo_unknown_host")
def _(S: Any, path: Paths) -> Any:
    try:
        S.getaddrinfo("no-such-host.invalid", 80)
    except S.gaierror as exc:
        return exc.errno
    return None


@probe("fromfd_shares_socket")
def _(S: Any, path: Paths) -> Any:
    c, s = pair(S, "tcp4", path)
    with c, s:
        other = S.fromfd(c.fileno(), S.AF_INET, S.SOCK_STREAM)
        with other:
            other.sendall(b"via fromfd")
        c.sendall(b"!")
        return recv_all(s, 11)


@probe("pickle_refused")
def _(S: Any, path: Paths) -> Any:
    import pickle

    with S.socket() as s:
        try:
            pickle.dumps(s)
        except TypeError as exc:
            return str(exc)
    return None


@probe("recvmsg_ancbufsize_stream")
def _(S: Any, path: Paths) -> Any:
    c, s = pair(S, "tcp4", path)
    with c, s:
        c.sendall(b"data")
        data, anc, flags, address = s.recvmsg(4, 1024)
        return recv_all(s, 0), len(data) > 0, anc, address


@per_kind(["tcp4", "udp4"], "bad_sizes_flags_and_buffers")
def _(S: Any, path: Paths, kind: str) -> Any:
    # Each is refused before the call could wait (none of the sockets has data).
    a, b = pair(S, kind, path)
    with a, b:
        out = []
        for call in (lambda: b.recv(1.5), lambda: b.recv("4"), lambda: b.recv(None),
                     lambda: b.recv(4, "0"), lambda: b.recv(4, 1.0),
                     lambda: b.recvfrom(2.0), lambda: b.recv_into(bytearray(4), 1.5),
                     lambda: b.recv_into(b"read-only"), lambda: b.recv_into(bytearray(4), 0, "x"),
                     lambda: a.send(b"x", "0"), lambda: a.sendall(b"x", 1.0),
                     lambda: b.recvfrom_into(bytearray(4), "2"),
                     lambda: b.recvfrom_into(b"read-only"),
                     lambda: a.sendto(b"x", "0", b.getsockname()),
                     lambda: a.setsockopt("1", S.SO_REUSEADDR, 1),
                     lambda: a.getsockopt(S.SOL_SOCKET, 2.0),
                     lambda: a.getsockopt(S.SOL_SOCKET, S.SO_RCVBUF, "4"),
                     lambda: a.shutdown("1"), lambda: b.recvmsg(1.5),
                     lambda: b.recvmsg(4, 0, "x"), lambda: a.sendmsg([b"x"], [], "0")):
            try:
                call()
                out.append("ok")
            except TypeError as exc:
                out.append(f"TypeError: {exc}")
        return out


@probe("sockopt_values_as_cpython_parses_them")
def _(S: Any, path: Paths) -> Any:
    import struct

    class Index:  # a numpy-like integer: __index__ only
        def __index__(self) -> int:
            return 1

    c, s = pair(S, "tcp4", path)
    with c, s:
        out: list[tuple[Any, ...]] = []
        for args in ((S.SOL_SOCKET, S.SO_REUSEADDR, Index()),
                     (S.SOL_SOCKET, S.SO_REUSEADDR, 2**40),
                     (S.SOL_SOCKET, S.SO_REUSEADDR, None, 4),
                     (S.SOL_SOCKET, S.SO_REUSEADDR, None, 0),
                     (S.SOL_SOCKET, S.SO_REUSEADDR, b"\x01\0\0\0"),
                     (S.SOL_SOCKET, S.SO_REUSEADDR, b"\x01"),
                     (S.SOL_SOCKET, S.SO_REUSEADDR, 1, 4),
                     (S.IPPROTO_TCP, S.TCP_NODELAY, struct.pack("i", 1))):
            try:
                c.setsockopt(*args)
                out.append(("ok", c.getsockopt(args[0], args[1])))
            except TypeError as exc:
                out.append(("TypeError", str(exc)))
            except OSError as exc:
                out.append(("OSError", exc.errno))
        # A buffer size set as bytes is read as the int in it, and the socket still sends.
        c.setsockopt(S.SOL_SOCKET, S.SO_SNDBUF, struct.pack("i", 65536))
        out.append(("send", c.send(b"x"), recv_all(s, 1)))
        for buflen in (0, 4, 1025, -1):
            try:
                out.append(("buflen", buflen, c.getsockopt(S.SOL_SOCKET, S.SO_TYPE, buflen)))
            except OSError as exc:
                out.append(("buflen", buflen, str(exc)))
        return out


@per_kind(["tcp4", "udp4"], "recvfrom_into_refuses_before_it_takes_the_data")
def _(S: Any, path: Paths, kind: str) -> Any:
    a, b = pair(S, kind, path)
    with a, b:
        a.send(b"data")
        try:
            b.recvfrom_into(bytearray(2), 4)
            outcome = "ok"
        except ValueError as exc:
            outcome = str(exc)
        return outcome, b.recv(10)  # the data is still there


@probe("sendmsg_bad_buffers")
def _(S: Any, path: Paths) -> Any:
    c, s = pair(S, "tcp4", path)
    with c, s:
        out = []
        for value in ("text", [b"ok", "bad"], 5):
            try:
                c.sendmsg(value)
                out.append("ok")
            except TypeError as exc:
                out.append(str(exc))
        return out


@probe("udp6_rfc3542_hop_limit_and_traffic_class")
def _(S: Any, path: Paths) -> Any:
    import struct

    a, b = dgram_pair(S, "udp6", path)
    with a, b:
        b.setsockopt(S.IPPROTO_IPV6, S.IPV6_RECVHOPLIMIT, 1)
        b.setsockopt(S.IPPROTO_IPV6, S.IPV6_RECVTCLASS, 1)
        a.sendmsg([b"x"], [(S.IPPROTO_IPV6, S.IPV6_HOPLIMIT, struct.pack("i", 2)),
                           (S.IPPROTO_IPV6, S.IPV6_TCLASS, struct.pack("i", 5))])
        a.send(b"y")
        a.send(b"z")
        full = b.recvmsg(10, 1024)
        plain = b.recvmsg(10, 1024)
        cut = b.recvmsg(10, S.CMSG_LEN(2))
        return (sorted(full[1]), full[2], sorted(plain[1]), cut[1], bool(cut[2] & S.MSG_CTRUNC))


@probe("udp6_rfc3542_bad_value")
def _(S: Any, path: Paths) -> Any:
    a, b = dgram_pair(S, "udp6", path)
    with a, b:
        return err(lambda: a.sendmsg([b"x"], [(S.IPPROTO_IPV6, S.IPV6_HOPLIMIT, b"\0" * 5)]))


@probe("sendmsg_bad_ancillary_and_address")
def _(S: Any, path: Paths) -> Any:
    c, s = pair(S, "tcp4", path)
    with c, s:
        out = []
        args: tuple[Any, ...]
        for args in (([b"x"], [object()]), ([b"x"], [(object(), 0, b"")]), ([b"x"], object()),
                     ([b"x"], [], object()), ([b"x"], [], 0, object())):
            try:
                c.sendmsg(*args)
                out.append("ok")
            except TypeError:
                out.append("TypeError")
        return out


@probe("sendfile_bytesio_falls_back_to_send")
def _(S: Any, path: Paths) -> Any:
    import io

    c, s = pair(S, "tcp4", path)
    with c, s:
        data = io.BytesIO(b"in memory")
        try:
            c._sendfile_use_sendfile(data)
        except S._GiveupOnSendfile:
            fallback = "gave up"
        return fallback, c.sendfile(data), recv_all(s, 9)


@probe("sendfile_nonblocking_nonempty")
def _(S: Any, path: Paths) -> Any:
    c, s = pair(S, "tcp4", path)
    with c, s, tempfile.TemporaryFile() as f:
        f.write(b"data")
        f.seek(0)
        c.setblocking(False)
        try:
            c.sendfile(f)
        except ValueError as exc:
            return str(exc)
        return None


@probe("sendfile_nonblocking_refused")
def _(S: Any, path: Paths) -> Any:
    c, s = pair(S, "tcp4", path)
    with c, s, tempfile.TemporaryFile() as f:
        c.setblocking(False)
        try:
            c.sendfile(f)
        except ValueError as exc:
            return str(exc)
        return None


@probe("sendfile_on_datagram_refused")
def _(S: Any, path: Paths) -> Any:
    with S.socket(S.AF_INET, S.SOCK_DGRAM) as u, tempfile.TemporaryFile() as f:
        try:
            u.sendfile(f)
        except ValueError as exc:
            return str(exc)
        return None


@probe("shutdown_listener")
def _(S: Any, path: Paths) -> Any:
    with S.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        return err(lambda: s.shutdown(S.SHUT_RDWR))


@probe("closed_socket_repr_and_fileno")
def _(S: Any, path: Paths) -> Any:
    s = S.socket()
    s.close()
    return repr(s).split(" ")[0], repr(s).split(" ")[1], s.fileno()


@probe("context_manager_closes")
def _(S: Any, path: Paths) -> Any:
    with S.socket() as s:
        pass
    return s.fileno(), s._closed


# -- found by the fuzzer (tests/fuzz_differential.py) --------------------------------


@probe("tcp4_maxseg_connected")
def _(S: Any, path: Paths) -> Any:
    c, s = pair(S, "tcp4", path)
    with c, s:
        return c.getsockopt(S.IPPROTO_TCP, S.TCP_MAXSEG)


@per_kind(["tcp4", "tcp6"], "tcp_self_connect")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:  # TCP's simultaneous open: connected to itself
        s.bind(local(kind, path))
        s.settimeout(10)
        s.connect(s.getsockname())
        same = s.getpeername() == s.getsockname()
        s.sendall(b"to myself")
        return same, recv_all(s, 9)


@per_kind(["tcp6", "udp6"], "ipv6_bind_ipv4_mapped")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s, new(S, kind) as only:
        s.bind(("::ffff:127.0.0.1", 0))
        only.setsockopt(S.IPPROTO_IPV6, S.IPV6_V6ONLY, 1)
        return (shape(s.getsockname()), err(lambda: only.bind(("::ffff:127.0.0.1", 0))),
                err(lambda: only.bind(("::ffff:10.9.9.9", 0))))


@per_kind(["tcp6", "udp6"], "ipv6_socket_as_ipv4_has_no_ipv6_peer")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as bound, new(S, kind) as connected:
        bound.bind(("::ffff:127.0.0.1", 0))
        out = [err(lambda: bound.connect(("::1", 9)))]
        if kind == "udp6":
            connected.connect(("::ffff:127.0.0.1", 9))
            out += [shape(connected.getsockname()), err(lambda: connected.sendto(b"x", ("::1", 9)))]
        return out


@probe("connect_ex_returns_what_connect_fails_with")
def _(S: Any, path: Paths) -> Any:
    with S.socket(S.AF_INET6) as only, S.socket(S.AF_INET6) as mapped, S.socket() as tcp:
        only.setsockopt(S.IPPROTO_IPV6, S.IPV6_V6ONLY, 1)
        mapped.bind(("::ffff:127.0.0.1", 0))
        tcp.setblocking(False)
        tcp.connect_ex(("127.0.0.1", 9))  # refused while nobody waits
        time.sleep(0.05)
        return (only.connect_ex(("::ffff:127.0.0.1", 9)), mapped.connect_ex(("::1", 9)),
                err(lambda: tcp.sendto(b"x", ("127.0.0.1", 9))))


@probe("tcp6_bound_ipv4_mapped_takes_ipv4_clients")
def _(S: Any, path: Paths) -> Any:
    with S.socket(S.AF_INET6) as listener, S.socket() as client:
        listener.bind(("::ffff:127.0.0.1", 0))
        listener.listen()
        client.settimeout(10)
        client.connect(("127.0.0.1", listener.getsockname()[1]))
        conn, address = listener.accept()
        with conn:
            return shape(address), shape(conn.getsockname())


@probe("arguments_as_cpython_parses_them")
def _(S: Any, path: Paths) -> Any:
    class Index:
        def __index__(self) -> int:
            return 0

    class BadIndex:
        def __index__(self) -> Any:
            return "x"

    def outcome(call: Callable[[], Any]) -> Any:
        try:
            return repr(call())
        except Exception as exc:  # noqa: BLE001 - the type and message are the answer
            return f"{type(exc).__name__}: {exc}"

    out = []
    for family, host in ((S.AF_INET, b"127.0.0.1"), (S.AF_INET, bytearray(b"127.0.0.1")),
                         (S.AF_INET6, b"::1")):
        with S.socket(family) as s:
            out.append(outcome(lambda: s.bind((host, 0))))  # noqa: B023 - called at once
    for port in (True, Index(), BadIndex(), 1.0, "1"):
        with S.socket() as s, S.socket(S.AF_INET, S.SOCK_DGRAM) as u:
            out += [outcome(lambda: s.bind(("127.0.0.1", port))),  # noqa: B023 - at once
                    outcome(lambda: u.sendto(b"x", ("127.0.0.1", port)))]  # noqa: B023
    with S.socket() as s:
        out += [outcome(lambda: s.send("text", "x")), outcome(lambda: s.sendall("text", "x")),
                outcome(lambda: s.send(b"x", "x")), outcome(lambda: s.settimeout(-(2**63) - 1)),
                outcome(lambda: s.settimeout(-(2**63))), outcome(lambda: s.settimeout(-1))]
    return out


@probe("unix_stream_connect_to_a_socket_not_listening")
def _(S: Any, path: Paths) -> Any:
    with S.socket(S.AF_UNIX) as bound, S.socket(S.AF_UNIX) as a, S.socket(S.AF_UNIX) as b:
        bound.bind(path("bound"))
        b.setblocking(False)
        # Refused at once, blocking or not; the name is looked up before the state.
        out = [err(lambda: a.connect(path("bound"))), err(lambda: b.connect(path("bound")))]
        bound.listen()
        out.append(err(lambda: bound.connect(path("nowhere"))))
        return out


@per_kind(["tcp4", "tcp6"], "listener_shutdown_before_and_after_listen")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        first = err(lambda: s.shutdown(S.SHUT_RD))  # unconnected: marked, ENOTCONN
        s.bind(local(kind, path))
        s.listen()  # ... and a listener after all: the mark means nothing to it
        s.settimeout(0.05)
        out = [first, err(lambda: s.sendall(b"x")), err(lambda: s.shutdown(S.SHUT_WR))]
        out += [err(lambda: s.recv(1)), err(lambda: s.shutdown(S.SHUT_RD)),
                err(lambda: s.recv(1)), err(lambda: s.shutdown(S.SHUT_RD)),
                err(lambda: s.connect(s.getsockname()))]
        return out


@probe("udp6_specific_bind_is_ipv6_only")
def _(S: Any, path: Paths) -> Any:
    with S.socket(S.AF_INET6, S.SOCK_DGRAM) as s:
        s.bind(("::1", 0))
        return (s.getsockopt(S.IPPROTO_IPV6, S.IPV6_V6ONLY),
                err(lambda: s.sendto(b"x", ("::ffff:127.0.0.1", 9))))


@probe("udp4_connected_to_port_zero_hears_icmp_for_any_port")
def _(S: Any, path: Paths) -> Any:
    with S.socket(S.AF_INET, S.SOCK_DGRAM) as s, S.socket(S.AF_INET, S.SOCK_DGRAM) as gone:
        gone.bind(("127.0.0.1", 0))
        closed = gone.getsockname()
        gone.close()
        s.connect(("127.0.0.1", 0))
        s.sendto(b"x", closed)  # peer port 0 matches any port: the error is this socket's
        time.sleep(0.05)
        return err(lambda: s.send(b"y"))


@per_kind(["tcp6", "udp6"], "ipv6_v6only_fixed_once_bound")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        s.setsockopt(S.IPPROTO_IPV6, S.IPV6_V6ONLY, 1)
        s.bind(("::", 0))
        return err(lambda: s.setsockopt(S.IPPROTO_IPV6, S.IPV6_V6ONLY, 0))


@per_kind(list(KINDS), "recv_zero_bytes_returns_at_once")
def _(S: Any, path: Paths, kind: str) -> Any:
    s = new(S, kind)  # blocking and unconnected: recv(0) must not wait, even closed
    with s:
        out = [s.recv(0), s.recv_into(bytearray(0))]
    out += [s.recv(0), s.recv_into(bytearray(0)), err(lambda: s.recvfrom(0))]
    return out


@per_kind(STREAMS, "recvfrom_zero_bytes_asks_the_os")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        s.settimeout(0)
        return err(lambda: s.recvfrom(0))


@per_kind(list(KINDS), "closed_socket_connect_ex_and_timeout")
def _(S: Any, path: Paths, kind: str) -> Any:
    s = new(S, kind)
    s.settimeout(2.5)
    target = local(kind, path)
    s.close()
    return s.connect_ex(target), s.gettimeout(), s.timeout, err(lambda: s.settimeout(1))


@per_kind(["unix_stream"], "listen_unbound_unix")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s, new(S, kind) as t:
        t.bind(path("bound"))
        return err(s.listen), err(t.listen)


@per_kind(["unix_stream", "unix_dgram"], "unix_connect_to_no_name")
def _(S: Any, path: Paths, kind: str) -> Any:
    tag = os.urandom(6).hex()
    with new(S, kind) as s:
        out = [err(lambda: s.connect("")), err(lambda: s.connect(f"\0sockfake-none-{tag}")),
               err(lambda: s.connect(path("never-bound")))]
        if kind == "unix_dgram":
            out += [err(lambda: s.sendto(b"x", "")),
                    err(lambda: s.sendto(b"x", f"\0sockfake-none-{tag}"))]
        return out


@per_kind(["unix_stream", "unix_dgram"], "unix_shutdown_rd_stops_the_peer")
def _(S: Any, path: Paths, kind: str) -> Any:
    a, b = pair(S, kind, path)
    with a, b:
        b.shutdown(S.SHUT_RD)
        return err(lambda: a.send(b"x")), err(lambda: a.sendall(b"x"))


@per_kind(["unix_dgram"], "unix_dgram_shut_wr_unconnected")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        s.shutdown(S.SHUT_WR)
        return err(lambda: s.send(b"x")), err(lambda: s.sendto(b"x", path("nobody")))


@per_kind(["udp4", "udp6"], "udp_port_zero")
def _(S: Any, path: Paths, kind: str) -> Any:
    host = local(kind, path)[0]
    with new(S, kind) as s, new(S, kind) as t:
        refused = err(lambda: s.sendto(b"x", (host, 0)))
        autobound = s.getsockname()[1] != 0  # bound before it looked at the port
        t.connect((host, 0))  # allowed: no peer port, so no peer, and no filter
        sent = t.send(b"ab")  # to port 0: nobody, so an ICMP error comes back
        time.sleep(0.05)
        unreachable = err(lambda: t.sendto(b"x", t.getsockname()))
        t.sendto(b"self", t.getsockname())
        t.settimeout(10)
        return refused, autobound, err(t.getpeername), sent, unreachable, t.recv(10)


@per_kind(["udp4", "udp6"], "udp_send_unconnected_autobinds")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        return err(lambda: s.send(b"x")), s.getsockname()[1] != 0


@per_kind(STREAMS, "select_unconnected_stream")
def _(S: Any, path: Paths, kind: str) -> Any:
    import select

    def ready(sock: Any) -> Any:
        r, w, x = select.select([sock], [sock], [sock], 0)
        return bool(r), bool(w), bool(x)

    with new(S, kind) as fresh, new(S, kind) as bound, new(S, kind) as listening:
        bound.bind(local(kind, path, "b"))
        listening.bind(local(kind, path, "l"))
        listening.listen()
        return ready(fresh), ready(bound), ready(listening)


@per_kind(list(KINDS), "shutdown_unconnected_marks_the_socket")
def _(S: Any, path: Paths, kind: str) -> Any:
    import select

    with new(S, kind) as r, new(S, kind) as w:
        out = [err(lambda: r.shutdown(S.SHUT_RD)), err(lambda: w.shutdown(S.SHUT_WR))]
        out.append(bool(select.select([r], [], [], 0)[0]))
        out.append(r.recv(1))  # a blocking read sees the shutdown at once
        r.setblocking(False)
        out.append(err(lambda: r.recv(1)))
        target = local(kind, path) if kind in DGRAMS else None
        out.append(err(lambda: w.sendto(b"x", target) if target else w.send(b"x")))
        return out


@per_kind(list(KINDS), "timeout_mode_waits_before_it_calls")
def _(S: Any, path: Paths, kind: str) -> Any:
    with new(S, kind) as s:
        s.settimeout(0.05)
        if kind in STREAMS:
            fresh = err(lambda: s.recv(1))  # hung up: recv() runs at once
            s.bind(local(kind, path))
            s.listen()
            return fresh, err(lambda: s.recv(1)), err(s.accept)
        return err(s.accept), err(lambda: s.recv(1))  # never readable: a timeout


# -- running -------------------------------------------------------------------------


def outcome(snippet: Snippet, S: Any, path: Paths) -> Any:
    try:
        return ("ok", snippet(S, path))
    except Exception as exc:  # noqa: BLE001 - the outcome is the exception
        return ("raise", type(exc).__name__, getattr(exc, "errno", None), str(exc))


@contextmanager
def _paths() -> Iterator[Paths]:
    directory = tempfile.mkdtemp(prefix="sfd-", dir="/tmp")
    try:
        yield lambda name: f"{directory}/{name}"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def run_real(name: str) -> Any:
    with _paths() as path:
        return outcome(PROBES[name], socket, path)


def run_sim(name: str, seed: int = 1) -> Any:
    with _paths() as path, SimNetwork(seed=seed, latency=0.001) as net, net.intercept():
        return outcome(PROBES[name], socket, path)


def main() -> int:
    equal = deliberate = different = 0
    for name in PROBES:
        real, sim = run_real(name), run_sim(name)
        if real == sim:
            equal += 1
            status = "EQUAL"
        elif name in DELIBERATE:
            deliberate += 1
            status = "DELIBERATE"
        else:
            different += 1
            status = "DIFFERENT"
        print(f"{status:10} {name}")
        if real != sim:
            print(f"    real: {real!r}\n    sim:  {sim!r}")
            if name in DELIBERATE:
                print(f"    why:  {DELIBERATE[name]}")
    print(f"{len(PROBES)} behaviours: {equal} equal, {deliberate} deliberately different, "
          f"{different} different")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The argument checks ``SimSocket`` inlines for speed, pinned to the general converters.

The hot socket calls do not call the general converter for an int in range: they test
``type(value) is int`` and the range themselves and call the converter only for the
rest. Each such copy must accept, refuse and convert exactly as the converter does.
The copies, in ``sockfake/sim/net/sockets.py``:

- ``SimSocket.send``: ``flags`` (``socket_args.c_flags()`` written out) and the payload (bytes
  used as they are, anything else through ``socket_args.byte_view()``);
- ``SimSocket.sendall``: ``flags`` and the payload, the same two;
- ``SimSocket.recv``: ``bufsize`` (``socket_args.ssize()`` written out) and ``flags``;
- ``SimSocket.recvfrom``: ``bufsize`` and ``flags``, the same two;
- ``SimSocket.sendto``: the payload (bytes used as they are, anything else
  ``bytes(socket_args.byte_view())``);
- ``SimSocket._check_open``: ``_check_thread()`` written out (the caller must be a
  thread of the simulation, and it must be open).

For each copy and each value (a table of edge cases, then Hypothesis): the call with
the value raises the converter's exception (same type, same message) and records
nothing, or it returns and records exactly what the call with the converted value
returns and records, on a fresh network with the same seed.
"""

from __future__ import annotations

import array
import concurrent.futures
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from sockfake import SockfakeError
from sockfake.sim import SimNetwork
from sockfake.sim.net.socket_args import byte_view as _byte_view, c_flags as _flags, ssize as _ssize

# Index(True): CPython warns that __index__ returned a bool, and so does the converter.
pytestmark = pytest.mark.filterwarnings("ignore:__index__ returned non-int:DeprecationWarning")


class Index:
    """An object with ``__index__`` (as numpy integers have), not an int."""

    def __init__(self, value: object) -> None:
        self.value = value

    def __index__(self) -> Any:
        return self.value

    def __repr__(self) -> str:
        return f"Index({self.value!r})"


class Int(int):
    """An int subclass: not ``type(value) is int``, so the inline test sends it on."""


class IntOnly:
    """``__int__`` but no ``__index__``: CPython refuses it as a size or flags."""

    def __int__(self) -> int:
        return 1

    def __repr__(self) -> str:
        return "IntOnly()"


INT_MAX, SSIZE_MAX = 2**31 - 1, 2**63 - 1
# Ints at every boundary the copies test (C int for flags, Py_ssize_t for sizes) and
# what is not an int at all.
EDGE_NUMBERS: list[object] = [
    0, 1, 5, -1, INT_MAX, INT_MAX + 1, -INT_MAX - 1, -INT_MAX - 2, SSIZE_MAX, SSIZE_MAX + 1,
    -SSIZE_MAX - 1, -SSIZE_MAX - 2, 2**64, 2**100, True, False, 1.0, 1.5, float("nan"),
    "1", b"1", None, Index(3), Index(-1), Index(INT_MAX + 1), Index(SSIZE_MAX + 1),
    Index(True), Index("3"), Int(3), Int(INT_MAX + 1), socket.MSG_PEEK, socket.MSG_DONTWAIT,
    IntOnly(), 3j,
]
EDGE_PAYLOADS: list[object] = [
    b"", b"payload", bytearray(b"payload"), memoryview(b"payload"),
    memoryview(b"p-a-y-l-o-a-d")[::2], array.array("i", [1, 2, 3]), memoryview(b"ab").cast("c"),
    type("Bytes", (bytes,), {})(b"sub"), "text", 7, None, [1, 2], Index(3),
]


def ident(value: object) -> str:
    """A test id for a value: its type and a repr that names no memory address."""
    if isinstance(value, memoryview):
        shown = f"{value.tobytes()!r}/{value.format}/{value.strides}"
    else:
        shown = repr(value)
    return f"{type(value).__name__}:{shown}"


@dataclass(frozen=True)
class Outcome:
    """What a call did: its result or its exception (type and message), and the trace."""

    result: object
    digest: str


@dataclass(frozen=True)
class Raised:
    kind: type
    message: str


def attempt(call: Callable[[], object]) -> object:
    try:
        return call()
    except Exception as error:  # noqa: BLE001 - compared by type and message
        return Raised(type(error), str(error))


def converted(converter: Callable[[Any], Any], value: object) -> object:
    """The converter's answer for ``value``: the value it gives, or its exception."""
    return attempt(lambda: converter(value))


# -- the scenarios: a fresh network, then the one call under test --------------------------


def on_stream(call: Callable[[Any, Any], object] | None) -> Outcome:
    """A connected TCP pair, 11 bytes waiting at ``server``; ``call(client, server)``.

    The server side is non-blocking and the client's peer has room: no call waits.
    """
    with SimNetwork(seed=1) as net:
        listener = net.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = net.socket()
        client.connect(listener.getsockname())
        server, _ = listener.accept()
        client.sendall(b"hello world")
        server.setblocking(False)
        result = None if call is None else attempt(lambda: call(client, server))
        return Outcome(result, net.digest())


def on_datagrams(call: Callable[[Any, Any, Any], object] | None) -> Outcome:
    """Two UDP sockets, a datagram of 11 bytes waiting at ``receiver``;
    ``call(sender, receiver, receiver's address)``."""
    with SimNetwork(seed=1) as net:
        receiver = net.socket(socket.AF_INET, socket.SOCK_DGRAM)
        receiver.bind(("127.0.0.1", 0))
        receiver.setblocking(False)
        sender = net.socket(socket.AF_INET, socket.SOCK_DGRAM)
        address = receiver.getsockname()
        sender.sendto(b"hello world", address)
        result = None if call is None else attempt(lambda: call(sender, receiver, address))
        return Outcome(result, net.digest())


@dataclass(frozen=True)
class Copy:
    """One inlined check: the scenario calling the copy with an argument, the converter
    it stands for, and how the rest of the call uses the converted value."""

    name: str
    converter: Callable[[Any], Any]
    run: Callable[[object], Outcome]  # the call with this argument
    nothing: Callable[[], Outcome]  # the scenario without the call

    def assert_equivalent(self, value: object) -> None:
        general = converted(self.converter, value)
        inline = self.run(value)
        if isinstance(general, Raised):
            assert inline == Outcome(general, self.nothing().digest), value
        else:
            assert inline == self.run(general), value


def _payload(value: object) -> object:
    return bytes(_byte_view(value))


NUMBER_COPIES = [
    Copy("send-flags", _flags, lambda v: on_stream(lambda c, s: c.send(b"data", v)),
         lambda: on_stream(None)),
    Copy("sendall-flags", _flags, lambda v: on_stream(lambda c, s: c.sendall(b"data", v)),
         lambda: on_stream(None)),
    Copy("recv-bufsize", _ssize, lambda v: on_stream(lambda c, s: s.recv(v)),
         lambda: on_stream(None)),
    Copy("recv-flags", _flags, lambda v: on_stream(lambda c, s: s.recv(5, v)),
         lambda: on_stream(None)),
    Copy("recvfrom-bufsize", _ssize, lambda v: on_datagrams(lambda a, b, to: b.recvfrom(v)),
         lambda: on_datagrams(None)),
    Copy("recvfrom-flags", _flags, lambda v: on_datagrams(lambda a, b, to: b.recvfrom(5, v)),
         lambda: on_datagrams(None)),
    Copy("recvfrom-stream-bufsize", _ssize, lambda v: on_stream(lambda c, s: s.recvfrom(v)),
         lambda: on_stream(None)),
]
PAYLOAD_COPIES = [
    Copy("send-payload", _payload, lambda v: on_stream(lambda c, s: c.send(v)),
         lambda: on_stream(None)),
    Copy("sendall-payload", _payload, lambda v: on_stream(lambda c, s: c.sendall(v)),
         lambda: on_stream(None)),
    Copy("sendto-payload", _payload, lambda v: on_datagrams(lambda a, b, to: a.sendto(v, to)),
         lambda: on_datagrams(None)),
]
COPIES = {copy.name: copy for copy in NUMBER_COPIES + PAYLOAD_COPIES}


@pytest.mark.parametrize("value", EDGE_NUMBERS, ids=ident)
@pytest.mark.parametrize("copy", [copy.name for copy in NUMBER_COPIES])
def test_an_inlined_size_or_flags_check_is_the_converters(copy: str, value: object) -> None:
    COPIES[copy].assert_equivalent(value)


@pytest.mark.parametrize("value", EDGE_PAYLOADS, ids=ident)
@pytest.mark.parametrize("copy", [copy.name for copy in PAYLOAD_COPIES])
def test_an_inlined_payload_conversion_is_the_general_ones(copy: str, value: object) -> None:
    COPIES[copy].assert_equivalent(value)


NUMBERS = st.one_of(
    st.integers(),
    st.integers(-(2**64), 2**64),
    st.sampled_from([INT_MAX, INT_MAX + 1, -INT_MAX - 1, -INT_MAX - 2, SSIZE_MAX,
                     SSIZE_MAX + 1, -SSIZE_MAX - 1, -SSIZE_MAX - 2]),
    st.booleans(),
    st.floats(),
    st.text(max_size=2),
    st.none(),
    st.integers().map(Index),
    st.integers().map(Int),
)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(value=NUMBERS)
@pytest.mark.parametrize("copy", [copy.name for copy in NUMBER_COPIES])
def test_an_inlined_check_agrees_with_its_converter_on_any_value(
    copy: str, value: object
) -> None:
    COPIES[copy].assert_equivalent(value)


def test_the_table_reaches_both_sides_of_every_copy() -> None:
    """Each copy both refuses some edge values and passes others on: the table tests
    the copy's two branches, not only its error path."""
    for copy in NUMBER_COPIES:
        answers = [converted(copy.converter, value) for value in EDGE_NUMBERS]
        kinds = {answer.kind for answer in answers if isinstance(answer, Raised)}
        assert {TypeError, OverflowError} <= kinds, copy.name
        assert any(type(answer) is int for answer in answers), copy.name


# -- the caller check ---------------------------------------------------------------------


SOCKET_CALLS: dict[str, Callable[[Any], object]] = {
    "getsockname": lambda sock: sock.getsockname(),
    "bind": lambda sock: sock.bind(("127.0.0.1", 0)),
    "send": lambda sock: sock.send(b"x"),
    "recv": lambda sock: sock.recv(1),
    "setsockopt": lambda sock: sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1),
    "accept": lambda sock: sock.accept(),
}


@pytest.mark.parametrize("call", list(SOCKET_CALLS))
def test_the_inlined_caller_check_is_check_thread(call: str) -> None:
    # The pool's thread exists before the network: it is not one of the simulation's.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as foreign:
        foreign.submit(int).result()

        def in_foreign_thread(function: Callable[[], object]) -> object:
            return foreign.submit(attempt, function).result(timeout=10)

        with SimNetwork(seed=1) as net:
            sock = net.socket()
            general = in_foreign_thread(sock._check_thread)
            assert isinstance(general, Raised) and issubclass(general.kind, SockfakeError)
            assert "is not part of this simulated network" in general.message
            assert in_foreign_thread(lambda: SOCKET_CALLS[call](sock)) == general
            net.close()
            closed = attempt(sock._check_thread)
            assert isinstance(closed, Raised) and closed.kind is general.kind
            assert closed.message.startswith("the simulated network is closed: ")
            assert "used after net.close()" in closed.message
            assert attempt(lambda: SOCKET_CALLS[call](sock)) == closed
            sock.close()

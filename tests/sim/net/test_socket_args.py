"""CPython's argument conversion (``sockfake.sim.net.socket_args``), and the copies of it
that the hot socket methods inline for speed, held to the general versions."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sockfake.sim import SimNetwork, SimSocket
from sockfake.sim.net.socket_args import c_flags, c_int, ssize, timeout_value


class _Index:
    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value


# Every kind of argument CPython's parsing tells apart: ints in and out of a C int's
# and a Py_ssize_t's range, bools, objects with __index__, and non-integers.
ODD_VALUES: list[Any] = [
    0, 4, -1, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**63 - 1, 2**63, -(2**63) - 1,
    True, False, _Index(4), _Index(2**40), 1.5, "4", None, b"4",
]


def outcome(call: Callable[[], Any]) -> tuple[Any, ...]:
    """What a call did: its result, or its exception's class and message."""
    try:
        return ("returned", call())
    except Exception as exc:  # every exception is an outcome here
        return (type(exc), str(exc))


def test_c_int_is_cpythons_conversion() -> None:
    assert c_int(_Index(7)) == 7
    assert outcome(lambda: c_int(1.5)) == (
        TypeError, "'float' object cannot be interpreted as an integer")
    assert outcome(lambda: c_int(2**31)) == (
        OverflowError, "Python int too large to convert to C int")
    assert outcome(lambda: c_int(2**31, parse_arg=True)) == (
        OverflowError, "signed integer is greater than maximum")
    assert outcome(lambda: c_int(-(2**31) - 1, parse_arg=True)) == (
        OverflowError, "signed integer is less than minimum")
    assert outcome(lambda: c_int(2**63, parse_arg=True)) == (
        OverflowError, "Python int too large to convert to C long")
    assert c_int(2**63, c_type=False) == 2**63


def test_timeout_value_is_settimeouts_check() -> None:
    assert timeout_value(None) is None
    assert timeout_value(2) == 2.0 and type(timeout_value(2)) is float
    assert timeout_value(_Index(3)) == 3.0
    assert outcome(lambda: timeout_value(float("nan"))) == (
        ValueError, "Invalid value NaN (not a number)")
    assert outcome(lambda: timeout_value(-0.5)) == (ValueError, "Timeout value out of range")
    assert outcome(lambda: timeout_value("1")) == (
        TypeError, "'str' object cannot be interpreted as an integer")
    real = socket.socket()
    try:
        for value in (2**70, 1e300):  # out of range: CPython's own words, per version
            assert outcome(lambda: timeout_value(value)) == outcome(  # noqa: B023
                lambda: real.settimeout(value))  # noqa: B023
    finally:
        real.close()


@pytest.fixture
def stream_pair(net: SimNetwork) -> Iterator[tuple[SimSocket, SimSocket]]:
    listener = net.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = net.create_connection(listener.getsockname())
    server, _ = listener.accept()
    server.setblocking(False)
    try:
        yield client, server
    finally:
        for sock in (client, server, listener):
            sock.close()


def assert_inlined_as_general(net: SimNetwork, send: Callable[[], object],
                              receive: Callable[..., Any]) -> None:
    """``receive(bufsize, flags)`` (a method with both checks inlined) does with each
    odd value what it does with the value converted by the general version."""

    def received(*args: Any) -> tuple[Any, ...]:
        send()  # the same data waiting for each call
        net.settle()
        result = outcome(lambda: receive(*args))
        outcome(lambda: receive(1024))  # drain what the call left
        return result

    for value in ODD_VALUES:
        for convert, arguments in ((ssize, lambda v: (v,)), (c_flags, lambda v: (4, v))):
            general = outcome(lambda: convert(value))  # noqa: B023
            if general[0] == "returned":
                general = received(*arguments(general[1]))
            assert received(*arguments(value)) == general, (convert.__name__, value)


def test_recv_inlines_ssize_and_c_flags(
    net: SimNetwork, stream_pair: tuple[SimSocket, SimSocket]
) -> None:
    client, server = stream_pair
    assert_inlined_as_general(net, lambda: client.sendall(b"data"), server.recv)


def test_recvfrom_inlines_ssize_and_c_flags(net: SimNetwork) -> None:
    with net.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver, \
            net.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        receiver.bind(("127.0.0.1", 0))
        receiver.setblocking(False)
        assert_inlined_as_general(
            net, lambda: sender.sendto(b"data", receiver.getsockname()), receiver.recvfrom
        )


def test_send_and_sendall_inline_c_flags(stream_pair: tuple[SimSocket, SimSocket]) -> None:
    client, _ = stream_pair
    for value in ODD_VALUES:
        for method in (client.send, client.sendall):
            inline = outcome(lambda: method(b"x", value))  # noqa: B023
            general = outcome(lambda: method(b"x", c_flags(value)))  # noqa: B023
            assert inline == general, (method.__name__, value)

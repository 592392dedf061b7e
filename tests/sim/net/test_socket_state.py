"""The socket state table (``sockfake.sim.net.socket_state``) on its own.

The table is written out again here, move by move, so that any change to it (a move
added, dropped or redirected) fails a test that names the pair. Every pair the table
lacks must raise: such a move is a bug in the simulation, not a user error.
"""

from __future__ import annotations

import errno
import itertools
from typing import Any

import pytest

from sockfake.sim import SimNetwork
from sockfake.sim.net.socket_state import TRANSITIONS, Event, State, advance, allows

S, E = State, Event

# (state, event) -> the state after it; every move a socket can make.
EXPECTED: dict[tuple[State, Event], State] = {
    (S.FRESH, E.BIND): S.BOUND,
    (S.FRESH, E.LISTEN): S.LISTENING,
    (S.BOUND, E.LISTEN): S.LISTENING,
    (S.LISTENING, E.LISTEN): S.LISTENING,
    (S.FRESH, E.CONNECT): S.CONNECTING,
    (S.BOUND, E.CONNECT): S.CONNECTING,
    (S.ERROR_REPORTED, E.CONNECT): S.CONNECTING,
    (S.ERROR_REPORTED, E.BIND): S.ERROR_REPORTED,
    (S.FAILED, E.BIND): S.FAILED,
    (S.LISTENING, E.DISCONNECT): S.DISCONNECTED,
    (S.DISCONNECTED, E.BIND): S.DISCONNECTED,
    (S.DISCONNECTED, E.LISTEN): S.LISTENING,
    (S.FAILED, E.DISCONNECT): S.DISCONNECTING,
    (S.DISCONNECTING, E.BIND): S.DISCONNECTING,
    (S.FRESH, E.PASSIVE_OPEN): S.CONNECTED,
    (S.CONNECTING, E.ESTABLISHED): S.CONNECTED,
    (S.CONNECTING, E.FAIL): S.FAILED,
    (S.FAILED, E.REPORT_ERROR): S.ERROR_REPORTED,
    (S.CONNECTED, E.REPORT_ERROR): S.ERROR_REPORTED,
    (S.FRESH, E.CLOSE): S.CLOSED,
    (S.BOUND, E.CLOSE): S.CLOSED,
    (S.LISTENING, E.CLOSE): S.CLOSED,
    (S.CONNECTING, E.CLOSE): S.CLOSED,
    (S.CONNECTED, E.CLOSE): S.CLOSED,
    (S.FAILED, E.CLOSE): S.CLOSED,
    (S.ERROR_REPORTED, E.CLOSE): S.CLOSED,
    (S.DISCONNECTED, E.CLOSE): S.CLOSED,
    (S.DISCONNECTING, E.CLOSE): S.CLOSED,
    (S.CLOSED, E.CLOSE): S.CLOSED,
}
ILLEGAL = [pair for pair in itertools.product(State, Event) if pair not in EXPECTED]


def _ids(pairs: object) -> list[str]:
    return [f"{state}-{event.value}" for state, event in pairs]  # type: ignore[attr-defined]


def test_the_table_is_exactly_the_expected_moves() -> None:
    assert TRANSITIONS == EXPECTED


@pytest.mark.parametrize(("pair", "after"), list(EXPECTED.items()), ids=_ids(EXPECTED))
def test_each_move_of_the_table(pair: tuple[State, Event], after: State) -> None:
    state, event = pair
    assert allows(state, event)
    assert advance(state, event) is after


@pytest.mark.parametrize("pair", ILLEGAL, ids=_ids(ILLEGAL))
def test_a_move_the_table_lacks_is_refused_and_raises(pair: tuple[State, Event]) -> None:
    state, event = pair
    assert not allows(state, event)
    with pytest.raises(AssertionError) as raised:
        advance(state, event)
    assert str(raised.value) == f"socket state machine: no move for {event} in {state}"


def test_close_is_allowed_from_every_state_and_only_close_leaves_closed() -> None:
    assert all(advance(state, E.CLOSE) is S.CLOSED for state in State)
    assert [event for event in Event if allows(S.CLOSED, event)] == [E.CLOSE]


def test_every_state_is_reached_from_fresh() -> None:
    reached, frontier = {S.FRESH}, [S.FRESH]
    while frontier:
        state = frontier.pop()
        for event in Event:
            if allows(state, event) and (after := advance(state, event)) not in reached:
                reached.add(after)
                frontier.append(after)
    assert reached == set(State)


def test_a_state_reads_as_its_value() -> None:
    assert [str(state) for state in State] == [
        "fresh", "bound", "listening", "connecting", "connected", "failed",
        "error-reported", "disconnected", "disconnecting", "closed",
    ]  # fmt: skip


def test_a_socket_moves_through_the_table_as_it_is_used(net: SimNetwork) -> None:
    def state(sock: Any) -> State:  # not narrowed by the asserts, as sock.ep.state is
        return sock.ep.state

    listener = net.socket()
    assert state(listener) is S.FRESH
    listener.bind(("127.0.0.1", 0))
    assert state(listener) is S.BOUND
    listener.listen()
    assert state(listener) is S.LISTENING
    client = net.socket()
    client.connect(listener.getsockname())
    conn, _ = listener.accept()
    assert (state(client), state(conn)) == (S.CONNECTED, S.CONNECTED)
    refused = net.socket()
    assert refused.connect_ex(("127.0.0.1", 1)) == errno.ECONNREFUSED
    assert state(refused) is S.ERROR_REPORTED
    for sock in (listener, client, conn, refused):
        sock.close()
        assert state(sock) is S.CLOSED

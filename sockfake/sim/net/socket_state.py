"""The simulated socket's life cycle: its states, the events that move it, in one table.

As h11 keeps its connection state machine in one file, every state change of a
simulated socket goes through :func:`advance` with an event, and the table below is
the whole of what can happen. A move the table does not list is a bug in the
simulation (``AssertionError``), never a user error: the socket checks what the user
asked for first (``allows``) and answers as Linux would (``EINVAL``, ``EISCONN``...).

Datagram sockets use the first states only (fresh, bound, closed); a connected
datagram socket stays ``BOUND`` with a remote address, as Linux has no handshake.
"""

from __future__ import annotations

import enum

__all__ = ["ACCEPTS", "BACKLOG", "DATAGRAMS", "Event", "State", "TRANSITIONS", "advance", "allows"]


class State(enum.Enum):
    FRESH = "fresh"  # just created
    BOUND = "bound"  # has a local address (bind, autobind)
    LISTENING = "listening"  # listen(): SYNs queue up for accept()
    CONNECTING = "connecting"  # SYN sent, waiting for the answer (retransmits)
    CONNECTED = "connected"  # established: data flows (even after a reset: see dead)
    FAILED = "failed"  # the attempt failed while nobody waited in connect()
    ERROR_REPORTED = "error-reported"  # connect() reported the failure; may try again
    # A TCP listener that SHUT_RD stopped (Linux's tcp_disconnect): unconnected again,
    # its queue reset; listen() listens again, connect() is EINVAL.
    DISCONNECTED = "disconnected"
    # A failed attempt that shutdown() then ended (Linux's SS_DISCONNECTING): closed,
    # and connect() and listen() are EINVAL for good.
    DISCONNECTING = "disconnecting"
    CLOSED = "closed"  # close(): the descriptor is gone

    def __str__(self) -> str:
        return self.value


class Event(enum.Enum):
    BIND = "bind"
    LISTEN = "listen"
    CONNECT = "connect"
    PASSIVE_OPEN = "passive-open"  # a SYN reached a listener: the accepted side exists
    ESTABLISHED = "established"
    FAIL = "fail"
    REPORT_ERROR = "report-error"
    DISCONNECT = "disconnect"  # shutdown(SHUT_RD) of a TCP listener; of a failed attempt
    CLOSE = "close"


_S, _E = State, Event

TRANSITIONS: dict[tuple[State, Event], State] = {
    (_S.FRESH, _E.BIND): _S.BOUND,
    (_S.FRESH, _E.LISTEN): _S.LISTENING,  # listen() on an unbound socket autobinds
    (_S.BOUND, _E.LISTEN): _S.LISTENING,
    (_S.LISTENING, _E.LISTEN): _S.LISTENING,  # a second listen() changes the backlog
    (_S.FRESH, _E.CONNECT): _S.CONNECTING,
    (_S.BOUND, _E.CONNECT): _S.CONNECTING,
    (_S.ERROR_REPORTED, _E.CONNECT): _S.CONNECTING,
    # The failure gave the autobound port back; a bind() takes another, but Linux
    # (6.x) never lets a socket whose connect() failed listen.
    (_S.ERROR_REPORTED, _E.BIND): _S.ERROR_REPORTED,
    (_S.FAILED, _E.BIND): _S.FAILED,  # the port went back when the attempt failed
    (_S.LISTENING, _E.DISCONNECT): _S.DISCONNECTED,
    (_S.DISCONNECTED, _E.BIND): _S.DISCONNECTED,
    (_S.DISCONNECTED, _E.LISTEN): _S.LISTENING,
    (_S.FAILED, _E.DISCONNECT): _S.DISCONNECTING,
    (_S.DISCONNECTING, _E.BIND): _S.DISCONNECTING,
    (_S.FRESH, _E.PASSIVE_OPEN): _S.CONNECTED,
    (_S.CONNECTING, _E.ESTABLISHED): _S.CONNECTED,
    (_S.CONNECTING, _E.FAIL): _S.FAILED,  # refused, timed out, reset while connecting
    (_S.FAILED, _E.REPORT_ERROR): _S.ERROR_REPORTED,
    (_S.CONNECTED, _E.REPORT_ERROR): _S.ERROR_REPORTED,  # reset before connect() returned
    **{(state, _E.CLOSE): _S.CLOSED for state in State},
}


def allows(state: State, event: Event) -> bool:
    """Does the table have a move for ``event`` in ``state``?"""
    return (state, event) in TRANSITIONS


def advance(state: State, event: Event) -> State:
    """The state after ``event``; a move the table lacks is a simulation bug."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise AssertionError(f"socket state machine: no move for {event} in {state}") from None


# Resources of the operations that reach other endpoints than their own (systematic
# exploration's partial-order reduction): connect() fills a listening socket's
# backlog (two connects' order is the order they are accepted in); accept() and a
# select that finds a listener ready take from it (two accepts race for one
# connection; an accept cannot come before the connect it takes, so the two are not
# reordered); datagrams go wherever they are addressed. Each is one resource.
BACKLOG = ("backlog", 0)
ACCEPTS = ("accepts", 0)
DATAGRAMS = ("datagrams", 0)

"""The trace's texts: every ``details`` string the hot path records, formatted when read.

An event on the hot path (a send, a receive, a delivery, a clock jump) records a
``Lazy`` (``sockfake.sim.trace.recorder``): the key of one formatter below and the values it
needs, as they were when the event happened. The text is made only if someone reads
the trace (a failure report, an export), and it is exactly the text an eager f-string
would have given then. The digest hashes the key and the values, never the text.
"""

from __future__ import annotations

from typing import Any

from sockfake.sim.trace.recorder import lazy_text

__all__ = [
    "ACCEPTED", "DATAGRAM_DELIVERED", "DATAGRAM_DROPPED", "DATAGRAM_SENT", "ENDS", "JUMP",
    "LENGTH", "PAIR", "QUEUED", "RECEIVED_FROM", "SENT", "TIMEOUT", "name", "preview",
]


def preview(data: bytes, limit: int = 24) -> str:
    """The start of a payload, for the trace."""
    text = repr(data[:limit])
    return text + ("..." if len(data) > limit else "")


def name(local: Any, fd: int) -> str:
    """An endpoint as ``Endpoint.describe()`` names it: its local address, or its fd."""
    return str(local if local is not None else f"fd{fd}")


# ``head`` is ``data[:25]``: enough for ``preview`` (and its "..."), so a lazy text
# keeps no more of a bulk write alive than the event's own payload does.
def _sent(local: Any, fd: int, peer_local: Any, peer_fd: int, length: int,
          head: bytes) -> str:
    return f"{name(local, fd)} -> {name(peer_local, peer_fd)} {length}B {preview(head)}"


def _length(local: Any, fd: int, length: int) -> str:
    return f"{name(local, fd)} {length}B"


def _pair(first: Any, second: Any) -> str:
    return f"{first} -> {second}"


def _queued(client: Any, listener: Any) -> str:
    return f"{client} -> {listener} queued"


def _ends(local: Any, fd: int, peer_local: Any, peer_fd: int) -> str:
    return f"{name(local, fd)} -> {name(peer_local, peer_fd)}"


def _datagram_sent(local: Any, fd: int, remote: Any, length: int, head: bytes) -> str:
    return f"{name(local, fd)} -> {remote} {length}B {preview(head)}"  # head: payload[:25]


def _datagram_delivered(source: Any, remote: Any, length: int) -> str:
    return f"{source} -> {remote} {length}B"


def _datagram_dropped(source: Any, remote: Any, length: int, reason: str) -> str:
    return f"{source} -> {remote} {length}B ({reason})"


def _timeout(what: str, local: Any, fd: int) -> str:
    return f"{what} {name(local, fd)}"


def _accepted(local: Any, remote: Any) -> str:
    return f"{local} <- {remote}"


def _received_from(local: Any, fd: int, source: Any, length: int) -> str:
    return f"{name(local, fd)} <- {source} {length}B"


def _jump(before: float, after: float) -> str:
    return f"{before:.6f} -> {after:.6f}"


# Streams.
SENT = lazy_text(_sent)
LENGTH = lazy_text(_length)
PAIR = lazy_text(_pair)
QUEUED = lazy_text(_queued)
ENDS = lazy_text(_ends)
ACCEPTED = lazy_text(_accepted)
# Datagrams.
DATAGRAM_SENT = lazy_text(_datagram_sent)
DATAGRAM_DELIVERED = lazy_text(_datagram_delivered)
DATAGRAM_DROPPED = lazy_text(_datagram_dropped)
RECEIVED_FROM = lazy_text(_received_from)
# Either, and the clock.
TIMEOUT = lazy_text(_timeout)
JUMP = lazy_text(_jump)

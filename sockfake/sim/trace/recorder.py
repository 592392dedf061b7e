"""The trace of a run: every event as a typed record, and a digest of them all.

Each event is a ``TraceEvent``: virtual time, actor (a thread's stable name, ``net``
for the network, ``clock``, ``kernel``), kind, a human summary (``details``), and the
structured fields a tool needs: source and destination address, connection id,
sequence (a datagram's index on the network), length, payload bytes (the first
``payload_limit`` of them) and the reason for a fate (a drop's cause, a switch's).
The text view and the exports (``sockfake.sim.trace.export``: JSONL, pcapng, an HTML
sequence diagram) derive from these records, the digest from the raw events they are
made from.

The trace keeps the last ``limit`` events (``DEFAULT_TRACE_LIMIT`` unless told; None
keeps every event): a ring, with a count of the events dropped from its front.
``len(trace)`` counts every event of the run; ``trace.events`` and iteration give the
kept ones; ``trace.dropped`` says how many came before them.

The digest is a sha256 over every event of the run, kept or dropped: each raw event
(the flat tuple the hot path appended, see ``LAZY``) in marshal's version-2 form,
which is the same in any process, under any ``PYTHONHASHSEED`` and on every Python
from 3.10. It is computed in batches, in C, only when asked for and before events
leave the ring, so a run longer than the ring costs no formatting of what it drops,
and a ring-trimmed run has the digest an unbounded run of it has.
"""

from __future__ import annotations

import hashlib
import marshal
import sys
from collections.abc import Callable, Iterable, Iterator
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

__all__ = [
    "DEFAULT_PAYLOAD_LIMIT", "DEFAULT_TRACE_LIMIT", "LAZY", "Lazy", "Trace", "TraceEvent",
    "lazy_text",
]

# Payload bytes kept per event: enough to read a protocol exchange in Wireshark,
# bounded so a bulk transfer does not keep every byte it moved.
DEFAULT_PAYLOAD_LIMIT = 4096

# Events a trace keeps by default: the last 100,000. A test's whole trace fits (a
# simulated test records hundreds to a few thousand events; 3,000 echo round trips are
# about 25,000), so reports, exports and the determinism check see everything; an idle
# loop or a soak run stops growing at about 20 MB of events plus their payloads.
DEFAULT_TRACE_LIMIT = 100_000

# marshal's version 2: no back-references (which depend on reference counts) and no
# interned-string flag, so equal values always give equal bytes.
_MARSHAL_VERSION = 2


# An event's ``details`` text, formatted only when someone reads it: a plain tuple
# ``(key, *args)`` whose text is ``formatter(*args)``, the key naming a formatter
# registered with ``lazy_text()``. The arguments must be the values as they are when the
# event happens (immutable: an address, a length, the payload bytes), never an object
# that changes later, so the text is exactly the one an eager ``details`` string would
# have given (the digest hashes the key and arguments themselves). ``Lazy((key, a, b))``
# makes one: ``tuple()`` of a tuple is the tuple itself, a single C call (events are
# made on every send and receive). A key, not the function: a tuple of strings, numbers
# and bytes is one the garbage collector stops tracking, and a run's trace would
# otherwise be walked by every full collection. At run time ``Lazy`` is ``tuple`` itself
# (a ``GenericAlias`` call costs twenty times more); set through ``globals()``, as mypyc
# (the optional compiled build) compiles no ``else`` branch of ``if TYPE_CHECKING``.
if TYPE_CHECKING:
    Lazy = tuple[Any, ...]
globals()["Lazy"] = tuple

_FORMATTERS: dict[str, Callable[..., str]] = {}


def lazy_text(formatter: Callable[..., str]) -> str:
    """Register ``formatter`` for lazy details; returns the key a ``Lazy`` starts with."""
    key = f"{formatter.__module__}.{formatter.__qualname__}"
    _FORMATTERS[key] = formatter
    return key


def _text(details: object) -> str:
    """The text of an event's details: a ``Lazy`` formatted, anything else as ``str()``."""
    if isinstance(details, tuple) and details and details[0] in _FORMATTERS:
        return _FORMATTERS[details[0]](*details[1:])
    return str(details)


# A raw event is TraceEvent's eleven fields; one with a Lazy has LAZY in place of the
# details and the Lazy's key and arguments after the eleven (``raw + lazy``, made by
# ``Trace.add`` and the kernel's hot paths). Not the Lazy tuple inside the event: the
# collector untracks a tuple only if what it holds is untracked at that moment, and it
# looks at a collection's survivors in no particular order, so an event met before its
# own Lazy stays tracked, reaches the oldest generation and makes full collections
# come sooner. Flat, an event holds only atoms and long-lived addresses.
LAZY = None
_FIELDS = 11


class TraceEvent(NamedTuple):
    """One event. A tuple: ``event[2]`` is its kind, as it always was."""

    time: float
    actor: str
    kind: str
    details: str = ""
    src: Any = None
    dst: Any = None
    conn: int | None = None  # stream connection id (from 1, in connect() order)
    seq: int | None = None  # datagram index on the network (from 0, in sendto() order)
    length: int | None = None  # bytes sent, received or delivered (payload may be cut)
    payload: bytes | None = None
    reason: str | None = None

    def canonical(self) -> str:
        """The event as text for the digest: every field, nothing process-specific."""
        payload = "" if self.payload is None else self.payload.hex()
        return (
            f"{self.time:.9f}|{self.actor}|{self.kind}|{self.details}|{self.src}|{self.dst}|"
            f"{self.conn}|{self.seq}|{self.length}|{payload}|{self.reason}\n"
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: addresses as lists, the payload as latin-1 text and hex."""
        data: dict[str, Any] = {"time": self.time, "actor": self.actor, "kind": self.kind}
        if self.details:
            data["details"] = self.details
        for name in ("src", "dst"):
            value = getattr(self, name)
            if value is not None:
                data[name] = list(value) if isinstance(value, tuple) else value
        for name in ("conn", "seq", "length", "reason"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        if self.payload is not None:
            data["payload_hex"] = self.payload.hex()
        return data


_new_tuple = tuple.__new__
_HASH_BATCH = 8192  # raw events marshalled per hash update: bounded temporary bytes


def _encoded(raw: tuple[Any, ...]) -> bytes:
    """One raw event's bytes for the digest: marshal's, or (a field it does not know,
    such as a tuple subclass as details) a zero byte and the event's repr."""
    try:
        return marshal.dumps(raw, _MARSHAL_VERSION)
    except ValueError:
        return b"\0" + repr(raw).encode()


class Trace:
    """The last ``limit`` events of a run, in order, and a stable digest of them all.

    ``limit`` (default ``DEFAULT_TRACE_LIMIT``; None keeps every event) bounds the
    events kept: older ones leave the front of the ring, hashed into the digest first,
    and ``dropped`` counts them. ``len(trace)`` is the number of events of the run;
    ``events`` and iteration are the kept ones, the last ``min(len(trace), limit)``.

    Events are kept as plain tuples and become ``TraceEvent``s (details formatted)
    when read: a tuple of strings, numbers and bytes is one the garbage collector
    stops tracking, while a ``NamedTuple`` instance stays tracked, and every full
    collection would walk the whole trace of a long run.
    """

    def __init__(self, limit: int | None = DEFAULT_TRACE_LIMIT,
                 payload_limit: int = DEFAULT_PAYLOAD_LIMIT) -> None:
        self._events: list[Any] = []  # raw tuples after _read, TraceEvents before it
        self._read = 0  # events[:_read] are TraceEvents (always <= _hashed)
        self.payload_limit = payload_limit
        self._hash = hashlib.sha256()
        self._hashed = 0  # events[:_hashed] are in _hash (hashed raw, before reading)
        self._dropped = 0  # events trimmed away by the limit (they are in _hash)
        self._limit = limit
        # The ring trims in batches of a quarter of the limit (at least 64 events), so
        # the list's memmove and the hashing are a few pointer moves and one C call
        # per event; readers still see at most ``limit`` events (``events`` trims).
        self.high_water = sys.maxsize if limit is None else limit + max(limit // 4, 64)
        # append(raw): a raw event (see LAZY), payload already cut to payload_limit.
        # The kernel's hot paths do not call it: they append to ``raw_events`` (one C
        # call, no Python frame) and call ``trim()`` once it holds more than
        # ``high_water`` events. ``raw_events`` stays the same list for the trace's life.
        self.raw_events = self._events
        self.append: Callable[[tuple[Any, ...]], None] = (
            self._events.append if limit is None else self._append_trimmed
        )

    @property
    def limit(self) -> int | None:
        """The most events kept (None: every event)."""
        return self._limit

    @property
    def dropped(self) -> int:
        """How many of the run's first events the ring no longer keeps."""
        self.trim()
        return self._dropped

    def add(
        self,
        when: float,
        actor: str,
        kind: str,
        details: object = "",  # a str or a Lazy; anything else reads as str(details)
        src: Any = None,
        dst: Any = None,
        conn: int | None = None,
        seq: int | None = None,
        length: int | None = None,
        payload: bytes | None = None,
        reason: str | None = None,
    ) -> None:
        if payload is not None and len(payload) > self.payload_limit:
            payload = payload[: self.payload_limit]
        if details.__class__ is tuple and details:
            self.append((when, actor, kind, LAZY, src, dst, conn, seq, length, payload, reason)
                        + details)
        else:
            self.append((when, actor, kind, details, src, dst, conn, seq, length, payload,
                         reason))

    def _append_trimmed(self, raw: tuple[Any, ...]) -> None:
        events = self._events
        events.append(raw)
        if len(events) > self.high_water:
            self.trim()

    def trim(self) -> None:
        events = self._events
        if self._limit is None or len(events) <= self._limit:
            return
        drop = len(events) - self._limit
        self._hash_up_to(drop)
        del events[:drop]
        self._dropped += drop
        self._hashed -= drop
        self._read = max(0, self._read - drop)

    @property
    def events(self) -> list[TraceEvent]:
        """The events kept (the last ``limit``; all with no limit), in order."""
        self.trim()
        events = self._events
        self._hash_up_to(len(events))  # the digest is of raw events: hash before reading
        for index in range(self._read, len(events)):
            raw = events[index]
            if len(raw) > _FIELDS:
                raw = (*raw[:3], _text(raw[_FIELDS:]), *raw[4:_FIELDS])
            elif raw[3].__class__ is not str:
                raw = (*raw[:3], _text(raw[3]), *raw[4:])
            events[index] = _new_tuple(TraceEvent, raw)
        self._read = len(events)
        return events

    def _hash_up_to(self, end: int) -> None:
        """Hash the raw events ``[_hashed:end]``: marshal in C, a batch at a time."""
        events = self._events
        update = self._hash.update
        for start in range(self._hashed, end, _HASH_BATCH):
            batch = events[start:min(end, start + _HASH_BATCH)]
            try:
                update(b"".join(map(marshal.dumps, batch, repeat(_MARSHAL_VERSION))))
            except ValueError:  # a field marshal does not know (an object's details)
                update(b"".join(map(_encoded, batch)))
        self._hashed = max(self._hashed, end)

    def __len__(self) -> int:
        """Every event of the run: the kept ones and the ``dropped`` before them."""
        return self._dropped + len(self._events)

    def __iter__(self) -> Iterator[TraceEvent]:
        return iter(self.events)

    def digest(self) -> str:
        """A hex digest of every event so far, kept or dropped: equal digests mean
        equal runs."""
        self._hash_up_to(len(self._events))
        return self._hash.copy().hexdigest()

    def omitted(self) -> str:
        """A line saying which events are not kept, or "" when all are."""
        self.trim()
        if not self._dropped:
            return ""
        return (f"{len(self)} events, the first {self._dropped} not kept (the trace keeps "
                f"the last {self._limit}; trace_limit=None keeps every event)")

    def format(self, last: int | None = None, kinds: Iterable[str] | None = None) -> str:
        events = self.events
        if kinds is not None:
            wanted = set(kinds)
            events = [event for event in events if event.kind in wanted]
        if last is not None:
            events = events[-last:]
        return "\n".join(
            f"{event.time:12.6f}  {event.actor:<28} {event.kind:<12} {event.details}".rstrip()
            for event in events
        )

    def __str__(self) -> str:
        return self.format()

    # -- exports (see sockfake.sim.trace.export) ----------------------------------------

    def write_jsonl(self, path: str | Path) -> Path:
        """One JSON object per event kept, in order; first, when the ring dropped
        events, a record of kind ``omitted`` that says how many."""
        from sockfake.sim.trace.export import write_jsonl

        events = self.events
        return write_jsonl(events, path, self.omitted(), self._dropped)

    def write_pcap(self, path: str | Path) -> Path:
        """A pcapng file Wireshark and tcpdump open: the packets of the events kept
        (the section comment says what the ring dropped)."""
        from sockfake.sim.trace.export import write_pcapng

        events = self.events
        return write_pcapng(events, path, self.omitted())

    def write_html(self, path: str | Path, title: str = "sockfake trace") -> Path:
        """A self-contained HTML page with an SVG sequence diagram of the traffic."""
        from sockfake.sim.trace.export import write_html

        events = self.events
        return write_html(events, path, title, self.omitted())

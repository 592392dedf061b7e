"""The trace's records: lazy texts read as the eager ones, anything else as ``str()``."""

from __future__ import annotations

from sockfake.sim.trace.recorder import DEFAULT_TRACE_LIMIT, Lazy, Trace, TraceEvent, lazy_text


def _greeting(name: str, count: int) -> str:
    return f"hello {name} x{count}"


GREETING = lazy_text(_greeting)


def test_a_lazy_text_reads_as_its_formatter_gives_it() -> None:
    lazy, eager = Trace(), Trace()
    lazy.add(1.5, "main", "send", Lazy((GREETING, "bob", 3)), src=("127.0.0.1", 1), length=3)
    eager.add(1.5, "main", "send", "hello bob x3", src=("127.0.0.1", 1), length=3)
    assert lazy.events == eager.events
    assert isinstance(lazy.events[0], TraceEvent)
    assert lazy.events[0].details == "hello bob x3"


def test_the_digest_is_of_the_raw_events_whenever_they_are_read() -> None:
    # The digest hashes what was recorded (a Lazy's key and arguments, not its text),
    # so reading the trace (formatting it) before or after changes nothing.
    read_first, never_read = Trace(), Trace()
    for trace in (read_first, never_read):
        trace.add(1.5, "main", "send", Lazy((GREETING, "bob", 3)), length=3)
    assert read_first.events[0].details == "hello bob x3"
    read_first.add(2.0, "main", "note", "after")
    never_read.add(2.0, "main", "note", "after")
    assert read_first.digest() == never_read.digest()
    other = Trace()
    other.add(1.5, "main", "send", Lazy((GREETING, "bob", 4)), length=3)
    other.add(2.0, "main", "note", "after")
    assert other.digest() != never_read.digest()


def test_details_that_are_no_registered_text_read_as_str() -> None:
    trace = Trace()
    trace.add(0.0, "main", "note", 5)
    trace.add(0.0, "main", "note", Lazy(("not a key", 1)))
    assert [event.details for event in trace.events] == ["5", "('not a key', 1)"]


def test_a_limited_trace_keeps_the_newest_events_and_the_digest_of_them_all() -> None:
    limited, whole = Trace(limit=3), Trace()
    for number in range(10):
        for trace in (limited, whole):
            trace.add(float(number), "main", "note", f"event {number}")
    assert len(limited) == len(whole) == 10
    kept = [event.details for event in limited.events]
    assert kept == ["event 7", "event 8", "event 9"]
    assert (limited.dropped, whole.dropped) == (7, 0)
    assert limited.digest() == whole.digest()  # trimmed events were hashed first
    assert limited.omitted().startswith("10 events, the first 7 not kept")
    assert whole.omitted() == ""


def test_a_ring_longer_than_its_limit_keeps_the_limit_and_every_events_digest() -> None:
    ring, whole = Trace(limit=100), Trace(limit=None)
    for number in range(5000):  # many trims of the ring, some reads in between
        for trace in (ring, whole):
            trace.add(number * 0.1, "main", "tick", Lazy((GREETING, "t", number)),
                      payload=b"%d" % number)
        if number % 777 == 0:
            assert len(ring.events) == min(number + 1, 100)
    assert [event.details for event in ring] == [f"hello t x{n}" for n in range(4900, 5000)]
    assert len(ring) == len(whole) == 5000
    assert ring.dropped == 4900
    assert ring.digest() == whole.digest()


def test_the_default_ring_is_default_trace_limit_and_none_keeps_everything() -> None:
    assert Trace().limit == DEFAULT_TRACE_LIMIT == 100_000
    assert Trace(limit=None).limit is None


def test_events_marshal_cannot_encode_are_hashed_by_repr() -> None:
    class Note(tuple[int, ...]):  # a tuple subclass as details: no Lazy, and not marshallable
        pass

    first, second, third = Trace(), Trace(), Trace()
    first.add(0.0, "main", "note", Note((1, 2)))
    second.add(0.0, "main", "note", Note((1, 2)))
    third.add(0.0, "main", "note", Note((1, 3)))
    assert first.digest() == second.digest() != third.digest()

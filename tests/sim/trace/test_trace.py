"""The trace's records: lazy texts read as the eager ones, anything else as ``str()``."""

from __future__ import annotations

from sockfake.sim.trace.recorder import Lazy, Trace, TraceEvent, lazy_text


def _greeting(name: str, count: int) -> str:
    return f"hello {name} x{count}"


GREETING = lazy_text(_greeting)


def test_a_lazy_text_reads_as_its_formatter_gives_it_and_hashes_the_same() -> None:
    lazy, eager = Trace(), Trace()
    lazy.add(1.5, "main", "send", Lazy((GREETING, "bob", 3)), src=("127.0.0.1", 1), length=3)
    eager.add(1.5, "main", "send", "hello bob x3", src=("127.0.0.1", 1), length=3)
    assert lazy.events == eager.events
    assert isinstance(lazy.events[0], TraceEvent)
    assert lazy.events[0].details == "hello bob x3"
    assert lazy.digest() == eager.digest()


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
    assert 3 <= len(kept) <= 6
    assert kept == [f"event {number}" for number in range(10 - len(kept), 10)]
    assert limited.digest() == whole.digest()  # trimmed events were hashed first

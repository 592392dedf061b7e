"""The trace of a run: every event with its virtual time, and a digest of them all.

Events are recorded as they happen (``add``); the digest is a running sha256 over a
canonical text form of each event, so two runs are equal exactly when their digests
are. With a ``limit`` only the most recent events are kept for display; the digest
still covers everything.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

__all__ = ["Trace"]


class Trace:
    """Every event of a run: (virtual time, actor, kind, details), and a stable digest."""

    def __init__(self, limit: int | None = None) -> None:
        self.events: list[tuple[float, str, str, str]] = []
        self._hash = hashlib.sha256()
        self._count = 0
        self._limit = limit

    def add(self, when: float, actor: str, kind: str, details: str) -> None:
        self._count += 1
        self._hash.update(f"{when:.9f}|{actor}|{kind}|{details}\n".encode())
        self.events.append((when, actor, kind, details))
        if self._limit is not None and len(self.events) > self._limit * 2:
            del self.events[: len(self.events) - self._limit]

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Any:
        return iter(self.events)

    def digest(self) -> str:
        """A hex digest of every event so far: equal digests mean equal runs."""
        return self._hash.copy().hexdigest()

    def format(self, last: int | None = None, kinds: Iterable[str] | None = None) -> str:
        events = self.events
        if kinds is not None:
            wanted = set(kinds)
            events = [event for event in events if event[2] in wanted]
        if last is not None:
            events = events[-last:]
        return "\n".join(
            f"{when:12.6f}  {actor:<28} {kind:<12} {details}".rstrip()
            for when, actor, kind, details in events
        )

    def __str__(self) -> str:
        return self.format()

"""What happened in a run: the trace, its texts, its exports.

- ``recorder``: ``Trace`` (raw events as flat tuples, ``TraceEvent`` records made when
  read, the digest) and lazy texts.
- ``texts``: the hot path's event texts, formatted only when read.
- ``export``: packets from events; JSONL, pcapng (Wireshark) and the HTML diagram.

Public: ``Trace`` and ``TraceEvent`` (importable from here). The lowest layer of the
simulation: it imports nothing of it.
"""

from sockfake.sim.trace.recorder import Trace, TraceEvent

__all__ = ["Trace", "TraceEvent"]

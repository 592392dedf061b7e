"""Exports of a trace: JSONL, a pcapng capture, an HTML sequence diagram.

All three derive from the trace's ``TraceEvent`` records. The capture and the diagram
show *packets* (``sockfake.sim.trace.packets``: what went on the wire and what the
network did to each); ``pcapng`` writes the capture, ``diagram`` the HTML page.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from sockfake.sim.trace.diagram import write_html
from sockfake.sim.trace.packets import Packet, packets
from sockfake.sim.trace.pcapng import write_pcapng
from sockfake.sim.trace.recorder import TraceEvent

__all__ = ["Packet", "packets", "write_html", "write_jsonl", "write_pcapng"]


# -- JSONL -------------------------------------------------------------------------------


def write_jsonl(events: Iterable[TraceEvent], path: str | Path, omitted: str = "",
                dropped: int = 0) -> Path:
    """One JSON object per event; with ``omitted`` (``Trace.omitted()``) the first line
    is a record of kind ``omitted`` saying so, ``length`` the events not kept."""
    path = Path(path)
    with path.open("w", encoding="utf-8") as out:
        if omitted:
            note = {"time": 0.0, "actor": "trace", "kind": "omitted", "details": omitted,
                    "length": dropped}
            out.write(json.dumps(note, sort_keys=True) + "\n")
        for event in events:
            out.write(json.dumps(event.to_json(), sort_keys=True) + "\n")
    return path

"""What a failing test on the simulated network prints, whatever runs it.

The seed and where it came from, the virtual time and the trace's digest, the last
trace events (a run of repeated events, an idle loop's ticks, is one line with a
count, so the lines left show what happened before it), the trace files (pcapng,
JSON lines, the HTML diagram), and how to reproduce the run: a command, the code, or
both. The pytest plugin (``plugin_reports``) and the testing core (``testing``:
``open_testbed``, ``TestbedMixin``) print this same report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["TRACE_LINES", "FailureReport", "last_events", "write_trace_files"]

TRACE_LINES = 30  # lines of trace events a report shows
# A block of events repeated at least this many times in a row is summarised.
_REPEATS = 3
_LONGEST_BLOCK = 4  # events in a repeated block (an idle loop: select, timeout, jump)


def _line(event: Any) -> str:
    return f"{event.time:12.6f}  {event.actor:<28} {event.kind:<12} {event.details}".rstrip()


def _signature(event: Any) -> tuple[str, str]:
    return event.actor, event.kind


def last_events(events: list[Any], lines: int = TRACE_LINES) -> list[str]:
    """The trace's last events as ``lines`` lines at most, newest last.

    Going back from the end, a block of one to four events (by thread and kind)
    repeated three times or more is shown once, in full, under a line that says how
    many times it ran before and over which virtual time.
    """
    out: list[str] = []  # newest first, reversed at the end
    end = len(events)
    while end > 0 and len(out) < lines:
        block, times = 1, 1
        for size in range(1, _LONGEST_BLOCK + 1):
            pattern = [_signature(e) for e in events[end - size:end]]
            count = 1
            while end - (count + 1) * size >= 0 and [
                _signature(e) for e in events[end - (count + 1) * size:end - count * size]
            ] == pattern:
                count += 1
            if count >= _REPEATS and count * size > times * block:
                block, times = size, count
        shown = events[end - block:end]
        out.extend(_line(e) for e in reversed(shown))
        if times > 1:
            first = events[end - times * block]
            kinds = ", ".join(e.kind for e in shown)
            out.append(f"{'':12}  ... the {block} event(s) below ({kinds}) ran "
                       f"{times - 1} more times before, from {first.time:.6f} s ...")
        end -= times * block
    if end > 0 and len(out) >= lines:
        out = out[:lines]
    return list(reversed(out))


def write_trace_files(net: Any, directory: Path, stem: str, title: str) -> list[str]:
    """Write the trace as pcapng, JSONL and HTML; the report's lines that name them."""
    stem = re.sub(r"[^\w.-]+", "_", stem).strip("_")[-120:] or "trace"
    try:
        # A directory that cannot be made is a line in the report, not a new error.
        directory.mkdir(parents=True, exist_ok=True)
        written = [
            net.trace.write_pcap(directory / f"{stem}.pcapng"),
            net.trace.write_jsonl(directory / f"{stem}.jsonl"),
            net.trace.write_html(directory / f"{stem}.html", title=title),
        ]
    except OSError as exc:
        return [f"trace files: could not write to {directory}: {exc}"]
    return ["trace files (Wireshark, JSON lines, sequence diagram):"] + [
        f"  {path}" for path in written
    ]


@dataclass
class FailureReport:
    """The report on one simulated network: what to show and how to reproduce it."""

    seed: int | None  # None: the real network
    seed_origin: str = ""  # "from the marker", "derived from base seed 0 and ..."
    reproduce: list[str] = field(default_factory=list)  # commands or code, in order
    trace_dir: Path | None = None  # None: no trace files
    name: str = "sockfake"  # the files' stem and the diagram's title
    trace: bool = True  # False: seed and reproduce lines only

    def text(self, net: Any) -> str:
        if self.seed is None or net is None or not hasattr(net, "trace"):
            lines = ["real network (no seed, no trace)"]
        else:
            origin = f" ({self.seed_origin})" if self.seed_origin else ""
            trace = net.trace
            lines = [
                f"simulated network, seed {self.seed}{origin}",
            ]
            swarm = getattr(net.kernel, "swarm", None)
            if swarm is not None:  # what this seed drew: pin it in the marker to keep it
                lines.append(
                    f"schedule drawn by the swarm: {swarm}; "
                    f"{len(net.schedule)} scheduler decisions"
                )
            lines += [
                f"virtual time {net.kernel.now:.6f} s, {len(trace)} trace events, "
                f"trace digest {trace.digest()}",
            ]
            omitted = trace.omitted()
            if omitted:
                lines.append(omitted)
            events = trace.events
            if self.trace and events:
                shown = last_events(events)
                lines.append(f"last {len(shown)} lines of trace events:")
                lines.extend(shown)
                if self.trace_dir is not None:
                    lines.extend(write_trace_files(net, self.trace_dir, self.name, self.name))
        for number, how in enumerate(self.reproduce):
            lines.append(f"{'reproduce:' if number == 0 else '       or:'} {how}")
        return "\n".join(lines)

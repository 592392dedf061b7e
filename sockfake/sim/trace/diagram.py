"""A trace as a self-contained HTML sequence diagram.

One lifeline per endpoint, one row per packet (``packets``), virtual time down the
left, each row marked with what the network did to it: dropped (red, dashed, ✗),
duplicated (⇉), reordered (⇅), corrupted (⚡), held (‖), reset, retransmitted (↻),
in flight (…). Short payloads show inline, every payload on click. Thread switches
and lock, queue, condition and semaphore hand-offs (the schedule exploration varies)
are rows of their own, between the packets, in time order.

Filters, in the page and in its address (``page.html#conn=TCP connection 1``,
``#host=127.0.0.1``, ``#thread=Thread-2``, ``#threads=off``): one connection or
datagram flow, one host, one thread. Every text is escaped exactly once. No external
resources: the file opens from disk, offline.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sockfake.sim.trace.packets import Packet, flow_name, packets
from sockfake.sim.trace.recorder import TraceEvent

__all__ = ["FATE_MARKS", "MAX_ROWS", "THREAD_KINDS", "write_html"]

_COLUMN = 180
# The mark each fate gets in the diagram (a test finds each in a browser's DOM).
FATE_MARKS = {
    "dropped": "✗", "duplicated": "⇉", "reordered": "⇅", "corrupted": "⚡",
    "held": "‖", "reset": "⊘", "retransmitted": "↻", "in flight": "…",
}
_FATE_COLOURS = {
    "dropped": "#c00", "duplicated": "#d97000", "reordered": "#7a3db8",
    "corrupted": "#8b5a00", "held": "#2b7a99", "reset": "#c00", "in flight": "#888",
}
# Events shown as thread rows: who runs, and what one thread hands another.
THREAD_KINDS = frozenset({
    "switch", "thread-start", "thread-error", "lock-wait", "lock-acquire", "lock-release",
    "condition-wait", "condition-notify", "event-set", "semaphore-wait",
    "semaphore-acquire", "semaphore-release", "queue-put", "queue-get",
})
_THREAD_MARKS = {"switch": "⇄", "lock": "◆", "queue": "⇶", "condition": "◇",
                 "semaphore": "◆", "event": "⚐", "thread": "+"}
# Rows a page holds: a long run keeps its last rows (the counts cover all of them).
MAX_ROWS = 5000
# Thread rows shown without asking, above which the page opens with them hidden.
_THREAD_ROWS_SHOWN = 400
_INLINE_PAYLOAD = 48  # bytes: a payload this short is shown on its row


def _name(address: Any) -> str:
    if isinstance(address, tuple):
        ip, port = address[0], address[1]
        return f"[{ip}]:{port}" if ":" in str(ip) else f"{ip}:{port}"
    return address or "(unnamed)"


def _host(address: Any) -> str:
    """The host part of an address: its IP, or the Unix path."""
    if isinstance(address, tuple):
        return str(address[0])
    return _name(address)


def _payload_text(payload: bytes, limit: int) -> str:
    text = repr(payload[:limit])[1:]
    return text + ("…" if len(payload) > limit else "")


def _attr(value: str) -> str:
    return html.escape(value, quote=True)


class _Page:
    """The rows of the diagram as HTML, and the data its script needs."""

    def __init__(self, lifelines: dict[str, int]) -> None:
        self.lifelines = lifelines
        self.width = max(1, len(lifelines)) * _COLUMN
        self.rows: list[str] = []
        self.details: list[dict[str, Any]] = []

    def _x(self, address: Any) -> int:
        return self.lifelines[_name(address)] * _COLUMN + _COLUMN // 2

    def _lines(self) -> str:
        return "".join(f'<line x1="{i * _COLUMN + _COLUMN // 2}" y1="0" '
                       f'x2="{i * _COLUMN + _COLUMN // 2}" y2="26" class="life"/>'
                       for i in range(len(self.lifelines)))

    def packet(self, packet: Packet) -> None:
        index = len(self.details)
        x1, x2 = self._x(packet.src), self._x(packet.dst)
        if x1 == x2:
            x2 = x1 + 40  # to itself: a short arrow to the right
        fates = list(packet.fates)
        colour = next((_FATE_COLOURS[f] for f in fates if f in _FATE_COLOURS), "#036")
        dropped = not packet.delivered
        end = (x1 + x2) // 2 if dropped else x2
        dash = ' stroke-dasharray="5 3"' if dropped else ""
        arrow = (f'<line x1="{x1}" y1="16" x2="{end}" y2="16" stroke="{colour}" '
                 f'stroke-width="1.6"{dash}/>')
        if "duplicated" in fates:  # a second, parallel line: the copy
            arrow += (f'<line x1="{x1}" y1="19" x2="{end}" y2="19" stroke="{colour}" '
                      'stroke-width="1"/>')
        if dropped:
            arrow += (f'<path d="M{end - 5},11L{end + 5},21M{end - 5},21L{end + 5},11" '
                      f'stroke="{colour}" stroke-width="2"/>')
        else:
            tip = -6 if x2 > x1 else 6
            arrow += (f'<path d="M{x2},16L{x2 + tip},12L{x2 + tip},20z" fill="{colour}"/>')
        marks = " ".join(f"{FATE_MARKS[f]} {f}" + (f" ({packet.fates[f]})"
                                                  if packet.fates[f] else "")
                         for f in fates if f in FATE_MARKS)
        label = packet.summary + (f" #{packet.datagram}" if packet.datagram is not None else "")
        room = abs(x2 - x1) // 7 - len(label) - 1  # characters left above the arrow
        shown = label
        if packet.payload and room >= 8:
            shown += " " + _payload_text(packet.payload, room - 3)[:room]
        arrow += (f'<text x="{(x1 + x2) // 2}" y="10" text-anchor="middle" '
                  f'fill="{colour}">{html.escape(shown)}</text>')
        flow = flow_name(packet)
        hosts = " ".join(sorted({_host(packet.src), _host(packet.dst)}))
        classes = " ".join(["row", "pkt"] + [f"fate-{f.replace(' ', '-')}" for f in fates])
        inline = _payload_text(packet.payload, _INLINE_PAYLOAD) if packet.payload else ""
        self.rows.append(
            f'<div class="{classes}" data-i="{index}" data-conn="{_attr(flow)}" '
            f'data-hosts="{_attr(hosts)}" data-thread="{_attr(packet.actor)}">'
            f'<span class="t">{packet.time:.6f}</span>'
            f'<span class="m" style="color:{colour}">{html.escape(marks)}</span>'
            f'<svg width="{self.width}" height="26">{self._lines()}{arrow}</svg>'
            f'<span class="pl">{html.escape(inline)}</span></div>'
        )
        self.details.append({
            "time": packet.time, "summary": label, "src": _name(packet.src),
            "dst": _name(packet.dst), "comments": packet.comments, "flow": flow,
            "payload": packet.payload.decode("latin-1"), "length": packet.length,
            "sent": packet.sent, "thread": packet.actor,
        })

    def thread_event(self, event: TraceEvent) -> None:
        index = len(self.details)
        family = event.kind.split("-")[0]
        mark = _THREAD_MARKS.get(family, "•")
        if event.kind == "switch":
            text = f"{event.actor} runs ({event.details or event.reason or 'turn'})"
        else:
            text = f"{event.actor}: {event.kind} {event.details}".rstrip()
        self.rows.append(
            f'<div class="row thr kind-{_attr(event.kind)}" data-i="{index}" data-conn="" '
            f'data-hosts="" data-thread="{_attr(event.actor)}">'
            f'<span class="t">{event.time:.6f}</span>'
            f'<span class="m">{mark} {html.escape(event.kind)}</span>'
            f'<svg width="{self.width}" height="18">{self._lines()}'
            f'<text x="4" y="13" class="tt">{html.escape(text)}</text></svg>'
            f'<span class="pl"></span></div>'
        )
        self.details.append({"time": event.time, "summary": event.kind,
                             "thread": event.actor, "text": f"{mark} {text}"})


def _script_json(value: Any) -> str:
    """JSON that cannot end the script element it sits in."""
    return json.dumps(value).replace("</", "<\\/").replace("<!--", "<\\!--")


def write_html(events: Iterable[TraceEvent], path: str | Path, title: str,
               omitted: str = "") -> Path:
    """Write the diagram (see the module docstring) to ``path``; ``omitted``: a line
    saying which events the trace no longer kept (``Trace.omitted()``), shown first."""
    path = Path(path)
    events = list(events)
    found = packets(events)
    threads = [event for event in events if event.kind in THREAD_KINDS]
    counts = {fate: sum(1 for p in found if fate in p.fates) for fate in FATE_MARKS}
    # Rows in time order, packets before thread events of the same instant.
    merged: list[tuple[float, int, int, Any]] = [(p.time, 0, i, p) for i, p in enumerate(found)]
    merged += [(e.time, 1, i, e) for i, e in enumerate(threads)]
    merged.sort(key=lambda row: row[:3])
    left_out = max(0, len(merged) - MAX_ROWS)
    merged = merged[left_out:]
    lifelines: dict[str, int] = {}
    for _, is_thread, _, item in merged:
        if not is_thread:
            for address in (item.src, item.dst):
                lifelines.setdefault(_name(address), len(lifelines))
    page = _Page(lifelines)
    for _, is_thread, _, item in merged:
        if is_thread:
            page.thread_event(item)
        else:
            page.packet(item)
    flows = sorted({flow_name(p) for p in found})
    hosts = sorted({_host(a) for p in found for a in (p.src, p.dst)})
    actors = sorted({p.actor for p in found} | {e.actor for e in threads})
    show_threads = len(threads) <= _THREAD_ROWS_SHOWN

    def options(name: str, values: list[str], every: str) -> str:
        items = "".join(f'<option value="{_attr(v)}">{html.escape(v)}</option>'
                        for v in values)
        return (f'<label>{html.escape(name)} <select id="f-{name}">'
                f'<option value="">{html.escape(every)}</option>{items}</select></label>')

    header = "".join(
        f'<span class="life-name" style="left:{i * _COLUMN}px;width:{_COLUMN}px">'
        f'{html.escape(name)}</span>' for name, i in lifelines.items()
    )
    summary = " ".join(f'<span class="count fate-{f.replace(" ", "-")}">'
                        f'{FATE_MARKS[f]} {n} {html.escape(f)}</span>'
                        for f, n in counts.items() if n)
    earlier = (f"<p class=\"note\">{left_out} earlier rows are not shown (a page holds the "
               f"last {MAX_ROWS}); the counts above cover these events, the JSON lines "
               "file has every event the trace kept.</p>") if left_out else ""
    if omitted:
        earlier = f'<p class="note">{html.escape(omitted)}</p>' + earlier
    text = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body{{font-family:sans-serif;margin:16px}}
#rows{{font-family:monospace;font-size:12px}}
.row{{display:flex;align-items:center;cursor:pointer;white-space:nowrap}}
.row:hover{{background:#eef}}
.row .t{{width:90px;flex:none;text-align:right;padding-right:8px;color:#555}}
.row svg{{flex:none;font-family:monospace;font-size:11px}}
.row .m{{width:230px;flex:none;overflow:hidden;text-overflow:ellipsis}}
.row .pl{{padding-left:8px;color:#333}}
.thr .m,.tt{{fill:#666;color:#666;font-style:italic}}
.tt{{paint-order:stroke;stroke:#fff;stroke-width:3px}}
.life{{stroke:#bbb;stroke-dasharray:4 3}}
#names{{position:relative;height:20px;margin-left:328px;font-weight:bold;font-size:12px}}
.life-name{{position:absolute;text-align:center;overflow:hidden;text-overflow:ellipsis}}
#d{{white-space:pre-wrap;background:#f4f4f4;padding:8px;border:1px solid #ccc;
min-height:3em;font-family:monospace}}
.count{{margin-right:10px}} .fate-dropped .m,.count.fate-dropped{{color:#c00}}
#filters label{{margin-right:14px}}
</style></head>
<body><h2>{html.escape(title)}</h2>
<p>{len(found)} packets between {len(lifelines)} endpoints, {len(threads)} thread
events. {summary or "Nothing dropped, duplicated, reordered, corrupted or held."}</p>
<p class="legend">✗ dropped (dashed, red) · ⇉ duplicated (double line) · ⇅ reordered ·
⚡ corrupted · ‖ held · ⊘ reset · ↻ retransmitted · … in flight · ⇄ thread switch ·
◆ ⇶ ◇ ⚐ lock, queue, condition, event hand-offs · + thread start. Click a row for its
payload.</p>
<p id="filters">{options("conn", flows, "every connection")}
{options("host", hosts, "every host")}{options("thread", actors, "every thread")}
<label><input type="checkbox" id="f-threads"{" checked" if show_threads else ""}>
thread switches and hand-offs</label> <span id="shown"></span></p>
{earlier}<div id="names">{header}</div>
<div id="rows">{"".join(page.rows)}</div>
<h3>Selected</h3><div id="d">(click a row)</div>
<script>
const rows = {_script_json(page.details)};
const byId = id => document.getElementById(id);
function show(i) {{
  const p = rows[i];
  let text = p.time.toFixed(6) + " s  ";
  if (p.text !== undefined) {{ text += p.text; }}
  else {{
    text += p.src + " -> " + p.dst + "  " + p.summary + "  (" + p.flow + ", sent by " +
      p.thread + (p.sent !== null ? ", left at " + p.sent.toFixed(6) + " s" : "") + ")" +
      (p.comments.length ? "\\n" + p.comments.join("\\n") : "") +
      "\\n\\n" + p.length + " bytes: " + JSON.stringify(p.payload);
  }}
  byId("d").textContent = text;
}}
function apply() {{
  const conn = byId("f-conn").value, host = byId("f-host").value,
    thread = byId("f-thread").value, threads = byId("f-threads").checked;
  let shown = 0;
  document.querySelectorAll(".row").forEach(r => {{
    const isThread = r.classList.contains("thr");
    const ok = (!isThread || threads) &&
      (!conn || r.dataset.conn === conn) &&
      (!host || r.dataset.hosts.split(" ").includes(host)) &&
      (!thread || r.dataset.thread === thread);
    r.style.display = ok ? "" : "none";
    if (ok) shown++;
  }});
  byId("shown").textContent = shown + " rows shown";
  const state = [];
  if (conn) state.push("conn=" + encodeURIComponent(conn));
  if (host) state.push("host=" + encodeURIComponent(host));
  if (thread) state.push("thread=" + encodeURIComponent(thread));
  if (!threads) state.push("threads=off");
  history.replaceState(null, "", state.length ? "#" + state.join("&") : location.pathname);
}}
for (const part of location.hash.slice(1).split("&")) {{
  const key = part.slice(0, part.indexOf("="));
  const value = decodeURIComponent(part.slice(part.indexOf("=") + 1));
  if (key === "threads") byId("f-threads").checked = value !== "off";
  else if (byId("f-" + key)) byId("f-" + key).value = value;
}}
["f-conn", "f-host", "f-thread", "f-threads"].forEach(id =>
  byId(id).addEventListener("change", apply));
document.querySelectorAll(".row").forEach(r =>
  r.addEventListener("click", () => show(Number(r.dataset.i))));
apply();
</script></body></html>
"""
    path.write_text(text, encoding="utf-8")
    return path

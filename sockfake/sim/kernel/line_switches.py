"""Switch points inside the code under test: every line (or bytecode) may hand the turn over.

Opt-in (``SimNetwork(switch_points="lines"|"opcodes")``, or drawn by a swarm) with an
exploring scheduler: each simulated thread calls the kernel's switch point on every
line, or every bytecode, of the code under test. A race with no simulated call in it
(``self.server.hits += 1`` from two handlers: one line, several bytecodes) then has a
schedule that shows it.

The code under test is every file outside sockfake, the standard library and the
installed packages (``site-packages``, ``dist-packages``): a package's first-call
code (an import, a cache filled once per process) would otherwise make a test's
schedule depend on which tests ran before it in the process. ``switch_packages``
names installed packages to include (``("requests",)``).

Two implementations, one behaviour:

- 3.12+: ``sys.monitoring`` (PEP 669), ``LINE`` or ``INSTRUCTION`` events for one tool
  id, on only while a thread with switch points runs. Code outside the code under test
  is switched off where it is first seen (``DISABLE``), so it costs one call per
  location, once. Instruction events are reported for every instruction from the
  first run of a code object on, so the same seed schedules the same way in a fresh
  process and in a long one (``settrace``'s opcode events were fewer on a code
  object's first run on 3.12+).
- 3.10, 3.11: ``sys.settrace`` on each simulated thread, with ``f_trace_opcodes``.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import CodeType, FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sockfake.sim.kernel.core import Kernel

__all__ = ["Switches", "under_test"]

Tracer = Callable[[FrameType, str, Any], Any]

# What a line or opcode switch point touches (systematic exploration's partial-order
# reduction): Python objects the simulation cannot see, so all of them, one resource.
MEMORY = ("memory", 0)
_SKIP = tuple(
    {
        str(Path(__file__).resolve().parents[2]) + os.sep,  # sockfake (this is sim/kernel/)
        sysconfig.get_paths()["stdlib"] + os.sep,
        sysconfig.get_paths()["platstdlib"] + os.sep,
    }
)
_PACKAGE_DIRS = (f"{os.sep}site-packages{os.sep}", f"{os.sep}dist-packages{os.sep}")


def under_test(filename: str, packages: Sequence[str] = ()) -> bool:
    """Is ``filename`` code under test: not sockfake's, the stdlib's or an installed
    package's (unless the package is one of ``packages``)?"""
    if filename.startswith(_SKIP) or filename.startswith("<"):
        return False
    for marker in _PACKAGE_DIRS:
        at = filename.find(marker)
        if at >= 0:
            top = filename[at + len(marker):].split(os.sep, 1)[0]
            return top.split(".", 1)[0] in packages
    return True


class Switches:
    """Line or opcode switch points for the threads of one kernel: ``run(body)`` runs
    a simulated thread's body with them."""

    def __init__(self, kernel: Kernel, *, opcodes: bool, packages: Sequence[str] = ()) -> None:
        self.kernel = kernel
        self.opcodes = opcodes
        self.packages = tuple(packages)

    def run(self, body: Callable[[], None]) -> None:
        if _monitoring is not None:
            _monitoring.run(self, body)
            return
        sys.settrace(_tracer(self))
        try:
            body()
        finally:
            sys.settrace(None)


def _tracer(switches: Switches) -> Tracer:
    """A ``sys.settrace`` function that makes lines (or bytecodes) switch points."""
    kernel = switches.kernel
    opcodes = switches.opcodes
    packages = switches.packages
    event_name = "opcode" if opcodes else "line"

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if event == event_name:
            kernel.preemption_point(event_name, MEMORY)
        return local

    def global_(frame: FrameType, event: str, arg: Any) -> Any:
        if not under_test(frame.f_code.co_filename, packages):
            return None
        if opcodes:
            frame.f_trace_opcodes = True
            frame.f_trace_lines = False
        return local

    return global_


class _Monitoring:
    """One ``sys.monitoring`` tool shared by every kernel: the threads that run with
    switch points now (by ident), and the events on while any does."""

    def __init__(self, monitoring: Any) -> None:
        self._mon = monitoring
        self._threads: dict[int, Switches] = {}
        self._lock = threading.Lock()  # the process's threads enter and leave at once
        self._tool: int | None = None
        self._events = 0
        self._packages: set[str] = set()  # asked for by a thread since the tool was got

    def run(self, switches: Switches, body: Callable[[], None]) -> None:
        ident = threading.get_ident()
        self._enter(ident, switches)
        try:
            body()
        finally:
            self._leave(ident)

    def _enter(self, ident: int, switches: Switches) -> None:
        mon = self._mon
        with self._lock:
            if self._tool is None:
                self._tool = self._claim_tool()
                mon.register_callback(self._tool, mon.events.LINE, self._on_line)
                mon.register_callback(self._tool, mon.events.INSTRUCTION, self._on_instruction)
            self._threads[ident] = switches
            if not set(switches.packages) <= self._packages:
                # Locations switched off for another thread may be under test here.
                self._packages.update(switches.packages)
                mon.restart_events()
            self._set_events()

    def _leave(self, ident: int) -> None:
        with self._lock:
            self._threads.pop(ident, None)
            self._set_events()
            if not self._threads and self._tool is not None:
                self._mon.set_events(self._tool, 0)
                self._mon.free_tool_id(self._tool)
                self._tool = None
                self._packages.clear()

    def _claim_tool(self) -> int:
        mon = self._mon
        for tool in (4, 3, 1, 2, 0):  # the unnamed ids first, then the named ones
            if mon.get_tool(tool) is None:
                mon.use_tool_id(tool, "sockfake switch points")
                return tool
        raise RuntimeError("sys.monitoring has no free tool id for sockfake's switch points")

    def _set_events(self) -> None:
        events = 0
        for switches in self._threads.values():
            events |= self._mon.events.INSTRUCTION if switches.opcodes else self._mon.events.LINE
        if events != self._events and self._tool is not None:
            self._mon.set_events(self._tool, events)
            self._events = events

    def _switch(self, code: CodeType, opcodes: bool) -> Any:
        switches = self._threads.get(threading.get_ident())
        if switches is None:
            # Another thread: code under test stays on for the simulated ones; the rest
            # is off for good (a call per location, once).
            if self._packages or under_test(code.co_filename):
                return None
            return self._mon.DISABLE
        if not under_test(code.co_filename, switches.packages):
            return None if self._packages else self._mon.DISABLE
        if switches.opcodes == opcodes:
            switches.kernel.preemption_point("opcode" if opcodes else "line", MEMORY)
        return None

    def _on_line(self, code: CodeType, line: int) -> Any:
        return self._switch(code, False)

    def _on_instruction(self, code: CodeType, offset: int) -> Any:
        return self._switch(code, True)


_monitoring: _Monitoring | None = (
    _Monitoring(sys.monitoring) if hasattr(sys, "monitoring") else None
)

"""The simulated network: deterministic, on virtual time, with faults on purpose.

Layers, top to bottom (held by the import contract in ``.importlinter``):

- ``scenarios``, ``determinism``, ``nemesis``: slow and hostile clients; two runs
  compared; a seeded schedule of faults.
- ``intercept/``: the stdlib's entry points, dispatched per thread.
- ``network``: ``SimNetwork``, the façade users hold: hosts, faults, the trace.
- ``net/``: topology, addressing, transports, sockets, selectors, link models.
- ``kernel/``: threads, the turn, the clock, timers, scheduling, locks and queues.
- ``trace/``: the events of a run, their texts and exports.

``COMPILED`` says whether this is the optional compiled build (``setup.py``: the hot
modules through mypyc, about 1.5x faster per message) or pure Python (the default).
"""

import sockfake.sim.kernel.core as _kernel
from sockfake.errors import (
    HostCrashed,
    SimDeadlockError,
    SimStallError,
    SimThreadKilled,
    SimTimeLimitError,
    SimulationError,
)
from sockfake.sim.net.faults import FaultPlan
from sockfake.sim.net.links import GilbertElliott, LinkConditions
from sockfake.sim.net.sockets import SimSocket
from sockfake.sim.net.topology import Host
from sockfake.sim.network import SimNetwork
from sockfake.sim.trace.recorder import Trace, TraceEvent

# A compiled module is an extension: its file is a shared library, not a .py.
COMPILED: bool = not str(getattr(_kernel, "__file__", "")).endswith((".py", ".pyc"))

__all__ = [
    "COMPILED",
    "FaultPlan",
    "GilbertElliott",
    "Host",
    "HostCrashed",
    "LinkConditions",
    "SimDeadlockError",
    "SimNetwork",
    "SimSocket",
    "SimStallError",
    "SimThreadKilled",
    "SimTimeLimitError",
    "SimulationError",
    "Trace",
    "TraceEvent",
]

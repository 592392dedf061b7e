"""The simulated network: deterministic, on virtual time, with faults on purpose.

- ``kernel``: virtual clock, timers, the scheduler of simulated threads, the trace.
- ``links``: pure link and fault models (latency, bandwidth, loss, duplication...).
- ``sockets``: the simulated ``socket.socket``.
- ``sync``: events, locks, queues, wakers and selectors on virtual time.
- ``network``: ``SimNetwork`` and its hosts; routing, partitions, host failures.
- ``scenarios``: slow and hostile clients as one-line objects.

``COMPILED`` says whether this is the optional compiled build (``setup.py``: the hot
modules through mypyc, about 1.5x faster per message) or pure Python (the default).
"""

import sockfake.sim.kernel as _kernel
from sockfake.errors import (
    SimDeadlockError,
    SimStallError,
    SimThreadKilled,
    SimTimeLimitError,
    SimulationError,
)
from sockfake.sim.links import GilbertElliott, LinkConditions
from sockfake.sim.network import Host, SimNetwork
from sockfake.sim.sockets import SimSocket
from sockfake.sim.trace import Trace

# A compiled module is an extension: its file is a shared library, not a .py.
COMPILED: bool = not str(getattr(_kernel, "__file__", "")).endswith((".py", ".pyc"))

__all__ = [
    "COMPILED",
    "GilbertElliott",
    "Host",
    "LinkConditions",
    "SimDeadlockError",
    "SimNetwork",
    "SimSocket",
    "SimStallError",
    "SimThreadKilled",
    "SimTimeLimitError",
    "SimulationError",
    "Trace",
]

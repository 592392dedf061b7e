"""Histories of client operations and the checks run on them: pure code, no simulation.

Record what clients asked and were told (``History``), then check it:
``check_linearizable(history, "key-value")`` (register, key-value, queue and set
models; any ``Model``), ``acknowledged_writes_lost(history)``,
``monotonic_reads(history)``. A failed check's ``describe()`` prints the operations
as a timeline with the culprits marked. Under a sockfake simulation the history's
times are virtual, so a failing history replays with its seed; on a recorded history
from anywhere else the checks work the same.
"""

from sockfake.history.checkers import CheckResult, acknowledged_writes_lost, monotonic_reads
from sockfake.history.linearizability import LinearizabilityResult, check_linearizable
from sockfake.history.models import MODELS, KeyValue, Model, Queue, Register, Set
from sockfake.history.operations import History, Operation, Pending
from sockfake.history.timeline import timeline

__all__ = [
    "CheckResult",
    "History",
    "KeyValue",
    "LinearizabilityResult",
    "MODELS",
    "Model",
    "Operation",
    "Pending",
    "Queue",
    "Register",
    "Set",
    "acknowledged_writes_lost",
    "check_linearizable",
    "monotonic_reads",
    "timeline",
]

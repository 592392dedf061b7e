"""The simulation's kernel: who runs, and when the clock moves.

Every simulated thread is a real thread that runs only while it holds the turn, so a
run is one deterministic sequence. Modules:

- ``core``: ``Kernel`` (who holds the turn, the ready queue, the virtual clock,
  deadlock and stall detection, signals for the main thread), ``current_kernel``.
- ``timers``: ``Timers``, the timer heap and the deadlines of timed waits.
- ``threads``: ``SimThread``, the kernel's record of a thread, its states and their
  moves (``THREAD_MOVES``); ``WaitQueue``.
- ``turn``: the baton one thread holds. ``cpu_pin``: a network's threads on one CPU.
- ``scheduling``: policies (fifo, random, pct, replay) and recorded schedules.
- ``line_switches``: opt-in switch points at each line or opcode of handler code.
- ``sync``, ``semaphores``, ``queues``: the one family of locks, conditions, events,
  semaphores and queues on virtual time (``net.lock()`` ... and, under interception,
  ``threading``'s).
- ``thread_hooks``: ``Thread.start/join/is_alive`` on simulated threads.
- ``watchdog``: the main thread's stall watchdog. ``reports``: deadlock and stall dumps.

Nothing here is public API: users reach the kernel through ``sockfake.sim.SimNetwork``.
This layer imports only ``sockfake.sim.trace`` and ``sockfake.errors``.
"""

__all__: list[str] = []

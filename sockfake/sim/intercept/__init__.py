"""Interception: inside a simulation the stdlib *is* the simulation, per thread.

``SimNetwork.intercept()`` (or ``intercept(net)``) patches the stdlib's entry points
once; each call then dispatches by its calling thread: a simulated thread gets the
simulation, every other thread the real thing. Modules, one per stdlib area:

- ``install``: the install table (what is patched, and restored on leave).
- ``dispatch``: which network the calling thread belongs to (``caller_network``).
- ``clock``: ``time``. ``signals``: ``signal.pthread_kill``, ``os.kill``,
  ``signal.raise_signal``. ``processes``: ``os.fork`` and friends, ``subprocess``.
- ``sockets``: ``socket.socket`` and its guard on real sockets.
- ``resolver``: ``getaddrinfo`` and friends. ``selecting``: ``select``, ``poll``,
  ``epoll``, ``selectors``.
- ``threading_names``: what ``threading``'s and ``queue``'s names hand out;
  ``threads``: the primitives. ``futures``: ``concurrent.futures``.
- ``tls``: ``ssl``. ``default_network``: servers built without ``network=``.

Public: ``intercept``, ``Interception``, ``is_intercepted``, ``EPOCH`` and
``MONOTONIC_BASE``. The highest layer of the simulation: it sits above the façade
(``sockfake.sim.network``), whose ``intercept()`` method imports it on first use.
"""

from sockfake.sim.intercept.install import (
    EPOCH,
    MONOTONIC_BASE,
    Interception,
    intercept,
    is_intercepted,
)

__all__ = ["EPOCH", "MONOTONIC_BASE", "Interception", "intercept", "is_intercepted"]

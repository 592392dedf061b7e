"""``_thread.start_new_thread`` under interception: a raw thread joins the simulation.

``threading.Thread`` made by a simulated thread is adopted by its kernel
(``sockfake.sim.kernel.thread_hooks``); a raw ``_thread.start_new_thread`` call would
get a plain OS thread, outside the simulation, with the real network and clock. In a
simulated thread the patched function starts the function on a ``threading.Thread``
instead (a daemon, as raw threads are: the interpreter does not wait for them), so it
is adopted like any other, and returns that thread's ident. A reference taken before
the interception is refused by the audit hook on 3.12+ (the event
``_thread.start_new_thread`` exists from 3.12), and cannot be seen before.
"""

from __future__ import annotations

import threading
from typing import Any

from sockfake.sim.intercept.dispatch import caller_network

__all__ = ["start_new_thread"]


def start_new_thread(original: Any) -> Any:
    """``_thread.start_new_thread``: adopted into the simulation in a simulated thread."""

    def start_new_thread(function: Any, args: Any, kwargs: Any = None) -> int:
        if caller_network() is None:
            if kwargs is None:
                return int(original(function, args))
            return int(original(function, args, kwargs))
        # The raw function's own argument checks, with its messages.
        if not callable(function):
            raise TypeError("first arg must be callable")
        if not isinstance(args, tuple):
            raise TypeError("2nd arg must be a tuple")
        if kwargs is not None and not isinstance(kwargs, dict):
            raise TypeError("optional 3rd arg must be a dictionary")
        thread = threading.Thread(target=function, args=args, kwargs=kwargs, daemon=True)
        thread.start()
        ident = thread.ident
        assert ident is not None  # set before start() returns
        return ident

    start_new_thread.__doc__ = original.__doc__
    return start_new_thread

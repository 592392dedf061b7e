"""``concurrent.futures`` under interception: worker names numbered per network.

``ThreadPoolExecutor`` and ``Future`` need nothing of their own: they build on
``threading``'s names, looked up at call time, so a pool made by a simulated thread
runs simulated workers. Only the pool's name counter is replaced, so that worker
names (which the trace shows) do not depend on the pools the process made before.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from sockfake.sim.intercept.dispatch import caller_network

__all__ = ["pool_counter"]

_pool_numbers: weakref.WeakKeyDictionary[Any, Iterator[int]] = weakref.WeakKeyDictionary()


def pool_counter(original: Callable[[], int]) -> Any:
    """``ThreadPoolExecutor``'s name counter, per network: worker names (which the trace
    shows) must not depend on how many pools the process made before."""

    def counter() -> int:
        net = caller_network()
        if net is None:
            return original()
        numbers = _pool_numbers.get(net)
        if numbers is None:
            numbers = _pool_numbers[net] = itertools.count()
        return next(numbers)

    return staticmethod(counter)

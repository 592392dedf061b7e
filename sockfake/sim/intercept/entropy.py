"""Entropy under interception: the network's seed, not the OS, in its simulated threads.

Library code draws random bytes for protocol fields (websockets' keys and masks,
DNS query ids, retry jitter): with real entropy, the same seed does not replay the
same bytes. While ``net.intercept()`` is active (``seed_entropy=True``, the default):

* ``os.urandom`` (and so ``uuid.uuid4``) and ``random.SystemRandom`` (and so
  ``secrets``), called from a simulated thread, draw from a stream derived from the
  network's seed; every other thread gets the OS's entropy.
* The ``random`` module's global generator is seeded from the network's seed when
  the interception starts, and its state is put back when it ends, as if it had not
  run. Its functions are bound to one generator (``from random import random`` is the
  same one), shared by every thread: a thread outside the simulation that draws from
  it meanwhile takes from the same seeded sequence.
* ``random.Random()`` made without a seed in a simulated thread is seeded from the
  stream.
* ``ssl.RAND_bytes``, called from a simulated thread, draws from the stream too.

Not covered: OpenSSL's own randomness inside TLS (keys, nonces: the determinism check
names it as a likely cause), ``random.seed()`` without an argument (C reads the OS),
and a generator made before the interception (``SystemRandom`` instances made then do
follow the seed: they draw through ``random._urandom`` at each call).
``seed_entropy=False`` leaves all of this real.
"""

from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING, Any

from sockfake.sim.intercept.dispatch import _internal, caller_network

if TYPE_CHECKING:
    from sockfake.sim.kernel.core import Kernel

__all__ = ["enter", "leave", "rand_bytes", "random_seed", "urandom"]

_real_urandom = os.urandom
_real_seed = random.Random.seed
_global: Any = getattr(random, "_inst")  # noqa: B009 - the module's generator (private)

# The seeded networks (their entropy stream) and the global generator's state before.
_streams: dict[Kernel, random.Random] = {}
_saved_state: list[Any] = []


def _stream(depth: int) -> random.Random | None:
    net = caller_network()
    if net is None or _internal(depth + 1):
        return None
    return _streams.get(net.kernel)


def urandom(size: int, /) -> bytes:
    """``os.urandom`` (and ``random``'s ``_urandom``, which ``SystemRandom`` draws on)."""
    stream = _stream(1)
    if stream is None or not isinstance(size, int) or size < 0:
        return _real_urandom(size)  # and CPython's own errors
    return stream.randbytes(size)


def rand_bytes(original: Any) -> Any:
    """``ssl.RAND_bytes``: from the stream in a simulated thread."""

    def RAND_bytes(n: int, /) -> bytes:  # noqa: N802 - the ssl module's name
        stream = _stream(1)
        if stream is None or not isinstance(n, int) or n < 0:
            return bytes(original(n))  # and OpenSSL's own errors
        return stream.randbytes(n)

    RAND_bytes.__doc__ = original.__doc__
    return RAND_bytes


def random_seed(self: random.Random, a: Any = None, version: int = 2) -> None:
    """``random.Random.seed``: without a seed, in a simulated thread, one from the stream."""
    if a is None:
        stream = _stream(1)
        if stream is not None:
            a = stream.getrandbits(128)
    _real_seed(self, a, version)


def enter(kernel: Kernel) -> None:
    """Seed ``kernel``'s network's entropy (its interception starts)."""
    _streams[kernel] = kernel.rng("entropy")
    if len(_streams) == 1:  # the first: the global generator is the simulation's now
        _saved_state.append(_global.getstate())
        _real_seed(_global, kernel.rng("random-module").getrandbits(128))


def leave(kernel: Kernel) -> None:
    """``kernel``'s interception ends: the last one puts the global generator back."""
    if _streams.pop(kernel, None) is not None and not _streams and _saved_state:
        _global.setstate(_saved_state.pop())

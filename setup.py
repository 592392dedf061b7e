"""Optional compiled build: the simulation's hot modules through mypyc.

``pip install .`` (or ``-e .``) is the pure-Python package, exactly as pyproject.toml
describes it; every piece of metadata lives there. Only with ``SOCKFAKE_COMPILE=1`` does
this file compile the modules below, which then needs mypy (it ships mypyc) and a C
compiler in the build environment::

    pip install 'mypy==2.4.1' setuptools
    SOCKFAKE_COMPILE=1 pip install --no-build-isolation .
    # or, in a checkout: SOCKFAKE_COMPILE=1 python setup.py build_ext --inplace
"""

from __future__ import annotations

import os

from setuptools import setup

# The hot path: the kernel and the simulated network. Never the interception modules
# (they patch the interpreter's own socket, threading and select), nothing outside sim.
# Not links.py: its frozen dataclasses (LinkConditions, GilbertElliott) would become
# native classes whose attributes refuse a wrong type before __post_init__ gives the
# clear SockfakeTypeError, and whose instances have no __dict__ for cached_property.
COMPILED = [
    "sockfake/sim/kernel/core.py",
    "sockfake/sim/kernel/timers.py",
    "sockfake/sim/kernel/threads.py",
    "sockfake/sim/trace/recorder.py",
    "sockfake/sim/kernel/turn.py",
    "sockfake/sim/net/sockets.py",
    "sockfake/sim/net/socket_args.py",
    "sockfake/sim/net/socket_options.py",
    "sockfake/sim/net/ancillary.py",
    "sockfake/sim/net/tcp.py",
    "sockfake/sim/net/udp.py",
    "sockfake/sim/net/endpoint.py",
    "sockfake/sim/net/addressing.py",
    "sockfake/sim/net/topology.py",
    "sockfake/sim/kernel/sync.py",
    "sockfake/sim/kernel/queues.py",
    "sockfake/sim/kernel/semaphores.py",
    "sockfake/sim/net/selectors.py",
    "sockfake/sim/net/socket_state.py",
    "sockfake/sim/kernel/scheduling.py",
]

ext_modules = []
if os.environ.get("SOCKFAKE_COMPILE") == "1":
    from mypyc.build import mypycify

    # One shared library for the group, inside the package (not a hash-named top-level module).
    ext_modules = mypycify(COMPILED, opt_level="3", group_name="sockfake.sim._compiled")

setup(ext_modules=ext_modules)

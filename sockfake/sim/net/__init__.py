"""The simulated network's machinery: hosts, links, addresses, transports, sockets.

- ``topology``: ``Host`` (addresses, ports, up/down; a ``Network`` view through the
  ``HostNetwork`` protocol), ``Link``, ``Topology.carry``.
- ``links``: pure link models (``LinkConditions``, ``GilbertElliott``); ``faults``:
  ``FaultPlan``, a datagram's fate by its index.
- ``addressing``: names, binds, ephemeral ports, routes, the Unix path namespace.
- ``endpoint``: ``Endpoint`` and the ``Transport`` seam between sockets and transports.
- ``tcp``, ``udp``: the transports. ``socket_state``: the socket state table.
- ``sockets``: ``SimSocket``, the ``socket.socket`` surface; ``socket_args``: CPython's
  argument conversion; ``socket_options``: the option tables, ``setsockopt`` and
  ``getsockopt``; ``ancillary``: ``sendmsg``/``recvmsg`` ancillary data.
- ``selectors``: readiness, ``SimWaker``, ``SimSelector``. ``descriptors``: simulated
  descriptor numbers.
- ``checks``, ``oserror``, ``datagram``: argument checks, errno errors, the payload type.

Public here (also importable from ``sockfake.sim``): ``LinkConditions``,
``GilbertElliott``, ``FaultPlan``. This layer imports the kernel and the trace, never
the façade (``sockfake.sim.network``) or the interception above it.
"""

__all__: list[str] = []

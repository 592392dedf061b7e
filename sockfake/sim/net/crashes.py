"""A host's crash and restart: its processes and sockets gone, its disk kept.

``crash_host`` stops a host as a power cut would: every simulated thread on it is
unwound with ``HostCrashed`` at its next simulated call (a ``BaseException``, so the
host's own ``except Exception`` does not swallow it), every socket on it vanishes
without a FIN or a reset (peers hear nothing; what they send waits on the link, as
TCP retransmits to a dead host), and what it had sent and the network still held back
(a partition) is lost with it. ``restart_host`` brings it back: what peers sent
meanwhile now reaches closed sockets and is answered with resets, as a rebooted
Linux answers a segment of a connection it no longer knows; ``start`` runs in a new
thread on the host, as its service at boot, and finds ``host.disk``, the dict that
survived (memory did not: the threads that held it are gone).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sockfake.errors import HostCrashed, SockfakeRuntimeError
from sockfake.sim.kernel.core import Kernel
from sockfake.sim.kernel.threads import SimThread
from sockfake.sim.net.addressing import Addressing
from sockfake.sim.net.descriptors import Descriptors
from sockfake.sim.net.socket_state import Event, advance
from sockfake.sim.net.tcp import StreamTransport
from sockfake.sim.net.topology import Host, Topology

__all__ = ["crash_host", "restart_host"]


def crash_host(kernel: Kernel, topology: Topology, addressing: Addressing,
               streams: StreamTransport, descriptors: Descriptors, host: Host,
               default_host: Host) -> None:
    """Crash ``host`` (see the module docstring); the caller's own thread, if it runs on
    the host, unwinds at once (the test's main thread never does). A thread placed on
    no host runs on ``default_host``."""
    if host.crashed:
        raise SockfakeRuntimeError(
            f"host {host.name!r} has already crashed: restart it first (net.restart)"
        )
    now = kernel.now
    host.crashed = True
    host.up = False
    caller = kernel.thread_for_caller()
    def on_host(thread: SimThread) -> bool:
        return (thread.host if thread.host is not None else default_host) is host

    victims = [thread for thread in kernel.threads if on_host(thread)]
    sockets = [sock for sock in descriptors.sockets() if sock.ep.host is host and sock.ep.fd >= 0]
    kernel.record("crash", f"{host.name}: {len(victims)} thread(s) and {len(sockets)} "
                           "socket(s) gone")
    for thread in victims:
        kernel.kill(thread, HostCrashed(f"host {host.name!r} crashed at {now:.6f}"))
    for sock in sockets:
        ep = sock.ep
        descriptors.release(ep.fd)
        addressing.release(ep)
        streams.vanish(ep)
        ep.closed = True
        ep.fd = -1
        ep.state = advance(ep.state, Event.CLOSE)
        ep.changed.notify_all()
    for (src, _), link in topology.links():
        if src == host.name:
            link.held.clear()  # its unsent retransmissions died with its kernel
    if on_host(caller) and caller is not kernel.root:
        kernel.kill(caller, HostCrashed(f"host {host.name!r} crashed at {now:.6f}"))
        raise HostCrashed(f"host {host.name!r} crashed at {now:.6f} (in its own thread)")


def restart_host(kernel: Kernel, topology: Topology, host: Host,
                 start: Callable[[], object] | None) -> Any:
    """Bring ``host`` back after ``crash_host``; run ``start`` in a new thread on it
    (returned, started), or nothing."""
    if not host.crashed:
        raise SockfakeRuntimeError(
            f"host {host.name!r} has not crashed: restart() follows crash() (a host taken "
            "down with host_down() comes back with host_up())"
        )
    host.crashed = False
    host.up = True
    host.boots += 1
    kernel.record("restart", f"{host.name}: boot {host.boots}")
    for (_, dst), link in topology.links():
        if dst == host.name:
            topology.flush(link)  # segments held for it now meet closed sockets: resets
    if start is None:
        return None
    if not callable(start):
        raise SockfakeRuntimeError(f"start must be a callable run at boot, not {start!r}")
    thread = host.thread(target=start, name=f"{host.name}-boot-{host.boots}", daemon=True)
    thread.start()
    return thread

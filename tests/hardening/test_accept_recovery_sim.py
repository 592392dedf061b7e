"""Accepting resumes as soon as a connection closes after descriptor exhaustion.

``serve_forever()`` backs off (doubling up to ``accept_backoff_max``) while accept()
fails with EMFILE; a connection closing frees a descriptor and wakes the back-off, so
service resumes at once instead of after the rest of the pause. Virtual time makes
"at once" exact: the waiting client is served at the same virtual instant.
"""

from __future__ import annotations

import errno
import os
import socket
import threading
from typing import Any

import sockfake
from sockfake.sim import SimNetwork


def test_serve_forever_accepts_as_soon_as_a_connection_frees_a_descriptor(
    net: SimNetwork,
) -> None:
    exhausted = [False]
    failures = [0]
    entered = net.event()

    class Holder(sockfake.StreamRequestHandler):
        def handle(self) -> None:
            entered.set()
            self.wfile.write(self.rfile.readline().upper())

    class Server(sockfake.ThreadingTCPServer):
        accept_backoff_max = 30.0
        daemon_threads = True

        def get_request(self) -> tuple[Any, Any]:
            if exhausted[0]:  # the process is out of descriptors
                failures[0] += 1
                raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
            return super().get_request()

        def close_request(self, request: Any) -> None:
            exhausted[0] = False  # closing this request frees a descriptor
            super().close_request(request)

    server = Server(("127.0.0.1", 0), Holder, network=net)
    serving = threading.Thread(target=server.serve_forever, args=(0.5,))
    serving.start()
    address = server.server_address
    holder = net.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe = net.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        holder.connect(address)
        assert entered.wait(5)
        exhausted[0] = True
        probe.settimeout(120)
        probe.connect(address)  # in the backlog: accept() fails from now on
        probe.sendall(b"ping\n")
        net.sleep(20)  # the back-off grows: 10 ms, 20 ms ... 10.24 s, 20.48 s
        assert 5 <= failures[0] <= 15, failures[0]  # backing off, not spinning
        freed = net.time()
        holder.sendall(b"bye\n")  # the holder's request ends: its descriptor is freed
        assert holder.makefile("rb").readline() == b"BYE\n"
        assert probe.makefile("rb").readline() == b"PING\n"
        waited = net.time() - freed
        assert waited < 0.05, f"served {waited:.3f} s after a descriptor was freed"
    finally:
        holder.close()
        probe.close()
        server.shutdown()
        server.server_close()
        serving.join()

"""A host crashed under a testbed's servers: teardown finds nothing leaked, and the
crashed server's handle stops without waiting on threads that are gone."""

from __future__ import annotations

import sockfake
from sockfake.testing import open_testbed


class Echo(sockfake.StreamRequestHandler):
    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(line)


def test_a_crashed_host_s_server_leaves_nothing_behind() -> None:
    with open_testbed(seed=1) as bed:
        server = bed.tcp_server(Echo, host="db")
        client = server.connect()
        client.sendall(b"x\n")
        assert client.recv(10) == b"x\n"
        db = bed.network.host("db")
        assert [t for t in bed.network.kernel.threads if t.host is db]
        bed.network.crash("db")
        client.close()
        assert bed.close(check_leaks=True) == []
        assert [t for t in bed.network.kernel.threads if t.host is db] == []

"""Same seed, same run: the trace digest, across runs and processes."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from sockfake.sim import SimNetwork

# One scenario, used in-process and in a subprocess: threads, a stream, lossy datagrams.
SCENARIO = textwrap.dedent(
    """
    import socket
    import threading

    import sockfake as socketserver
    from sockfake.sim import SimNetwork


    class Echo(socketserver.StreamRequestHandler):
        def handle(self):
            for line in self.rfile:
                self.wfile.write(line.upper())


    def run(seed, scheduling="random"):
        net = SimNetwork(seed=seed, scheduling=scheduling, latency=0.01, jitter=0.02,
                         chunk=5, loss=0.3, duplicate=0.1)
        try:
            server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo, network=net)
            serving = threading.Thread(target=server.serve_forever, args=(0.1,))
            serving.start()

            def client(number):
                with net.create_connection(server.server_address) as sock:
                    sock.sendall(b"hello %d\\n" % number)
                    with sock.makefile("rb") as reader:
                        reader.readline()

            clients = [threading.Thread(target=client, args=(n,)) for n in range(4)]
            for thread in clients:
                thread.start()
            receiver = net.socket(socket.AF_INET, socket.SOCK_DGRAM)
            receiver.bind(("127.0.0.1", 0))
            sender = net.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for number in range(50):
                sender.sendto(b"%d" % number, receiver.getsockname())
            receiver.settimeout(1.0)
            fates = []
            try:
                for _ in range(200):
                    fates.append(receiver.recv(10))
            except TimeoutError:
                pass
            for thread in clients:
                thread.join()
            server.shutdown()
            server.server_close()
            serving.join()
            sender.close()
            receiver.close()
            return net.digest(), fates
        finally:
            net.close()
    """
)

namespace: dict[str, object] = {}
exec(compile(SCENARIO, "<scenario>", "exec"), namespace)
run = namespace["run"]


def test_same_seed_same_digest_in_20_runs() -> None:
    digests = {run(7)[0] for _ in range(20)}  # type: ignore[operator]
    assert len(digests) == 1


def test_same_digest_in_another_process_with_another_hash_seed(tmp_path: Path) -> None:
    script = tmp_path / "scenario.py"
    script.write_text(SCENARIO + "\nprint(run(7)[0])\n")
    root = str(Path(__file__).resolve().parents[3])  # sockfake importable uninstalled too
    env = dict(os.environ, PYTHONHASHSEED="123", PYTHONPATH=root)
    result = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60,
        check=True,
    )
    assert result.stdout.strip() == run(7)[0]  # type: ignore[operator]


def test_different_seeds_give_different_datagram_fates() -> None:
    fates = [tuple(run(seed)[1]) for seed in range(5)]  # type: ignore[operator]
    assert len(set(fates)) == 5
    assert all(0 < len(f) < 60 for f in fates)


def test_the_digest_covers_the_trace(tmp_path: Path) -> None:
    digest_fifo = run(7, "fifo")[0]  # type: ignore[operator]
    assert digest_fifo != run(7)[0]  # type: ignore[operator]
    assert digest_fifo == run(7, "fifo")[0]  # type: ignore[operator]


def test_the_trace_records_every_kind_of_event() -> None:
    with SimNetwork(seed=4, latency=0.01, loss=0.3, duplicate=0.3) as net:
        listener = net.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        accepted: list[object] = []
        thread = threading.Thread(target=lambda: accepted.append(listener.accept()[0]))
        thread.start()
        client = net.create_connection(listener.getsockname())
        thread.join()
        client.sendall(b"hello")
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()  # a reset
        receiver = net.socket(socket.AF_INET, socket.SOCK_DGRAM)
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(1.0)
        sender = net.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for number in range(30):
            sender.sendto(b"%d" % number, receiver.getsockname())
        try:
            for _ in range(100):
                receiver.recv(10)
        except TimeoutError:
            pass
        kinds = {event.kind for event in net.trace}
        for sock in (receiver, sender, listener, *accepted):
            sock.close()  # type: ignore[attr-defined]
    wanted = {"connect", "accept", "send", "deliver", "drop", "duplicate", "reset", "timeout",
              "switch", "jump"}
    assert wanted <= kinds, wanted - kinds

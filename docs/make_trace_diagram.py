"""Make docs/trace-diagram.png, the traces guide's picture of a sequence diagram.

    python docs/make_trace_diagram.py        # needs a headless Chromium on PATH

A TCP echo and a UDP client that retries past a dropped datagram (and gets its retry
twice), on a simulated network with 10 ms of latency; the trace's HTML diagram,
screenshotted with the thread rows hidden (``#threads=off``).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sockfake  # noqa: E402
from sockfake.sim import SimNetwork  # noqa: E402
from sockfake.sim.net.faults import FaultPlan  # noqa: E402


class Upper(sockfake.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.readline().upper())


class UdpUpper(sockfake.DatagramRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.read().upper())


def main() -> None:
    browser = next((b for b in ("chromium", "chromium-browser", "google-chrome")
                    if shutil.which(b)), None)
    if browser is None:
        raise SystemExit("no headless Chromium on PATH")
    out = Path(__file__).resolve().parent / "trace-diagram.png"
    with tempfile.TemporaryDirectory() as scratch, SimNetwork(seed=1, latency=0.01) as net:
        tcp = sockfake.ThreadingTCPServer(("127.0.0.1", 0), Upper, network=net)
        udp = sockfake.UDPServer(("127.0.0.1", 0), UdpUpper, network=net)
        import threading

        for server in (tcp, udp):
            threading.Thread(target=server.serve_forever, args=(None,)).start()
        with net.create_connection(tcp.server_address) as conn:
            conn.sendall(b"hello\n")
            conn.makefile("rb").readline()
        FaultPlan(drops=frozenset({0}), duplicates=frozenset({1})).apply(net)
        with net.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(0.5)
            for _ in range(3):
                client.sendto(b"ping", udp.server_address)
                try:
                    client.recv(10)
                    break
                except TimeoutError:
                    continue
        for server in (tcp, udp):
            server.shutdown()
            server.server_close()
        page = net.trace.write_html(Path(scratch) / "trace.html",
                                    title="a TCP echo, then a UDP retry past a lost datagram")
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                        "--hide-scrollbars", f"--user-data-dir={scratch}/profile",
                        f"--screenshot={out}", "--window-size=1100,620",
                        page.as_uri() + "#threads=off"],
                       check=True, capture_output=True, timeout=60)
    print(out)


if __name__ == "__main__":
    main()

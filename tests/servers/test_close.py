"""server_close(timeout=) is bounded, on the real and the simulated network alike."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

import sockfake


def test_close_with_timeout_returns_though_a_handler_blocks_elsewhere(
    network: Any, caplog: pytest.LogCaptureFixture
) -> None:
    release = network.event()
    entered = network.event()

    class Stubborn(sockfake.BaseRequestHandler):
        def handle(self) -> None:
            entered.set()
            release.wait(30)  # not its connection: aborting the socket cannot wake it

    logger = logging.getLogger("sockfake.tests.close")
    server = sockfake.ThreadingTCPServer(("127.0.0.1", 0), Stubborn, network=network)
    server.error_logger = logger
    server.daemon_threads = False
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    client = network.create_connection(server.server_address)
    try:
        assert entered.wait(5)
        server.shutdown()
        started = network.time()
        with caplog.at_level(logging.WARNING, logger=logger.name):
            server.server_close(timeout=0.2)
        took = network.time() - started
        assert took < 5  # about 2 x timeout; without the bound it would wait 30 s
        assert "still running after abort" in caplog.text
    finally:
        release.set()
        client.close()
        serving.join(5)

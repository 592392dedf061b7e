"""server_close(timeout=) is bounded even when a handler ignores the abort."""

from __future__ import annotations

import socket
import threading

import sockfake


def test_overlapping_server_close_calls_on_a_pool_both_return() -> None:
    release = threading.Event()
    entered = threading.Event()

    class Blocking(sockfake.BaseRequestHandler):
        def handle(self) -> None:
            entered.set()
            release.wait(30)

    closing = threading.Semaphore(0)

    class Pool(sockfake.ThreadPoolTCPServer):
        def _stop_pool(self, *args: object) -> None:
            closing.release()  # this close is about to wait on the busy worker
            super()._stop_pool(*args)  # type: ignore[arg-type]

    server = Pool(("127.0.0.1", 0), Blocking)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    client = socket.create_connection(server.server_address)
    errors: list[BaseException] = []

    def close() -> None:
        try:
            server.server_close()
        except BaseException as exc:
            errors.append(exc)

    try:
        assert entered.wait(5)
        server.shutdown()
        closers = [threading.Thread(target=close) for _ in range(2)]
        for closer in closers:
            closer.start()
        assert closing.acquire(timeout=5) and closing.acquire(timeout=5)  # both overlap
        release.set()
        for closer in closers:
            closer.join(10)
        assert not errors, errors
        assert not any(closer.is_alive() for closer in closers)
    finally:
        release.set()
        client.close()
        serving.join(5)

"""The HTTP clients the compat tests drive (``requests``, ``httpx``, ``urllib3``), one
interface each, and ``need()``: a module, or a skip naming the missing package."""

from __future__ import annotations

from typing import Any

import pytest


def need(module: str) -> Any:
    """The module, or skip the test naming the package that is missing."""
    return pytest.importorskip(
        module, reason=f"{module} is not installed (pip install -e '.[test]' installs it)"
    )


def close_pools(manager: Any) -> None:
    """Close a urllib3 ``PoolManager``'s pools: its ``clear()`` only drops them (urllib3
    2 closes their connections when a pool is collected, and a caught exception's
    traceback may still hold one), and a kept-alive connection would outlive the test."""
    for key in manager.pools.keys():  # noqa: SIM118 - iterating the container raises
        manager.pools[key].close()
    manager.clear()


class RequestsClient:
    def __init__(self) -> None:
        requests = need("requests")
        self.session = requests.Session()
        self.errors: tuple[type[BaseException], ...] = (requests.exceptions.ConnectionError,)

    def get(self, url: str, timeout: float) -> tuple[int, str]:
        reply = self.session.get(url, timeout=timeout)
        return reply.status_code, reply.text

    def post_json(self, url: str, body: Any, timeout: float) -> tuple[int, Any]:
        reply = self.session.post(url, json=body, timeout=timeout)
        return reply.status_code, reply.json()

    def lines(self, url: str, timeout: float) -> list[str]:
        with self.session.get(url, stream=True, timeout=timeout) as reply:
            return [line.decode() for line in reply.iter_lines()]

    def close(self) -> None:
        for adapter in self.session.adapters.values():
            close_pools(adapter.poolmanager)
        self.session.close()


class HttpxClient:
    def __init__(self) -> None:
        httpx = need("httpx")
        self.client = httpx.Client()
        self.errors = (httpx.TransportError,)

    def get(self, url: str, timeout: float) -> tuple[int, str]:
        reply = self.client.get(url, timeout=timeout)
        return reply.status_code, reply.text

    def post_json(self, url: str, body: Any, timeout: float) -> tuple[int, Any]:
        reply = self.client.post(url, json=body, timeout=timeout)
        return reply.status_code, reply.json()

    def lines(self, url: str, timeout: float) -> list[str]:
        with self.client.stream("GET", url, timeout=timeout) as reply:
            return list(reply.iter_lines())

    def close(self) -> None:
        self.client.close()


class Urllib3Client:
    def __init__(self) -> None:
        urllib3 = need("urllib3")
        self.urllib3 = urllib3
        self.pool = urllib3.PoolManager(retries=False)
        self.errors = (urllib3.exceptions.HTTPError,)

    def get(self, url: str, timeout: float) -> tuple[int, str]:
        reply = self.pool.request("GET", url, timeout=timeout)
        return reply.status, reply.data.decode()

    def post_json(self, url: str, body: Any, timeout: float) -> tuple[int, Any]:
        reply = self.pool.request("POST", url, json=body, timeout=timeout)
        return reply.status, reply.json()

    def lines(self, url: str, timeout: float) -> list[str]:
        reply = self.pool.request("GET", url, timeout=timeout, preload_content=False)
        try:
            return b"".join(reply.stream(64)).decode().splitlines()
        finally:
            reply.release_conn()

    def close(self) -> None:
        close_pools(self.pool)


CLIENTS = {"requests": RequestsClient, "httpx": HttpxClient, "urllib3": Urllib3Client}

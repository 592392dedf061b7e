"""Fixtures for the interception tests: a fresh network per test, intercepted, closed after."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sockfake.sim import SimNetwork


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients must connect directly (urllib and requests read proxies from the environment)."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def net() -> Iterator[SimNetwork]:
    """A perfect simulated network with a fixed seed; closed (threads unwound) afterwards."""
    network = SimNetwork(seed=1, time_limit=3600)
    try:
        yield network
    finally:
        network.close()


@pytest.fixture
def inet(net: SimNetwork) -> Iterator[SimNetwork]:
    """``net`` with ``net.intercept()`` active for the whole test."""
    with net.intercept():
        yield net


_module_numbers = itertools.count()


@pytest.fixture
def module_source(tmp_path: Path) -> Iterator[Callable[[str, str], str]]:
    """``write(prefix, source)``: a throwaway module with that source, importable under
    the unique name it returns (an application's module, imported before or during an
    interception); off ``sys.path`` and out of ``sys.modules`` after the test."""
    written: list[str] = []

    def write(prefix: str, source: str) -> str:
        name = f"{prefix}_{next(_module_numbers)}"
        (tmp_path / f"{name}.py").write_text(source)
        written.append(name)
        return name

    sys.path.insert(0, str(tmp_path))
    try:
        yield write
    finally:
        sys.path.remove(str(tmp_path))
        for name in written:
            sys.modules.pop(name, None)

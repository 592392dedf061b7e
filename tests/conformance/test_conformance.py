"""The conformance suite (``sockfake.conformance``): every check on both networks."""

from __future__ import annotations

from typing import Any

import pytest

from sockfake.conformance import CHECKS, check_network
from sockfake.sim import SimNetwork


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_conformance(network: Any, unix_path: Any, name: str) -> None:
    CHECKS[name](network, unix_path)


def test_check_network_passes_on_the_simulation_with_fresh_networks() -> None:
    made: list[SimNetwork] = []

    def factory() -> SimNetwork:
        made.append(SimNetwork(seed=len(made), latency=0.001, chunk=3))
        return made[-1]

    check_network(factory, names=["echo_tcp_ipv4", "reset_gives_connection_reset_error"])
    assert len(made) == 2 and all(net.closed for net in made)


def test_check_network_names_every_check_that_fails() -> None:
    class FrozenClock(SimNetwork):
        """A network whose clock never moves: timeouts cannot be seen to take time."""

        def time(self) -> float:
            return 0.0

    with pytest.raises(AssertionError) as info:
        check_network(
            FrozenClock, names=["recv_timeout_raises_timeout_error", "echo_tcp_ipv4"]
        )
    message = str(info.value)
    assert message.startswith("1 of 2 conformance checks failed")
    assert "recv_timeout_raises_timeout_error: AssertionError" in message
    assert "echo_tcp_ipv4" not in message.split("\n", 1)[1]


def test_check_network_refuses_an_unknown_check_by_name() -> None:
    with pytest.raises(ValueError, match=r"unknown check.*no_such_check"):
        check_network(SimNetwork, names=["no_such_check"])

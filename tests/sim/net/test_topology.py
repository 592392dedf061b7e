"""The topology on its own (``sockfake.sim.net.topology``): hosts, links, carrying a packet.

``add_host`` checks names and addresses and records who owns each address; a link is
one direction between two hosts, made on first use; ``carry`` delivers a packet at
once, later (the link model's arrival time) or not yet (held while the link is cut or
a host is down, dropped if the packet is unreliable). The partition, hold and heal
calls of ``SimNetwork`` set the links' flags; ``flush`` sends what a whole link held.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sockfake import SockfakeError
from sockfake.sim import LinkConditions, SimNetwork
from sockfake.sim.net.topology import Host, Link, Topology


@pytest.fixture
def topology(net: SimNetwork) -> Topology:
    return Topology(net.kernel, LinkConditions())


# -- hosts --------------------------------------------------------------------------------


def test_hosts_are_numbered_and_own_their_addresses(topology: Topology, net: SimNetwork) -> None:
    hosts = [topology.add_host(net, f"h{number}", None, None) for number in range(1, 12)]
    assert (hosts[0].ipv4, hosts[0].ipv6) == (["10.0.0.1"], ["fd00::1"])
    assert (hosts[10].ipv4, hosts[10].ipv6) == (["10.0.0.11"], ["fd00::b"])
    assert topology.hosts["h2"] is hosts[1]
    assert topology.ip_owner["10.0.0.2"] is hosts[1] and topology.ip_owner["fd00::2"] is hosts[1]
    assert hosts[0].up and hosts[0].ports == {} and hosts[0].network is net


def test_given_addresses_are_checked_and_written_canonically(
    topology: Topology, net: SimNetwork
) -> None:
    host = topology.add_host(net, "db", ["192.168.1.5", "192.168.1.6"], "FD00:0:0::0005")
    assert host.ipv4 == ["192.168.1.5", "192.168.1.6"]
    assert host.ipv6 == ["fd00::5"]
    assert repr(host) == "<Host db 192.168.1.5 192.168.1.6 fd00::5>"
    assert topology.add_host(net, "next", [], ()).ipv4 == ["10.0.0.2"]  # empty: the default
    assert sorted(topology.ip_owner) == sorted(["192.168.1.5", "192.168.1.6", "fd00::5",
                                                "10.0.0.2", "fd00::2"])


BAD_HOSTS: list[tuple[object, object, object, type[Exception], str]] = [
    ("", None, None, TypeError, "host name must be a non-empty str, not ''"),
    (7, None, None, TypeError, "host name must be a non-empty str, not 7"),
    ("x", "banana", None, ValueError, "'banana' is not an IPv4 address"),
    ("x", "fd00::9", None, ValueError, "'fd00::9' is not a routable IPv4 address"),
    ("x", "127.0.0.2", None, ValueError, "'127.0.0.2' is not a routable IPv4 address"),
    ("x", "0.0.0.0", None, ValueError, "'0.0.0.0' is not a routable IPv4 address"),
    ("x", None, "10.0.0.9", ValueError, "'10.0.0.9' is not a routable IPv6 address"),
    ("x", None, "::1", ValueError, "'::1' is not a routable IPv6 address"),
    ("x", None, "::", ValueError, "'::' is not a routable IPv6 address"),
    ("x", 167772169, None, TypeError,
     "ipv4 must be an address or a list of addresses, not 167772169"),
    ("x", ["10.0.0.9", 5], None, TypeError,
     "ipv4 must be an address or a list of addresses, not ['10.0.0.9', 5]"),
    ("x", None, {"fd00::9"}, TypeError,
     "ipv6 must be an address or a list of addresses, not {'fd00::9'}"),
]


@pytest.mark.parametrize(
    ("name", "ipv4", "ipv6", "kind", "message"),
    BAD_HOSTS,
    ids=[message.replace("::", ": :") for *_, message in BAD_HOSTS],  # no node-id separator
)
def test_a_bad_host_is_a_clear_error_and_adds_nothing(
    topology: Topology, net: SimNetwork, name: object, ipv4: object, ipv6: object,
    kind: type[Exception], message: str,
) -> None:
    with pytest.raises(SockfakeError) as raised:
        topology.add_host(net, name, ipv4, ipv6)
    assert isinstance(raised.value, kind)
    assert str(raised.value) == message
    assert topology.hosts == {} and topology.ip_owner == {}


def test_a_name_or_an_address_belongs_to_one_host_only(
    topology: Topology, net: SimNetwork
) -> None:
    first = topology.add_host(net, "a", "10.1.1.1", None)
    with pytest.raises(SockfakeError, match=r"^host 'a' already exists$") as raised:
        topology.add_host(net, "a", "10.1.1.2", None)
    assert isinstance(raised.value, ValueError)
    with pytest.raises(ValueError, match=r"^address 10\.1\.1\.1 already belongs to host 'a'$"):
        topology.add_host(net, "b", ["10.1.1.3", "10.1.1.1"], None)
    assert list(topology.hosts) == ["a"]
    assert topology.ip_owner["10.1.1.1"] is first and "10.1.1.3" not in topology.ip_owner


def test_a_host_is_found_by_name_or_as_itself_on_its_own_network_only(
    topology: Topology, net: SimNetwork
) -> None:
    a = topology.add_host(net, "a", None, None)
    topology.add_host(net, "b", None, None)
    assert topology.host("a", net) is a and topology.host(a, net) is a
    with pytest.raises(ValueError, match=r"^unknown host 'c'; hosts: a, b$"):
        topology.host("c", net)
    with pytest.raises(TypeError, match=r"^a host is a Host or a host name, not 3$"):
        topology.host(3, net)
    with SimNetwork(seed=2) as other:
        with pytest.raises(ValueError, match="belongs to another network"):
            topology.host(a, other)


# -- links --------------------------------------------------------------------------------


def test_a_link_is_one_direction_made_on_first_use(topology: Topology, net: SimNetwork) -> None:
    a = topology.add_host(net, "a", None, None)
    b = topology.add_host(net, "b", None, None)
    assert topology.links() == []
    there = topology.link(a, b)
    assert topology.link(a, b) is there
    back = topology.link(b, a)
    assert back is not there
    assert topology.links() == [(("a", "b"), there), (("b", "a"), back)]
    assert topology.link(a, a) is not there  # a host's own loopback is a link too


def test_a_link_follows_the_default_conditions_until_it_has_its_own(
    topology: Topology, net: SimNetwork
) -> None:
    a = topology.add_host(net, "a", None, None)
    link = topology.link(a, a)
    assert topology.conditions(link) is topology.default_conditions
    topology.default_conditions = LinkConditions(latency=1.0)
    assert topology.conditions(link).latency == 1.0
    link.conditions = LinkConditions(loss=0.5)
    assert topology.conditions(link) is link.conditions


def test_a_link_is_cut_while_partitioned_or_holding() -> None:
    link = Link()
    assert not link.cut and link.held == [] and link.last_stream_arrival == {}
    link.partitioned = True
    assert link.cut
    link.partitioned, link.holding = False, True
    assert link.cut


# -- carry --------------------------------------------------------------------------------


class Deliveries:
    """Delivery callbacks that record the virtual time they ran at, by name."""

    def __init__(self, net: SimNetwork) -> None:
        self.net = net
        self.seen: list[tuple[str, float]] = []

    def __call__(self, name: str) -> Callable[[], None]:
        return lambda: self.seen.append((name, self.net.time()))


@pytest.fixture
def two(net: SimNetwork) -> tuple[Host, Host]:
    return net.add_host("a"), net.add_host("b")


def carry(net: SimNetwork, src: Host, dst: Host, deliver: Callable[[], None], *,
          connection: int = 1, size: int = 10, reliable: bool = True,
          immediate_ok: bool = True) -> None:
    net._topology.carry(src, dst, connection, size, deliver, "stream",
                        reliable=reliable, immediate_ok=immediate_ok)


def test_an_instant_link_delivers_within_the_call_when_allowed(
    net: SimNetwork, two: tuple[Host, Host]
) -> None:
    a, b = two
    delivered = Deliveries(net)
    carry(net, a, b, delivered("now"))
    assert delivered.seen == [("now", 0.0)]
    carry(net, a, b, delivered("queued"), immediate_ok=False)
    assert delivered.seen == [("now", 0.0)]  # scheduled, not run in the call
    net.sleep(0.001)
    assert delivered.seen == [("now", 0.0), ("queued", 0.0)]


def test_a_slow_link_delivers_at_the_models_arrival_time_in_order(
    net: SimNetwork, two: tuple[Host, Host]
) -> None:
    a, b = two
    net.set_conditions("a", "b", both_ways=False, latency=0.5, jitter=0.4)
    delivered = Deliveries(net)
    for number in range(20):
        carry(net, a, b, delivered(f"{number}"))
    assert delivered.seen == []
    net.sleep(2.0)
    assert [name for name, _ in delivered.seen] == [f"{number}" for number in range(20)]
    times = [when for _, when in delivered.seen]
    assert times == sorted(times) and all(0.5 <= when < 0.9 for when in times)
    link = net._topology.link(a, b)
    assert link.last_stream_arrival == {1: times[-1]}


def test_a_cut_link_holds_reliable_packets_and_drops_the_others(
    net: SimNetwork, two: tuple[Host, Host]
) -> None:
    a, b = two
    delivered = Deliveries(net)
    net.partition("a", "b", oneway=True)
    carry(net, a, b, delivered("held"))
    carry(net, a, b, delivered("lost"), reliable=False)
    carry(net, b, a, delivered("other way"))
    link = net._topology.link(a, b)
    assert len(link.held) == 1
    net.sleep(1.0)
    assert delivered.seen == [("other way", 0.0)]
    net._topology.flush(link)  # still cut: nothing moves
    assert len(link.held) == 1
    net.heal("a", "b")
    assert link.held == []
    net.sleep(0.001)
    assert delivered.seen == [("other way", 0.0), ("held", 1.0)]


@pytest.mark.parametrize("down", ["a", "b"])
def test_a_host_down_at_either_end_holds_reliable_packets_and_drops_the_others(
    net: SimNetwork, two: tuple[Host, Host], down: str
) -> None:
    a, b = two
    delivered = Deliveries(net)
    net.host(down).up = False
    carry(net, a, b, delivered("held"))
    carry(net, a, b, delivered("lost"), reliable=False)
    link = net._topology.link(a, b)
    assert len(link.held) == 1
    net.sleep(1.0)
    net.host(down).up = True
    net._topology.flush(link)
    net.sleep(0.001)
    assert delivered.seen == [("held", 1.0)]


def test_hold_and_release_cut_one_direction_and_flush_it(
    net: SimNetwork, two: tuple[Host, Host]
) -> None:
    a, b = two
    net.hold("a", "b")
    there, back = net._topology.link(a, b), net._topology.link(b, a)
    assert there.holding and not back.holding
    delivered = Deliveries(net)
    carry(net, a, b, delivered("first"))
    carry(net, a, b, delivered("second"))
    net.release("a", "b")
    assert not there.cut and there.held == []
    net.sleep(0.001)
    assert [name for name, _ in delivered.seen] == ["first", "second"]


def test_partition_and_heal_set_the_flags_of_the_links_named(net: SimNetwork) -> None:
    for name in ("a", "b", "c"):
        net.add_host(name)
    link = net._topology.link
    a, b, c = net.host("a"), net.host("b"), net.host("c")
    net.partition("a", "b")
    net.partition("a", "c", oneway=True)
    assert link(a, b).partitioned and link(b, a).partitioned
    assert link(a, c).partitioned and not link(c, a).partitioned
    net.heal("b", "a")
    assert not link(a, b).partitioned and not link(b, a).partitioned
    assert link(a, c).partitioned
    net.heal()
    assert not link(a, c).partitioned
    with pytest.raises(TypeError, match="heal needs both hosts a and b, or neither"):
        net.heal("a")

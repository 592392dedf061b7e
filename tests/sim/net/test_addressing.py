"""Addressing on its own (``sockfake.sim.net.addressing``): names, binds, ports, routes, paths.

Each test builds a small topology of two hosts, ``a`` (10.0.0.1, fd00::1) and ``b``
(10.0.0.2, fd00::2), and endpoints by hand, and asks ``Addressing`` directly: what a
name resolves to and the errors Linux and CPython give for bad addresses, which binds
conflict (``EADDRINUSE``) or are not local (``EADDRNOTAVAIL``), the order ephemeral
ports are handed out in and what happens when they run out, which source address a
packet leaves from, and the Unix path namespace.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from typing import Any

import pytest

from sockfake.sim import LinkConditions, SimNetwork
from sockfake.sim.net.addressing import Addressing
from sockfake.sim.net.endpoint import Endpoint
from sockfake.sim.net.topology import EPHEMERAL_FIRST, EPHEMERAL_LAST, Host, Topology

V4, V6, UNIX = socket.AF_INET, socket.AF_INET6, socket.AF_UNIX
TCP, UDP = socket.SOCK_STREAM, socket.SOCK_DGRAM
REUSEADDR = (socket.SOL_SOCKET, socket.SO_REUSEADDR)
REUSEPORT = (socket.SOL_SOCKET, socket.SO_REUSEPORT)
V6ONLY = (socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)


@dataclass
class World:
    topology: Topology
    addressing: Addressing
    a: Host
    b: Host

    def endpoint(self, family: int = V4, sock_type: int = TCP, host: Host | None = None,
                 **options: Any) -> Endpoint:
        endpoint = Endpoint(host or self.a, family, sock_type, 3)
        for name, value in options.items():
            endpoint.options[{"reuseaddr": REUSEADDR, "reuseport": REUSEPORT,
                              "v6only": V6ONLY}[name]] = value
        return endpoint

    def bound(self, address: Any, family: int = V4, sock_type: int = TCP,
              host: Host | None = None, **options: Any) -> Endpoint:
        endpoint = self.endpoint(family, sock_type, host, **options)
        endpoint.local = self.addressing.bind(endpoint, address)
        return endpoint


@pytest.fixture
def world(net: SimNetwork) -> World:
    topology = Topology(net.kernel, LinkConditions())
    a = topology.add_host(net, "a", None, None)
    b = topology.add_host(net, "b", None, None)
    return World(topology, Addressing(topology), a, b)


def show(value: object) -> str:
    """A test id part that reads the same on every Python version (enums by name), with
    no ``::`` (pytest's node id separator) in an IPv6 address."""
    if isinstance(value, (socket.AddressFamily, socket.SocketKind)):
        return value.name
    if isinstance(value, dict):
        return "+".join(value) or "-"
    if isinstance(value, tuple) and value and isinstance(value[0], socket.AddressFamily):
        return " ".join(map(show, value))
    if isinstance(value, type):
        return value.__name__
    return repr(value).replace("::", ": :")


def errno_of(call: Any) -> int | None:
    with pytest.raises(OSError) as raised:
        call()
    return raised.value.errno


# -- resolution ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("family", "address", "expected"),
    [
        (V4, ("b", 80), ("10.0.0.2", 80)),
        (V4, ("10.0.0.2", 80), ("10.0.0.2", 80)),
        (V4, ("localhost", 80), ("127.0.0.1", 80)),
        (V4, ("", 80), ("127.0.0.1", 80)),  # the wildcard means this host's loopback
        (V4, ("0.0.0.0", 80), ("127.0.0.1", 80)),
        (V6, ("b", 80), ("fd00::2", 80, 0, 0)),
        (V6, ("localhost", 80), ("::1", 80, 0, 0)),
        (V6, ("::", 80, 0, 0), ("::1", 80, 0, 0)),
        (V6, ("FD00:0::2", 80), ("fd00::2", 80, 0, 0)),  # canonical text
        (V6, ("fe80::1%eth0", 80), ("fe80::1", 80, 0, 0)),  # the scope is dropped
        (V6, ("::ffff:10.0.0.2", 80), ("::ffff:10.0.0.2", 80, 0, 0)),
        (UNIX, "/run/app.sock", "/run/app.sock"),
        (UNIX, b"/run/app.sock", "/run/app.sock"),
    ],
    ids=show,
)
def test_an_address_resolves_as_connect_and_sendto_see_it(
    world: World, family: int, address: Any, expected: Any
) -> None:
    assert world.addressing.resolve_remote(world.endpoint(family), address) == expected


BAD_ADDRESSES = [
    (V4, "10.0.0.2", TypeError, "connect(): AF_INET address must be tuple, not str"),
    (V6, ["::1", 80], TypeError, "connect(): AF_INET6 address must be tuple, not list"),
    (V4, ("a", 80, 0), TypeError, "AF_INET address must be a pair (host, port)"),
    (V6, ("a",), TypeError,
     "AF_INET6 address must be a tuple (host, port[, flowinfo[, scopeid]])"),
    (V4, ("a", "80"), TypeError, "'str' object cannot be interpreted as an integer"),
    (V4, ("a", 2.0), TypeError, "'float' object cannot be interpreted as an integer"),
    (V4, ("a", 65536), OverflowError, "connect(): port must be 0-65535."),
    (V4, ("a", -1), OverflowError, "connect(): port must be 0-65535."),
    (V6, ("::1", 80, 0x100000), OverflowError, "connect(): flowinfo must be 0-1048575."),
    (V4, (None, 80), TypeError, "str, bytes or bytearray expected, not NoneType"),
    (V4, ("nowhere", 80), socket.gaierror, "Name or service not known"),
    (V4, ("::1", 80), socket.gaierror, "Address family for hostname not supported"),
    (V6, ("127.0.0.1", 80), socket.gaierror, "Address family for hostname not supported"),
    (UNIX, 42, TypeError, "a bytes-like object is required, not 'int'"),
]


@pytest.mark.parametrize(("family", "address", "kind", "message"), BAD_ADDRESSES, ids=show)
def test_a_bad_address_raises_what_cpython_raises(
    world: World, family: int, address: Any, kind: type[Exception], message: str
) -> None:
    with pytest.raises(kind) as raised:
        world.addressing.resolve_remote(world.endpoint(family), address)
    assert type(raised.value) is kind
    assert str(raised.value).endswith(message)


def test_resolution_errors_carry_the_getaddrinfo_codes(world: World) -> None:
    with pytest.raises(socket.gaierror) as unknown:
        world.addressing.resolve_remote(world.endpoint(V4), ("nowhere", 80))
    with pytest.raises(socket.gaierror) as family:
        world.addressing.resolve_remote(world.endpoint(V6), ("127.0.0.1", 80))
    assert (unknown.value.errno, family.value.errno) == (socket.EAI_NONAME, socket.EAI_ADDRFAMILY)


def test_bind_errors_name_bind_not_connect(world: World) -> None:
    with pytest.raises(OverflowError, match=r"^bind\(\): port must be 0-65535\.$"):
        world.addressing.bind(world.endpoint(V4), ("127.0.0.1", 70000))
    with pytest.raises(TypeError, match=r"^bind\(\): AF_INET address must be tuple"):
        world.addressing.bind(world.endpoint(V4), "127.0.0.1")


# -- binding ------------------------------------------------------------------------------


def test_bind_gives_the_address_as_getsockname_reports_it_and_takes_the_port(
    world: World,
) -> None:
    four = world.bound(("10.0.0.1", 5000))
    six = world.bound(("fd00::1", 5000), V6, v6only=1)
    assert four.local == ("10.0.0.1", 5000)
    assert six.local == ("fd00::1", 5000, 0, 0)
    assert world.a.ports[(TCP, 5000)] == [four, six]
    assert world.bound(("", 5001)).local == ("0.0.0.0", 5001)
    assert world.bound(("localhost", 5002), V6).local == ("::1", 5002, 0, 0)


@pytest.mark.parametrize("ip", ["10.0.0.1", "127.0.0.1", "127.1.2.3", "0.0.0.0"])
def test_a_host_binds_its_own_loopback_and_wildcard_addresses(world: World, ip: str) -> None:
    assert world.bound((ip, 6000)).local == (ip, 6000)


@pytest.mark.parametrize(
    ("family", "ip"), [(V4, "10.0.0.2"), (V4, "10.9.9.9"), (V6, "fd00::2"), (V6, "fd00::99")],
    ids=show,
)
def test_binding_an_address_the_host_does_not_own_is_eaddrnotavail(
    world: World, family: int, ip: str
) -> None:
    endpoint = world.endpoint(family)
    assert errno_of(lambda: world.addressing.bind(endpoint, (ip, 80))) == errno.EADDRNOTAVAIL
    assert world.a.ports == {}


# (first bind, second bind, may both have the port?); each bind is
# (family, ip, socket type, options), options as World.endpoint takes them.
CONFLICTS = [
    ((V4, "127.0.0.1", TCP, {}), (V4, "127.0.0.1", TCP, {}), False),
    ((V4, "0.0.0.0", TCP, {}), (V4, "127.0.0.1", TCP, {}), False),
    ((V4, "127.0.0.1", TCP, {}), (V4, "0.0.0.0", TCP, {}), False),
    ((V4, "127.0.0.1", TCP, {}), (V4, "10.0.0.1", TCP, {}), True),
    ((V4, "127.0.0.1", TCP, {}), (V4, "127.0.0.1", UDP, {}), True),  # its own port space
    ((V4, "0.0.0.0", TCP, {}), (V6, "::", TCP, {}), False),  # dual stack takes IPv4 too
    ((V6, "::", TCP, {}), (V4, "10.0.0.1", TCP, {}), False),
    ((V4, "0.0.0.0", TCP, {}), (V6, "::", TCP, {"v6only": 1}), True),
    ((V6, "::", TCP, {"v6only": 1}), (V4, "0.0.0.0", TCP, {}), True),
    ((V6, "fd00::1", TCP, {}), (V4, "10.0.0.1", TCP, {}), True),  # not a mapped address
    ((V6, "::1", TCP, {}), (V6, "::", TCP, {}), False),
    ((V4, "127.0.0.1", UDP, {"reuseaddr": 1}), (V4, "127.0.0.1", UDP, {"reuseaddr": 1}), True),
    ((V4, "127.0.0.1", UDP, {"reuseaddr": 1}), (V4, "127.0.0.1", UDP, {}), False),
    ((V4, "127.0.0.1", UDP, {}), (V4, "127.0.0.1", UDP, {"reuseaddr": 1}), False),
    ((V4, "127.0.0.1", TCP, {"reuseaddr": 1}), (V4, "127.0.0.1", TCP, {"reuseaddr": 1}), True),
    ((V4, "127.0.0.1", TCP, {"reuseport": 1}), (V4, "127.0.0.1", TCP, {"reuseport": 1}), True),
    ((V4, "127.0.0.1", TCP, {"reuseport": 1}), (V4, "127.0.0.1", TCP, {}), False),
]


@pytest.mark.parametrize(("first", "second", "shared"), CONFLICTS, ids=show)
def test_bind_conflicts_as_linux_decides_them(
    world: World, first: tuple[Any, ...], second: tuple[Any, ...], shared: bool
) -> None:
    family, ip, sock_type, options = first
    world.bound((ip, 7000), family, sock_type, **options)
    family, ip, sock_type, options = second
    endpoint = world.endpoint(family, sock_type, **options)
    if shared:
        assert world.addressing.bind(endpoint, (ip, 7000))[:2] == (ip, 7000)
    else:
        assert errno_of(lambda: world.addressing.bind(endpoint, (ip, 7000))) == errno.EADDRINUSE


def test_reuseaddr_does_not_share_a_port_a_stream_socket_listens_on(world: World) -> None:
    listening = world.bound(("127.0.0.1", 7100), reuseaddr=1)
    listening.backlog = 129  # what listen() sets
    endpoint = world.endpoint(reuseaddr=1)
    assert errno_of(lambda: world.addressing.bind(endpoint, ("127.0.0.1", 7100))) == (
        errno.EADDRINUSE
    )
    both = world.bound(("127.0.0.1", 7200), reuseport=1)
    both.backlog = 129
    assert world.bound(("127.0.0.1", 7200), reuseport=1).local == ("127.0.0.1", 7200)


def test_a_released_port_is_free_again_and_leaves_no_entry(world: World) -> None:
    first = world.bound(("127.0.0.1", 7300))
    world.addressing.release(first)
    assert (TCP, 7300) not in world.a.ports
    assert world.bound(("127.0.0.1", 7300)).local == ("127.0.0.1", 7300)
    world.addressing.release(world.endpoint())  # never bound: nothing to release


# -- ephemeral ports ----------------------------------------------------------------------


def test_ephemeral_ports_count_up_from_61000_on_each_host(world: World) -> None:
    ports = [world.bound(("0.0.0.0", 0)).local[1] for _ in range(3)]
    assert ports == [EPHEMERAL_FIRST, EPHEMERAL_FIRST + 1, EPHEMERAL_FIRST + 2]
    assert world.bound(("0.0.0.0", 0), host=world.b).local[1] == EPHEMERAL_FIRST


def test_ephemeral_ports_skip_those_in_use_by_the_same_type_only(world: World) -> None:
    world.bound(("127.0.0.1", EPHEMERAL_FIRST))
    world.bound(("127.0.0.1", EPHEMERAL_FIRST + 2), sock_type=UDP)
    assert world.a.ephemeral_port(TCP) == EPHEMERAL_FIRST + 1  # skips the TCP one
    assert world.a.ephemeral_port(TCP) == EPHEMERAL_FIRST + 2  # a UDP port is no obstacle
    assert world.a.ephemeral_port(UDP) == EPHEMERAL_FIRST + 3  # one counter per host


def test_ephemeral_ports_wrap_around_after_65535(world: World) -> None:
    world.a._next_ephemeral = EPHEMERAL_LAST
    assert [world.a.ephemeral_port(TCP) for _ in range(2)] == [EPHEMERAL_LAST, EPHEMERAL_FIRST]


def test_when_every_ephemeral_port_is_taken_bind_is_eaddrnotavail(world: World) -> None:
    taken = world.endpoint()
    for port in range(EPHEMERAL_FIRST, EPHEMERAL_LAST + 1):
        world.a.ports[(TCP, port)] = [taken]
    assert errno_of(lambda: world.addressing.bind(world.endpoint(), ("0.0.0.0", 0))) == (
        errno.EADDRNOTAVAIL
    )
    remote = ("10.0.0.2", 80)
    assert errno_of(lambda: world.addressing.autobind(world.endpoint(), remote)) == (
        errno.EADDRNOTAVAIL
    )
    assert world.addressing.bind(world.endpoint(), ("127.0.0.1", 1024)) == ("127.0.0.1", 1024)
    assert world.a.ephemeral_port(UDP) in range(EPHEMERAL_FIRST, EPHEMERAL_LAST + 1)
    del world.a.ports[(TCP, EPHEMERAL_FIRST + 1000)]
    assert world.a.ephemeral_port(TCP) == EPHEMERAL_FIRST + 1000  # the one freed


# -- source addresses ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("family", "target", "source"),
    [
        (V4, "127.0.0.1", "127.0.0.1"),
        (V4, "127.0.0.9", "127.0.0.9"),  # loopback answers from the address asked
        (V4, "10.0.0.2", "10.0.0.1"),
        (V4, "10.9.9.9", "10.0.0.1"),  # no route is the sender's problem later
        (V6, "::1", "::1"),
        (V6, "fd00::2", "fd00::1"),
        (V6, "::ffff:10.0.0.2", "::ffff:10.0.0.1"),  # IPv4-mapped out, IPv4-mapped back
        (V6, "::ffff:127.0.0.1", "::ffff:127.0.0.1"),
    ],
    ids=show,
)
def test_a_packet_leaves_from_the_routes_source_address(
    world: World, family: int, target: str, source: str
) -> None:
    assert world.addressing.source_ip(world.a, family, target) == source


def test_the_source_is_the_hosts_first_address_or_its_loopback_without_one(
    world: World, net: SimNetwork
) -> None:
    several = world.topology.add_host(net, "c", ["10.1.0.7", "10.1.0.8"], None)
    assert world.addressing.source_ip(several, V4, "10.0.0.2") == "10.1.0.7"
    bare = Host(net, "bare", [], [])  # no address of a family: its loopback
    assert world.addressing.source_ip(bare, V4, "10.0.0.2") == "127.0.0.1"
    assert world.addressing.source_ip(bare, V6, "fd00::2") == "::1"


def test_connect_autobinds_on_the_source_address_and_sendto_on_the_wildcard(
    world: World,
) -> None:
    connecting = world.endpoint()
    assert world.addressing.autobind(connecting, ("10.0.0.2", 80)) == ("10.0.0.1", EPHEMERAL_FIRST)
    sending = world.endpoint(V6, UDP)
    assert world.addressing.autobind(sending, ("fd00::2", 53), wildcard=True) == (
        "::", EPHEMERAL_FIRST + 1, 0, 0
    )
    assert world.a.ports[(UDP, EPHEMERAL_FIRST + 1)] == [sending]
    assert world.addressing.autobind(world.endpoint(UNIX), "/x") == ""


def test_a_wildcard_bound_socket_sends_from_the_routes_address_until_connect_pins_it(
    world: World,
) -> None:
    wildcard = world.bound(("0.0.0.0", 9000), sock_type=UDP)
    assert world.addressing.source_address(wildcard, ("10.0.0.2", 53)) == ("10.0.0.1", 9000)
    assert world.addressing.source_address(wildcard, ("127.0.0.1", 53)) == ("127.0.0.1", 9000)
    specific = world.bound(("127.0.0.1", 9001), sock_type=UDP)
    assert world.addressing.source_address(specific, ("10.0.0.2", 53)) == ("127.0.0.1", 9001)
    world.addressing.pin_source(wildcard, ("10.0.0.2", 53))
    assert wildcard.local == ("10.0.0.1", 9000)
    world.addressing.pin_source(specific, ("10.0.0.2", 53))
    assert specific.local == ("127.0.0.1", 9001)  # a specific address stays


# -- routes and the receiving endpoint ----------------------------------------------------


def test_a_route_goes_to_the_host_owning_the_address(world: World) -> None:
    sender = world.endpoint()
    route = world.addressing.route
    assert route(sender, ("10.0.0.2", 80)) == (world.a, world.b)
    assert route(sender, ("127.0.0.1", 80)) == (world.a, world.a)
    assert route(sender, ("10.9.9.9", 80)) == (world.a, None)
    assert route(world.endpoint(V6), ("::ffff:10.0.0.2", 80, 0, 0)) == (world.a, world.b)


def test_a_packet_reaches_the_exact_bind_before_the_wildcard(world: World) -> None:
    wildcard = world.bound(("0.0.0.0", 53), sock_type=UDP, host=world.b, reuseaddr=1)
    exact = world.bound(("10.0.0.2", 53), sock_type=UDP, host=world.b, reuseaddr=1)
    find = world.addressing.find_endpoint
    assert find(world.b, UDP, V4, ("10.0.0.2", 53)) is exact
    assert find(world.b, UDP, V4, ("127.0.0.1", 53)) is wildcard
    exact.closed = True
    assert find(world.b, UDP, V4, ("10.0.0.2", 53)) is wildcard
    assert find(world.b, UDP, V4, ("10.0.0.2", 54)) is None
    assert find(world.b, TCP, V4, ("10.0.0.2", 53)) is None


def test_an_ipv4_packet_reaches_a_dual_stack_socket_unless_it_is_v6only(world: World) -> None:
    dual = world.bound(("::", 53), V6, UDP, host=world.b)
    find = world.addressing.find_endpoint
    assert find(world.b, UDP, V4, ("10.0.0.2", 53)) is dual
    assert find(world.b, UDP, V6, ("::ffff:10.0.0.2", 53, 0, 0)) is dual
    only = world.bound(("::", 54), V6, UDP, host=world.b, v6only=1)
    assert find(world.b, UDP, V4, ("10.0.0.2", 54)) is None
    assert find(world.b, UDP, V6, ("fd00::2", 54, 0, 0)) is only


# -- the Unix path namespace --------------------------------------------------------------


def test_a_unix_path_is_taken_once_and_left_stale_when_released(world: World) -> None:
    first = world.bound("/run/app.sock", UNIX)
    assert first.local == "/run/app.sock"
    second = world.endpoint(UNIX)
    assert errno_of(lambda: world.addressing.bind(second, "/run/app.sock")) == errno.EADDRINUSE
    assert world.addressing.unix_peer("/run/app.sock", TCP) is first
    assert errno_of(lambda: world.addressing.unix_peer("/run/app.sock", UDP)) == (
        errno.EPROTOTYPE
    )
    world.addressing.release(first)
    assert errno_of(lambda: world.addressing.unix_peer("/run/app.sock", TCP)) == (
        errno.ECONNREFUSED  # a socket file left behind, nobody listening
    )
    assert errno_of(lambda: world.addressing.unix_peer("/run/never.sock", TCP)) == errno.ENOENT
    third = world.endpoint(UNIX, UDP)
    assert errno_of(lambda: world.addressing.bind(third, "/run/app.sock")) == errno.EADDRINUSE
    assert world.addressing.unix_files.unlink("/run/app.sock")  # as a server removes it
    assert errno_of(lambda: world.addressing.unix_peer("/run/app.sock", TCP)) == errno.ENOENT
    again = world.bound("/run/app.sock", UNIX, UDP)
    assert world.addressing.unix_peer("/run/app.sock", UDP) is again


def test_a_unix_path_needs_its_directory_and_no_real_file_there(world: World,
                                                               tmp_path: Any) -> None:
    missing = str(tmp_path / "missing" / "app.sock")
    assert errno_of(lambda: world.bound(missing, UNIX)) == errno.ENOENT
    assert errno_of(lambda: world.addressing.unix_peer(missing, TCP)) == errno.ENOENT
    (tmp_path / "file").write_text("")
    assert errno_of(lambda: world.bound(str(tmp_path / "file" / "a.sock"), UNIX)) == (
        errno.ENOTDIR
    )
    taken = str(tmp_path / "file")
    assert errno_of(lambda: world.bound(taken, UNIX)) == errno.EADDRINUSE
    # A real file is no simulated socket: connecting to it is refused.
    assert errno_of(lambda: world.addressing.unix_peer(taken, TCP)) == errno.ECONNREFUSED


def test_unix_paths_are_limited_as_sun_path_is(world: World) -> None:
    assert world.bound("/" + "p" * 106, UNIX).local == "/" + "p" * 106  # 107 bytes and NUL
    assert world.bound("\0" + "a" * 107, UNIX).local == "\0" + "a" * 107  # abstract: 108
    for path in ("/" + "p" * 107, "\0" + "a" * 108, "/" + "é" * 54):
        with pytest.raises(OSError, match=r"^AF_UNIX path too long$"):
            world.addressing.bind(world.endpoint(UNIX), path)


def test_an_empty_unix_address_autobinds_a_numbered_abstract_name(world: World) -> None:
    names = [world.bound("", UNIX).local for _ in range(2)]
    assert names == ["\0" + "00001", "\0" + "00002"]
    assert world.addressing.unix_peer("\0" + "00002", TCP).local == names[1]


def test_a_unix_packet_routes_to_the_host_of_the_bound_path(world: World) -> None:
    server = world.bound("/srv/b.sock", UNIX, UDP, host=world.b)
    sender = world.endpoint(UNIX, UDP)
    assert world.addressing.route(sender, "/srv/b.sock") == (world.a, world.b)
    assert world.addressing.route(sender, "/srv/none.sock") == (world.a, world.a)
    assert world.addressing.find_endpoint(world.b, UDP, UNIX, "/srv/b.sock") is server
    assert world.addressing.find_endpoint(world.b, TCP, UNIX, "/srv/b.sock") is None

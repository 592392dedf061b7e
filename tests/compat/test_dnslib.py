"""dnslib's DNS server, unmodified, queried by dnspython's resolver: through the
fixtures' ``server_class=`` (dnslib's ``UDPServer``, its resolver and logger given as
server attributes) and ``server_factory=`` (dnslib's ``DNSServer``), on both networks,
under 30 % loss (the resolver retries in virtual time), latency, across a partition,
and the same digest for the same seed.
"""

from __future__ import annotations

from typing import Any

import pytest
from compat_clients import need  # type: ignore[import-not-found]

from sockfake.testing import open_testbed

dnslib = need("dnslib")
dnslib_server = need("dnslib.server")
dns_resolver = need("dns.resolver")

ZONE = {"db.example.": "10.9.0.1", "cache.example.": "10.9.0.2"}


class Zone:
    """A records from ZONE; NXDOMAIN for the rest (dnslib's handler calls
    ``self.server.resolver.resolve(request, handler)``)."""

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        name = str(request.q.qname)
        if name in ZONE:
            reply.add_answer(dnslib.RR(name, dnslib.QTYPE.A, rdata=dnslib.A(ZONE[name]), ttl=60))
        else:
            reply.header.rcode = dnslib.RCODE.NXDOMAIN
        return reply


def quiet() -> Any:
    return dnslib_server.DNSLogger("-request,-reply,-truncated,-recv,-send,-data", prefix=False)


def by_class(udp_server: Any, **placement: Any) -> Any:
    return udp_server(
        dnslib_server.DNSHandler,
        server_class=dnslib_server.UDPServer,
        resolver=Zone(),  # server attributes: self.server.resolver in dnslib's handler
        logger=quiet(),
        **placement,
    )


def by_factory(udp_server: Any, **placement: Any) -> Any:
    return udp_server(
        server_factory=lambda host, port: dnslib_server.DNSServer(
            Zone(), address=host, port=port, logger=quiet()
        ).server,
        **placement,
    )


STARTS = {"server_class": by_class, "server_factory": by_factory}


def resolver(address: Any, lifetime: float) -> Any:
    found = dns_resolver.Resolver(configure=False)
    found.nameservers = [address[0]]
    found.port = address[1]
    found.timeout = 1.0  # each try
    found.lifetime = lifetime  # all tries
    return found


def lookup(address: Any, name: str, lifetime: float = 60.0) -> list[str]:
    answer = resolver(address, lifetime).resolve(name, "A")
    return sorted(record.address for record in answer)


def exercise(srv: Any) -> None:
    assert lookup(srv.address, "db.example.") == ["10.9.0.1"]
    assert lookup(srv.address, "cache.example.") == ["10.9.0.2"]
    with pytest.raises(dns_resolver.NXDOMAIN):
        lookup(srv.address, "nowhere.example.")


@pytest.mark.sockfake(network="both")
@pytest.mark.parametrize("how", sorted(STARTS))
def test_answers_and_nxdomain(udp_server: Any, how: str) -> None:
    srv = STARTS[how](udp_server)
    assert isinstance(srv.server, dnslib_server.UDPServer)
    exercise(srv)


@pytest.mark.sockfake(loss=0.3)
@pytest.mark.parametrize("how", sorted(STARTS))
def test_under_30_percent_loss_the_resolver_retries(
    udp_server: Any, sockfake_network: Any, how: str
) -> None:
    srv = STARTS[how](udp_server)
    for _ in range(5):
        exercise(srv)
    # 15 lookups, 30 % of queries and of replies lost: some retried, 1 s each.
    lost = [e for e in sockfake_network.trace if e.kind == "drop"]
    assert lost, "no datagram was lost: the test did not exercise loss"
    assert sockfake_network.time() >= 1.0


@pytest.mark.sockfake(latency=0.05)
def test_under_latency(udp_server: Any, sockfake_network: Any) -> None:
    srv = by_class(udp_server)
    exercise(srv)
    assert sockfake_network.time() >= 3 * 0.1 - 1e-9  # a round trip of 2 x 50 ms each


def test_a_partition_times_out_then_heals(udp_server: Any, sockfake_network: Any) -> None:
    srv = by_factory(udp_server, host="ns")
    sockfake_network.partition("local", "ns")
    before = sockfake_network.time()
    with pytest.raises(dns_resolver.LifetimeTimeout):
        lookup(srv.address, "db.example.", lifetime=5)
    assert sockfake_network.time() - before >= 5
    sockfake_network.heal()
    assert lookup(srv.address, "db.example.") == ["10.9.0.1"]


def run_once(seed: int) -> str:
    # dnspython draws its query ids from a random.SystemRandom() made at import: under
    # interception it draws from the seed, so the ids (in the digest) replay too.
    with open_testbed(seed=seed, loss=0.3) as bed:
        srv = by_class(bed.udp_server)
        for _ in range(3):
            exercise(srv)
    return str(bed.network.digest())


def test_the_same_seed_gives_the_same_digest() -> None:
    first = run_once(8)
    assert run_once(8) == first
    assert run_once(9) != first  # another seed loses other datagrams


def test_the_query_ids_follow_the_seed() -> None:
    """dnspython's query ids (random bytes of its own, from a generator made at import)
    are on the wire: the same seed draws the same ones, another seed others."""

    def ids(seed: int) -> list[int]:
        with open_testbed(seed=seed) as bed:
            srv = by_class(bed.udp_server)
            exercise(srv)
        return [int.from_bytes(bytes(event.payload)[:2], "big") for event in bed.network.trace
                if event.kind == "sendto" and event.payload and event.dst == srv.address]

    first = ids(8)
    assert first and first == ids(8)
    assert first != ids(9)

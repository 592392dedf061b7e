"""The stray-socket detector's opt-out: real endpoints C code may use on purpose.

A test may run a real server or client beside the simulation on purpose: a real
PostgreSQL reached through psycopg2 for the test's fixtures, a real gRPC server in
another thread. The detector (``stray_sockets``) cannot tell those sockets from C
code that escaped the simulation, so the test says which real endpoints are expected:

* ``"all"``: the detector is off for this interception;
* a sequence of endpoints: ``(host, port)`` for TCP and UDP, a path (``str``) for a
  bound Unix socket. A real socket whose local or peer address is one of them is not
  reported. ``host`` is an IP address (no name is resolved: the detector reads
  addresses from the kernel), or ``""`` for any address; an IPv4-mapped IPv6 address
  is its IPv4 address, and a socket bound to the wildcard (``0.0.0.0``, ``::``)
  matches every host.

Read by ``net.intercept(allow_real=...)``, the marker's ``allow_real=`` and the ini
option ``sockfake_allow_real`` (``all``, or space-separated ``host:port``,
``[v6host]:port``, ``:port``, ``/unix/path`` and ``@abstract``), each validated where it is read.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sockfake.network import SockfakeTypeError, SockfakeValueError

__all__ = ["ALL", "AllowReal", "RealEndpoint", "allow_real", "canonical_host", "from_text"]

ALL = "all"
_WILDCARDS = ("0.0.0.0", "::")


@dataclass(frozen=True)
class RealEndpoint:
    """A real address the detector reads: an IP endpoint, or a Unix socket's path."""

    host: str = ""  # "" for a Unix socket
    port: int = 0
    path: str = ""


@dataclass(frozen=True)
class AllowReal:
    """The validated ``allow_real`` of one interception."""

    everything: bool = False
    endpoints: tuple[RealEndpoint, ...] = ()

    def __bool__(self) -> bool:
        return self.everything or bool(self.endpoints)

    def allows(self, addresses: Iterable[RealEndpoint]) -> bool:
        """Is a socket with these local and peer addresses expected?"""
        if self.everything:
            return True
        return any(_matches(wanted, seen) for wanted in self.endpoints for seen in addresses)


def _matches(wanted: RealEndpoint, seen: RealEndpoint) -> bool:
    if wanted.path or seen.path:
        return wanted.path == seen.path
    if wanted.port != seen.port:
        return False
    return not wanted.host or seen.host in _WILDCARDS or wanted.host == seen.host


def canonical_host(host: str) -> str:
    """An IP address as the detector writes it (IPv4-mapped IPv6 as IPv4)."""
    address = ipaddress.ip_address(host)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


_USAGE = (
    "allow_real= is 'all' (no stray-socket detection) or a list of real endpoints C "
    "code may use on purpose: (host, port) pairs, host an IP address or '' for any, "
    "and Unix socket paths"
)


def _endpoint(item: Any) -> RealEndpoint:
    if isinstance(item, str):
        if not item:
            raise SockfakeValueError(f"{_USAGE}; not an empty path")
        return RealEndpoint(path=item)
    if not (isinstance(item, tuple) and len(item) == 2):
        raise SockfakeTypeError(f"{_USAGE}; not {item!r}")
    host, port = item
    if not isinstance(host, str):
        raise SockfakeTypeError(f"{_USAGE}; {item!r}: the host is not a string")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise SockfakeValueError(f"{_USAGE}; {item!r}: the port is not from 1 to 65535")
    if not host:
        return RealEndpoint(port=port)
    try:
        return RealEndpoint(host=canonical_host(host), port=port)
    except ValueError:
        raise SockfakeValueError(
            f"{_USAGE}; {item!r}: {host!r} is not an IP address (names are not resolved)"
        ) from None


def allow_real(value: Any) -> AllowReal:
    """``value`` validated: ``'all'``, or a list or tuple of endpoints (see the module)."""
    if isinstance(value, AllowReal):
        return value
    if value == ALL:
        return AllowReal(everything=True)
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise SockfakeTypeError(f"{_USAGE}; not {value!r}")
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], int):
        raise SockfakeTypeError(
            f"{_USAGE}; {value!r} is one endpoint: give a list of them, [{value!r}]"
        )
    return AllowReal(endpoints=tuple(_endpoint(item) for item in value))


def from_text(text: str) -> AllowReal:
    """The ini option's form: ``all``, or ``host:port``, ``[v6host]:port``, ``:port``,
    ``/unix/path`` and ``@abstract`` separated by spaces."""
    words = text.split()
    if words == [ALL]:
        return AllowReal(everything=True)
    items: list[Any] = []
    for word in words:
        if word.startswith("/"):
            items.append(word)
            continue
        if word.startswith("@"):  # an abstract name, as /proc/net/unix writes it
            items.append("\0" + word[1:])
            continue
        host, colon, port = word.rpartition(":")
        if not colon or not port.isdigit():
            raise SockfakeValueError(
                f"{word!r}: give 'all', or endpoints as host:port, [v6host]:port, :port "
                "or a Unix socket path"
            )
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        items.append((host, int(port)))
    return allow_real(items)

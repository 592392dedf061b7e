"""Addresses: name resolution, binding, ephemeral ports, routes, and the Unix namespace.

Everything here answers "which address, which host, which endpoint" and raises the
errors Linux raises for bad addresses (``EADDRINUSE``, ``EADDRNOTAVAIL``,
``gaierror``...), with CPython's own messages for malformed ones. Parsed IP addresses
are cached: ``ipaddress.ip_address`` is the most expensive call on the hot path.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import operator
import socket
from typing import Any

from sockfake.sim.net.endpoint import Endpoint
from sockfake.sim.net.oserror import os_error
from sockfake.sim.net.topology import Host, Topology
from sockfake.sim.net.unix_files import UnixFiles, is_filesystem_path

__all__ = ["Addressing"]

_AF_UNIX = getattr(socket, "AF_UNIX", -1)
_V6ONLY = (socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
_REUSEADDR = (socket.SOL_SOCKET, socket.SO_REUSEADDR)
_REUSEPORT = (socket.SOL_SOCKET, getattr(socket, "SO_REUSEPORT", -1))
_MAPPED = "::ffff:"
UNIX_PATH_MAX = 108  # sizeof(sun_path)


@functools.lru_cache(maxsize=4096)
def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


# The predicates below are asked of every packet: cached, a call is one dict lookup.
@functools.lru_cache(maxsize=4096)
def _is_unspecified(ip: str) -> bool:
    return _ip(ip).is_unspecified


@functools.lru_cache(maxsize=4096)
def _is_loopback(ip: str) -> bool:
    return _ip(ip).is_loopback


def _family_not_supported() -> socket.gaierror:
    return socket.gaierror(socket.EAI_ADDRFAMILY, "Address family for hostname not supported")


def format_address(family: int, ip: str, port: int) -> Any:
    """An address tuple as getsockname() gives it for ``family``."""
    if family == socket.AF_INET6:
        return (ip, port, 0, 0)
    return (ip, port)


@functools.lru_cache(maxsize=4096)
def _unmapped(ip: str) -> str | None:
    """The IPv4 address of an IPv4-mapped IPv6 address (``::ffff:a.b.c.d``), else None."""
    if ":" not in ip or not ip.startswith("::"):
        return None
    try:
        mapped = _ip(ip.split("%")[0]).ipv4_mapped  # type: ignore[union-attr]
    except ValueError:
        return None
    return None if mapped is None else str(mapped)


@functools.lru_cache(maxsize=4096)
def _ip_literal(name: str) -> tuple[int, str]:
    """The version and canonical text of an IP literal; ``ValueError`` if it is not one."""
    parsed = _ip(name.split("%")[0])
    mapped = _unmapped(name)
    return parsed.version, (str(parsed) if mapped is None else _MAPPED + mapped)


def as_seen_by(family: int, address: Any) -> Any:
    """An IP address as a socket of ``family`` reports it: IPv4 peers of a dual-stack
    IPv6 socket are IPv4-mapped (``::ffff:127.0.0.1``), and the other way back."""
    if not isinstance(address, tuple):
        return address
    if family == socket.AF_INET6 and len(address) == 2:
        return (_MAPPED + address[0], address[1], 0, 0)
    if family == socket.AF_INET and len(address) == 4:
        ip = _unmapped(address[0])
        if ip is not None:
            return (ip, address[1])
    return address


def dual_stack(endpoint: Endpoint) -> bool:
    """An IPv6 socket that also takes IPv4 (IPV6_V6ONLY off, Linux's default)."""
    return endpoint.family == socket.AF_INET6 and not endpoint.options.get(_V6ONLY, 0)


def _overlap(a: Endpoint, ip: str, b: Endpoint) -> bool:
    """Would ``a`` bound at ``ip`` share addresses with ``b`` (already bound)?"""
    other = b.local[0]
    if a.family == b.family:
        return other == ip or _is_unspecified(ip) or _is_unspecified(other)
    six, six_ip, four_ip = (a, ip, other) if a.family == socket.AF_INET6 else (b, other, ip)
    if not dual_stack(six):
        return False
    if _is_unspecified(six_ip):
        return True
    mapped = _unmapped(six_ip)
    return mapped is not None and (mapped == four_ip or _is_unspecified(four_ip))


def _may_share(a: Endpoint, b: Endpoint) -> bool:
    """Linux's exceptions to EADDRINUSE: SO_REUSEPORT on both; SO_REUSEADDR on both
    (for a stream, while the bound one does not listen)."""
    if a.options.get(_REUSEPORT) and b.options.get(_REUSEPORT):
        return True
    if a.options.get(_REUSEADDR) and b.options.get(_REUSEADDR):
        return a.type == socket.SOCK_DGRAM or b.backlog == 0
    return False


class Addressing:
    """Resolution and binding over one topology, plus its Unix path namespace."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        # The bound Unix names (datagrams are delivered by name) and, for paths,
        # their socket files (what connect() and sendto() look up, as Linux does).
        self._unix_paths: dict[str, Endpoint] = {}
        self.unix_files = UnixFiles()
        self._autobinds = 0

    # -- names -------------------------------------------------------------------------

    @staticmethod
    def unbound_name(family: int) -> Any:
        if family == socket.AF_INET6:
            return ("::", 0, 0, 0)
        if family == _AF_UNIX:
            return ""
        return ("0.0.0.0", 0)

    @staticmethod
    def any_address(family: int) -> Any:
        if family == socket.AF_INET6:
            return ("::", 0)
        if family == _AF_UNIX:
            return ""
        return ("0.0.0.0", 0)

    def _resolve_ip(self, name: Any, family: int) -> str:
        if isinstance(name, (bytes, bytearray)):
            name = bytes(name).decode("idna")  # CPython takes a host as bytes too
        if not isinstance(name, str):
            raise TypeError(f"str, bytes or bytearray expected, not {type(name).__name__}")
        if name == "":
            return "0.0.0.0" if family == socket.AF_INET else "::"
        if name == "localhost":
            return "127.0.0.1" if family == socket.AF_INET else "::1"
        try:
            version, text = _ip_literal(name)
        except ValueError:
            target = self.topology.hosts.get(name)
            if target is None:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
            addresses = target.ipv4 if family == socket.AF_INET else target.ipv6
            if not addresses:
                raise _family_not_supported() from None
            return addresses[0]
        if (version == 4) != (family == socket.AF_INET):
            raise _family_not_supported()
        return text

    def _parse_ip_address(self, endpoint: Endpoint, address: Any, *, for_bind: bool
                          ) -> tuple[str, int]:
        family = endpoint.family
        family_name = "AF_INET6" if family == socket.AF_INET6 else "AF_INET"
        if not isinstance(address, tuple):
            raise TypeError(f"{'bind' if for_bind else 'connect'}(): {family_name} address must "
                            f"be tuple, not {type(address).__name__}")
        if not (len(address) == 2 or (family == socket.AF_INET6 and 2 <= len(address) <= 4)):
            if family == socket.AF_INET6:
                raise TypeError(
                    "AF_INET6 address must be a tuple (host, port[, flowinfo[, scopeid]])"
                )
            raise TypeError("AF_INET address must be a pair (host, port)")
        port = address[1]
        if type(port) is not int:
            try:  # as CPython's "i": __index__ (so True is 1), its own message if bad
                port = operator.index(port)
            except TypeError as exc:
                if hasattr(type(port), "__index__"):
                    raise
                raise TypeError(
                    f"'{type(port).__name__}' object cannot be interpreted as an integer"
                ) from exc
        call = "bind" if for_bind else "connect"
        if not 0 <= port <= 65535:
            raise OverflowError(f"{call}(): port must be 0-65535.")
        if len(address) > 2 and not 0 <= address[2] <= 0xFFFFF:
            raise OverflowError(f"{call}(): flowinfo must be 0-1048575.")
        return self._resolve_ip(address[0], family), port

    def resolve_remote(self, endpoint: Endpoint, address: Any) -> Any:
        """The address ``connect()``/``sendto()`` go to (unspecified means loopback)."""
        if endpoint.family == _AF_UNIX:
            return _unix_path(address)
        ip, port = self._parse_ip_address(endpoint, address, for_bind=False)
        if endpoint.family == socket.AF_INET6 and not dual_stack(endpoint) and _unmapped(ip):
            raise os_error(errno.ENETUNREACH)  # an IPv6-only socket reaches no IPv4
        if (endpoint.family == socket.AF_INET6 and endpoint.local is not None
                and _unmapped(endpoint.local[0]) and not _unmapped(ip)):
            # Bound (or connected) as IPv4, through an IPv4-mapped address: no IPv6 peer.
            raise os_error(errno.EAFNOSUPPORT)
        if _is_unspecified(ip):
            ip = "127.0.0.1" if endpoint.family == socket.AF_INET else "::1"
        return format_address(endpoint.family, ip, port)

    # -- binding -----------------------------------------------------------------------

    def _is_local_ip(self, host: Host, ip: str) -> bool:
        parsed = _ip(ip)
        return parsed.is_loopback or parsed.is_unspecified or self.topology.ip_owner.get(ip) is host

    def bind(self, endpoint: Endpoint, address: Any) -> Any:
        if endpoint.family == _AF_UNIX:
            return self._bind_unix(endpoint, address)
        ip, port = self._parse_ip_address(endpoint, address, for_bind=True)
        host = endpoint.host
        own_ip = ip
        if endpoint.family == socket.AF_INET6:
            mapped = _unmapped(ip)
            if mapped is not None:  # an IPv4 address, for a dual-stack socket only
                if not dual_stack(endpoint):
                    raise os_error(errno.EINVAL)
                own_ip = mapped
        if not self._is_local_ip(host, own_ip):
            raise os_error(errno.EADDRNOTAVAIL)
        if port == 0:
            port = host.ephemeral_port(endpoint.type)
        for other in host.ports.get((endpoint.type, port), []):
            if other.closed_both_ways() and not other.port_fixed:
                continue  # Linux gave the port back at TCP_CLOSE (no TIME_WAIT here)
            if _overlap(endpoint, ip, other) and not _may_share(endpoint, other):
                raise os_error(errno.EADDRINUSE)
        host.ports.setdefault((endpoint.type, port), []).append(endpoint)
        return format_address(endpoint.family, ip, port)

    def _bind_unix(self, endpoint: Endpoint, address: Any) -> str:
        path = _unix_path(address)
        size = len(path.encode("utf-8", "surrogateescape"))
        if size >= UNIX_PATH_MAX + path.startswith("\0"):  # a path needs its NUL
            raise OSError("AF_UNIX path too long")
        if path == "":
            # Linux autobinds to an abstract name of five hex digits.
            self._autobinds += 1
            path = f"\0{self._autobinds:05x}"
        if is_filesystem_path(path):
            # The file decides (one whose socket closed, or was removed, as on Linux).
            self.unix_files.make(path, endpoint, self.topology.kernel.now)
        elif path in self._unix_paths:
            raise os_error(errno.EADDRINUSE)
        self._unix_paths[path] = endpoint
        return path

    def release(self, endpoint: Endpoint) -> None:
        """The endpoint closed: its port or path is free (a path is left stale)."""
        if endpoint.family == _AF_UNIX:
            local = endpoint.local
            if local and self._unix_paths.get(local) is endpoint:
                del self._unix_paths[local]  # its file, if it has one, stays
        elif endpoint.local is not None:
            key = (endpoint.type, endpoint.local[1])
            entries = endpoint.host.ports.get(key, [])
            if endpoint in entries:
                entries.remove(endpoint)
                if not entries:
                    del endpoint.host.ports[key]  # a long run uses thousands of ports

    def source_ip(self, host: Host, family: int, target_ip: str) -> str:
        """The address a packet from ``host`` to ``target_ip`` leaves from (the route's)."""
        if _is_loopback(target_ip):
            return target_ip
        mapped = _unmapped(target_ip)
        if mapped is not None:
            return _MAPPED + self.source_ip(host, socket.AF_INET, mapped)
        addresses = host.ipv4 if family == socket.AF_INET else host.ipv6
        loopback = "127.0.0.1" if family == socket.AF_INET else "::1"
        return addresses[0] if addresses else loopback

    def source_address(self, endpoint: Endpoint, remote: Any) -> Any:
        """Where a datagram to ``remote`` says it comes from (a wildcard bind's route)."""
        if endpoint.family == _AF_UNIX:
            return endpoint.local or None
        if _is_unspecified(endpoint.local[0]):
            ip = self.source_ip(endpoint.host, endpoint.family, remote[0])
            return format_address(endpoint.family, ip, endpoint.local[1])
        return endpoint.local

    def autobind(self, endpoint: Endpoint, remote: Any, *, wildcard: bool = False) -> Any:
        """Bind to an ephemeral port: on the route's source address (connect), or on
        the wildcard address (an unconnected ``sendto``, as Linux: ``getsockname()``
        then says ``0.0.0.0``, and each datagram leaves from its route's address)."""
        if endpoint.family == _AF_UNIX:
            return ""
        host = endpoint.host
        if wildcard:
            ip = "0.0.0.0" if endpoint.family == socket.AF_INET else "::"
        else:
            ip = self.source_ip(host, endpoint.family, remote[0])
        port = host.ephemeral_port(endpoint.type)
        host.ports.setdefault((endpoint.type, port), []).append(endpoint)
        return format_address(endpoint.family, ip, port)

    def pin_source(self, endpoint: Endpoint, remote: Any) -> None:
        """connect() on a socket bound to the wildcard address fixes its source address."""
        if endpoint.family == _AF_UNIX or endpoint.local is None:
            return
        if _is_unspecified(endpoint.local[0]):
            ip = self.source_ip(endpoint.host, endpoint.family, remote[0])
            endpoint.local = format_address(endpoint.family, ip, endpoint.local[1])

    # -- finding the other end ---------------------------------------------------------

    def _unix_target(self, remote: str) -> Endpoint | None:
        """Where a packet to the Unix name ``remote`` goes: the socket of the file at
        that path (moved there, perhaps), else the socket bound to that name (a
        connected socket's peer, whose file may be gone)."""
        found = self.unix_files.get(remote) if is_filesystem_path(remote) else None
        if found is not None and self.holds_unix_name(found.endpoint):
            return found.endpoint
        return self._unix_paths.get(remote)

    def holds_unix_name(self, endpoint: Endpoint) -> bool:
        """Is ``endpoint`` still bound to its Unix name (not closed)?"""
        return bool(endpoint.local) and self._unix_paths.get(endpoint.local) is endpoint

    def unix_peer(self, path: str, sock_type: int, connected: bool = False) -> Endpoint:
        """The endpoint bound at ``path``, or the error connect()/sendto() get on Linux
        (``connected``: a connected socket's send, which Linux makes to the socket
        connect() found, whatever became of its file since)."""
        if not path:
            raise os_error(errno.EINVAL)  # no name at all (an unbound socket's "")
        if is_filesystem_path(path) and not connected:
            # Found through its file: none is ENOENT, one whose socket closed (or a
            # real file) ECONNREFUSED.
            owner = self.unix_files.find(path).endpoint
            target = owner if self.holds_unix_name(owner) else None  # None: it closed
        else:
            target = self._unix_paths.get(path)
        if target is None:
            raise os_error(errno.ECONNREFUSED)  # nobody bound there
        if target.type != sock_type:
            raise os_error(errno.EPROTOTYPE)
        return target

    def route(self, endpoint: Endpoint, remote: Any) -> tuple[Host, Host | None]:
        """The sending and the receiving host of a packet to ``remote`` (None: no route)."""
        src = endpoint.host
        if endpoint.family == _AF_UNIX:
            target = self._unix_target(remote)
            return src, (target.host if target is not None else src)
        ip = _unmapped(remote[0]) or remote[0]
        if _is_loopback(ip):
            return src, src
        return src, self.topology.ip_owner.get(ip)

    def find_endpoint(self, dst: Host, sock_type: int, family: int, remote: Any
                      ) -> Endpoint | None:
        """The endpoint on ``dst`` a packet to ``remote`` reaches (exact bind first)."""
        if family == _AF_UNIX:
            target = self._unix_target(remote)
            return target if target is not None and target.type == sock_type else None
        ip, port = remote[0], remote[1]
        mapped = _unmapped(ip) if family == socket.AF_INET6 else None
        if mapped is not None:
            family, ip = socket.AF_INET, mapped
        wildcard = dual = None
        for candidate in dst.ports.get((sock_type, port), []):
            if candidate.closed:
                continue
            bound_ip = candidate.local[0]
            if candidate.family != family:
                # An IPv4 packet reaches a dual-stack IPv6 socket on :: (or ::ffff:ip).
                if family == socket.AF_INET and dual is None and dual_stack(candidate) and (
                    _is_unspecified(bound_ip) or _unmapped(bound_ip) == ip
                ):
                    dual = candidate
                continue
            if bound_ip == ip:
                return candidate
            if wildcard is None and _is_unspecified(bound_ip):
                wildcard = candidate
        return wildcard or dual


def _unix_path(address: Any) -> str:
    if isinstance(address, bytes):
        address = address.decode()
    if not isinstance(address, str):
        raise TypeError(f"a bytes-like object is required, not '{type(address).__name__}'")
    return address

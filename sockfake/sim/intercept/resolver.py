"""The resolver and connection helpers of ``socket`` under ``net.intercept()``.

``getaddrinfo``, ``gethostbyname(_ex)``, ``gethostbyaddr``, ``gethostname`` answer from
the simulated hosts in a simulated thread (127.0.0.1, ``localhost``, ::1, the names
given to ``net.add_host``; any other name does not resolve), and are the real ones
elsewhere. ``getfqdn``, ``create_connection`` and ``create_server`` are the stdlib's
own code, which finds ``getaddrinfo`` and ``socket`` on the module at call time.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from typing import TYPE_CHECKING, Any, cast

from sockfake.sim.intercept.dispatch import REAL as _real, caller_host, caller_network
from sockfake.sim.intercept.sockets import sim_socketpair

if TYPE_CHECKING:
    from sockfake.sim.network import SimNetwork

__all__ = ["sim_getaddrinfo"]


_LOCALHOST_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


def _gai_error(code_name: str, message: str) -> socket.gaierror:
    code = getattr(socket, code_name, socket.EAI_NONAME)
    return socket.gaierror(code, message)


def _host_addresses(net: SimNetwork, host: Any, flags: int) -> list[tuple[Any, str]]:
    if host is None:
        if flags & socket.AI_PASSIVE:
            return [(socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")]
        return [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
    if isinstance(host, (bytes, bytearray)):
        host = bytes(host).decode("idna")
    if not isinstance(host, str):
        raise TypeError("getaddrinfo() argument 1 must be string or None")
    try:
        parsed = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        pass
    else:
        return [(socket.AF_INET if parsed.version == 4 else socket.AF_INET6, host)]
    if flags & socket.AI_NUMERICHOST:
        raise _gai_error("EAI_NONAME", "Name or service not known")
    name = host.lower().rstrip(".")
    if name in _LOCALHOST_NAMES:
        return [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
    for candidate in net.hosts:
        if candidate.name == host or candidate.name.lower() == name:
            return [(socket.AF_INET, ip) for ip in candidate.ipv4] + [
                (socket.AF_INET6, ip) for ip in candidate.ipv6
            ]
    raise _gai_error("EAI_NONAME", "Name or service not known")


def _port_number(port: Any, flags: int) -> int:
    if port is None:
        return 0
    if isinstance(port, int):
        return port
    if isinstance(port, (bytes, bytearray)):
        port = bytes(port).decode()
    if not isinstance(port, str):
        raise OSError("Int or String expected")
    if port.isdigit():
        return int(port)
    if flags & getattr(socket, "AI_NUMERICSERV", 0):
        raise _gai_error("EAI_NONAME", "Name or service not known")
    try:
        return socket.getservbyname(port)  # /etc/services: a local file, not the network
    except OSError:
        raise _gai_error("EAI_SERVICE", "Servname not supported for ai_socktype") from None


def _ipv6_address(ip: str, port: int) -> tuple[str, int, int, int]:
    """An IPv6 socket address as getaddrinfo gives it: a zone (``fe80::1%1``,
    ``fe80::1%lo``) becomes the scope id, a number or an interface's index."""
    ip, _, zone = ip.partition("%")
    if not zone:
        return ip, port, 0, 0
    if zone.isdigit():
        return ip, port, 0, int(zone)
    try:
        return ip, port, 0, socket.if_nametoindex(zone)  # a local table, as getservbyname
    except (OSError, AttributeError):
        raise _gai_error("EAI_NONAME", "Name or service not known") from None


def sim_getaddrinfo(
    net: SimNetwork, host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0,
    flags: int = 0,
) -> list[tuple[Any, Any, int, str, Any]]:
    """``socket.getaddrinfo`` against the simulated hosts."""
    number = _port_number(port, flags)
    addresses = _host_addresses(net, host, flags)
    if family not in (0, socket.AF_INET, socket.AF_INET6):
        raise _gai_error("EAI_FAMILY", "ai_family not supported")
    chosen = [(af, ip) for af, ip in addresses if family in (0, af)]
    if not chosen:
        raise _gai_error("EAI_ADDRFAMILY", "Address family for hostname not supported")
    if type == 0:
        kinds = [(socket.SOCK_STREAM, socket.IPPROTO_TCP), (socket.SOCK_DGRAM, socket.IPPROTO_UDP)]
    elif type == socket.SOCK_STREAM:
        kinds = [(socket.SOCK_STREAM, proto or socket.IPPROTO_TCP)]
    elif type == socket.SOCK_DGRAM:
        kinds = [(socket.SOCK_DGRAM, proto or socket.IPPROTO_UDP)]
    else:
        raise _gai_error("EAI_SOCKTYPE", "ai_socktype not supported")
    canonical = host if isinstance(host, str) and flags & socket.AI_CANONNAME else ""
    result: list[tuple[Any, Any, int, str, Any]] = []
    for af, ip in chosen:
        address: Any = (ip, number) if af == socket.AF_INET else _ipv6_address(ip, number)
        for kind, number_proto in kinds:
            result.append(
                (socket.AddressFamily(af), socket.SocketKind(kind), number_proto,
                 canonical if not result else "", address)
            )
    return result


def _getaddrinfo(
    host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
) -> Any:
    net = caller_network()
    if net is None:
        return _real["getaddrinfo"](host, port, family, type, proto, flags)
    return sim_getaddrinfo(net, host, port, family, type, proto, flags)


def _gethostbyname(hostname: str) -> str:
    net = caller_network()
    if net is None:
        return str(_real["gethostbyname"](hostname))
    return str(sim_getaddrinfo(net, hostname, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0])


def _gethostbyname_ex(hostname: str) -> tuple[str, list[str], list[str]]:
    net = caller_network()
    if net is None:
        return cast("tuple[str, list[str], list[str]]", _real["gethostbyname_ex"](hostname))
    infos = sim_getaddrinfo(net, hostname, None, socket.AF_INET, socket.SOCK_STREAM)
    return hostname, [], [info[4][0] for info in infos]


def _sim_gethostbyaddr(net: SimNetwork, ip_or_name: str) -> tuple[str, list[str], list[str]]:
    infos = sim_getaddrinfo(net, ip_or_name, None, 0, socket.SOCK_STREAM)
    ip = infos[0][4][0]
    parsed = ipaddress.ip_address(ip.split("%")[0])
    if parsed.is_loopback:
        return "localhost", [], [ip]
    for host in net.hosts:
        if ip in host.ipv4 or ip in host.ipv6:
            return host.name, [], [ip]
    raise socket.herror(1, "Unknown host")


def _gethostbyaddr(ip_address: str) -> tuple[str, list[str], list[str]]:
    net = caller_network()
    if net is None:
        return cast("tuple[str, list[str], list[str]]", _real["gethostbyaddr"](ip_address))
    return _sim_gethostbyaddr(net, ip_address)


def _gethostname() -> str:
    net = caller_network()
    if net is None:
        return str(_real["gethostname"]())
    return caller_host(net).name


def _getfqdn(name: str = "") -> str:
    # The stdlib's own logic, on the (patched) gethostname/gethostbyaddr it looks up.
    return str(_real["getfqdn"](name))


_DEFAULT_TIMEOUT: Any = vars(socket)["_GLOBAL_DEFAULT_TIMEOUT"]

if sys.version_info >= (3, 11):

    def _create_connection(
        address: tuple[str, int],
        timeout: Any = _DEFAULT_TIMEOUT,
        source_address: Any = None,
        *,
        all_errors: bool = False,
    ) -> Any:
        # The stdlib's own code: it finds getaddrinfo() and socket() on the module, at
        # call time, so in a simulated thread it resolves and connects simulated.
        return _real["create_connection"](
            address, timeout, source_address, all_errors=all_errors
        )

else:  # pragma: no cover - 3.10

    def _create_connection(
        address: tuple[str, int],
        timeout: Any = _DEFAULT_TIMEOUT,
        source_address: Any = None,
    ) -> Any:
        return _real["create_connection"](address, timeout, source_address)


_create_connection.__doc__ = socket.create_connection.__doc__


def _create_server(address: Any, **kwargs: Any) -> Any:
    return _real["create_server"](address, **kwargs)


_create_server.__doc__ = getattr(socket, "create_server", _create_server).__doc__


def _socketpair(family: Any = None, type: int = socket.SOCK_STREAM, proto: int = 0) -> Any:
    net = caller_network()
    if net is None:
        if family is None:
            return _real["socketpair"](type=type, proto=proto)
        return _real["socketpair"](family, type, proto)
    return sim_socketpair(net, family, type, proto)



"""Socket options: the tables Linux keeps, and ``setsockopt``/``getsockopt`` as they parse.

Which options exist at each level (and which are read-only), their defaults, which
are stored as a flag and which are read as a number, and the errno Linux gives for
an option this kind of socket does not have. Values live in the ``Endpoint``'s
``options`` dict, keyed by ``(level, option)``, where the transports read the ones
the simulation acts on (buffer sizes, ``SO_LINGER``, ``IPV6_V6ONLY``...).
"""

from __future__ import annotations

import errno
import socket
import struct
from typing import Any

from sockfake.sim.net.endpoint import DEFAULT_BUFFER, Endpoint
from sockfake.sim.net.oserror import os_error
from sockfake.sim.net.socket_args import INT_MAX, INT_MIN, byte_view, c_int, index_or_none
from sockfake.sim.net.socket_state import State

__all__ = ["option_error", "read_option", "setting"]

_AF_UNIX = getattr(socket, "AF_UNIX", -1)
_PROTOCOLS: dict[int, int] = {
    socket.SOCK_STREAM: socket.IPPROTO_TCP, socket.SOCK_DGRAM: socket.IPPROTO_UDP,
}


def _option_names(*names: str) -> set[int]:
    return {getattr(socket, name) for name in names if hasattr(socket, name)}


# The options Linux knows at each level, with their defaults (0 unless listed).
# Read-only options refuse setsockopt() (ENOPROTOOPT); unknown ones refuse both.
_SOL_SOCKET_OPTIONS = _option_names(
    "SO_REUSEADDR", "SO_REUSEPORT", "SO_KEEPALIVE", "SO_BROADCAST", "SO_OOBINLINE",
    "SO_LINGER", "SO_RCVBUF", "SO_SNDBUF", "SO_RCVLOWAT", "SO_SNDLOWAT", "SO_RCVTIMEO",
    "SO_SNDTIMEO", "SO_ERROR", "SO_TYPE", "SO_ACCEPTCONN", "SO_DOMAIN", "SO_PROTOCOL",
    "SO_PRIORITY", "SO_DONTROUTE", "SO_PASSCRED", "SO_PEERCRED", "SO_BINDTODEVICE",
    "SO_MARK", "SO_PASSSEC", "SO_INCOMING_CPU", "SO_TIMESTAMP", "SO_DEBUG",
)
_READ_ONLY = _option_names("SO_ERROR", "SO_TYPE", "SO_ACCEPTCONN", "SO_DOMAIN",
                           "SO_PROTOCOL", "SO_PEERCRED")
_TCP_OPTIONS = _option_names(
    "TCP_NODELAY", "TCP_MAXSEG", "TCP_CORK", "TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT",
    "TCP_SYNCNT", "TCP_LINGER2", "TCP_DEFER_ACCEPT", "TCP_WINDOW_CLAMP", "TCP_INFO",
    "TCP_QUICKACK", "TCP_CONGESTION", "TCP_USER_TIMEOUT", "TCP_NOTSENT_LOWAT", "TCP_FASTOPEN",
)
_IP_OPTIONS = _option_names(
    "IP_TOS", "IP_TTL", "IP_HDRINCL", "IP_OPTIONS", "IP_RECVOPTS", "IP_RETOPTS",
    "IP_MULTICAST_IF", "IP_MULTICAST_TTL", "IP_MULTICAST_LOOP", "IP_ADD_MEMBERSHIP",
    "IP_DROP_MEMBERSHIP", "IP_RECVTOS", "IP_RECVTTL", "IP_PKTINFO", "IP_TRANSPARENT",
    "IP_BIND_ADDRESS_NO_PORT", "IP_FREEBIND",
)
_IPV6_OPTIONS = _option_names(
    "IPV6_V6ONLY", "IPV6_UNICAST_HOPS", "IPV6_MULTICAST_HOPS", "IPV6_MULTICAST_LOOP",
    "IPV6_MULTICAST_IF", "IPV6_JOIN_GROUP", "IPV6_LEAVE_GROUP", "IPV6_RECVTCLASS",
    "IPV6_TCLASS", "IPV6_RECVPKTINFO", "IPV6_PKTINFO", "IPV6_RECVHOPLIMIT",
    "IPV6_DONTFRAG", "IPV6_RECVERR",
)
_DEFAULTS: dict[tuple[int, int], int] = {
    (socket.SOL_SOCKET, socket.SO_RCVLOWAT): 1,
    (socket.SOL_SOCKET, socket.SO_SNDLOWAT): 1,
    (socket.IPPROTO_IP, socket.IP_TTL): 64,
    (socket.IPPROTO_IP, socket.IP_MULTICAST_TTL): 1,
    (socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP): 1,
    (socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS): 64,
    (socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS): 1,
    (socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP): 1,
    (socket.IPPROTO_TCP, socket.TCP_MAXSEG): 536,
}
for _name, _value in (("TCP_KEEPIDLE", 7200), ("TCP_KEEPINTVL", 75), ("TCP_KEEPCNT", 9),
                      ("TCP_SYNCNT", 6), ("TCP_LINGER2", 60)):
    if hasattr(socket, _name):
        _DEFAULTS[(socket.IPPROTO_TCP, getattr(socket, _name))] = _value

_V6ONLY = (socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
# Options Linux stores as a flag: any non-zero value reads back as 1.
_FLAG_OPTIONS = {
    (socket.SOL_SOCKET, socket.SO_REUSEADDR),
    (socket.SOL_SOCKET, socket.SO_KEEPALIVE),
    (socket.SOL_SOCKET, socket.SO_BROADCAST),
    (socket.SOL_SOCKET, socket.SO_OOBINLINE),
    (socket.IPPROTO_TCP, socket.TCP_NODELAY),
}
if hasattr(socket, "SO_REUSEPORT"):
    _FLAG_OPTIONS.add((socket.SOL_SOCKET, socket.SO_REUSEPORT))
# Options whose value the simulation reads as a number: one set as bytes is read as
# Linux reads it, an int from the first four.
_INT_VALUED = {
    (socket.SOL_SOCKET, socket.SO_SNDBUF),
    (socket.SOL_SOCKET, socket.SO_RCVBUF),
    (socket.IPPROTO_IPV6, socket.IPV6_V6ONLY),
    *_FLAG_OPTIONS,
}


def _holds_a_port(ep: Endpoint) -> bool:
    """Does the socket hold a port (Linux's inet_num)? A failed attempt gave back the
    port it autobound while getsockname() still shows it."""
    local = ep.local
    return local is not None and ep in ep.host.ports.get((ep.type, local[1]), ())


def option_error(ep: Endpoint, level: int, option: int, setting: bool) -> int:
    """The errno Linux gives for ``(level, option)`` on this socket, 0 if it has it."""
    unix = ep.family == _AF_UNIX
    if level == socket.SOL_SOCKET:
        if option not in _SOL_SOCKET_OPTIONS or (setting and option in _READ_ONLY):
            return errno.ENOPROTOOPT
        if unix and setting and option == getattr(socket, "SO_REUSEPORT", None):
            return errno.EOPNOTSUPP
        return 0
    if unix:
        return errno.EOPNOTSUPP
    if level == socket.IPPROTO_TCP:
        if ep.type != socket.SOCK_STREAM:
            if setting or ep.family == socket.AF_INET6:
                return errno.ENOPROTOOPT
            return errno.EOPNOTSUPP
        return 0 if option in _TCP_OPTIONS else errno.ENOPROTOOPT
    if level == socket.IPPROTO_IP:
        return 0 if option in _IP_OPTIONS else errno.ENOPROTOOPT
    if level == socket.IPPROTO_IPV6:
        if ep.family != socket.AF_INET6:
            return errno.ENOPROTOOPT if setting else errno.EOPNOTSUPP
        return 0 if option in _IPV6_OPTIONS else errno.ENOPROTOOPT
    return errno.ENOPROTOOPT if setting else errno.EOPNOTSUPP


def setting(ep: Endpoint, level: object, option: object, value: Any,
            optlen: object) -> tuple[tuple[int, int], Any]:
    """``setsockopt()``'s arguments, checked and converted in CPython's order and then
    Linux's: the key and the value to store (or the error either of them raises)."""
    level, option = c_int(level, parse_arg=True), c_int(option, parse_arg=True)
    # CPython's order: a C int, then (None, optlen), then a bytes-like value.
    if optlen is not None:
        length = index_or_none(optlen)
        if value is not None or length is None:
            raise TypeError("setsockopt() takes exactly 3 arguments (4 given)")
        # CPython takes optlen as an unsigned int, masked; Linux reads it signed.
        optlen = ((length & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000
    else:
        number = index_or_none(value)
        if number is not None and INT_MIN <= number <= INT_MAX:
            value = number
        else:
            value = bytes(byte_view(value))
    code = option_error(ep, level, option, setting=True)
    if code:
        raise os_error(code)
    if optlen is not None:  # a NULL value: too short to hold an int, or unreadable
        raise os_error(errno.EINVAL if optlen < 4 else errno.EFAULT)
    key = (level, option)
    if key == _V6ONLY and _holds_a_port(ep):
        raise os_error(errno.EINVAL)  # Linux: fixed once the socket has a port
    if key in _INT_VALUED and isinstance(value, bytes):
        # Linux reads an int from the buffer (and refuses a shorter one).
        if len(value) < 4:
            raise os_error(errno.EINVAL)
        value = struct.unpack("i", value[:4])[0]
    if key == (socket.SOL_SOCKET, socket.SO_LINGER) and (
        not isinstance(value, (bytes, bytearray)) or len(value) < 8
    ):
        raise os_error(errno.EINVAL)  # a struct linger is 8 bytes
    if key in _FLAG_OPTIONS and isinstance(value, int):
        value = int(bool(value))
    return key, value


def read_option(ep: Endpoint, proto: int, level: object, option: object,
                buflen: object) -> Any:
    """What ``getsockopt()`` returns: an int, or ``buflen`` bytes when one is given."""
    level, option = c_int(level, parse_arg=True), c_int(option, parse_arg=True)
    size = 0 if buflen is None else c_int(buflen, parse_arg=True)
    if not 0 <= size <= 1024:  # CPython's bound; 0 asks for an int, as no buflen
        raise OSError("getsockopt buflen out of range")
    value = _option_value(ep, proto, level, option)
    if size:
        if isinstance(value, int):
            value = struct.pack("i", value)
        return bytes(value)[:size].ljust(size, b"\0")
    if isinstance(value, (bytes, bytearray)):
        return struct.unpack("i", bytes(value)[:4])[0] if len(value) >= 4 else 0
    return int(value)


def _option_value(ep: Endpoint, proto: int, level: int, option: int) -> Any:
    """What getsockopt() reads: an int, or the bytes a value was set as."""
    if level == socket.SOL_SOCKET and option == socket.SO_ERROR:
        code, ep.pending_error = ep.pending_error, 0
        return code
    code = option_error(ep, level, option, setting=False)
    if code:
        raise os_error(code)
    if level == socket.SOL_SOCKET and option == socket.SO_TYPE:
        return int(ep.type)
    if level == socket.SOL_SOCKET and option == getattr(socket, "SO_DOMAIN", None):
        return int(ep.family)
    if level == socket.SOL_SOCKET and option == getattr(socket, "SO_PROTOCOL", None):
        return 0 if ep.family == _AF_UNIX else proto or _PROTOCOLS[ep.type]
    if level == socket.SOL_SOCKET and option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        return int(ep.options.get((level, option), DEFAULT_BUFFER))
    if level == socket.SOL_SOCKET and option == socket.SO_ACCEPTCONN:
        return int(ep.state is State.LISTENING)
    return ep.options.get((level, option), _DEFAULTS.get((level, option), 0))

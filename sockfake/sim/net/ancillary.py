"""Ancillary data for ``sendmsg``/``recvmsg``: the IPv6 items the simulation carries.

RFC 3542's hop limit and traffic class ride with an IPv6 datagram (as attributes of
its ``Datagram`` payload) and come back from ``recvmsg()`` when the receiver asked for
them (``IPV6_RECVHOPLIMIT``, ``IPV6_RECVTCLASS``), fitted into the caller's buffer as
Linux's ``put_cmsg()`` fits them. Other ancillary data (file descriptors,
credentials) is not simulated: ``sendmsg()`` refuses it.
"""

from __future__ import annotations

import errno
import socket
import struct
from typing import Any

from sockfake.sim.net.datagram import Datagram
from sockfake.sim.net.endpoint import Endpoint
from sockfake.sim.net.oserror import os_error
from sockfake.sim.net.socket_args import byte_view, c_int

__all__ = ["attach", "checked_items", "put_cmsgs", "received"]

_IPV6_ANCILLARY = {getattr(socket, "IPV6_HOPLIMIT", -1): "hop_limit",
                   getattr(socket, "IPV6_TCLASS", -1): "tclass"}
_CMSG_HEADER = 16  # sizeof(struct cmsghdr) on 64-bit Linux


def checked_items(ancdata: Any) -> list[Any]:
    """``sendmsg()``'s ancillary data as CPython parses it: (level, type, bytes-like)."""
    try:
        items = list(ancdata)
    except TypeError:
        raise TypeError("sendmsg() argument 2 must be an iterable") from None
    for item in items:
        if not isinstance(item, tuple) or len(item) != 3:
            raise TypeError("[sendmsg() ancillary data items]() argument must be "
                            f"sequence of length 3, not {type(item).__name__}")
        c_int(item[0])
        c_int(item[1])
        byte_view(item[2])
    return items


def attach(ep: Endpoint, payload: bytes, items: list[Any]) -> bytes:
    """RFC 3542 items on an IPv6 datagram socket, carried by the payload; other
    ancillary data (file descriptors, credentials) is not simulated."""
    if ep.family != socket.AF_INET6 or ep.type != socket.SOCK_DGRAM or any(
        level != socket.IPPROTO_IPV6 or kind not in _IPV6_ANCILLARY
        for level, kind, _ in items
    ):
        raise NotImplementedError("sendmsg() with this ancillary data is not simulated")
    datagram = Datagram(payload)
    for _, kind, data in items:
        raw = bytes(byte_view(data))
        if len(raw) != 4:
            raise os_error(errno.EINVAL)
        value = struct.unpack("i", raw)[0]
        if not -1 <= value <= 255:
            raise os_error(errno.EINVAL)
        if value != -1:
            setattr(datagram, _IPV6_ANCILLARY[kind], value)
    return datagram


def received(ep: Endpoint, payload: bytes, space: int) -> tuple[list[Any], int]:
    """What ``recvmsg()`` reports with ``payload``: the items the receiver asked for,
    fitted into ``space`` bytes, and ``MSG_CTRUNC`` if they did not fit."""
    if ep.family != socket.AF_INET6 or ep.type != socket.SOCK_DGRAM:
        return [], 0
    items = []
    options = ep.options
    if options.get((socket.IPPROTO_IPV6, getattr(socket, "IPV6_RECVHOPLIMIT", -1))):
        hops = getattr(payload, "hop_limit", 64)
        items.append((socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT, struct.pack("i", hops)))
    if options.get((socket.IPPROTO_IPV6, getattr(socket, "IPV6_RECVTCLASS", -1))):
        tclass = getattr(payload, "tclass", 0)
        items.append((socket.IPPROTO_IPV6, socket.IPV6_TCLASS, struct.pack("i", tclass)))
    if not items:
        return [], 0
    return put_cmsgs(items, space)


def put_cmsgs(items: list[tuple[int, int, bytes]], space: int) -> tuple[list[Any], int]:
    """Ancillary items as Linux's put_cmsg() fits them into ``space`` bytes (and CPython
    reads them back): a header that does not fit is dropped, data cut; MSG_CTRUNC."""
    out: list[Any] = []
    truncated = 0
    for level, kind, data in items:
        if space < _CMSG_HEADER:
            truncated = int(socket.MSG_CTRUNC)
            break
        length = _CMSG_HEADER + len(data)
        if space < length:
            truncated = int(socket.MSG_CTRUNC)
            length = space
        out.append((level, kind, data[: length - _CMSG_HEADER]))
        space -= min(space, _CMSG_HEADER + (len(data) + 7) // 8 * 8)
    return out, truncated

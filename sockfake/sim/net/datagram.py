"""A datagram's payload with the ancillary data ``sendmsg`` set for it.

Its own module, never compiled: the optional mypyc build (setup.py) compiles
``sockets`` and cannot compile a subclass of ``bytes``.
"""

from __future__ import annotations

__all__ = ["Datagram"]


class Datagram(bytes):
    """A datagram's payload with what ``sendmsg`` ancillary data set for it (RFC 3542:
    the IPv6 hop limit and traffic class a receiver may ask for)."""

    hop_limit = 64
    tclass = 0

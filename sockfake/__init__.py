"""sockfake: Python's ``socketserver`` on a pluggable network.

``import sockfake as socketserver`` gives the stdlib module's classes on real sockets;
pass ``network=SimNetwork(seed=...)`` (or use :func:`use_network`) to run the same
classes on a deterministic simulated network.
"""

from __future__ import annotations

# The stdlib module's own module-level names, for code that reaches for them.
import os
import os as _os
import selectors
import socket
import socket as _socket
import sys
import threading
from io import BufferedIOBase
from time import monotonic as time
from typing import TYPE_CHECKING, Any

from sockfake._standin import replace_socketserver as replace_socketserver
from sockfake.errors import (
    SockfakeError as SockfakeError,
    SockfakeRuntimeError as SockfakeRuntimeError,
    SockfakeTypeError as SockfakeTypeError,
    SockfakeValueError as SockfakeValueError,
)
from sockfake.handlers import (
    BaseRequestHandler as BaseRequestHandler,
    DatagramRequestHandler as DatagramRequestHandler,
    StreamRequestHandler as StreamRequestHandler,
    _SocketWriter as _SocketWriter,
)
from sockfake.mixins import _NoThreads as _NoThreads, _Threads as _Threads
from sockfake.network import (
    REAL_NETWORK as REAL_NETWORK,
    Network as Network,
    RealNetwork as RealNetwork,
    _ServerSelector as _ServerSelector,
    default_network as default_network,
    use_network as use_network,
)
from sockfake.servers import (
    BaseServer as BaseServer,
    ForkingMixIn as ForkingMixIn,
    ForkingTCPServer as ForkingTCPServer,
    ForkingUDPServer as ForkingUDPServer,
    ForkingUnixDatagramServer as ForkingUnixDatagramServer,
    ForkingUnixStreamServer as ForkingUnixStreamServer,
    TCPServer as TCPServer,
    ThreadingMixIn as ThreadingMixIn,
    ThreadingTCPServer as ThreadingTCPServer,
    ThreadingUDPServer as ThreadingUDPServer,
    ThreadingUnixDatagramServer as ThreadingUnixDatagramServer,
    ThreadingUnixStreamServer as ThreadingUnixStreamServer,
    ThreadPoolMixIn as ThreadPoolMixIn,
    ThreadPoolTCPServer as ThreadPoolTCPServer,
    ThreadPoolUDPServer as ThreadPoolUDPServer,
    ThreadPoolUnixDatagramServer as ThreadPoolUnixDatagramServer,
    ThreadPoolUnixStreamServer as ThreadPoolUnixStreamServer,
    UDPServer as UDPServer,
    UnixDatagramServer as UnixDatagramServer,
    UnixStreamServer as UnixStreamServer,
)

if TYPE_CHECKING:
    from sockfake.sim import SimNetwork

__version__ = "0.1.0"

# The same names, under the same conditions, as the stdlib module's __all__.
__all__ = [
    "BaseServer",
    "TCPServer",
    "UDPServer",
    "ThreadingUDPServer",
    "ThreadingTCPServer",
    "BaseRequestHandler",
    "StreamRequestHandler",
    "DatagramRequestHandler",
    "ThreadingMixIn",
]
if hasattr(_os, "fork"):
    __all__.extend(["ForkingUDPServer", "ForkingTCPServer", "ForkingMixIn"])
if hasattr(_socket, "AF_UNIX"):
    __all__.extend(
        [
            "UnixStreamServer",
            "UnixDatagramServer",
            "ThreadingUnixStreamServer",
            "ThreadingUnixDatagramServer",
        ]
    )
    if hasattr(_os, "fork"):
        __all__.extend(["ForkingUnixStreamServer", "ForkingUnixDatagramServer"])


def __getattr__(name: str) -> Any:
    # The simulation loads lazily: production imports pay nothing for it.
    if name == "SimNetwork":
        from sockfake.sim import SimNetwork

        return SimNetwork
    raise AttributeError(f"module 'sockfake' has no attribute {name!r}")


_extras = (
    os,
    selectors,
    socket,
    sys,
    threading,
    BufferedIOBase,
    time,
    REAL_NETWORK,
    Network,
    RealNetwork,
    SockfakeError,
    SockfakeRuntimeError,
    SockfakeTypeError,
    SockfakeValueError,
    default_network,
    use_network,
    replace_socketserver,
    ThreadPoolMixIn,
    ThreadPoolTCPServer,
    ThreadPoolUDPServer,
    ThreadPoolUnixStreamServer,
    ThreadPoolUnixDatagramServer,
    _NoThreads,
    _ServerSelector,
    _SocketWriter,
    _Threads,
)

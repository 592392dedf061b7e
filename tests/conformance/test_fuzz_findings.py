"""What the differential fuzzer found, each as the smallest program that showed it: the
same operations run on Linux's loopback and on the simulation (under interception)
give the same outcomes (``fuzz_differential.compare``)."""

from __future__ import annotations

import socket
import sys

import pytest
from fuzz_differential import Op, Program, compare

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="Linux's sockets are the reference"
)

NONBLOCKING_ATTEMPT: tuple[Op, ...] = (("socket",), ("setblocking", 0, False),
                                       ("connect_ex", 0, "closed", 0))
FINDINGS: dict[str, tuple[str, tuple[Op, ...]]] = {
    # A failed attempt gives its autobound port back at once: the socket binds again
    # (and so may another socket) before connect() reports the failure.
    "bind_after_a_failed_nonblocking_connect": (
        "tcp4", (*NONBLOCKING_ATTEMPT, ("bind", 0, "loopback", 0), ("getsockname", 0))),
    "another_socket_takes_the_port_of_a_failed_attempt": (
        "tcp6", (("socket",), ("setblocking", 0, False), ("connect", 0, "closed", 0),
                 ("getsockname", 0), ("socket",), ("bind", 1, "name_of", 0))),
    # Linux 6.x: a socket whose connect() failed never listens, bound again or not;
    # listen() binds an ephemeral port first, and keeps it.
    "no_listen_after_a_failed_connect_even_bound_again": (
        "tcp4", (("socket",), ("connect", 0, "closed", 0), ("bind", 0, "loopback", 0),
                 ("listen", 0, 2))),
    "listen_after_a_failed_connect_binds_a_port_then_refuses": (
        "tcp4", (("socket",), ("connect", 0, "closed", 0), ("listen", 0, 2),
                 ("getsockname", 0), ("bind", 0, "loopback", 0),
                 ("connect", 0, "name_of", 0), ("getpeername", 0))),
    # shutdown(SHUT_RD) of a listener disconnects it: not a listener, hung up but not
    # readable, its port given back, bindable, and it may listen (and stop) again.
    "a_listener_stopped_by_shut_rd_is_unconnected_again": (
        "tcp4", (("socket",), ("listen", 0, 2), ("shutdown", 0, socket.SHUT_RD),
                 ("getsockopt", 0, "SO_ACCEPTCONN"), ("poll", 0), ("select", 0),
                 ("bind", 0, "loopback", 0), ("getsockname", 0), ("listen", 0, 2),
                 ("shutdown", 0, socket.SHUT_WR), ("select", 0),
                 ("shutdown", 0, socket.SHUT_RD), ("connect", 0, "closed", 0))),
    # Its connect() is EINVAL from TCP's connect, whose failure path closes it: a port
    # bind() took since (port 0, not fixed) goes back, so it binds again.
    "a_stopped_listener_s_failed_connect_gives_back_its_port": (
        "tcp4", (("socket",), ("listen", 0, 2), ("shutdown", 0, socket.SHUT_RD),
                 ("bind", 0, "loopback", 0), ("connect", 0, "name_of", 0),
                 ("getsockname", 0), ("bind", 0, "wildcard", 0), ("getsockname", 0))),
    "a_listener_stopped_by_shut_rd_resets_its_queue": (
        "tcp6", (("socket",), ("socket",), ("listen", 0, 2), ("connect", 1, "name_of", 0),
                 ("shutdown", 0, socket.SHUT_RD), ("recv", 1, 3, socket.MSG_DONTWAIT),
                 ("send", 1, b"x", 0))),
    # A socket marked SHUT_WR that connects to itself ends closed: ECONNABORTED.
    "self_connect_after_shut_wr_is_aborted": (
        "tcp4", (("socket",), ("shutdown", 0, socket.SHUT_WR), ("bind", 0, "loopback", 0),
                 ("connect", 0, "name_of", 0), ("getpeername", 0), ("select", 0),
                 ("connect", 0, "name_of", 0))),
    # A failed attempt, then shutdown(): over for good (connect() and listen() are
    # EINVAL), though it binds again and SO_ERROR still has the error.
    "a_failed_attempt_shut_down_is_over_for_good": (
        "tcp4", (*NONBLOCKING_ATTEMPT, ("shutdown", 0, socket.SHUT_WR), ("poll", 0),
                 ("getsockopt", 0, "SO_ERROR"), ("connect", 0, "closed", 0),
                 ("listen", 0, 1), ("bind", 0, "loopback", 0), ("recv", 0, 1, 0))),
    "a_failed_attempt_in_timeout_mode_shut_down_is_over_for_good": (
        "tcp6", (("socket",), ("settimeout", 0, 0.02), ("connect", 0, "closed", 0),
                 ("shutdown", 0, socket.SHUT_RD), ("connect", 0, "closed", 0))),
    # A Unix listener keeps the marks of a shutdown() made before listen(): after
    # SHUT_RD it is readable, refuses connections, and accept() is EINVAL.
    "a_unix_listener_keeps_the_marks_of_an_earlier_shutdown": (
        "unix_stream", (("socket",), ("shutdown", 0, socket.SHUT_RDWR), ("bind", 0, "autobind", 0),
                        ("listen", 0, 2), ("select", 0), ("poll", 0), ("socket",),
                        ("connect", 1, "name_of", 0), ("accept", 0))),
    "a_unix_listener_shut_down_after_listen": (
        "unix_stream", (("socket",), ("bind", 0, "autobind", 0), ("listen", 0, 2),
                        ("shutdown", 0, socket.SHUT_RD), ("select", 0), ("poll", 0),
                        ("shutdown", 0, socket.SHUT_WR), ("poll", 0), ("accept", 0))),
    # An IPv6 socket bound as IPv4 (IPv4-mapped): Linux refuses port 0 before it
    # finds an IPv6 destination unreachable.
    "sendto_port_0_from_an_ipv4_mapped_socket": (
        "udp6", (("socket",), ("connect", 0, "mapped_name_of", 0),
                 ("sendto", 0, b"data", "port0", 0), ("sendto", 0, b"data", "closed", 0))),
    # UDP reports a port unreachable before a datagram queued ahead of it.
    "udp_reports_an_error_before_a_queued_datagram": (
        "udp4", (("socket",), ("connect", 0, "mapped_name_of", 0),
                 ("sendto", 0, b"x", "mapped_name_of", 0), ("sendall", 0, b"data", 0),
                 ("recvfrom", 0, 1, socket.MSG_PEEK | socket.MSG_DONTWAIT),
                 ("recvfrom", 0, 1, socket.MSG_DONTWAIT))),
    # A Unix datagram socket connected to another (here: to itself) takes no other
    # socket's connect(): EPERM (Linux's unix_may_send).
    "a_unix_dgram_socket_connected_elsewhere_refuses_a_connect": (
        "unix_dgram", (("socket",), ("bind", 0, "autobind", 0), ("connect", 0, "name_of", 0),
                       ("socket",), ("connect", 1, "name_of", 0))),
    # In timeout mode CPython polls before it sends; a Unix listener shut down both
    # ways is not writable but hung up, and poll() reports that: ENOTCONN at once.
    "send_in_timeout_mode_on_a_hung_up_unix_listener": (
        "unix_stream", (("socket",), ("bind", 0, "path1", 0), ("listen", 0, 5),
                        ("settimeout", 0, 0.02), ("shutdown", 0, socket.SHUT_RDWR),
                        ("send", 0, b"data", 0))),
    # An IPv6 socket given ::1 by a first connect, then connected to an IPv4-mapped
    # peer: Linux's IPv4 lookups never find it, so no port unreachable comes back.
    "no_icmp_error_for_an_ipv6_addressed_socket_sending_to_ipv4": (
        "udp6", (("socket",), ("connect_ex", 0, "closed", 0),
                 ("connect_ex", 0, "mapped_name_of", 0), ("send", 0, b"data", 0),
                 ("recvfrom", 0, 64, socket.MSG_PEEK | socket.MSG_DONTWAIT))),
    # Both FINs through (here a socket connected to itself shuts its sending side):
    # Linux's socket is closed, so a second shutdown() and getpeername() are ENOTCONN.
    "a_tcp_connection_closed_both_ways_is_not_connected": (
        "tcp4", (("socket",), ("bind", 0, "wildcard", 0), ("connect_ex", 0, "mapped_name_of", 0),
                 ("shutdown", 0, socket.SHUT_WR), ("getpeername", 0),
                 ("shutdown", 0, socket.SHUT_WR), ("recv", 0, 5, 0))),
    # ...but only a blocking accept() says EINVAL: a non-blocking one is EAGAIN.
    "a_nonblocking_accept_on_a_shut_unix_listener_would_block": (
        "unix_stream", (("socket",), ("setblocking", 0, False), ("shutdown", 0, socket.SHUT_RDWR),
                        ("bind", 0, "autobind", 0), ("listen", 0, 2), ("accept", 0))),
    # A path is free once its socket's file is removed (the fuzzer removes it on
    # close, as a server does); a connect() there then finds no file: ENOENT.
    "a_unix_path_is_free_once_its_socket_closes_and_is_removed": (
        "unix_stream", (("socket",), ("bind", 0, "path0", 0), ("socket",), ("close", 0),
                        ("bind", 1, "path0", 0))),
    "a_unix_connect_to_a_removed_socket_file_is_enoent": (
        "unix_dgram", (("socket",), ("socket",), ("bind", 1, "mapped", 3), ("close", 1),
                       ("connect", 2, "closed", 2))),
    # A failed attempt gave its autobound port back (Linux's inet_num is 0 again, though
    # getsockname() still shows it): IPV6_V6ONLY may change until a port is taken.
    "v6only_changes_after_a_failed_attempt_gave_its_port_back": (
        "tcp6", (("socket",), ("settimeout", 0, 0.02), ("connect", 0, "closed", 0),
                 ("setsockopt", 0, "IPV6_V6ONLY", 1), ("getsockname", 0),
                 ("connect", 0, "mapped_name_of", 0), ("getsockopt", 0, "IPV6_V6ONLY"))),
    # A listener that SHUT_RD stopped gives its port back, not the address bind()
    # named: listen() again takes a new port on that address, and connect() checks
    # the address against it (EAFNOSUPPORT, ENETUNREACH) before it says EINVAL.
    "a_listener_stopped_by_shut_rd_keeps_its_bound_address": (
        "tcp4", (("socket",), ("settimeout", 0, 0.02), ("bind", 0, "loopback", 0),
                 ("listen", 0, 2), ("shutdown", 0, socket.SHUT_RD), ("listen", 0, 5),
                 ("getsockname", 0))),
    "a_stopped_listener_checks_the_address_before_refusing_to_connect": (
        "tcp6", (("socket",), ("bind", 0, "mapped", 0), ("listen", 0, 2),
                 ("shutdown", 0, socket.SHUT_RD), ("connect", 0, "closed", 0),
                 ("connect_ex", 0, "mapped_name_of", 0))),
    # Closed both ways, a TCP socket is TCP_CLOSE on Linux: it gave back the port bind()
    # did not fix (here listen()'s), so it binds again; and so may another socket, the
    # port of a passive closer (LAST_ACK, no TIME_WAIT) being free.
    "a_connection_closed_both_ways_binds_again": (
        "tcp4", (("socket",), ("connect_ex", 0, "mapped_name_of", 0),
                 ("connect_ex", 0, "mapped_name_of", 0), ("listen", 0, None),
                 ("connect_ex", 0, "mapped_name_of", 0), ("recv_into", 0, 3, socket.MSG_DONTWAIT),
                 ("shutdown", 0, socket.SHUT_RDWR), ("bind", 0, "loopback", 0),
                 ("getsockname", 0), ("getpeername", 0), ("connect", 0, "closed", 0))),
    "the_port_of_a_passive_closer_is_free": (
        "tcp4", (("socket",), ("listen", 0, 2), ("socket",), ("connect", 1, "name_of", 0),
                 ("accept", 0), ("shutdown", 2, socket.SHUT_WR), ("shutdown", 1, socket.SHUT_WR),
                 ("socket",), ("bind", 3, "name_of", 1), ("getsockname", 3))),
    # A UDP socket connected elsewhere is no socket to Linux's lookup for a datagram
    # from another address: the sender, connected, gets the port unreachable.
    "a_udp_socket_connected_elsewhere_is_unreachable": (
        "udp4", (("socket",), ("socket",), ("connect", 1, "closed", 3), ("socket",),
                 ("connect", 2, "name_of", 1), ("send", 2, b"", 0),
                 ("recvfrom", 2, 0, socket.MSG_PEEK), ("send", 2, b"x", 0),
                 ("recv", 1, 3, socket.MSG_DONTWAIT))),
    # A self-connect marked SHUT_WR ends closed with no error: in timeout mode CPython
    # reads SO_ERROR (0), so connect() succeeds; the next connect() is ECONNABORTED.
    "a_self_connect_after_shut_wr_in_timeout_mode_succeeds_closed": (
        "tcp4", (("socket",), ("settimeout", 0, 0.02), ("shutdown", 0, socket.SHUT_WR),
                 ("bind", 0, "loopback", 0), ("connect", 0, "name_of", 0),
                 ("getsockopt", 0, "SO_ERROR"), ("getpeername", 0), ("select", 0),
                 ("connect", 0, "name_of", 0), ("connect", 0, "name_of", 0))),
    # A connected Unix socket has no name until it binds one (Linux's unix_bind looks
    # at the address only); its peer then sees the new name, live.
    "a_connected_unix_stream_socket_binds_a_name": (
        "unix_stream", (("socket",), ("bind", 0, "path0", 0), ("listen", 0, 2), ("socket",),
                        ("connect", 1, "name_of", 0), ("accept", 0),
                        ("bind", 1, "abstract0", 0), ("getsockname", 1), ("getpeername", 2),
                        ("bind", 1, "path1", 0))),
    # recvfrom() names a Unix datagram's sender as it is now (bound since it sent).
    "a_unix_datagram_names_its_sender_as_it_is_now": (
        "unix_dgram", (("socket",), ("bind", 0, "path0", 0), ("socket",),
                       ("sendto", 1, b"x", "name_of", 0), ("bind", 1, "abstract0", 0),
                       ("getsockname", 1), ("recvfrom", 0, 3, 0))),
}


@pytest.mark.parametrize("name", sorted(FINDINGS))
def test_the_simulation_behaves_as_linux(name: str) -> None:
    kind, operations = FINDINGS[name]
    divergence = compare(Program(kind, operations))
    assert divergence is None, f"the simulation differs from Linux:\n{divergence}"

"""The socketserver documentation's examples, as pytest tests on sockfake.

Each runs on the simulated network by default; ``--sockfake-network=real`` (or
``both``) runs the very same tests on loopback sockets.
"""

import threading

import pytest

import sockfake as socketserver


class MyTCPHandler(socketserver.BaseRequestHandler):
    """The documentation's first example: recv() once, reply upper-cased."""

    def handle(self):
        self.data = self.request.recv(1024).strip()
        self.request.sendall(self.data.upper())


class MyStreamTCPHandler(socketserver.StreamRequestHandler):
    """The same with file-like streams: one line in, the line upper-cased out."""

    def handle(self):
        self.data = self.rfile.readline().strip()
        self.wfile.write(self.data.upper())


class MyUDPHandler(socketserver.BaseRequestHandler):
    """The UDP example: ``self.request`` is (data, socket)."""

    def handle(self):
        data = self.request[0].strip()
        sock = self.request[1]
        sock.sendto(data.upper(), self.client_address)


class ThreadedTCPRequestHandler(socketserver.BaseRequestHandler):
    """The ThreadingMixIn example: the reply names the handler's thread."""

    def handle(self):
        data = str(self.request.recv(1024), "ascii")
        cur_thread = threading.current_thread()
        response = bytes(f"{cur_thread.name}: {data}", "ascii")
        self.request.sendall(response)


def receive_all(conn):
    chunks = []
    while chunk := conn.recv(1024):
        chunks.append(chunk)
    return b"".join(chunks)


def test_tcp_recv_handler(tcp_server):
    srv = tcp_server(MyTCPHandler, concurrency="sync")
    with srv.connect() as conn:
        conn.sendall(b"hello world\n")
        assert receive_all(conn) == b"HELLO WORLD"


def test_tcp_stream_handler(tcp_server):
    srv = tcp_server(MyStreamTCPHandler, concurrency="sync")
    with srv.connect() as conn:
        conn.sendall(b"hello world\n")
        assert receive_all(conn) == b"HELLO WORLD"


def test_udp_handler(udp_server):
    srv = udp_server(MyUDPHandler, concurrency="sync")
    sock = srv.client(timeout=5.0)
    sock.sendto(b"hello world\n", srv.address)
    assert sock.recv(1024) == b"HELLO WORLD"


@pytest.mark.sockfake(network="both")  # this one runs on both networks, always
def test_threading_mixin_replies_name_the_thread(tcp_server):
    srv = tcp_server(ThreadedTCPRequestHandler, daemon_threads=True)
    replies = []
    for message in (b"Hello World 1", b"Hello World 2", b"Hello World 3"):
        with srv.connect(timeout=5.0) as conn:
            conn.sendall(message)
            replies.append(conn.recv(1024))
    thread_names = []
    for reply, message in zip(replies, (b"1", b"2", b"3"), strict=True):
        thread_name, _, text = reply.partition(b": ")
        assert text == b"Hello World " + message
        assert thread_name.startswith(b"Thread-")
        thread_names.append(thread_name)
    assert len(set(thread_names)) == 3  # a thread of its own for each request


def test_the_documentation_way_of_starting_a_server(sockfake_network):
    """Plain code, as in the docs: serve_forever in a thread, shutdown, close."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), MyStreamTCPHandler)
    with server:  # built without network=: the test's network is the ambient default
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        with sockfake_network.create_connection(server.server_address) as conn:
            conn.sendall(b"shout\n")
            assert receive_all(conn) == b"SHOUT"
        server.shutdown()
        thread.join()

"""The four examples of the ``socketserver`` documentation, run on sockfake.

The handler and client code is the documentation's (CPython 3.13), with only the module
imported as ``import sockfake as socketserver``, an ephemeral port instead of 9999, the
server run in a thread instead of until Ctrl-C, and the printed output captured.
"""

from __future__ import annotations

import re
import socket
import threading
from typing import Any

import pytest
from helpers import WAIT, serving

import sockfake as socketserver

HOST = "127.0.0.1"


def tcp_client(port: int, data: str) -> str:
    """The documentation's TCP client (``sys.argv`` replaced by ``data``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(WAIT)
        # Connect to server and send data
        sock.connect((HOST, port))
        sock.sendall(bytes(data, "utf-8"))
        sock.sendall(b"\n")

        # Receive data from the server and shut down
        received = str(sock.recv(1024), "utf-8")

    print("Sent:    ", data)
    print("Received:", received)
    return received


# --- 1. socketserver.TCPServer example, BaseRequestHandler (recv) version ----------------


class MyTCPHandler(socketserver.BaseRequestHandler):
    """
    The request handler class for our server.

    It is instantiated once per connection to the server, and must
    override the handle() method to implement communication to the
    client.
    """

    def handle(self) -> None:
        # self.request is the TCP socket connected to the client
        # (bounded: at most 10,000 bytes, and an EOF ends it too)
        pieces = [b""]
        total = 0
        while b"\n" not in pieces[-1] and total < 10_000:
            pieces.append(self.request.recv(2000))
            if not pieces[-1]:
                break
            total += len(pieces[-1])
        self.data = b"".join(pieces)
        print(f"Received from {self.client_address[0]}:")
        data = self.data.decode("utf-8")
        print(data)
        # just send back the same data, but upper-cased
        self.request.sendall(data.upper().encode("utf-8"))
        # after we return, the socket will be closed.


# --- 2. the same server with StreamRequestHandler ---------------------------------------


class MyStreamTCPHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        # self.rfile is a file-like object created by the handler.
        # We can now use e.g. readline() instead of raw recv() calls.
        # We limit ourselves to 10000 bytes to avoid abuse by the sender.
        self.data = self.rfile.readline(10000).rstrip()
        print(f"{self.client_address[0]} wrote:")
        print(self.data.decode("utf-8"))
        # Likewise, self.wfile is a file-like object used to write back
        # to the client
        self.wfile.write(self.data.upper())


@pytest.mark.parametrize(
    ("handler", "reply", "printed"),
    [
        (MyTCPHandler, "HELLO WORLD WITH TCP\n", f"Received from {HOST}:\nhello world with TCP\n"),
        (MyStreamTCPHandler, "HELLO WORLD WITH TCP", f"{HOST} wrote:\nhello world with TCP\n"),
    ],
    ids=["recv", "StreamRequestHandler"],
)
def test_tcp_echo_example(
    handler: type, reply: str, printed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Create the server, binding to localhost on an ephemeral port
    with socketserver.TCPServer((HOST, 0), handler) as server:
        with serving(server):
            received = tcp_client(server.server_address[1], "hello world with TCP")
    assert received == reply
    out = capsys.readouterr().out
    assert printed in out
    assert f"Received: {reply}\n" in out


# --- 3. socketserver.UDPServer example --------------------------------------------------


class MyUDPHandler(socketserver.BaseRequestHandler):
    """
    This class works similar to the TCP handler class, except that
    self.request consists of a pair of data and client socket, and since
    there is no connection the client address must be given explicitly
    when sending data back via sendto().
    """

    def handle(self) -> None:
        data = self.request[0].strip()
        socket = self.request[1]
        print(f"{self.client_address[0]} wrote:")
        print(data)
        socket.sendto(data.upper(), self.client_address)


def test_udp_example(capsys: pytest.CaptureFixture[str]) -> None:
    with socketserver.UDPServer((HOST, 0), MyUDPHandler) as server:
        port = server.server_address[1]
        with serving(server):
            data = "hello world with UDP"
            # SOCK_DGRAM is the socket type to use for UDP sockets
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            with sock:
                sock.settimeout(WAIT)
                # As you can see, there is no connect() call; UDP has no connections.
                # Instead, data is directly sent to the recipient via sendto().
                sock.sendto(bytes(data + "\n", "utf-8"), (HOST, port))
                received = str(sock.recv(1024), "utf-8")
            print("Sent:    ", data)
            print("Received:", received)
    assert received == "HELLO WORLD WITH UDP"
    out = capsys.readouterr().out
    assert f"{HOST} wrote:\nb'hello world with UDP'\n" in out


# --- 4. Asynchronous mixins (ThreadingMixIn) example ------------------------------------


class ThreadedTCPRequestHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data = str(self.request.recv(1024), "ascii")
        cur_thread = threading.current_thread()
        response = bytes(f"{cur_thread.name}: {data}", "ascii")
        self.request.sendall(response)


class ThreadedTCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    pass


def client(ip: str, port: int, message: str) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(WAIT)
        sock.connect((ip, port))
        sock.sendall(bytes(message, "ascii"))
        response = str(sock.recv(1024), "ascii")
        print(f"Received: {response}")
        return response


def test_threading_mixin_example(capsys: pytest.CaptureFixture[str]) -> None:
    # Port 0 means to select an arbitrary unused port
    HOST, PORT = "localhost", 0

    server = ThreadedTCPServer((HOST, PORT), ThreadedTCPRequestHandler)
    responses: list[Any] = []
    with server:
        ip, port = server.server_address

        # Start a thread with the server -- that thread will then start one
        # more thread for each request
        server_thread = threading.Thread(target=server.serve_forever)
        # Exit the server thread when the main thread terminates
        server_thread.daemon = True
        server_thread.start()
        print("Server loop running in thread:", server_thread.name)

        try:
            responses.append(client(ip, port, "Hello World 1"))
            responses.append(client(ip, port, "Hello World 2"))
            responses.append(client(ip, port, "Hello World 3"))
        finally:
            server.shutdown()
        server_thread.join(WAIT)
        assert not server_thread.is_alive()

    # As in the documentation's output: each reply names its own handler thread,
    # "Thread-N (process_request_thread)" on Python 3.10 and later.
    pattern = re.compile(r"Thread-(\d+) \(process_request_thread\): Hello World (\d)")
    matches = [pattern.fullmatch(response) for response in responses]
    assert all(matches), responses
    assert [m.group(2) for m in matches if m] == ["1", "2", "3"]
    thread_numbers = [int(m.group(1)) for m in matches if m]
    assert len(set(thread_numbers)) == 3 and thread_numbers == sorted(thread_numbers)
    out = capsys.readouterr().out
    assert out.startswith("Server loop running in thread: Thread-")
    assert out.count("Received: Thread-") == 3

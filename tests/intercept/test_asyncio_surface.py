"""What asyncio takes from the OS besides sockets, under ``net.intercept()``.

Signals to an event loop (``loop.add_signal_handler`` over ``signal.set_wakeup_fd``),
the descriptor calls (``fcntl``, ``os``) on a simulated socket, and a real descriptor
handed to a loop in a simulated thread.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from sockfake.sim import SimNetwork
from sockfake.sim.intercept.dispatch import REAL
from sockfake.sim.net.descriptors import FIRST_FD

posix_signals = pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="POSIX signals")


def _main_thread_only() -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers are set on the main thread only")


# -- signals to an event loop -------------------------------------------------------------


@posix_signals
def test_a_signal_the_loop_raises_runs_its_handler_in_the_loop(inet: SimNetwork) -> None:
    _main_thread_only()
    seen: list[tuple[float, bool]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        got = asyncio.Event()

        def on_signal() -> None:
            seen.append((time.monotonic(), asyncio.get_running_loop() is loop))
            got.set()

        loop.add_signal_handler(signal.SIGUSR1, on_signal)
        start = time.monotonic()
        loop.call_later(1.0, signal.raise_signal, signal.SIGUSR1)
        await asyncio.wait_for(got.wait(), 5)
        assert seen == [(start + 1.0, True)]

    asyncio.run(main())
    assert len(seen) == 1


@posix_signals
@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="signal.setitimer")
def test_an_interval_timer_signals_the_loop_in_virtual_time(inet: SimNetwork) -> None:
    # CPython's test_signal_handling_while_selecting: SIGALRM from setitimer reaches a
    # loop blocked in select, at the virtual moment it was set for (a real timer fired
    # in real time, and killed the process once the loop's handler was gone).
    _main_thread_only()
    seen: list[float] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        got = asyncio.Event()

        def on_alarm(*args: Any) -> None:
            seen.append(time.monotonic())
            assert args == (42,)
            if len(seen) == 3:
                signal.setitimer(signal.ITIMER_REAL, 0)
                got.set()

        loop.add_signal_handler(signal.SIGALRM, on_alarm, 42)
        start = time.monotonic()
        assert signal.setitimer(signal.ITIMER_REAL, 0.25, 0.5) == (0.0, 0.0)
        assert signal.getitimer(signal.ITIMER_REAL) == (0.25, 0.5)
        await asyncio.wait_for(got.wait(), 5)
        assert seen == [start + 0.25, start + 0.75, start + 1.25]
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
        loop.remove_signal_handler(signal.SIGALRM)

    asyncio.run(main())


@posix_signals
@pytest.mark.skipif(not hasattr(signal, "alarm"), reason="signal.alarm")
def test_alarm_counts_virtual_seconds_and_ends_with_the_interception(net: SimNetwork) -> None:
    _main_thread_only()
    rang: list[float] = []
    previous = signal.signal(signal.SIGALRM, lambda *args: rang.append(time.monotonic()))
    real_before = signal.getitimer(signal.ITIMER_REAL)  # pytest-timeout's, if any
    try:
        with net.intercept():
            assert signal.alarm(10) == 0
            net.sleep(2.6)
            assert signal.alarm(3) == 7  # 7.4 s left, rounded as glibc rounds
            net.sleep(5)  # the handler runs during the wait, which goes on
            assert rang == [time.monotonic() - 2]
            assert signal.alarm(100) == 0
        # The interception ends: the virtual alarm with it; the real one is untouched.
        real_after = signal.getitimer(signal.ITIMER_REAL)
        assert real_after[0] <= real_before[0]
        assert real_after[0] > real_before[0] - 60 or real_before[0] == 0.0
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert len(rang) == 1


@posix_signals
@pytest.mark.parametrize("send", ["kill", "raise_signal", "pthread_kill"])
def test_a_signal_from_another_simulated_thread_reaches_the_loop(inet: SimNetwork,
                                                                 send: str) -> None:
    _main_thread_only()
    seen: list[float] = []
    main_ident = threading.get_ident()

    def sender() -> None:
        time.sleep(2.0)
        if send == "kill":
            os.kill(os.getpid(), signal.SIGUSR1)
        elif send == "raise_signal":
            signal.raise_signal(signal.SIGUSR1)
        else:
            signal.pthread_kill(main_ident, signal.SIGUSR1)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        got = asyncio.Event()

        def on_signal() -> None:
            seen.append(time.monotonic())
            got.set()

        loop.add_signal_handler(signal.SIGUSR1, on_signal)
        start = time.monotonic()
        thread = threading.Thread(target=sender)
        thread.start()
        await asyncio.wait_for(got.wait(), 10)
        assert seen == [start + 2.0]
        await loop.run_in_executor(None, thread.join)

    asyncio.run(main())
    assert len(seen) == 1
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL  # the loop's close put it back


@posix_signals
def test_the_real_wakeup_descriptor_is_back_after_the_interception(net: SimNetwork) -> None:
    _main_thread_only()
    real_a, real_b = socket.socketpair()
    real_a.setblocking(False)
    try:
        before = signal.set_wakeup_fd(real_a.fileno())
        try:
            with net.intercept():
                sim_a, sim_b = socket.socketpair()
                sim_a.setblocking(False)
                # The simulated descriptor replaces the real one, which it reports as before.
                assert signal.set_wakeup_fd(sim_a.fileno()) == real_a.fileno()
                assert signal.set_wakeup_fd(sim_a.fileno()) == sim_a.fileno()
                sim_a.close()
                sim_b.close()
            # Left set: the interception's end puts the real descriptor back.
            assert signal.set_wakeup_fd(-1) == real_a.fileno()
        finally:
            signal.set_wakeup_fd(before)
    finally:
        real_a.close()
        real_b.close()


@posix_signals
def test_clearing_the_simulated_wakeup_descriptor_restores_the_real_one(net: SimNetwork
                                                                        ) -> None:
    _main_thread_only()
    real_a, real_b = socket.socketpair()
    real_a.setblocking(False)
    before = signal.set_wakeup_fd(real_a.fileno())
    try:
        with net.intercept():
            sim_a, sim_b = socket.socketpair()
            sim_a.setblocking(False)
            signal.set_wakeup_fd(sim_a.fileno())
            assert signal.set_wakeup_fd(-1) == sim_a.fileno()
            # Cleared: the real one again (set_wakeup_fd(-1) reports it and clears it).
            assert signal.set_wakeup_fd(real_a.fileno()) == real_a.fileno()
            sim_a.close()
            sim_b.close()
    finally:
        signal.set_wakeup_fd(before)
        real_a.close()
        real_b.close()


@posix_signals
def test_a_blocking_or_unknown_simulated_descriptor_is_refused_as_cpython_does(
    inet: SimNetwork
) -> None:
    _main_thread_only()
    a, b = socket.socketpair()
    try:
        with pytest.raises(ValueError, match="must be in non-blocking mode"):
            signal.set_wakeup_fd(a.fileno())
        closed = socket.socket()
        number = closed.fileno()
        closed.close()
        with pytest.raises(OSError, match=r"not an open socket .*sockfake") as raised:
            signal.set_wakeup_fd(number)
        assert raised.value.errno == errno.EBADF
    finally:
        a.close()
        b.close()


@posix_signals
def test_set_wakeup_fd_from_another_simulated_thread_is_refused_as_cpython_does(
    inet: SimNetwork
) -> None:
    errors: list[BaseException] = []
    a, b = socket.socketpair()
    a.setblocking(False)

    def other() -> None:
        try:
            signal.set_wakeup_fd(a.fileno())
        except ValueError as err:
            errors.append(err)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    a.close()
    b.close()
    assert len(errors) == 1
    assert "main thread" in str(errors[0])


# -- the caller's buffer after a send ----------------------------------------------------


def test_a_200_kb_asyncio_write_through_a_small_send_buffer_completes(inet: SimNetwork
                                                                     ) -> None:
    # On 3.10 and 3.11 asyncio's transport sends from a bytearray and trims it after a
    # partial send: a view the simulation kept made every trim raise BufferError.
    async def main() -> int:
        received = bytearray()
        done = asyncio.Event()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while len(received) < 200_000:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                received.extend(chunk)
            done.set()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 8888)
        reader, writer = await asyncio.open_connection("127.0.0.1", 8888)
        sock = writer.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        writer.write(b"x" * 100_000)  # a partial send, then the rest buffered ...
        writer.write(b"y" * 100_000)  # ... in the transport's bytearray
        await asyncio.wait_for(writer.drain(), 30)
        await asyncio.wait_for(done.wait(), 30)
        writer.close()
        server.close()
        await server.wait_closed()
        assert received == b"x" * 100_000 + b"y" * 100_000
        return len(received)

    assert asyncio.run(main()) == 200_000


def test_a_bytearray_can_be_resized_after_a_partial_send_or_a_would_block(inet: SimNetwork
                                                                          ) -> None:
    a, b = socket.socketpair()
    try:
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        a.setblocking(False)
        data = bytearray(b"z" * 100_000)
        sent = a.send(data)
        assert 0 < sent < len(data)
        del data[:sent]  # BufferError while the simulation kept the buffer exported
        with pytest.raises(BlockingIOError):
            a.send(data)
        del data[:10]
        into = bytearray(10)
        assert b.recv_into(into) == 10
        into.extend(b"more")
        assert b.recvfrom_into(into)[0] == 14
        into.extend(b"!")
        assert bytes(into) == b"z" * 14 + b"!"
    finally:
        a.close()
        b.close()


# -- descriptor calls on a simulated socket -----------------------------------------------

fcntl = pytest.importorskip("fcntl", reason="POSIX fcntl") if os.name == "posix" else None
posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX descriptor calls")


@posix_only
def test_fcntl_fd_flags_are_close_on_exec_until_made_inheritable(inet: SimNetwork) -> None:
    assert fcntl is not None
    sock = socket.socket()
    try:
        fd = sock.fileno()
        assert fcntl.fcntl(fd, fcntl.F_GETFD) == fcntl.FD_CLOEXEC  # as CPython makes them
        assert fcntl.fcntl(fd, fcntl.F_SETFD, 0) == 0
        assert sock.get_inheritable()
        assert os.get_inheritable(fd)
        sock.set_inheritable(False)
        assert fcntl.fcntl(sock, fcntl.F_GETFD) & fcntl.FD_CLOEXEC  # an object with fileno()
        os.set_inheritable(fd, True)
        assert fcntl.fcntl(fd, fcntl.F_GETFD) == 0
    finally:
        sock.close()


@posix_only
def test_fcntl_status_flags_follow_the_blocking_mode_as_on_linux(inet: SimNetwork) -> None:
    assert fcntl is not None
    sock = socket.socket()
    try:
        fd = sock.fileno()
        assert fcntl.fcntl(fd, fcntl.F_GETFL) == os.O_RDWR
        sock.settimeout(2.0)  # a timeout is O_NONBLOCK underneath
        assert fcntl.fcntl(fd, fcntl.F_GETFL) == os.O_RDWR | os.O_NONBLOCK
        sock.settimeout(None)
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        assert not sock.getblocking()
        assert not os.get_blocking(fd)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags)
        assert sock.getblocking()
        os.set_blocking(fd, False)
        assert sock.gettimeout() == 0.0
    finally:
        sock.close()


@posix_only
def test_os_read_write_and_fstat_treat_the_descriptor_as_a_socket(inet: SimNetwork) -> None:
    import stat

    a, b = socket.socketpair()
    try:
        assert os.write(a.fileno(), b"ping") == 4
        assert os.read(b.fileno(), 100) == b"ping"
        assert stat.S_ISSOCK(os.fstat(b.fileno()).st_mode)
        assert not os.isatty(b.fileno())
        b.setblocking(False)
        with pytest.raises(BlockingIOError):
            os.read(b.fileno(), 100)
        b.settimeout(5.0)  # O_NONBLOCK underneath: at once, not after the timeout
        started = time.monotonic()
        with pytest.raises(BlockingIOError):
            os.read(b.fileno(), 100)
        assert time.monotonic() == started
        assert b.gettimeout() == 5.0
        os.close(a.fileno())  # closes the simulated socket: its peer reads the end
        b.setblocking(True)
        assert os.read(b.fileno(), 100) == b""
    finally:
        a.close()
        b.close()


@posix_only
@pytest.mark.skipif(not hasattr(os, "sendfile"), reason="os.sendfile")
def test_os_sendfile_sends_a_real_file_as_linux_does(inet: SimNetwork, tmp_path: Any) -> None:
    path = tmp_path / "data"
    size = 4 << 20
    path.write_bytes(bytes(range(256)) * (size // 256))
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    a.setblocking(False)
    with open(path, "rb") as source:
        fd = source.fileno()
        # An offset: the bytes there; the file's position stays where it was.
        assert os.sendfile(a.fileno(), fd, 256, 16) == 16
        assert b.recv(100) == bytes(range(16))
        assert source.tell() == 0
        # None: from the file's position, which moves by what was sent, until the
        # socket is full: EAGAIN at once.
        sent = 0
        with pytest.raises(BlockingIOError):
            for _ in range(1000):
                sent += os.sendfile(a.fileno(), fd, None, 65536)
        assert 0 < sent < size
        assert source.tell() == sent
        received = b""
        while len(received) < sent:
            received += b.recv(sent - len(received))
        assert received == (bytes(range(256)) * (size // 256))[:sent]
        assert os.sendfile(a.fileno(), fd, size, 10) == 0  # the end of the file
    a.close()
    b.close()


@posix_only
@pytest.mark.skipif(not hasattr(os, "sendfile"), reason="os.sendfile")
def test_loop_sendfile_is_in_progress_while_a_small_buffer_drains(inet: SimNetwork,
                                                                  tmp_path: Any) -> None:
    # asyncio's loop.sendfile() uses os.sendfile (not its fallback of writes), so the
    # transport refuses a write meanwhile (CPython's test_sendfile_prevents_bare_write).
    path = tmp_path / "data"
    path.write_bytes(b"x" * 200_000)

    async def main() -> tuple[int, int, str]:
        loop = asyncio.get_running_loop()
        received = bytearray()
        finished = loop.create_future()

        class Sink(asyncio.Protocol):
            def data_received(self, data: bytes) -> None:
                received.extend(data)
                if len(received) == 200_000:
                    finished.set_result(None)

        server = await loop.create_server(Sink, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF,
                                                      4096)
        with open(path, "rb") as source:
            sending = asyncio.ensure_future(loop.sendfile(transport, source))
            await asyncio.sleep(0)
            try:
                transport.write(b"data")
                refusal = ""
            except RuntimeError as error:
                refusal = str(error)
            sent = await sending
        await finished
        transport.close()
        server.close()
        await server.wait_closed()
        return sent, len(received), refusal

    sent, received, refusal = asyncio.run(main())
    assert (sent, received) == (200_000, 200_000)
    assert "sendfile is in progress" in refusal


@posix_only
@pytest.mark.parametrize("call", ["os.dup2", "os.lseek", "fcntl.ioctl", "fcntl.fcntl(F_DUPFD)"])
def test_an_unsupported_descriptor_call_names_sockfake_and_the_call(inet: SimNetwork,
                                                                    call: str) -> None:
    assert fcntl is not None
    sock = socket.socket()
    fd = sock.fileno()
    calls: dict[str, Callable[[], object]] = {
        "os.dup2": lambda: os.dup2(fd, 1000),
        "os.lseek": lambda: os.lseek(fd, 0, os.SEEK_SET),
        "fcntl.ioctl": lambda: fcntl.ioctl(fd, 0x541B, b"\0\0\0\0"),
        "fcntl.fcntl(F_DUPFD)": lambda: fcntl.fcntl(fd, fcntl.F_DUPFD, 0),
    }
    try:
        with pytest.raises(OSError, match=r"simulated descriptor \d+ \(sockfake\)") as raised:
            calls[call]()
        assert raised.value.errno == errno.EBADF  # as before: error handling is unchanged
        assert call.partition("(")[0] in str(raised.value)
        assert "instead" in str(raised.value) or "outside the simulation" in str(raised.value)
    finally:
        sock.close()


@posix_only
def test_os_pipe_is_a_simulated_pair_that_dup_and_close_count(inet: SimNetwork) -> None:
    """waitress's trigger: ``os.pipe()``, ``os.dup`` of its read end, ``select`` on it,
    ``os.write``/``os.read``, and one ``os.close`` per descriptor handed out."""
    import select

    inet.hold("local", "local")  # host-local: never held
    read_end, write_end = os.pipe()
    assert min(read_end, write_end) >= FIRST_FD
    copy = os.dup(read_end)
    assert copy == read_end  # simulated descriptors are not duplicated: one more handle
    os.set_blocking(copy, False)
    assert select.select([copy], [], [], 5) == ([], [], [])
    assert inet.time() == pytest.approx(5)
    assert os.write(write_end, b"x") == 1
    assert select.select([copy], [], [], 5) == ([copy], [], [])
    assert os.read(copy, 10) == b"x"
    os.close(read_end)
    with pytest.raises(BlockingIOError):  # still open (the dup's handle), nothing to read
        os.read(copy, 10)
    os.close(copy)
    with pytest.raises(OSError, match="no open simulated socket"):
        os.read(copy, 10)
    os.close(write_end)
    assert inet.open_sockets() == []


@posix_only
def test_a_closed_simulated_descriptor_says_so(inet: SimNetwork) -> None:
    assert fcntl is not None
    sock = socket.socket()
    fd = sock.fileno()
    sock.close()
    with pytest.raises(OSError, match="no open simulated socket"):
        fcntl.fcntl(fd, fcntl.F_GETFL)


@posix_only
def test_asyncio_pipes_over_a_simulated_socketpair(inet: SimNetwork) -> None:
    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        reader = asyncio.StreamReader()
        read_transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), b)
        write_transport, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, a)
        write_transport.write(b"through the pipe")
        data = await asyncio.wait_for(reader.readexactly(16), 5)
        write_transport.close()
        read_transport.close()
        await asyncio.sleep(0)
        return data

    assert asyncio.run(main()) == b"through the pipe"


# -- a real descriptor in a simulated loop ------------------------------------------------


@posix_only
@pytest.mark.parametrize("direction", ["read", "write"])
def test_a_real_pipe_in_a_simulated_loop_fails_the_caller(inet: SimNetwork,
                                                          direction: str) -> None:
    from sockfake.errors import SockfakeRuntimeError

    handled: list[dict[str, Any]] = []
    read_end, write_end = REAL["pipe"]()  # os.pipe() here would be a simulated pair

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: handled.append(context))
        if direction == "read":
            with open(read_end, "rb", buffering=0) as pipe:
                await loop.connect_read_pipe(asyncio.Protocol, pipe)
        else:
            with open(write_end, "wb", buffering=0) as pipe:
                await loop.connect_write_pipe(asyncio.BaseProtocol, pipe)

    try:
        with pytest.raises(SockfakeRuntimeError,
                           match=rf"connect_{direction}_pipe\(\) with real descriptor .*"
                                 "socketpair"):
            asyncio.run(main())
    finally:
        for fd in (read_end, write_end):
            try:
                os.close(fd)
            except OSError:
                pass  # closed by its file object
    assert handled == []  # not a line in the loop's exception handler


@posix_only
@pytest.mark.parametrize("call", ["add_reader", "add_writer"])
def test_add_reader_on_a_real_descriptor_says_what_to_do(inet: SimNetwork, call: str) -> None:
    from sockfake.errors import SockfakeValueError

    read_end, write_end = REAL["pipe"]()  # os.pipe() here would be a simulated pair

    async def main() -> None:
        loop = asyncio.get_running_loop()
        getattr(loop, call)(read_end if call == "add_reader" else write_end, lambda: None)

    try:
        with pytest.raises(SockfakeValueError, match=rf"loop\.{call}\(\) with real descriptor"):
            asyncio.run(main())
    finally:
        os.close(read_end)
        os.close(write_end)

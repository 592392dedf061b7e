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

import pytest

from sockfake.sim import SimNetwork

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

"""``open(fd)``, ``io.open(fd)`` and ``os.fdopen(fd)`` over ``os.pipe()``'s ends: file
objects that read and write through the simulation, as they do over a real pipe.

Each story runs on a real pipe (no simulation) and on a simulated one (under
interception), and the two must tell the same."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import pytest

from sockfake.sim import SimNetwork
from sockfake.sim.net.descriptors import FIRST_FD

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="os.pipe file objects: POSIX")


def _files_over_a_pipe() -> list[Any]:
    told: list[Any] = []
    read_end, write_end = os.pipe()
    told.append(min(read_end, write_end) >= FIRST_FD)
    with os.fdopen(write_end, "w", buffering=1) as writer:  # line-buffered text
        told.append((writer.fileno() == write_end, writer.mode, writer.writable()))
        writer.write("hello\n")
        writer.write("wor")
        writer.write("ld\n")
    with open(read_end, "rb", buffering=0) as raw:  # unbuffered bytes
        told.append((raw.readable(), raw.writable(), raw.seekable(), raw.isatty()))
        told.append(raw.read(3))
        with open(raw.fileno(), closefd=False) as text:  # the same descriptor
            told.append(text.readlines())
        told.append(raw.read(10))  # the writer is closed: the end of the stream
    with pytest.raises(OSError):
        os.read(read_end, 1)  # the raw file closed its descriptor
    for call in (  # each fails before a file exists
        lambda: open(write_end + 1 if write_end >= FIRST_FD else 10**6, "rb"),  # noqa: SIM115
        lambda: open(read_end, buffering=0),  # noqa: SIM115
        lambda: open(read_end, "rw"),  # noqa: SIM115
    ):
        try:
            call()
        except (OSError, ValueError) as error:
            told.append(type(error).__name__)
    return told


def _asyncio_reads_a_pipe_file() -> bytes:
    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        read_end, write_end = os.pipe()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), open(read_end, "rb", 0))  # noqa: SIM115
        os.write(write_end, b"through a pipe file")
        os.close(write_end)
        data = await asyncio.wait_for(reader.read(), 5)
        transport.close()
        await asyncio.sleep(0)
        return data

    return asyncio.run(main())


@posix_only
@pytest.mark.parametrize("story", [_files_over_a_pipe, _asyncio_reads_a_pipe_file],
                         ids=["files", "asyncio-read-pipe"])
def test_file_objects_over_a_simulated_pipe_tell_what_a_real_pipe_tells(story: Any) -> None:
    real = story()
    with SimNetwork(seed=1) as net, net.intercept():
        simulated = story()
        assert net.open_sockets() == []  # every end closed through its file object
    if story is _files_over_a_pipe:
        assert (real[0], simulated[0]) == (False, True)  # a real pipe, a simulated one
        real, simulated = real[1:], simulated[1:]
    assert simulated == real


@posix_only
def test_a_simulated_descriptor_opened_outside_its_simulation_is_the_real_ebadf() -> None:
    with SimNetwork(seed=1) as net, net.intercept():
        read_end, write_end = os.pipe()
        errors: list[int | None] = []

        def outside() -> None:
            try:
                open(read_end, "rb", closefd=False)  # noqa: SIM115
            except OSError as error:
                errors.append(error.errno)

        import threading

        from sockfake.sim.kernel.thread_hooks import _original_start

        thread = threading.Thread(target=outside)
        _original_start(thread)  # a real thread, outside the simulation
        thread.join(10)
        os.close(read_end)
        os.close(write_end)
    import errno

    assert errors == [errno.EBADF]

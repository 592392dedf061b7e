"""Simulated-network benchmark: cost, scale, time compression and determinism in one run.

    python benchmarks/bench_sim.py [--quick] [--only SECTION,...]

Sections (all by default), each printing its figures side by side:

- ``per-message``: an echo round trip on the simulated network (and, with greenlet
  installed, on its greenlet backend) against the real
  loopback, TCP (``ThreadingTCPServer``, one persistent connection) and UDP
  (``UDPServer``), and the floor for a design on real threads: a one-byte ping-pong
  over two pipes between two threads, free to use both cores (the issue's floor) and
  with both on one CPU (as the simulation runs its threads: the lowest handoff cost
  there is). The simulation pins its threads by default (``pin_cpu=True``); the real
  loopback runs as the stdlib does, unpinned. Rounds alternate the order of the six
  measurements; the median of the rounds is printed with the spread (min-max).
- ``sequential``: 20,000 sequential connections (connect, one echo, close) on one
  network; the cost per connection of the first and the last thousand (target: the
  last within 1.2x of the first).
- ``crowd``: 10,000 concurrent simulated clients against a ``ThreadingTCPServer``, in
  a subprocess of its own so its peak RSS is its own (target: completes in < 60 s).
- ``descriptors``: a simulation in a process holding more than 1,100 open
  descriptors (the turn's timed wait once used ``select()``, limited to 1,024).
- ``compression``: a UDP client with a 1 s retry timer under 30 % loss completing
  1,000 exchanges against a ``UDPServer``: virtual seconds per wall second, with the
  server's ``serve_forever(0.5)`` (the stdlib's default: its thread also wakes twice a
  virtual second) and ``serve_forever(None)`` (it wakes for requests only, as the
  peers' servers do). Optional comparisons on the same scenario (a seeded 30 % loss,
  10 ms latency, 1 s timeout) run when installed: trio's autojump clock
  (``pip install trio``) and simloop (``pip install simloop``, Python >= 3.12, so run
  this section under 3.12 or later to see it); they are skipped with a note otherwise.
  All contenders alternate round by round; medians of 7 rounds with the spread.
- ``determinism``: the trace digests of two runs of one seed (equal).
- ``calls``: the Python function calls (and the calls into C) per TCP and UDP round
  trip, every thread counted (a profile hook, so independent of the machine's load);
  in the compiled build only what stays Python is counted.
- ``trace``: the TCP round trip with every event kept (``trace_limit=None``), with the
  default ring (``DEFAULT_TRACE_LIMIT`` events: a round of this size never fills it),
  and with a ring of 1,000 (full from the start: every event leaves it, hashed, as a
  run longer than the default ring does). Alternated rounds, medians and spread.

The load average is printed first and last: on a shared machine read the figures
against it. The first line also names the simulation's build: pure Python, or the
optional compiled one, which this checkout becomes with
``SOCKFAKE_COMPILE=1 python setup.py build_ext --inplace`` (needs mypy and a C
compiler; ``git clean -fX sockfake`` makes it pure again).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sockfake  # noqa: E402
from sockfake.network import REAL_NETWORK, Network  # noqa: E402
from sockfake.sim import COMPILED, SimNetwork  # noqa: E402
from sockfake.sim.kernel.turn import Turn  # noqa: E402

SECTIONS = ("per-message", "sequential", "crowd", "descriptors", "compression", "determinism",
            "trace", "calls")


class Echo(sockfake.BaseRequestHandler):
    def handle(self) -> None:
        while True:
            data = self.request.recv(4096)
            if not data:
                return
            self.request.sendall(data)


class EchoUDP(sockfake.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        sock.sendto(data, self.client_address)


class UpperUDP(sockfake.DatagramRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.read().upper())


Result = TypeVar("Result")


def alternated(runs: Mapping[str, Callable[[int], Result | None]], count: int, rounds: int
               ) -> dict[str, list[Result]]:
    """Each contender once a round, the order rotating round by round, so a change in
    the machine's state lands on all of them; one returning None (a peer that is not
    installed) has no results."""
    names = list(runs)
    results: dict[str, list[Result]] = {name: [] for name in names}
    for number in range(rounds):
        shift = number % len(names)
        for name in names[shift:] + names[:shift]:
            result = runs[name](count)
            if result is not None:
                results[name].append(result)
    return results


def load_average() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


# -- per-message -------------------------------------------------------------------------


def calls_per_round_trip(measure: Callable[..., float], count: int) -> tuple[float, float]:
    """(Python calls, C calls) per round trip of ``measure`` on a fresh network, counted
    in every thread between its two clock reads."""
    counted = [0, 0]
    counting = False

    def hook(frame: Any, event: str, arg: Any) -> None:
        if counting:
            if event == "call":
                counted[0] += 1
            elif event == "c_call":
                counted[1] += 1

    def clock() -> float:  # the first read starts the count, the second stops it
        nonlocal counting
        counting = not counting
        return time.perf_counter()

    net = SimNetwork(seed=1)
    threading.setprofile(hook)
    sys.setprofile(hook)
    try:
        measure(net, count, clock)
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
        net.close()
    return counted[0] / count, counted[1] / count


def print_calls(count: int) -> None:
    print(f"calls per round trip ({count} round trips, every thread; Python functions, "
          "calls into C):")
    for name, measure in (("TCP", tcp_round_trips), ("UDP", udp_round_trips)):
        python_calls, c_calls = calls_per_round_trip(measure, count)
        print(f"  {name}  {python_calls:6.1f} Python  {c_calls:6.1f} C")



def tcp_round_trips(network: Network, count: int,
                    clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds per echo round trip over one persistent connection (``clock`` read
    once before the timed round trips and once after)."""
    server = sockfake.ThreadingTCPServer(("127.0.0.1", 0), Echo, network=network)
    thread = network.thread(target=server.serve_forever, args=(0.5,), daemon=True)
    thread.start()
    try:
        conn = network.create_connection(server.server_address)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        message = b"x" * 64
        for _ in range(50):  # warm up
            conn.sendall(message)
            conn.recv(4096)
        started = clock()
        for _ in range(count):
            conn.sendall(message)
            received = 0
            while received < len(message):
                received += len(conn.recv(4096))
        elapsed = clock() - started
        conn.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    return elapsed / count


def udp_round_trips(network: Network, count: int,
                    clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds per datagram round trip against a ``UDPServer`` (``clock``: as
    ``tcp_round_trips``)."""
    server = sockfake.UDPServer(("127.0.0.1", 0), EchoUDP, network=network)
    thread = network.thread(target=server.serve_forever, args=(0.5,), daemon=True)
    thread.start()
    try:
        with network.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(5.0)
            message = b"x" * 64
            address = server.server_address
            for _ in range(50):
                client.sendto(message, address)
                client.recvfrom(4096)
            started = clock()
            for _ in range(count):
                client.sendto(message, address)
                client.recvfrom(4096)
            elapsed = clock() - started
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    return elapsed / count


def pipe_ping_pong(count: int) -> float:
    """Seconds per round trip of one byte between two threads over two pipes: the
    floor for any handoff between real threads."""
    to_r, to_w = os.pipe()
    back_r, back_w = os.pipe()

    def echo() -> None:
        while os.read(to_r, 1) != b"q":
            os.write(back_w, b"x")

    thread = threading.Thread(target=echo)
    thread.start()
    for _ in range(50):
        os.write(to_w, b"x")
        os.read(back_r, 1)
    started = time.perf_counter()
    for _ in range(count):
        os.write(to_w, b"x")
        os.read(back_r, 1)
    elapsed = time.perf_counter() - started
    os.write(to_w, b"q")
    thread.join()
    for fd in (to_r, to_w, back_r, back_w):
        os.close(fd)
    return elapsed / count


def pipe_ping_pong_one_cpu(count: int) -> float:
    """The pipe floor with both threads on one CPU, as the simulation runs its threads
    (``sockfake.sim.kernel.cpu_pin``): a handoff is a context switch, no cross-core wakeup."""
    if not hasattr(os, "sched_setaffinity"):
        return float("nan")
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(saved)})
    try:
        return pipe_ping_pong(count)  # the echo thread inherits the mask
    finally:
        os.sched_setaffinity(0, saved)


def _on_sim(measure: Callable[[Network, int], float], **options: Any
            ) -> Callable[[int], float]:
    def run(count: int) -> float:
        net = SimNetwork(seed=1, **options)
        try:
            return measure(net, count)
        finally:
            net.close()

    return run


def per_message(count: int, rounds: int) -> dict[str, list[float]]:
    """Alternated rounds (the order rotates each round) of the six measurements."""
    runs: dict[str, Callable[[int], float]] = {
        "sim TCP": _on_sim(tcp_round_trips),
        "real TCP": lambda n: tcp_round_trips(REAL_NETWORK, n),
        "sim UDP": _on_sim(udp_round_trips),
        "real UDP": lambda n: udp_round_trips(REAL_NETWORK, n),
        "pipe floor": pipe_ping_pong,
        "pipe floor, one CPU": pipe_ping_pong_one_cpu,
    }
    if importlib.util.find_spec("greenlet") is not None:
        # The optional backend (pip install 'sockfake[greenlet]'): no OS handoff at all.
        runs["sim TCP, greenlet"] = _on_sim(tcp_round_trips, backend="greenlet")
        runs["sim UDP, greenlet"] = _on_sim(udp_round_trips, backend="greenlet")
    return alternated(runs, count, rounds)


def print_per_message(results: dict[str, list[float]], count: int, rounds: int) -> None:
    def fig(name: str) -> str:
        values = results[name]
        return (f"{statistics.median(values) * 1e6:7.1f} us "
                f"({min(values) * 1e6:.1f}-{max(values) * 1e6:.1f})")

    def med(name: str) -> float:
        return statistics.median(results[name])

    print(f"per-message round trip: median of {rounds} alternated rounds of {count} "
          "(spread min-max)")
    print(f"  pipe floor {fig('pipe floor')}   pipe floor, both threads on one CPU "
          f"{fig('pipe floor, one CPU')}")
    for proto in ("TCP", "UDP"):
        sim, real = med(f"sim {proto}"), med(f"real {proto}")
        print(f"  {proto}  sim {fig(f'sim {proto}')}   real loopback {fig(f'real {proto}')}")
        print(f"       sim/real {sim / real:.2f} (goal <= 1.0)   sim/floor "
              f"{sim / med('pipe floor'):.2f} (goal <= 3.0)   sim/floor on one CPU "
              f"{sim / med('pipe floor, one CPU'):.2f}")
        greenlet = f"sim {proto}, greenlet"
        if greenlet in results:
            print(f"       sim on greenlets {fig(greenlet)}   sim/real "
                  f"{med(greenlet) / real:.2f}   greenlets/threads {med(greenlet) / sim:.2f}")


# -- the trace's bound -------------------------------------------------------------------


def trace_bounds(count: int, rounds: int) -> dict[str, list[float]]:
    """Alternated rounds of the simulated TCP round trip under three trace bounds."""
    runs: dict[str, Callable[[int], float]] = {
        "every event kept": _on_sim(tcp_round_trips, trace_limit=None),
        "default ring": _on_sim(tcp_round_trips),
        "ring of 1,000": _on_sim(tcp_round_trips, trace_limit=1000),
    }
    return alternated(runs, count, rounds)


def print_trace_bounds(results: dict[str, list[float]], count: int, rounds: int) -> None:
    whole = statistics.median(results["every event kept"])
    print(f"trace bound, simulated TCP round trip: median of {rounds} alternated rounds of "
          f"{count} (spread min-max)")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"  {name:<18} {median * 1e6:7.1f} us ({min(values) * 1e6:.1f}-"
              f"{max(values) * 1e6:.1f})  {median / whole:.2f}x every event kept")


# -- sequential connections --------------------------------------------------------------


def sequential(connections: int, block: int = 1000) -> list[tuple[float, float]]:
    """Wall and CPU seconds per connection for each block of ``block`` sequential
    connections. CPU time (all threads of the process) is the work the simulation
    does; wall time adds the machine's state, which on a shared VM can change tenfold
    within a run (see the pipe floor's spread above)."""
    net = SimNetwork(seed=4)
    costs: list[tuple[float, float]] = []
    try:
        server = sockfake.ThreadingTCPServer(("127.0.0.1", 0), Echo, network=net)
        thread = threading.Thread(target=server.serve_forever, args=(0.5,), daemon=True)
        thread.start()
        address = server.server_address
        started, cpu_started = time.perf_counter(), time.process_time()
        for number in range(1, connections + 1):
            with net.create_connection(address) as conn:
                conn.sendall(b"hello")
                conn.recv(100)
            if number % block == 0:
                now, cpu_now = time.perf_counter(), time.process_time()
                costs.append(((now - started) / block, (cpu_now - cpu_started) / block))
                started, cpu_started = now, cpu_now
        server.shutdown()
        server.server_close()
        thread.join()
    finally:
        net.close()
    return costs


def print_sequential(costs: list[tuple[float, float]], block: int = 1000) -> None:
    print(f"sequential connections ({len(costs) * block:,}, connect + echo + close), "
          "per connection:")
    for index, clock in ((0, "wall"), (1, "CPU ")):
        first, last = costs[0][index], costs[-1][index]
        middle = costs[len(costs) // 2][index]
        print(f"  {clock}: first thousand {first * 1e3:.3f} ms, middle {middle * 1e3:.3f} ms, "
              f"last thousand {last * 1e3:.3f} ms: last/first {last / first:.2f} "
              "(goal <= 1.2)")
    # One block against one block is at the mercy of a noisy moment; medians of five
    # blocks at each end are not.
    head = statistics.median(cost[1] for cost in costs[:5])
    tail = statistics.median(cost[1] for cost in costs[-5:])
    print(f"  CPU, median of the first five thousand {head * 1e3:.3f} ms, of the last five "
          f"{tail * 1e3:.3f} ms: {tail / head:.2f}")


# -- crowd -------------------------------------------------------------------------------


def crowd(clients: int, stack_kib: int) -> tuple[float, int]:
    """Wall seconds and answers for concurrent clients (run in a subprocess)."""
    if stack_kib:
        threading.stack_size(stack_kib * 1024)
    started = time.perf_counter()
    net = SimNetwork(seed=3, latency=0.001, time_limit=None)
    answers: list[bytes] = []
    try:
        server = sockfake.ThreadingTCPServer(("127.0.0.1", 0), Echo, network=net)
        server.request_queue_size = clients
        server.socket.listen(clients)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        go = net.event()

        def client(number: int) -> None:
            with net.create_connection(server.server_address) as conn:
                go.wait()
                conn.sendall(b"hello %d" % number)
                answers.append(conn.recv(100))

        threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
        for each in threads:
            each.start()
        net.sleep(0.5)  # the clients connect (a full accept queue makes some retry)
        go.set()
        for each in threads:
            each.join()
        server.shutdown()
        server.server_close()
        thread.join()
    finally:
        net.close()
    return time.perf_counter() - started, len(answers)


def run_crowd(clients: int, stack_kib: int) -> str:
    command = [sys.executable, __file__, "--crowd-child", str(clients), "--stack-kib",
               str(stack_kib)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        return f"FAILED (exit {done.returncode}): {done.stderr.strip()[-2000:]}"
    return done.stdout.strip()


def crowd_child(clients: int, stack_kib: int) -> None:
    wall, answered = crowd(clients, stack_kib)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    verdict = "completes" if answered == clients and wall < 60 else "FAILS"
    print(f"{clients:,} concurrent clients, ThreadingTCPServer: {wall:.1f} s wall, "
          f"{answered:,}/{clients:,} answered, peak RSS {rss:.0f} MiB, thread stack "
          f"{stack_kib or 'default'} KiB: {verdict} (goal < 60 s)")


# -- descriptors -------------------------------------------------------------------------


def descriptors_child(extra: int) -> None:
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(extra)]
    net = SimNetwork(seed=5)
    try:
        cost = tcp_round_trips(net, 200)
        turn = net.kernel.root.go
        assert isinstance(turn, Turn)  # the default backend's: a descriptor
        top = max(fd for fd in (turn._read, turn._write))
    finally:
        net.close()
    for fd in held:
        os.close(fd)
    print(f"simulation with {extra:,} extra descriptors open (the turn's descriptor is fd {top}): "
          f"works, {cost * 1e6:.1f} us per round trip")


def run_descriptors(extra: int) -> str:
    command = [sys.executable, __file__, "--descriptors-child", str(extra)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        return f"FAILED (exit {done.returncode}): {done.stderr.strip()[-1000:]}"
    return done.stdout.strip()


# -- compression -------------------------------------------------------------------------


def compression(exchanges: int, poll_interval: float | None = 0.5
                ) -> tuple[float, float, int]:
    """Virtual seconds, wall seconds and sends for a retrying UDP client under 30 % loss.

    ``poll_interval`` is the server's: at the default 0.5 s its thread wakes twice a
    virtual second to run ``service_actions()`` (as the stdlib's does); ``None`` wakes
    it for requests only, as trio's and simloop's servers."""
    net = SimNetwork(seed=2, loss=0.3, latency=0.01)
    try:
        server = sockfake.UDPServer(("127.0.0.1", 0), UpperUDP, network=net)
        thread = threading.Thread(target=server.serve_forever, args=(poll_interval,),
                                  daemon=True)
        thread.start()
        sends = 0
        started = time.perf_counter()
        with net.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(1.0)
            for number in range(exchanges):
                message = b"ping %d" % number
                while True:
                    sends += 1
                    client.sendto(message, server.server_address)
                    try:
                        reply, _ = client.recvfrom(1024)
                    except TimeoutError:
                        continue
                    if reply == message.upper():
                        break
        wall = time.perf_counter() - started
        virtual = net.time()
        server.shutdown()
        server.server_close()
        thread.join()
    finally:
        net.close()
    return virtual, wall, sends


def trio_compression(exchanges: int) -> tuple[float, float, int] | None:
    """The same scenario on trio with its autojump clock: memory channels stand in for
    the datagram socket, each datagram (request and reply) lost with probability 0.3."""
    try:  # optional: imported by name so type checks pass without it
        trio: Any = importlib.import_module("trio")
        importlib.import_module("trio.testing")
    except ImportError:
        return None
    rng = random.Random(2)
    clock = trio.testing.MockClock(autojump_threshold=0)
    sends = 0

    async def main() -> float:
        nonlocal sends
        to_server_send, to_server_recv = trio.open_memory_channel(100)
        to_client_send, to_client_recv = trio.open_memory_channel(100)

        async def carry(channel: Any, data: bytes) -> None:
            if rng.random() < 0.3:
                return
            await trio.sleep(0.01)
            await channel.send(data)

        async def server(nursery: Any) -> None:
            async for data in to_server_recv:
                nursery.start_soon(carry, to_client_send, data.upper())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(server, nursery)
            for number in range(exchanges):
                message = b"ping %d" % number
                while True:
                    sends += 1
                    nursery.start_soon(carry, to_server_send, message)
                    with trio.move_on_after(1.0):
                        while True:
                            reply = await to_client_recv.receive()
                            if reply == message.upper():
                                break
                        break
            nursery.cancel_scope.cancel()
        return trio.current_time()

    started = time.perf_counter()
    virtual: float = trio.run(main, clock=clock)
    return virtual, time.perf_counter() - started, sends


def simloop_compression(exchanges: int) -> tuple[float, float, int] | None:
    """The same scenario on simloop (asyncio on virtual time, Python >= 3.12): datagram
    endpoints on its simulated network, which drops 30 % of datagrams (its own seeded
    stream) and delivers the rest after exactly 10 ms; the client waits 1 s with
    ``asyncio.wait_for`` and resends."""
    try:  # optional: imported by name so type checks pass without it
        simloop: Any = importlib.import_module("simloop")
    except ImportError:
        return None
    import asyncio

    class Upper(asyncio.DatagramProtocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            self.transport.sendto(data.upper(), addr)

    class Replies(asyncio.DatagramProtocol):
        def __init__(self) -> None:
            self.queue: asyncio.Queue[bytes] = asyncio.Queue()

        def datagram_received(self, data: bytes, addr: Any) -> None:
            self.queue.put_nowait(data)

    sends = 0

    async def scenario(loop: Any) -> float:
        nonlocal sends
        loop.net.set_defaults(latency=(0.01, 0.01), drop=0.3)

        async def start_server() -> Any:
            transport, _ = await loop.create_datagram_endpoint(Upper,
                                                               local_addr=("server", 9000))
            return transport

        async def client() -> None:
            nonlocal sends
            transport, replies = await loop.create_datagram_endpoint(
                Replies, remote_addr=("server", 9000))
            try:
                for number in range(exchanges):
                    message = b"ping %d" % number
                    while True:
                        sends += 1
                        transport.sendto(message)
                        try:
                            reply = await asyncio.wait_for(replies.queue.get(), 1.0)
                        except TimeoutError:
                            continue
                        if reply == message.upper():
                            break
            finally:
                transport.close()

        server = await loop.net.host("server").create_task(start_server())
        try:
            await loop.net.host("client").create_task(client())
        finally:
            server.close()
        return float(loop.time())

    started = time.perf_counter()
    loop = simloop.SimLoop(2)
    try:
        virtual: float = loop.run_until_complete(scenario(loop))
    finally:
        loop.close()
    return virtual, time.perf_counter() - started, sends


def compression_rounds(exchanges: int, rounds: int
                       ) -> dict[str, list[tuple[float, float, int]]]:
    """Alternated rounds (the order rotates each round) of every installed contender."""
    runs: dict[str, Callable[[int], tuple[float, float, int] | None]] = {
        "sockfake, serve_forever(0.5)": compression,
        "sockfake, serve_forever(None)": lambda n: compression(n, poll_interval=None),
        "trio autojump": trio_compression,
        "simloop": simloop_compression,
    }
    return alternated(runs, exchanges, rounds)


_NOTES = {
    "sockfake, serve_forever(0.5)": "UDPServer; its thread also wakes twice a virtual second",
    "sockfake, serve_forever(None)": "UDPServer; wakes for requests only",
    "trio autojump": "memory channels, no sockets",
    "simloop": "asyncio datagram endpoints on its simulated network",
}
_MISSING = {
    "trio autojump": "not installed (pip install trio)",
    "simloop": "not installed (pip install simloop; needs Python >= 3.12)",
}


def print_compression(results: dict[str, list[tuple[float, float, int]]], exchanges: int,
                      rounds: int) -> None:
    print(f"compression: UDP, 1 s retry, 30 % loss, 10 ms latency, {exchanges} exchanges; "
          f"virtual s per wall s, median of {rounds} alternated rounds (spread min-max)")
    for name, values in results.items():
        if not values:
            print(f"  {name:<30} {_MISSING.get(name, 'no result')}")
            continue
        ratios = [virtual / wall for virtual, wall, _ in values]
        virtual, _, sends = values[0]
        print(f"  {name:<30} {statistics.median(ratios):8.0f}x ({min(ratios):.0f}-"
              f"{max(ratios):.0f}; {virtual:.0f} virtual s, {sends} sends; {_NOTES[name]})")


# -- determinism -------------------------------------------------------------------------


def determinism(seed: int) -> tuple[str, str]:
    digests = []
    for _ in range(2):
        net = SimNetwork(seed=seed, loss=0.2, duplicate=0.05, latency=0.01, jitter=0.02)
        try:
            server = sockfake.ThreadingUDPServer(("127.0.0.1", 0), UpperUDP, network=net)
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            with net.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                client.settimeout(0.2)
                for number in range(200):
                    client.sendto(b"m%d" % number, server.server_address)
                    try:
                        client.recvfrom(100)
                    except TimeoutError:
                        pass
            server.shutdown()
            server.server_close()
            thread.join()
            digests.append(net.digest())
        finally:
            net.close()
    return digests[0], digests[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections: {', '.join(SECTIONS)}")
    parser.add_argument("--clients", type=int, default=None, help="crowd size")
    parser.add_argument("--connections", type=int, default=None,
                        help="sequential connections")
    parser.add_argument("--stack-kib", type=int, default=256,
                        help="thread stack size for the crowd (0: the default)")
    parser.add_argument("--crowd-child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--descriptors-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.crowd_child is not None:
        crowd_child(args.crowd_child, args.stack_kib)
        return
    if args.descriptors_child is not None:
        descriptors_child(args.descriptors_child)
        return
    only = set(args.only.split(","))
    unknown = only - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    count, rounds = (500, 3) if args.quick else (3000, 7)
    exchanges = 200 if args.quick else 1000
    clients = args.clients or (1000 if args.quick else 10_000)
    connections = args.connections or (3000 if args.quick else 20_000)

    build = "compiled (mypyc)" if COMPILED else "pure Python"
    print(f"sockfake simulated network benchmark (Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cores, simulation {build}, {load_average()})")
    if "per-message" in only:
        print_per_message(per_message(count, rounds), count, rounds)
    if "sequential" in only:
        print_sequential(sequential(connections))
    if "crowd" in only:
        print(run_crowd(clients, args.stack_kib))
    if "descriptors" in only:
        print(run_descriptors(1100))
    if "compression" in only:
        compression_count = 3 if args.quick else 7
        print_compression(compression_rounds(exchanges, compression_count), exchanges,
                          compression_count)
    if "determinism" in only:
        first, second = determinism(seed=42)
        print(f"determinism, seed 42, two runs: {'equal' if first == second else 'DIFFERENT'}")
        print(f"  {first}\n  {second}")
    if "calls" in only:
        print_calls(200)
    if "trace" in only:
        trace_count, trace_rounds = (500, 5) if args.quick else (3000, 11)
        print_trace_bounds(trace_bounds(trace_count, trace_rounds), trace_count, trace_rounds)
    print(load_average())


if __name__ == "__main__":
    main()

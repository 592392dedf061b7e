"""A primary-backup key-value store, its clients, and one simulated run of both.

Two nodes: ``n1`` is the primary, ``n2`` its backup. Clients (on host ``local``) send
JSON lines: ``{"op": "write", "key": k, "value": v}`` and ``{"op": "read", "key": k}``.

- The primary serves one operation at a time. Before it answers a read it asks the
  backup to confirm it is still the primary; a write it replicates to the backup and
  then applies. ``ACK_BEFORE_REPLICATE = True`` is the bug: the primary applies and
  acknowledges a write at once and replicates it later, from a queue.
- The backup applies what the primary replicates and answers its confirmations. When
  it has not heard from the primary for ``PROMOTE_AFTER`` seconds it promotes itself:
  from then on it serves clients and refuses the old primary.
- Both keep their data in ``disk`` (``host.disk`` in the simulation): it survives a
  crash; everything else is memory, gone with the process.
- A client sends to the node it believes is the primary (``n1`` first) and moves to
  the other one when told "not primary" or when the connection fails.

``run(seed, fixed=...)`` runs the store for a while under a nemesis (a random fault
schedule from the seed) and returns the history of what clients saw, checked for
linearizability. ``python examples/replicated_kv.py --seed 17 [--buggy]`` replays one
run and prints the result (the reproduce command a failure prints).
"""

from __future__ import annotations

import argparse
import json
import queue
import random
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import sockfake
from sockfake.history import History, LinearizabilityResult, check_linearizable
from sockfake.sim import SimNetwork
from sockfake.sim.nemesis import Fault, Nemesis, describe, random_schedule

PORT = 7000
NODES = ("n1", "n2")
PROMOTE_AFTER = 3.0     # seconds without a word from the primary
PEER_TIMEOUT = 1.0      # for one call between the nodes
CLIENT_TIMEOUT = 2.0    # for one client operation
HEARTBEAT = 0.5
KEYS = ("a", "b")


def call(address: tuple[str, int], message: dict[str, Any], timeout: float) -> dict[str, Any]:
    """One request, one reply, on a new connection; OSError when no reply comes."""
    with socket.create_connection(address, timeout=timeout) as conn:
        conn.sendall(json.dumps(message).encode() + b"\n")
        line = conn.makefile("rb").readline()
    if not line.endswith(b"\n"):
        raise ConnectionResetError("closed without a (whole) reply")
    reply: dict[str, Any] = json.loads(line)
    return reply


class Node(sockfake.StreamRequestHandler):
    """One request of a client or of the other node."""

    def handle(self) -> None:
        try:
            line = self.rfile.readline()
            if line:
                reply = self.server.store.serve(json.loads(line))
                self.wfile.write(json.dumps(reply).encode() + b"\n")
        except OSError:
            pass  # the caller gave up or its host went away: nobody to answer


class Store:
    """One node's process: its role, its disk, its threads."""

    def __init__(self, name: str, disk: dict[str, Any], ack_before_replicate: bool) -> None:
        self.name = name
        self.peer = (NODES[1] if name == NODES[0] else NODES[0], PORT)
        self.disk = disk
        disk.setdefault("data", {})
        disk.setdefault("promoted", False)
        self.primary = name == NODES[0]
        self.ack_before_replicate = ack_before_replicate
        self.lock = threading.Lock()
        self.deposed = False            # the primary learned the backup took over
        self.last_heard = time.monotonic()
        self.backlog: queue.Queue[tuple[str, Any]] = queue.Queue()

    # -- the primary ---------------------------------------------------------------

    def ask_backup(self, message: dict[str, Any]) -> str:
        """"ok", "promoted", or "unknown" (no answer in time: it may have acted)."""
        try:
            reply = call(self.peer, message, PEER_TIMEOUT)
        except OSError:
            return "unknown"
        if reply.get("error") == "promoted":
            self.deposed = True
        return "ok" if reply.get("ok") else "promoted"

    def serve_as_primary(self, request: dict[str, Any]) -> dict[str, Any]:
        if self.deposed:
            return {"error": "not primary"}
        key = request["key"]
        data = self.disk["data"]
        if request["op"] == "read":
            answer = self.ask_backup({"op": "confirm"})
            if answer != "ok":
                return {"error": "not primary" if answer == "promoted" else "unknown"}
            return {"ok": True, "value": data.get(key)}
        if self.ack_before_replicate:  # the bug: acknowledged now, replicated later
            data[key] = request["value"]
            self.backlog.put((key, request["value"]))
            return {"ok": True}
        answer = self.ask_backup({"op": "replicate", "key": key, "value": request["value"]})
        if answer != "ok":
            return {"error": "not primary" if answer == "promoted" else "unknown"}
        data[key] = request["value"]
        return {"ok": True}

    def replicate_backlog(self) -> None:
        while True:
            key, value = self.backlog.get()
            while not self.deposed:
                with self.lock:
                    if self.ask_backup({"op": "replicate", "key": key, "value": value}) != \
                            "unknown":
                        break
                time.sleep(0.2)

    def heartbeat(self) -> None:
        while not self.deposed:
            with self.lock:
                self.ask_backup({"op": "confirm"})
            time.sleep(HEARTBEAT)

    # -- the backup ----------------------------------------------------------------

    def serve_as_backup(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request["op"]
        if op in ("replicate", "confirm"):
            if self.disk["promoted"]:
                return {"error": "promoted"}
            self.last_heard = time.monotonic()
            if op == "replicate":
                self.disk["data"][request["key"]] = request["value"]
            return {"ok": True}
        if not self.disk["promoted"]:
            return {"error": "not primary"}
        data = self.disk["data"]
        if op == "read":
            return {"ok": True, "value": data.get(request["key"])}
        data[request["key"]] = request["value"]
        return {"ok": True}

    def watch_primary(self) -> None:
        while not self.disk["promoted"]:
            time.sleep(HEARTBEAT)
            with self.lock:
                if time.monotonic() - self.last_heard > PROMOTE_AFTER:
                    self.disk["promoted"] = True

    # -- both ----------------------------------------------------------------------

    def serve(self, request: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            if self.primary:
                return self.serve_as_primary(request)
            return self.serve_as_backup(request)

    def run(self, network: Any) -> None:
        """The process: its server and its background threads (until it crashes)."""
        server = sockfake.ThreadingTCPServer((self.name, PORT), Node, network=network)
        server.store = self
        background = [self.heartbeat, self.replicate_backlog] if self.primary else \
            [self.watch_primary]
        for target in background:
            threading.Thread(target=target, daemon=True).start()
        server.serve_forever(poll_interval=3600)


# -- clients and a run -------------------------------------------------------------


def client(name: str, history: History, rng: random.Random, until: float) -> None:
    """Reads and writes (of values unique to this client) until ``until``."""
    node = NODES[0]
    count = 0
    while time.monotonic() < until:
        time.sleep(rng.uniform(0.0, 0.3))
        key = rng.choice(KEYS)
        if rng.random() < 0.5:
            count += 1
            request = {"op": "write", "key": key, "value": f"{name}-{count}"}
            op = history.invoke(name, "write", request["value"], key=key)
        else:
            request = {"op": "read", "key": key}
            op = history.invoke(name, "read", key=key)
        try:
            reply = call((node, PORT), request, CLIENT_TIMEOUT)
        except OSError:
            reply = {"error": "unknown"}
        if reply.get("ok"):
            history.ok(op, reply.get("value"))
            continue
        if reply["error"] == "not primary":
            history.fail(op)                  # refused before doing anything
        else:
            history.unknown(op)               # it may have happened
        node = NODES[1] if node == NODES[0] else NODES[0]


@dataclass
class Run:
    seed: int
    fixed: bool
    schedule: tuple[Fault, ...]
    history: History
    result: LinearizabilityResult
    virtual_seconds: float
    digest: str

    def reproduce(self) -> str:
        return (f"python examples/replicated_kv.py --seed {self.seed}"
                + ("" if self.fixed else " --buggy"))

    def describe(self) -> str:
        return (f"seed {self.seed} ({'fixed' if self.fixed else 'buggy'} store), "
                f"{len(self.history)} operations in {self.virtual_seconds:.3f} virtual s\n"
                f"nemesis:\n{describe(self.schedule)}\n{self.result.describe()}\n"
                f"reproduce: {self.reproduce()}")


def run(seed: int, *, fixed: bool, schedule: tuple[Fault, ...] | None = None,
        clients: int = 3, duration: float = 20.0) -> Run:
    """One run: the store on n1 and n2, clients on local, the nemesis, the check."""
    with SimNetwork(seed=seed, latency=0.002, jitter=0.003) as net, net.intercept():
        for name in NODES:
            net.add_host(name)

        def boot(name: str) -> None:
            host = net.host(name)
            Store(name, host.disk, ack_before_replicate=not fixed).run(host)

        for name in NODES:
            net.host(name).thread(target=boot, args=(name,), daemon=True).start()
        if schedule is None:  # the default nemesis, from the seed
            schedule = random_schedule(net.random, ["n1", "n2", "local"],
                                       crashable=list(NODES), duration=duration)
        nemesis = Nemesis(schedule, boot=boot).start(net)
        history = History(clock=net.time)  # virtual seconds since the start
        until = time.monotonic() + duration
        workers = [threading.Thread(target=client, args=(f"c{i}", history,
                                                         random.Random(seed * 100 + i), until))
                   for i in range(clients)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        nemesis.stop()
        result = check_linearizable(history, "key-value")
        return Run(seed, fixed, schedule, history, result, net.now, net.digest())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--buggy", action="store_true", help="acknowledge before replicating")
    args = parser.parse_args(argv)
    outcome = run(args.seed, fixed=not args.buggy)
    print(outcome.describe())
    return 0 if outcome.result else 1


if __name__ == "__main__":
    sys.exit(main())

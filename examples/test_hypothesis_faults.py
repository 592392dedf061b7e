"""Hypothesis searches fault plans: which datagrams are lost, duplicated, delayed.

The server counts requests, and a retried request must not count twice: it
remembers the last reply per client and request id. Remove that memory and
Hypothesis finds the failure and shrinks it to ``FaultPlan(drops=frozenset({1}))``:
lose the first reply, and the retry is counted again. That shrunk plan is pasted
below as an ``@example`` so it is always checked.
"""

from hypothesis import Phase, example, given, settings

import sockfake
from sockfake.strategies import FaultPlan, fault_plans, sim_seeds
from sockfake.testing import open_testbed


class Counter(sockfake.DatagramRequestHandler):
    """``<id>`` in, the count of distinct requests so far out; retries are idempotent."""

    def handle(self):
        server = self.server
        request_id = self.rfile.read()
        key = (self.client_address, request_id)
        if key not in server.replies:
            server.count += 1
            server.replies[key] = b"%d" % server.count
        self.wfile.write(request_id + b" " + server.replies[key])


def increment(sock, address, request_id, *, net, timeout=1.0, attempts=10):
    for _ in range(attempts):
        sock.sendto(request_id, address)
        deadline = net.time() + timeout
        while (left := deadline - net.time()) > 0:
            sock.settimeout(left)
            try:
                reply = sock.recv(2048)
            except TimeoutError:
                break
            answered, _, count = reply.partition(b" ")
            if answered == request_id:
                return int(count)
    raise TimeoutError(f"request {request_id!r} never answered")


# report_multiple_bugs=False and no explain phase keep a failing search fast
# (benchmarks/bench_shrink.py measures it).
@settings(
    max_examples=50,
    deadline=None,
    report_multiple_bugs=False,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
)
@given(plan=fault_plans(max_index=15), seed=sim_seeds())
@example(plan=FaultPlan(drops=frozenset({1})), seed=0)
def test_retried_increments_count_once(plan, seed):
    with open_testbed(seed=seed, latency=0.01) as bed:
        plan.apply(bed.network)
        srv = bed.udp_server(Counter, concurrency="sync")
        srv.server.count, srv.server.replies = 0, {}
        sock = srv.client()
        counts = [increment(sock, srv.address, b"req-%d" % n, net=bed.network) for n in range(3)]
        assert counts == [1, 2, 3]

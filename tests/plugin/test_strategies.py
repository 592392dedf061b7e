"""Hypothesis strategies: they shrink toward no fault and find a drop-pattern bug."""

import threading

from hypothesis import HealthCheck, Phase, find, given, settings

import sockfake
from sockfake.sim import LinkConditions
from sockfake.strategies import (
    FaultPlan,
    SlowClient,
    fault_plans,
    link_conditions,
    slow_client_behaviours,
)
from sockfake.testing import open_testbed

QUIET = settings(database=None, derandomize=True, suppress_health_check=list(HealthCheck))


class ForgetfulCounter(sockfake.DatagramRequestHandler):
    """The bug: a retried request is counted again (no memory of answered ids)."""

    def handle(self):
        self.server.count += 1
        self.wfile.write(self.rfile.read() + b" %d" % self.server.count)


def counts_with(plan):
    """Three increments by a client that retries after 1 s; the counts it saw."""
    with open_testbed(seed=0, latency=0.01) as bed:
        plan.apply(bed.network)
        srv = bed.udp_server(ForgetfulCounter, concurrency="sync")
        srv.server.count = 0
        sock = srv.client(timeout=1.0)
        counts = []
        for n in range(3):
            request = b"req-%d" % n
            for _ in range(10):
                sock.sendto(request, srv.address)
                try:
                    for _stale in range(100):  # bounded: skips late replies to old tries
                        answered, _, count = sock.recv(100).partition(b" ")
                        if answered == request:
                            break
                    else:
                        raise AssertionError(f"no reply to {request!r} among 100")
                except TimeoutError:
                    continue
                counts.append(int(count))
                break
        return counts


def test_a_drop_pattern_bug_is_found_and_shrunk_to_that_pattern():
    assert counts_with(FaultPlan()) == [1, 2, 3]
    assert counts_with(FaultPlan(drops=frozenset({0}))) == [1, 2, 3]  # a lost request: fine
    minimal = find(
        fault_plans(max_index=12, duplicates=False, delays=False),
        lambda plan: counts_with(plan) != [1, 2, 3],
        settings=settings(QUIET, max_examples=300),
    )
    assert minimal == FaultPlan(drops=frozenset({1}))  # the first reply lost
    assert repr(minimal) == "FaultPlan(drops=frozenset({1}))"
    assert eval(repr(minimal)) == minimal  # pastes into @example as printed


def test_link_conditions_shrink_to_the_perfect_link():
    assert find(link_conditions(), lambda c: True, settings=QUIET) == LinkConditions()
    lossy = find(link_conditions(), lambda c: c.loss > 0.1, settings=QUIET)
    assert lossy.replace(loss=0.0) == LinkConditions()


def test_slow_clients_shrink_to_a_normal_client():
    assert find(slow_client_behaviours(), lambda c: True, settings=QUIET) == SlowClient()
    assert repr(SlowClient("trickle", step=2, interval=0.5)) == (
        "SlowClient('trickle', step=2, interval=0.5)"
    )


class Upper(sockfake.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.readline().upper())


@settings(QUIET, max_examples=25, phases=[Phase.explicit, Phase.generate])
@given(client=slow_client_behaviours(max_interval=30.0))
def test_a_threading_server_answers_a_normal_client_whatever_another_one_does(client):
    with open_testbed(seed=1, handler_errors="ignore") as bed:  # resets raise there
        net = bed.network
        srv = bed.tcp_server(Upper)
        other = threading.Thread(target=client.run, args=(net, srv.address, b"slow\n"))
        other.start()
        assert SlowClient().run(net, srv.address, b"quick\n", timeout=5.0) == b"QUICK\n"
        other.join()

"""The nemesis: schedules as data, drawn from the seed or by Hypothesis (shrinking),
applied to a network at their virtual times and undone at the end."""

from __future__ import annotations

import random

import pytest
from hypothesis import find, settings

from sockfake.errors import SockfakeValueError
from sockfake.sim import SimNetwork
from sockfake.sim.nemesis import Fault, Nemesis, random_schedule, schedules


def network() -> SimNetwork:
    net = SimNetwork(seed=3, time_limit=3600)
    for name in ("n1", "n2", "n3"):
        net.add_host(name)
    return net


def events(net: SimNetwork, *kinds: str) -> list[tuple[float, str, str]]:
    return [(round(e.time, 3), e.kind, e.details) for e in net.trace.events if e.kind in kinds]


def test_faults_begin_and_end_at_their_virtual_times() -> None:
    booted: list[str] = []
    schedule = (
        Fault(1.0, "partition", ("n1",), 2.0),
        Fault(2.0, "crash", ("n2",), 3.0),
        Fault(2.5, "clock", ("n3",), amount=-4.0),
        Fault(4.0, "latency", ("n3",), 1.0, 0.25),
    )
    with network() as net:
        nemesis = Nemesis(schedule, boot=booted.append).start(net)
        net.sleep(4.5)
        assert net.conditions("n3", "n1").latency == 0.25
        assert net.host("n2").crashed
        net.sleep(1.0)
        nemesis.stop()
        assert booted == ["n2"] and not net.host("n2").crashed
        assert net.conditions("n3", "n1").latency == 0.0
        assert net.host_clock("n3")[0] == pytest.approx(net.host_clock("n1")[0] - 4.0)
        assert events(net, "partition", "heal", "crash", "restart")[:1] == \
            [(1.0, "partition", "n1 <-> local")]
        kinds = [(t, k) for t, k, _ in events(net, "heal", "crash", "restart")]
        assert kinds[0] == (2.0, "crash") and (5.0, "restart") in kinds
        assert {t for t, k in kinds if k == "heal"} == {3.0}
        assert nemesis.applied == list(schedule)


def test_stop_undoes_what_is_still_in_force() -> None:
    with network() as net:
        nemesis = Nemesis([Fault(0.5, "partition", ("n1", "n2"), 100.0),
                           Fault(0.5, "crash", ("n3",), 100.0),
                           Fault(0.5, "loss", ("n1",), 100.0, 0.5),
                           Fault(50.0, "crash", ("n1",), 1.0)]).start(net)
        net.sleep(1.0)
        assert net.conditions("n2", "n1").loss == 0.5
        nemesis.stop()
        assert net.now == 1.0
        assert not net.host("n3").crashed and not net.host("n1").crashed
        assert net.conditions("n2", "n1").loss == 0.0
        assert not any(link.partitioned for _, link in net._topology.links())
        assert [t.name for t in net.kernel.threads] == ["main"]


def test_random_schedules_follow_the_seed() -> None:
    def draw(seed: int) -> tuple[Fault, ...]:
        with SimNetwork(seed=seed) as net:
            return random_schedule(net.random, ["n1", "n2", "n3"], faults=8)

    assert draw(1) == draw(1) and draw(1) != draw(2)
    assert len(draw(1)) == 8 and list(draw(1)) == sorted(draw(1))
    only = random_schedule(random.Random(0), ["a", "b"], kinds=["crash"], crashable=["b"])
    assert {(f.kind, f.hosts) for f in only} == {("crash", ("b",))}


def test_a_failing_schedule_shrinks_to_the_fault_that_matters() -> None:
    strategy = schedules(["n1", "n2", "n3"], crashable=["n2", "n3"])
    found = find(strategy, lambda s: any(f.kind == "crash" and f.hosts == ("n3",) for f in s),
                 settings=settings(max_examples=500, database=None))
    assert found == (Fault(0.0, "crash", ("n3",), 0.5),)


def test_bad_schedules_are_named() -> None:
    with pytest.raises(SockfakeValueError, match="unknown fault kind 'flood'"):
        Fault(0, "flood", ("n1",))  # type: ignore[arg-type]
    with pytest.raises(SockfakeValueError, match="duration must be a finite number >= 0"):
        Fault(0, "crash", ("n1",), -1)
    with network() as net, pytest.raises(SockfakeValueError, match="cannot crash it"):
        Nemesis([Fault(0, "crash", ("local",), 1)]).start(net)
    with network() as net, pytest.raises(SockfakeValueError, match="unknown host 'n9'"):
        Nemesis([Fault(0, "crash", ("n9",), 1)]).start(net)


def test_overlapping_faults_end_where_they_began() -> None:
    """Two latency spikes on one host, the first ending first: the links come back to
    their own conditions; two partitions of one pair: healed only when both end."""
    with network() as net:
        net.set_conditions("n1", "n2", latency=0.01)
        nemesis = Nemesis([Fault(1.0, "latency", ("n1",), 2.0, 0.5),
                           Fault(2.0, "latency", ("n1",), 3.0, 0.25),
                           Fault(1.0, "partition", ("n2",), 2.0),
                           Fault(2.0, "partition", ("n2", "n3"), 3.0)]).start(net)
        net.sleep(2.5)
        assert net.conditions("n1", "n2").latency == pytest.approx(0.76)
        net.sleep(1.0)  # 3.5: the first of each has ended
        assert net.conditions("n1", "n2").latency == pytest.approx(0.26)
        link = net._topology.link(net.host("n2"), net.host("local"))
        assert link.partitioned
        net.sleep(2.0)  # 5.5: both have ended
        assert net.conditions("n1", "n2").latency == pytest.approx(0.01)
        assert net.conditions("n1", "n3").latency == 0.0
        assert not link.partitioned
        nemesis.stop()

"""The swarm (``explore=N``'s default) and PCT fitted to the run's length."""

from __future__ import annotations

import random

import pytest

from sockfake.settings import parse_options
from sockfake.sim import SimNetwork
from sockfake.sim.kernel.scheduling import Pct
from sockfake.sim.kernel.threads import SimThread


def _draws(**knobs: object) -> list[str]:
    draws = []
    for seed in range(40):
        # backend="threads": on greenlets the kernel runs a draw's line or opcode switch
        # points as calls (the suite also runs with --sockfake-backend=greenlet).
        with SimNetwork(seed=seed, scheduling="swarm", backend="threads",
                        **knobs) as net:  # type: ignore[arg-type]
            assert net.kernel.swarm is not None
            draws.append(str(net.kernel.swarm))
    return draws


def test_each_seed_draws_its_policy_switch_points_and_depth() -> None:
    draws = _draws()
    assert draws == _draws()  # a seed's draw is the seed's
    joined = "\n".join(draws)
    for part in ("'random'", "'pct'", "'calls'", "'lines'", "'opcodes'",
                 "pct_depth=1", "pct_depth=4", "pct_steps=fitted"):
        assert part in joined, part
    with SimNetwork(seed=7, scheduling="swarm", backend="threads") as net:
        swarm = net.kernel.swarm
        assert swarm is not None
        assert net.kernel.switch_points == swarm.switch_points
        assert net.kernel.policy.name == swarm.policy


def test_a_knob_given_is_kept_and_the_others_still_drawn_as_before() -> None:
    free = _draws()
    pinned = _draws(switch_points="lines", pct_depth=2, pct_steps=500)
    for free_draw, pinned_draw in zip(free, pinned, strict=True):
        assert "switch_points='lines'" in pinned_draw
        assert free_draw.split(",")[0] == pinned_draw.split(",")[0]  # the same policy
        if "'pct'" in pinned_draw:
            assert "pct_depth=2, pct_steps=500" in pinned_draw


def _change_points_inside(length: int, steps: int | None, seeds: int = 200) -> float:
    """The mean share of PCT's change points (depth 3: two) that fall inside a run of
    ``length`` switch points."""
    fired = 0
    with SimNetwork() as net:
        a, b = (SimThread(net.kernel, name, None) for name in ("a", "b"))
        for seed in range(seeds):
            pct = Pct(random.Random(seed), 3, steps)
            for _ in range(length):
                pct.preempt(a, [b])
            fired += 2 - len(pct._fractions) if steps is None else sum(
                1 for step in pct._change_points if step <= length)
        for thread in (a, b):
            thread.go.close()
    return fired / (2 * seeds)


@pytest.mark.parametrize("length", [20, 60, 233, 5000])
def test_fitted_pct_puts_its_change_points_inside_runs_of_any_length(length: int) -> None:
    assert _change_points_inside(length, None) >= 0.5
    if length <= 233:  # the old fixed 2000 steps: mostly past the end of the run
        assert _change_points_inside(length, 2000) < 0.15


def test_explore_defaults_to_the_swarm_and_pct_steps_is_a_checked_marker_key() -> None:
    assert parse_options({"explore": 5}).scheduling == "swarm"
    assert parse_options({"explore": 5, "scheduling": "pct"}).scheduling == "pct"
    assert parse_options({"pct_steps": 100}).pct_steps == 100
    assert parse_options({"pct_steps": None}).pct_steps is None
    for bad in (0, -3, 1.5, "100", True, 10**8):
        with pytest.raises(ValueError, match="pct_steps="):
            parse_options({"pct_steps": bad})
    assert parse_options({"switch_packages": ["requests"]}).switch_packages == ("requests",)
    for bad_names in ("requests", [1], [""]):
        with pytest.raises(ValueError, match="switch_packages="):
            parse_options({"switch_packages": bad_names})
    with pytest.raises(ValueError, match="pct_steps must be at least 1"):
        SimNetwork(scheduling="pct", pct_steps=0)
    with pytest.raises(ValueError, match="scheduling must be one of"):
        SimNetwork(scheduling="swarms")

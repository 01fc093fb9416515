"""The follower benchmark's options for trying a change (tests/benchmarks/bench_follow.py)."""
import pytest

from engine.follow import FollowParams
from tests.benchmarks.bench_follow import param_overrides, pick_pairs


def test_param_overrides_read_python_literals_of_followparams_fields():
    overrides = param_overrides(["open_start_cost=0.02", "tempo_hypotheses=(0.9, 1.1)", "report=frontier"])
    assert overrides == {"open_start_cost": 0.02, "tempo_hypotheses": (0.9, 1.1), "report": "frontier"}
    params = FollowParams(**overrides)
    assert params.open_start_cost == 0.02 and params.tempo_hypotheses == (0.9, 1.1)
    with pytest.raises(ValueError, match="no_such_field"):
        param_overrides(["no_such_field=1"])
    with pytest.raises(ValueError, match="NAME=VALUE"):
        param_overrides(["open_start_cost"])
    assert param_overrides(["window_s=12", "tempo_range=[0.6, 1.8]", "parts_switch_margin=None"]) == {
        "window_s": 12.0, "tempo_range": (0.6, 1.8), "parts_switch_margin": None}
    assert isinstance(param_overrides(["window_s=12"])["window_s"], float)
    with pytest.raises(ValueError, match="takes a float"):
        param_overrides(["open_start_cost=abc"])
    with pytest.raises(ValueError, match="takes a bool"):
        param_overrides(["follow_parts=1"])


def test_pick_pairs_takes_every_other_pair_or_the_named_ones():
    pairs = [{"id": f"p{k}"} for k in range(5)]
    assert [p["id"] for p in pick_pairs(pairs, half=0)] == ["p0", "p2", "p4"]
    assert [p["id"] for p in pick_pairs(pairs, half=1)] == ["p1", "p3"]
    assert [p["id"] for p in pick_pairs(pairs, ids=["p3", "p1"])] == ["p1", "p3"]
    assert pick_pairs(pairs) == pairs
    with pytest.raises(ValueError, match="p9"):
        pick_pairs(pairs, ids=["p9"])
    with pytest.raises(ValueError, match="p1"):  # p1 is not in half 0
        pick_pairs(pairs, half=0, ids=["p1"])

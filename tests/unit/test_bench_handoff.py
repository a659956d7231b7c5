"""bench/bench_handoff.py's pure parts and its lab, and the `motion` verb it drives (with the medium
faked: the bench itself needs the VM)."""

from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.air.airspace import read_config, write_config
from orchestrator.air.mobility import GaussMarkov, RandomDirection, Trajectory
from orchestrator.errors import NotFound, UsageError
from orchestrator.lab.plan import make_plan
from orchestrator.lab.topology import load_topology
from orchestrator.medium import control as medium_control
from orchestrator.verbs import motion

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench_handoff", ROOT / "bench" / "bench_handoff.py")
bench_handoff = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_handoff)


def test_the_longest_interruption_counts_from_the_start_and_to_the_end():
    assert bench_handoff.longest_interruption(100.0, 160.0, [101.0, 103.0, 111.5, 120.0, 130.0, 140.0, 150.0]) == 10.0
    assert bench_handoff.longest_interruption(0.0, 10.0, []) == 10.0
    assert bench_handoff.longest_interruption(0.0, 60.0, [59.0]) == 59.0


def test_peer_link_changes_count_each_peer_gained_or_lost():
    samples = [frozenset({"auth1"}), frozenset({"auth1", "auth2"}), frozenset({"auth2", "auth3"}),
               frozenset({"auth2", "auth3"})]
    assert bench_handoff.link_changes(samples) == 3


def test_a_run_is_summed_up_against_the_standing_still_median():
    transfers = [{"start": 0.0, "end": 0.3, "confirmed": True, "latency_ms": 300.0},
                 {"start": 0.3, "end": 2.0, "confirmed": True, "latency_ms": 1700.0},
                 {"start": 2.0, "end": 12.0, "confirmed": False, "latency_ms": None},
                 {"start": 12.0, "end": 12.2, "confirmed": True, "latency_ms": 200.0}]
    row = bench_handoff.summarize(transfers, 20.0, [frozenset({"a"}), frozenset({"b"})], 250.0)
    assert row["attempted"] == 4 and row["confirmed"] == 3
    assert row["attempted_per_s"] == 0.2 and row["confirmed_per_s"] == 0.15
    assert row["latency_ms"] == {"p50": 300.0, "p95": 1700.0, "max": 1700.0}
    assert row["longest_interruption_s"] == 10.2 and row["peer_link_changes"] == 2
    assert row["worst_excess_over_still_ms"] == 1450.0


def test_the_handoff_lab_keeps_the_mover_in_range_of_an_authority_anywhere_in_its_band():
    plan = make_plan(load_topology(ROOT / "topologies" / "handoff.yaml"))
    area = plan.node("client1").motion.model.area
    authorities = [n for n in plan.nodes if n.role == "authority"]
    for i in range(28):
        for j in range(6):
            p = (area.lo[0] + (area.hi[0] - area.lo[0]) * i / 27, area.lo[1] + (area.hi[1] - area.lo[1]) * j / 5)
            assert any(math.dist(p, a.position) <= a.range for a in authorities), p
    assert any(math.dist(plan.node("client2").position, a.position) <= a.range for a in authorities)


@pytest.fixture
def handoff_lab(tmp_path, monkeypatch):
    """A lab directory with the handoff topology's medium.json; the running medium faked."""
    plan = make_plan(load_topology(ROOT / "topologies" / "handoff.yaml"))
    write_config(tmp_path, replace(medium_control.config_for(plan), mobility_epoch=1000.0))
    (tmp_path / "state.json").write_text(json.dumps({"topology": str(ROOT / "topologies" / "handoff.yaml")}))
    monkeypatch.setattr(medium_control, "positions_now", lambda lab_dir: {"client1": [100.0, 50.0], "auth1": [0, 0],
                                                                      "auth2": [90, 0], "auth3": [180, 0],
                                                                      "auth4": [270, 0], "client2": [135, -40]})

    def change(lab_dir, edit):
        cfg = edit(read_config(lab_dir))
        write_config(lab_dir, cfg)
        return cfg

    monkeypatch.setattr(medium_control, "change", change)
    return tmp_path


def test_motion_sets_the_node_off_by_the_model_at_the_speed_from_where_it_is(handoff_lab):
    out = motion.run(handoff_lab, "client1", "gauss_markov", 5.0)
    assert out["start"] == [100.0, 50.0] and out["mobility_epoch"] > 1000.0
    moving = read_config(handoff_lab).radio("client1").motion
    assert isinstance(moving.model, GaussMarkov) and moving.model.speed == (5.0, 5.0)
    assert moving.start == (100.0, 50.0) and moving.model.area.lo == (0.0, 20.0)
    assert Trajectory(moving).position(0.0) == (100.0, 50.0)
    motion.run(handoff_lab, "client1", "random_direction", 1.5)
    assert isinstance(read_config(handoff_lab).radio("client1").motion.model, RandomDirection)


def test_motion_at_speed_zero_pins_the_node_and_bad_requests_are_refused(handoff_lab):
    out = motion.run(handoff_lab, "client1", "random_walk", 0.0)
    assert out["model"] == "still" and read_config(handoff_lab).radio("client1").motion is None
    assert read_config(handoff_lab).radio("client1").position == (100.0, 50.0)
    with pytest.raises(UsageError, match="model 'teleport': one of random_waypoint"):
        motion.run(handoff_lab, "client1", "teleport", 1.0)
    with pytest.raises(UsageError, match="client2 has no area to roam"):
        motion.run(handoff_lab, "client2", "random_walk", 1.0)
    with pytest.raises(UsageError, match="speed 500 m/s"):
        motion.run(handoff_lab, "client1", "random_walk", 500.0)
    with pytest.raises(NotFound, match="no node 'nobody'"):
        motion.run(handoff_lab, "nobody", "random_walk", 1.0)

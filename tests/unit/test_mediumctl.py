"""The controller side of the medium, against a fake medium (a thread that applies medium.json)."""

import json
import os
import threading
import time

import pytest

from orchestrator.errors import MeshpayError, UsageError
from orchestrator.air.airspace import read_config, write_config
from orchestrator.lab import labdir
from orchestrator.lab.plan import make_plan
from orchestrator.lab.topology import parse_topology
from orchestrator.medium import control as medium_control
from orchestrator.medium.process import STATS_FILE
from orchestrator.verbs import fault, move

TOPO = """
name: m
medium: {model: log_distance, exponent: 2.5}
nodes:
  a: {role: authority, position: [0, 0]}
  b: {role: authority, position: [100, 0]}
  c: {role: client, position: [200, 0]}
"""


def write_stats(lab_dir, version, when=None):
    tmp = lab_dir / "stats.tmp"  # as the medium does: never a half-written file
    tmp.write_text(json.dumps({"version": version, "time": when or time.time(), "frames_per_s": 1.0,
                               "cpu_pct": 0.5}))
    os.replace(tmp, lab_dir / STATS_FILE)


@pytest.fixture
def lab_dir(tmp_path):
    plan = make_plan(parse_topology(TOPO))
    write_config(tmp_path, medium_control.config_for(plan))
    labdir.write_state(tmp_path, {"lab": "m", "medium": {"pid": os.getpid(), "netns": plan.medium.netns}})
    labdir.write_lab_json(tmp_path, {"lab": "m", "nodes": {n.name: {"netns": n.netns, "api_url": n.api_url}
                                                        for n in plan.nodes}})
    write_stats(tmp_path, 0)
    stop = threading.Event()

    def fake_medium():  # reports whichever version of medium.json it last saw
        while not stop.wait(0.02):
            write_stats(tmp_path, read_config(tmp_path).version)

    t = threading.Thread(target=fake_medium, daemon=True)
    t.start()
    yield tmp_path
    stop.set()
    t.join()


def test_config_follows_the_plan():
    plan = make_plan(parse_topology(TOPO))
    cfg = medium_control.config_for(plan)
    assert cfg.model.kind == "log_distance" and cfg.model.exponent == 2.5
    assert [(r.name, r.mac, r.position) for r in cfg.radios] == [(n.name, n.mac, n.position) for n in plan.nodes]


def test_health_none_running_stalled_dead(tmp_path):
    assert medium_control.health(tmp_path, {})["state"] == "none"
    write_stats(tmp_path, 0)
    assert medium_control.health(tmp_path, {"medium": {"pid": os.getpid()}})["state"] == "running"
    write_stats(tmp_path, 0, when=time.time() - 60)
    assert medium_control.health(tmp_path, {"medium": {"pid": os.getpid()}})["state"] == "stalled"
    dead = medium_control.health(tmp_path, {"medium": {"pid": 2**22 + 1}})
    assert dead["state"] == "dead" and "perfect medium" in dead["detail"]


def test_move_waits_for_the_medium_and_reports_who_hears_the_node(lab_dir):
    out = move.run(lab_dir, "c", 50.0, 10.0)
    assert out["in_range"] == ["a", "b"] and out["medium_version"] == 1
    assert read_config(lab_dir).radio("c").position == (50.0, 10.0)
    assert all(s < -40 for s in out["signal_dbm"].values())


def test_move_of_an_unknown_node_names_the_nodes(lab_dir):
    with pytest.raises(LookupError, match="nodes: a, b, c"):
        move.run(lab_dir, "zed", 0, 0)


def test_isolate_then_heal(lab_dir):
    assert fault.run(lab_dir, "isolate", "b")["isolated"] == ["b"]
    assert read_config(lab_dir).isolated == {"b"}
    assert fault.run(lab_dir, "heal", "b")["isolated"] == []


def test_unknown_fault_says_which_exist(lab_dir):
    with pytest.raises(UsageError, match="kill, restart, isolate, heal"):
        fault.run(lab_dir, "explode", "a")


def test_medium_verbs_refuse_when_the_medium_is_dead(lab_dir):
    state = labdir.read_state(lab_dir)
    state["medium"]["pid"] = 2**22 + 1
    labdir.write_state(lab_dir, state)
    with pytest.raises(MeshpayError, match="perfect medium"):
        move.run(lab_dir, "a", 1, 1)


def test_medium_verbs_refuse_without_a_medium(lab_dir):
    state = labdir.read_state(lab_dir)
    del state["medium"]
    labdir.write_state(lab_dir, state)
    with pytest.raises(UsageError, match="medium: none"):
        fault.run(lab_dir, "isolate", "a")


def test_status_line_shows_medium_losses_apart_from_model_drops():
    line = medium_control.running_detail({"frames_per_s": 12.0, "cpu_pct": 3.0, "medium_lost": 4, "overruns": 1,
                                     "model_dropped": 9, "dropped_range": 7, "dropped_loss": 2})
    assert "lost by the medium: 4 (1 receive overflows)" in line
    assert "dropped by the model: 9 (7 out of range, 2 lost by a draw)" in line
    timed = medium_control.running_detail({"model_dropped": 12, "dropped_range": 7, "dropped_loss": 2,
                                           "dropped_collision": 3, "collisions": 8})
    assert "dropped by the model: 12 (7 out of range, 2 lost by a draw, 3 to collisions)" in timed


def test_up_starts_the_medium_with_the_topologys_seed(tmp_path):
    plan = make_plan(parse_topology(TOPO.replace("exponent: 2.5}", "exponent: 2.5, seed: 42}")))
    argv = medium_control.medium_argv(tmp_path, plan)
    assert argv[argv.index("--seed") + 1] == "42"
    default = medium_control.medium_argv(tmp_path, make_plan(parse_topology(TOPO)))
    assert default[default.index("--seed") + 1] == "1"  # reproducible unless the topology says otherwise


def test_a_bad_seed_is_refused():
    from orchestrator.lab.topology import TopologyError
    with pytest.raises(TopologyError, match="seed"):
        parse_topology(TOPO.replace("exponent: 2.5}", "exponent: 2.5, seed: -3}"))

"""Moving radios on the medium's side: positions from the trajectories at a (fake) wall-clock time,
who hears whom from them, the epoch `up` sets once, and `move` pinning a moving node."""

import json
import math
import os
import threading
import time

from dataclasses import replace

import pytest

from orchestrator.air.airspace import Airspace, Movers, mac_bytes, moving_positions, read_config, write_config
from orchestrator.air.mobility import Trajectory
from orchestrator.lab import labdir
from orchestrator.lab.plan import make_plan
from orchestrator.lab.topology import parse_topology
from orchestrator.medium import control as medium_control
from orchestrator.medium.process import Counters, STATS_FILE, StatsWriter
from orchestrator.verbs import move, status

# c walks along y = 0 at 10 m/s, bouncing between x = 0 and x = 300: in and out of a's and b's range
TOPO = """
name: m
medium: {loss: false}
nodes:
  a: {role: authority, position: [0, 0]}
  b: {role: authority, position: [150, 0]}
  c:
    role: client
    position: [0, 0]
    mobility: {model: random_walk, area: [[0, 0], [300, 0.001]], speed: [10, 10], interval: 1000}
"""
EPOCH = 1_700_000_000.0


def config(epoch=EPOCH):
    return replace(medium_control.config_for(make_plan(parse_topology(TOPO))), mobility_epoch=epoch)


def hears(cfg, tx: str) -> list[str]:
    return sorted(link.rx for link in Airspace(cfg).links[mac_bytes(cfg.radio(tx).mac)])


def test_moving_radios_are_where_their_trajectory_is_at_the_clocks_time():
    cfg, movers = config(), Movers()
    path = Trajectory(cfg.radio("c").motion)
    for t in (0.0, 2.5, 7.0, 12.0):
        now = movers.at(cfg, EPOCH + t)
        assert now.radio("c").position == path.position(t)
        assert now.radio("a").position == (0.0, 0.0) and now.radio("b").position == (150.0, 0.0)
    assert cfg.radio("c").position == (0.0, 0.0)  # the configuration itself keeps the start


def test_who_hears_whom_follows_the_moving_radio():
    cfg, movers = config(), Movers()
    path = Trajectory(cfg.radio("c").motion)
    seen = set()
    for t in range(0, 60):
        here = path.position(float(t))
        want = [n for n in ("a", "b") if math.dist(here, cfg.radio(n).position) <= 100.0]
        assert hears(movers.at(cfg, EPOCH + t), "c") == want, t
        seen.add(tuple(want))
    assert len(seen) > 1  # it did walk into or out of someone's range


def test_nothing_moves_before_the_epoch_is_set():
    cfg = config(epoch=None)
    assert not cfg.moving
    assert Movers().at(cfg, EPOCH + 100) is cfg


def test_moving_positions_names_only_the_movers():
    cfg = Movers().at(config(), EPOCH + 3.0)
    x, y = Trajectory(cfg.radio("c").motion).position(3.0)
    assert moving_positions(cfg) == {"c": [round(x, 3), round(y, 3)]}


def test_motion_and_epoch_survive_the_config_file(tmp_path):
    write_config(tmp_path, config())
    back = read_config(tmp_path)
    assert back == config() and back.moving


def test_stats_carry_the_positions_and_their_time(tmp_path):
    StatsWriter(tmp_path, Counters()).write(3, {"positions": {"c": [1.0, 2.0]}, "positions_time": EPOCH,
                                                "mobility_epoch": EPOCH - 5})
    stats = json.loads((tmp_path / STATS_FILE).read_text())
    assert stats["version"] == 3 and stats["positions"] == {"c": [1.0, 2.0]} and stats["positions_time"] == EPOCH


@pytest.fixture
def lab_dir(tmp_path):
    plan = make_plan(parse_topology(TOPO))
    write_config(tmp_path, medium_control.config_for(plan))
    labdir.write_state(tmp_path, {"lab": "m", "medium": {"pid": os.getpid(), "netns": plan.medium.netns}})
    labdir.write_lab_json(tmp_path, {"lab": "m", "nodes": {
        n.name: {"netns": n.netns, "api_url": n.api_url, "rest_url": n.api_url, "role": n.role,
                 "mesh_ip": n.mesh_ip, "mac": n.mac, "position": list(n.position)} for n in plan.nodes}})
    stop = threading.Event()

    def fake_medium():  # applies medium.json as the real one does, positions included
        movers = Movers()
        while not stop.wait(0.02):
            cfg = read_config(tmp_path)
            now = movers.at(cfg, time.time())
            extra = {"positions": moving_positions(now)} if cfg.moving else {}
            tmp = tmp_path / "stats.tmp"
            tmp.write_text(json.dumps({"version": cfg.version, "time": time.time(), **extra}))
            os.replace(tmp, tmp_path / STATS_FILE)

    t = threading.Thread(target=fake_medium, daemon=True)
    t.start()
    time.sleep(0.1)
    yield tmp_path
    stop.set()
    t.join()


def test_the_epoch_is_set_once_so_a_second_up_does_not_restart_the_clock(lab_dir):
    first = medium_control.start_mobility(lab_dir)
    assert first is not None and read_config(lab_dir).mobility_epoch == first
    assert medium_control.start_mobility(lab_dir) == first
    assert read_config(lab_dir).version == 1


def test_status_shows_where_a_moving_node_is_now(lab_dir, monkeypatch):
    monkeypatch.setattr(status.mesh, "stations", lambda netns, ifname: [])
    monkeypatch.setattr(status, "is_healthy", lambda url, timeout: True)
    medium_control.start_mobility(lab_dir)
    time.sleep(0.2)
    rows = {row["node"]: row["position"] for row in status.run(lab_dir)["nodes"]}
    assert rows["a"] == [0.0, 0.0] and rows["c"] != [0.0, 0.0]  # lab.json still says c is at [0, 0]


def test_move_pins_a_moving_node_and_says_so(lab_dir):
    medium_control.start_mobility(lab_dir)
    out = move.run(lab_dir, "c", 140.0, 0.0)
    assert "stopped: c was moving (random_walk)" in out["mobility"] and out["in_range"] == ["b"]
    cfg = read_config(lab_dir)
    assert cfg.radio("c").motion is None and cfg.radio("c").position == (140.0, 0.0) and not cfg.moving
    assert "mobility" not in move.run(lab_dir, "a", 1.0, 0.0)  # a node that never moved says nothing

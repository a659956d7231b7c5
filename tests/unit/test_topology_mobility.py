"""A topology's `mobility:` blocks: validated at the edge, errors naming file, line and field."""

import math

import pytest

from orchestrator.mobility import RandomWalk, RandomWaypoint, Trajectory, node_seed
from orchestrator.plan import make_plan
from orchestrator.topology import TopologyError, load_topology, parse_topology

HEAD = "name: m\n{medium}nodes:\n  a: {{role: authority, position: [0, 0]}}\n"
WAYPOINT = "{model: random_waypoint, area: [[0, 0], [300, 300]], speed: [1, 5], pause: 2}"


def topo(mobility: str = WAYPOINT, medium: str = "", position: str = "[10, 10]", extra: str = ""):
    text = HEAD.format(medium=medium) + f"  c:\n    role: client\n    position: {position}\n    mobility: {mobility}\n"
    return parse_topology(text + extra, "t.yaml")


def test_a_mobility_block_reaches_the_plan_seeded_by_the_lab_seed_and_the_name():
    plan = make_plan(topo(extra="mobility_seed: 5\n"))
    motion = plan.node("c").motion
    assert isinstance(motion.model, RandomWaypoint) and motion.model.pause == 2.0
    assert motion.seed == node_seed(5, "c") and motion.start == (10.0, 10.0)
    assert plan.node("a").motion is None


def test_the_lab_seed_defaults_to_a_fixed_one_and_a_node_may_have_its_own():
    assert make_plan(topo()).node("c").motion.seed == node_seed(1, "c")
    own = topo("{model: random_walk, area: [[0, 0], [50, 50]], speed: [1, 3], interval: 4, seed: 77}")
    motion = make_plan(own).node("c").motion
    assert isinstance(motion.model, RandomWalk) and motion.model.interval == 4.0 and motion.seed == 77


def test_random_walk_interval_defaults_to_five_seconds():
    motion = make_plan(topo("{model: random_walk, area: [[0, 0], [50, 50]], speed: [1, 3]}")).node("c").motion
    assert motion.model.interval == 5.0


@pytest.mark.parametrize("mobility, where, says", [
    ("{model: teleport, area: [[0, 0], [9, 9]], speed: [1, 2]}", "nodes.c.mobility.model", "random_waypoint"),
    ("{model: random_walk, area: [[0, 0], [0, 9]], speed: [1, 2]}", "nodes.c.mobility.area", "min below its max"),
    ("{model: random_walk, area: [[0, 0], [200000, 9]], speed: [1, 2]}", "nodes.c.mobility.area", "100000"),
    ("{model: random_walk, area: [[0, 0], [50, 50]], speed: [3, 1]}", "nodes.c.mobility.speed", "min <= max"),
    ("{model: random_walk, area: [[0, 0], [50, 50]], speed: [0, 1]}", "nodes.c.mobility.speed", "0 < min"),
    ("{model: random_walk, area: [[0, 0], [50, 50]], speed: [1, 500]}", "nodes.c.mobility.speed", "<= 100"),
    ("{model: random_walk, area: [[0, 0], [50, 50]], speed: [1, 2], pause: 1}", "nodes.c.mobility", "takes interval"),
    ("{model: random_waypoint, area: [[0, 0], [50, 50]], speed: [1, 2], interval: 1}", "nodes.c.mobility",
     "takes pause"),
    ("{model: random_walk, area: [[0, 0], [50, 50]], speed: [1, 2], interval: 0}", "nodes.c.mobility.interval",
     "greater than 0"),
    ("{model: random_walk, area: [[0, 0], [50, 50]], speed: [1, 2], wings: 2}", "nodes.c.mobility.wings",
     "Extra inputs"),
])
def test_bad_mobility_names_the_file_line_and_field(mobility, where, says):
    with pytest.raises(TopologyError, match=rf"t.yaml: line 7: {where}: .*{says}"):
        topo(mobility)


def test_a_start_outside_the_area_is_refused_at_the_position():
    with pytest.raises(TopologyError, match=r"t.yaml: line 6: nodes.c.position: \[400.0, 10.0\] is outside"):
        topo(position="[400, 10]")


def test_mobility_needs_the_medium():
    with pytest.raises(TopologyError, match=r"t.yaml: line 8: nodes.c.mobility: .*needs the wireless medium"):
        topo(medium="medium: none\n")


def test_the_shipped_mobile_topology_takes_client1_out_of_auth1s_range_early_and_for_long():
    # what tests/e2e/test_mobility.py relies on: within 20 s and for the next two minutes
    plan = make_plan(load_topology("topologies/mobile.yaml"))
    assert plan.medium is not None and plan.neighbours("client1") == ["auth1"]
    assert {n.name for n in plan.nodes if n.motion} == {"client1", "client2"}
    path, auth1 = Trajectory(plan.node("client1").motion), plan.node("auth1")
    dist = [(t / 2, math.dist(path.position(t / 2), auth1.position)) for t in range(300)]
    left = next(t for t, d in dist if d > auth1.range)
    assert left <= 20 and all(d > auth1.range for t, d in dist if t >= left)

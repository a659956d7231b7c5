"""A topology's `mobility:` blocks: validated at the edge, errors naming file, line and field."""

import math

import pytest

from orchestrator.air.mobility import (
    GaussMarkov,
    Group,
    RandomDirection,
    RandomWalk,
    RandomWaypoint,
    Trace,
    Trajectory,
    node_seed,
)
from orchestrator.lab.plan import make_plan
from orchestrator.lab.topology import TopologyError, load_topology, parse_topology

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


# --- the models added for issue 16 ---


LEADER = "  l:\n    role: client\n    position: [100, 100]\n    mobility: " + WAYPOINT + "\n"


def test_gauss_markov_and_random_direction_reach_the_plan_with_their_defaults():
    gm = make_plan(topo("{model: gauss_markov, area: [[0, 0], [50, 50]], speed: [1, 3]}")).node("c").motion.model
    assert isinstance(gm, GaussMarkov) and (gm.alpha, gm.interval) == (0.75, 1.0)
    gm = make_plan(topo("{model: gauss_markov, area: [[0, 0], [50, 50]], speed: [1, 3], alpha: 0.5, interval: 2}")
                   ).node("c").motion.model
    assert (gm.alpha, gm.interval) == (0.5, 2.0)
    rd = make_plan(topo("{model: random_direction, area: [[0, 0], [50, 50]], speed: [1, 3], pause: 3}")).node("c").motion
    assert isinstance(rd.model, RandomDirection) and rd.model.pause == 3.0 and rd.seed == node_seed(1, "c")


def test_a_group_member_follows_its_leaders_own_motion():
    plan = make_plan(topo("{model: group, follow: l, radius: 3}", extra=LEADER))
    member, leader = plan.node("c").motion, plan.node("l").motion
    assert isinstance(member.model, Group) and member.model.leader == leader
    assert member.model.radius == 3.0 and member.model.interval == 5.0
    assert member.model.area == leader.model.area  # by default, the leader's
    assert member.seed != leader.seed


@pytest.mark.parametrize("mobility, extra, where, says", [
    ("{model: group, follow: nobody}", LEADER, "nodes.c.mobility.follow", "'nobody' is not another node"),
    ("{model: group, follow: c}", LEADER, "nodes.c.mobility.follow", "'c' is not another node"),
    ("{model: group, follow: a}", LEADER, "nodes.c.mobility.follow", "must move by a model of its own"),
    ("{model: group}", "", "nodes.c.mobility", "group needs follow"),
    ("{model: group, follow: l, speed: [1, 2]}", LEADER, "nodes.c.mobility", "speed is not an option of group"),
    ("{model: gauss_markov, area: [[0, 0], [50, 50]], speed: [1, 2], alpha: 2}", "", "nodes.c.mobility.alpha",
     "less than or equal to 1"),
    ("{model: gauss_markov, area: [[0, 0], [50, 50]], speed: [1, 2], pause: 1}", "", "nodes.c.mobility",
     "takes alpha, interval"),
    ("{model: random_direction, area: [[0, 0], [50, 50]]}", "", "nodes.c.mobility", "random_direction needs speed"),
    ("{model: trace}", "", "nodes.c.mobility", "trace needs file"),
    ("{model: trace, file: x.movements, area: [[0, 0], [1, 1]]}", "", "nodes.c.mobility",
     "area is not an option of trace"),
])
def test_bad_new_mobility_names_the_file_line_and_field(mobility, extra, where, says):
    with pytest.raises(TopologyError, match=rf"t.yaml: line \d+: {where}: .*{says}"):
        topo(mobility, extra=extra)


def test_a_member_following_a_member_is_refused():
    chain = "  d:\n    role: client\n    position: [10, 10]\n    mobility: {model: group, follow: c}\n"
    with pytest.raises(TopologyError, match=r"nodes.d.mobility.follow: c must move by a model of its own"):
        topo("{model: group, follow: l}", extra=LEADER + chain)


def trace_topo(tmp_path, trace: str, mobility: str, position: str = "[0, 0]"):
    (tmp_path / "traces").mkdir(exist_ok=True)
    (tmp_path / "traces" / "t.movements").write_text(trace)
    text = HEAD.format(medium="") + f"  c:\n    role: client\n    position: {position}\n    mobility: {mobility}\n"
    path = tmp_path / "t.yaml"
    path.write_text(text)
    return load_topology(path)


def test_a_trace_is_read_relative_to_the_topology_and_its_node_chosen(tmp_path):
    topology = trace_topo(tmp_path, "0 0 0 10 10 0\n0 5 5 10 5 50\n",
                          "{model: trace, file: traces/t.movements, trace_node: 1}", position="[5, 5]")
    motion = make_plan(topology).node("c").motion
    assert isinstance(motion.model, Trace) and motion.model.points == ((0.0, 5.0, 5.0), (10.0, 5.0, 50.0))
    assert Trajectory(motion).position(5.0) == pytest.approx((5.0, 27.5))


def test_a_bad_trace_line_is_refused_naming_the_topology_field_and_the_traces_line(tmp_path):
    with pytest.raises(TopologyError, match=r"t.yaml: line 7: nodes.c.mobility: .*t.movements: line 2 \(node 1\): "
                                            r"'oops' is not a number"):
        trace_topo(tmp_path, "0 0 0\n0 oops 0\n", "{model: trace, file: traces/t.movements}")


def test_a_missing_trace_file_or_node_is_refused(tmp_path):
    with pytest.raises(TopologyError, match=r"nodes.c.mobility: .*nope.movements: cannot read the trace"):
        trace_topo(tmp_path, "0 0 0\n", "{model: trace, file: traces/nope.movements}")
    with pytest.raises(TopologyError, match=r"nodes.c.mobility: .*trace_node 3: traces/t.movements has nodes 0 to 0"):
        trace_topo(tmp_path, "0 0 0\n", "{model: trace, file: traces/t.movements, trace_node: 3}")


def test_a_replayed_node_must_start_where_its_trace_does(tmp_path):
    with pytest.raises(TopologyError, match=r"t.yaml: line 6: nodes.c.position: \[1.0, 1.0\] is not where its trace "
                                            r"starts, \[0.0, 0.0\]"):
        trace_topo(tmp_path, "0 0 0 10 10 0\n", "{model: trace, file: traces/t.movements}", position="[1, 1]")


def test_the_shipped_models_topology_moves_every_client_and_keeps_each_in_range_of_an_authority():
    plan = make_plan(load_topology("topologies/mobility-models.yaml"))
    movers = {n.name: n.motion for n in plan.nodes if n.motion}
    assert {m.model.kind for m in movers.values()} == {"trace", "gauss_markov", "random_direction",
                                                      "random_waypoint", "group"}
    authorities = [n for n in plan.nodes if n.role == "authority"]
    for name, motion in movers.items():
        path = Trajectory(motion)
        for t in range(0, 600, 2):
            p = path.position(float(t))
            assert any(math.dist(p, a.position) <= a.range for a in authorities), (name, t, p)

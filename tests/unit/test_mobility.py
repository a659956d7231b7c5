"""Mobility models: a trajectory is a pure function of (model, seed, start, time)."""

import itertools
import math
import random

import pytest

from orchestrator.air.mobility import (
    Area,
    GaussMarkov,
    Group,
    Motion,
    RandomDirection,
    RandomWalk,
    RandomWaypoint,
    Trace,
    Trajectory,
    node_seed,
)

AREA = Area((0.0, 0.0), (300.0, 200.0))
WAYPOINT = Motion(RandomWaypoint(AREA, (1.0, 5.0), 2.0), seed=7, start=(10.0, 10.0))
# a small box and fast legs, so the walk hits its borders many times
WALK = Motion(RandomWalk(Area((0.0, 0.0), (20.0, 10.0)), (2.0, 6.0), 5.0), seed=3, start=(5.0, 5.0))
TIMES = [i * 0.37 for i in range(2000)]  # 740 s


def legs_until(path: Trajectory, t: float) -> list:
    """The legs a trajectory has drawn, covering at least [0, t]: what these tests check speeds
    and pauses on (a group member's legs are its deviation from its place in the group)."""
    path.position(max(t, 1e-9))
    return list(path._legs)


@pytest.mark.parametrize("motion", [WAYPOINT, WALK])
def test_the_same_seed_gives_the_same_positions_however_it_is_sampled(motion):
    dense = Trajectory(motion)
    for t in TIMES:
        dense.position(t)
    once = [Trajectory(motion).position(t) for t in TIMES[::97]]  # a fresh trajectory per sample
    shuffled = Trajectory(motion)
    order = TIMES[::97]
    backwards = {t: shuffled.position(t) for t in reversed(order)}
    assert once == [dense.position(t) for t in order] == [backwards[t] for t in order]


def test_another_seed_gives_another_path():
    other = Motion(WAYPOINT.model, seed=8, start=WAYPOINT.start)
    assert Trajectory(WAYPOINT).position(30.0) != Trajectory(other).position(30.0)


@pytest.mark.parametrize("motion", [WAYPOINT, WALK])
def test_it_starts_at_its_start_and_stays_inside_its_area(motion):
    path = Trajectory(motion)
    assert path.position(0.0) == path.position(-5.0) == motion.start
    assert all(motion.model.area.contains(path.position(t)) for t in TIMES)


@pytest.mark.parametrize("motion", [WAYPOINT, WALK])
def test_no_step_is_faster_than_the_top_speed(motion):
    path = Trajectory(motion)
    top = motion.model.speed[1]
    for t0, t1 in itertools.pairwise(TIMES):
        assert math.dist(path.position(t0), path.position(t1)) <= top * (t1 - t0) + 1e-9


@pytest.mark.parametrize("motion", [WAYPOINT, WALK])
def test_each_leg_moves_at_a_speed_within_the_bounds(motion):
    lo, hi = motion.model.speed
    legs = legs_until(Trajectory(motion), 3000.0)
    moving = [math.hypot(*leg.velocity) for leg in legs if leg.velocity != (0.0, 0.0)]
    assert len(moving) > 20
    assert all(lo - 1e-9 <= v <= hi + 1e-9 for v in moving)


def test_random_waypoint_pauses_at_each_waypoint():
    legs = legs_until(Trajectory(WAYPOINT), 600.0)
    path = Trajectory(WAYPOINT)
    for move, pause in zip(legs[::2], legs[1::2]):
        assert pause.velocity == (0.0, 0.0) and pause.t1 - pause.t0 == pytest.approx(2.0)
        assert pause.origin == pytest.approx(move.at(move.t1, AREA))  # it stops where it arrived
        mid = (pause.t0 + pause.t1) / 2
        assert path.position(pause.t0 + 0.01) == path.position(mid) == path.position(pause.t1)


def test_random_walk_reflects_off_the_borders():
    area = Area((0.0, 0.0), (10.0, 10.0))
    path = Trajectory(Motion(RandomWalk(area, (4.0, 4.0), 100.0), seed=1, start=(5.0, 5.0)))
    leg = legs_until(path, 1.0)[0]
    vx, vy = leg.velocity
    # follow the first leg until it has crossed a border unfolded: folded, it is the mirror image
    t = next(t / 10 for t in range(1, 1000) if not area.contains(
        (5.0 + vx * t / 10, 5.0 + vy * t / 10)))
    t += 0.5
    x, y = 5.0 + vx * t, 5.0 + vy * t
    mirror = (-x if x < 0 else 20.0 - x if x > 10 else x, -y if y < 0 else 20.0 - y if y > 10 else y)
    assert path.position(t) == pytest.approx(mirror)
    assert area.fold((23.0, -3.0)) == pytest.approx((3.0, 3.0))  # twice the width on: back where it was


def test_random_walk_keeps_a_direction_for_its_interval():
    legs = legs_until(Trajectory(WALK), 100.0)
    assert [leg.t1 - leg.t0 for leg in legs[:5]] == pytest.approx([5.0] * 5)
    assert len({leg.velocity for leg in legs[:5]}) == 5


def test_global_random_state_does_not_change_a_path():
    before = Trajectory(WALK).position(123.0)
    random.seed(999)
    random.random()
    assert Trajectory(WALK).position(123.0) == before


def test_node_seeds_are_stable_and_differ_by_node_and_lab_seed():
    assert node_seed(1, "client1") == node_seed(1, "client1") == 2103180646481368889  # not hash(): salted
    assert len({node_seed(1, "client1"), node_seed(1, "client2"), node_seed(2, "client1")}) == 3


@pytest.mark.parametrize("motion", [WAYPOINT, WALK])
def test_a_motion_round_trips_through_json(motion):
    assert Motion.from_json(motion.to_json()) == motion


def test_an_unknown_model_in_json_is_refused():
    with pytest.raises(ValueError, match="unknown mobility model 'teleport'"):
        Motion.from_json({**WALK.to_json(), "model": "teleport"})


# --- the models added for issue 16: random direction, Gauss-Markov, group, trace replay ---


DIRECTION = Motion(RandomDirection(Area((0.0, 0.0), (40.0, 20.0)), (2.0, 6.0), 1.5), seed=5, start=(10.0, 10.0))
GAUSS = Motion(GaussMarkov(Area((0.0, 0.0), (60.0, 30.0)), (1.0, 5.0), 0.75, 1.0), seed=11, start=(30.0, 15.0))
LEADER = Motion(RandomWaypoint(Area((10.0, 10.0), (290.0, 190.0)), (1.0, 3.0), 1.0), seed=2, start=(50.0, 50.0))
MEMBER = Motion(Group(LEADER, Area((0.0, 0.0), (300.0, 200.0)), 4.0, 3.0), seed=9, start=(55.0, 47.0))
TRACE = Motion(Trace(((2.0, 0.0, 0.0), (12.0, 30.0, 40.0), (20.0, 30.0, 0.0))), seed=0, start=(0.0, 0.0))
NEW = [DIRECTION, GAUSS, MEMBER, TRACE]


def top_speed(motion: Motion) -> float:
    m = motion.model
    if isinstance(m, Group):  # the leader's, plus a deviation leg across the whole disc
        return m.leader.model.speed[1] + 2 * m.radius / m.interval
    if isinstance(m, Trace):
        return max(math.dist(a[1:], b[1:]) / (b[0] - a[0]) for a, b in zip(m.points, m.points[1:]))
    return m.speed[1]


@pytest.mark.parametrize("motion", NEW, ids=lambda m: m.model.kind)
def test_new_models_are_pure_functions_of_seed_start_and_time(motion):
    dense = Trajectory(motion)
    for t in TIMES:
        dense.position(t)
    order = TIMES[::97]
    once = [Trajectory(motion).position(t) for t in order]
    backwards = Trajectory(motion)
    seen = {t: backwards.position(t) for t in reversed(order)}
    assert once == [dense.position(t) for t in order] == [seen[t] for t in order]
    assert Motion.from_json(motion.to_json()) == motion  # what the medium reads back from medium.json


@pytest.mark.parametrize("motion", NEW, ids=lambda m: m.model.kind)
def test_new_models_start_at_their_start_stay_inside_and_keep_to_their_speed(motion):
    path = Trajectory(motion)
    assert path.position(0.0) == path.position(-1.0) == motion.start
    area = motion.model.area
    assert all(area.contains(path.position(t)) for t in TIMES)
    top = top_speed(motion)
    for t0, t1 in itertools.pairwise(TIMES):
        assert math.dist(path.position(t0), path.position(t1)) <= top * (t1 - t0) + 1e-9


@pytest.mark.parametrize("motion", [DIRECTION, GAUSS, MEMBER], ids=lambda m: m.model.kind)
def test_another_seed_gives_another_path_for_the_new_random_models(motion):
    other = Motion(motion.model, seed=motion.seed + 1, start=motion.start)
    assert [Trajectory(motion).position(t) for t in (10.0, 50.0)] != [Trajectory(other).position(t) for t in (10.0, 50.0)]


def test_random_direction_goes_border_to_border_and_pauses_there():
    area = DIRECTION.model.area
    legs = legs_until(Trajectory(DIRECTION), 500.0)
    moves, pauses = legs[::2], legs[1::2]
    assert len(moves) > 20
    for move, pause in zip(moves, pauses):
        end = move.unfolded(move.t1)
        on_border = any(abs(end[i] - b[i]) < 1e-6 for i in (0, 1) for b in (area.lo, area.hi))
        assert on_border and area.contains(area.clamp(end)), (move, end)
        assert pause.velocity == (0.0, 0.0) and pause.t1 - pause.t0 == pytest.approx(1.5)
        lo, hi = DIRECTION.model.speed
        assert lo - 1e-9 <= math.hypot(*move.velocity) <= hi + 1e-9
    # it covers the area, rather than crowding its middle as random waypoint does
    path = Trajectory(DIRECTION)
    xs = [path.position(t)[0] for t in TIMES]
    assert min(xs) < 4 and max(xs) > 36


def test_gauss_markov_with_full_memory_keeps_its_heading_and_without_turns_at_random():
    area = Area((0.0, 0.0), (10_000.0, 10_000.0))  # far from every border for the first legs
    straight = Trajectory(Motion(GaussMarkov(area, (3.0, 3.0), 1.0, 1.0), seed=4, start=(5000.0, 5000.0)))
    legs = legs_until(straight, 30.0)[:30]
    assert all(leg.velocity == pytest.approx(legs[0].velocity) for leg in legs)
    jumpy = Trajectory(Motion(GaussMarkov(area, (3.0, 3.0), 0.0, 1.0), seed=4, start=(5000.0, 5000.0)))
    headings = {round(math.atan2(leg.velocity[1], leg.velocity[0]), 3) for leg in legs_until(jumpy, 30.0)}
    assert len(headings) > 20


def test_gauss_markov_speeds_stay_within_bounds_and_update_every_interval():
    legs = legs_until(Trajectory(GAUSS), 300.0)
    assert all(leg.t1 - leg.t0 == pytest.approx(1.0) for leg in legs)
    assert all(1.0 - 1e-9 <= math.hypot(*leg.velocity) <= 5.0 + 1e-9 for leg in legs)


def test_a_group_member_keeps_its_place_by_its_leader_within_its_radius():
    member, leader = Trajectory(MEMBER), Trajectory(LEADER)
    offset = (MEMBER.start[0] - LEADER.start[0], MEMBER.start[1] - LEADER.start[1])
    gaps = []
    for t in TIMES:
        lead, own = leader.position(t), member.position(t)
        gaps.append(math.dist(own, (lead[0] + offset[0], lead[1] + offset[1])))
    assert max(gaps) <= MEMBER.model.radius + 1e-9
    assert max(gaps) > MEMBER.model.radius / 2  # it does wander, not just copy the leader
    assert math.dist(leader.position(700.0), LEADER.start) > 20  # and the group goes somewhere


def test_a_group_member_is_held_inside_its_own_area():
    fence = Area((40.0, 40.0), (70.0, 70.0))
    member = Trajectory(Motion(Group(LEADER, fence, 4.0, 3.0), seed=9, start=(55.0, 47.0)))
    positions = [member.position(t) for t in TIMES]
    assert all(fence.contains(p) for p in positions)
    assert any(p[0] == 70.0 or p[1] == 70.0 for p in positions)  # the leader left the fence behind


def test_a_trace_is_replayed_in_straight_lines_between_its_timed_positions():
    path = Trajectory(TRACE)
    assert path.position(1.0) == (0.0, 0.0)  # before its first time: at its first position
    assert path.position(2.0) == (0.0, 0.0)
    assert path.position(7.0) == pytest.approx((15.0, 20.0))
    assert path.position(12.0) == pytest.approx((30.0, 40.0))
    assert path.position(16.0) == pytest.approx((30.0, 20.0))
    assert path.position(20.0) == path.position(1e6) == pytest.approx((30.0, 0.0))  # then stays
    assert TRACE.model.area == Area((0.0, 0.0), (30.0, 40.0))


def test_a_one_point_trace_stands_still():
    path = Trajectory(Motion(Trace(((0.0, 3.0, 4.0),)), seed=0, start=(3.0, 4.0)))
    assert path.position(0.5) == path.position(99.0) == (3.0, 4.0)

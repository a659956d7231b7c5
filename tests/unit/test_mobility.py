"""Mobility models: a trajectory is a pure function of (model, seed, start, time)."""

import math
import random

import pytest

from orchestrator.mobility import Area, Motion, RandomWalk, RandomWaypoint, Trajectory, node_seed

AREA = Area((0.0, 0.0), (300.0, 200.0))
WAYPOINT = Motion(RandomWaypoint(AREA, (1.0, 5.0), 2.0), seed=7, start=(10.0, 10.0))
# a small box and fast legs, so the walk hits its borders many times
WALK = Motion(RandomWalk(Area((0.0, 0.0), (20.0, 10.0)), (2.0, 6.0), 5.0), seed=3, start=(5.0, 5.0))
TIMES = [i * 0.37 for i in range(2000)]  # 740 s


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
    for t0, t1 in zip(TIMES, TIMES[1:]):
        assert math.dist(path.position(t0), path.position(t1)) <= top * (t1 - t0) + 1e-9


@pytest.mark.parametrize("motion", [WAYPOINT, WALK])
def test_each_leg_moves_at_a_speed_within_the_bounds(motion):
    lo, hi = motion.model.speed
    legs = Trajectory(motion).legs_until(3000.0)
    moving = [math.hypot(*leg.velocity) for leg in legs if leg.velocity != (0.0, 0.0)]
    assert len(moving) > 20
    assert all(lo - 1e-9 <= v <= hi + 1e-9 for v in moving)


def test_random_waypoint_pauses_at_each_waypoint():
    legs = Trajectory(WAYPOINT).legs_until(600.0)
    path = Trajectory(WAYPOINT)
    for move, pause in zip(legs[::2], legs[1::2]):
        assert pause.velocity == (0.0, 0.0) and pause.t1 - pause.t0 == pytest.approx(2.0)
        assert pause.origin == pytest.approx(move.at(move.t1, AREA))  # it stops where it arrived
        mid = (pause.t0 + pause.t1) / 2
        assert path.position(pause.t0 + 0.01) == path.position(mid) == path.position(pause.t1)


def test_random_walk_reflects_off_the_borders():
    area = Area((0.0, 0.0), (10.0, 10.0))
    path = Trajectory(Motion(RandomWalk(area, (4.0, 4.0), 100.0), seed=1, start=(5.0, 5.0)))
    leg = path.legs_until(1.0)[0]
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
    legs = Trajectory(WALK).legs_until(100.0)
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

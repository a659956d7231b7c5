"""Seeded mobility models: where a moving node is, t seconds after its motion started.

Pure. A trajectory is a function of (model, seed, start, t): its legs are drawn in order from its own
`random.Random(seed)` and only as far as someone asks, so the position at a time does not depend on
how often, or in what order, it was sampled before. That is what makes a run repeatable: the medium
samples it twice a second, a test samples it once, both see the same path. Positions are metres,
times seconds, speeds m/s; a node never leaves its model's area.

- Random waypoint: pick a uniform point in the area, travel to it in a straight line at a uniform
  speed in [min, max], pause there, repeat.
- Random walk: pick a uniform direction and a uniform speed in [min, max], walk for `interval`
  seconds, bouncing off the area's borders (reflection), repeat.
- Random direction (Royer, Melliar-Smith, Moser 2001): pick a direction and a speed, travel until the
  area's border, pause there, pick a new direction pointing back inside, repeat. Unlike random
  waypoint, nodes do not crowd the middle of the area.
- Gauss-Markov (Liang, Haas 1999; as in Camp, Boleng, Davies 2002): every `interval` seconds speed
  and direction are drawn as s' = α·s + (1-α)·s̄ + √(1-α²)·N(0, σ_s) (direction likewise), so the
  motion has memory: α = 0 is a random walk, α = 1 a straight line. Near a border the mean
  direction turns towards the area's centre; a leg that still reaches a border is reflected.
- Group (reference point group mobility, Hong, Gerla, Pei, Chiang 1999): a member follows a
  leader's motion (the group's reference point) at its starting offset from it, plus a deviation of
  its own that wanders within `radius` metres; it is held inside its area.
- Trace replay: straight lines between timed positions read from a file (orchestrator/air/trace.py),
  still at the last one after the trace ends.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
from dataclasses import dataclass, field

Point = tuple[float, float]
Waypoint = tuple[float, float, float]  # (t seconds, x metres, y metres)


@dataclass(frozen=True)
class Area:
    lo: Point
    hi: Point

    def contains(self, p: Point) -> bool:
        return all(self.lo[i] <= p[i] <= self.hi[i] for i in (0, 1))

    def fold(self, p: Point) -> Point:
        """Where an unbounded straight walk ends up once every crossing of a border is reflected."""
        return (_fold(p[0], self.lo[0], self.hi[0]), _fold(p[1], self.lo[1], self.hi[1]))

    def clamp(self, p: Point) -> Point:
        """The nearest point of the area."""
        return (min(max(p[0], self.lo[0]), self.hi[0]), min(max(p[1], self.lo[1]), self.hi[1]))

    @property
    def centre(self) -> Point:
        return ((self.lo[0] + self.hi[0]) / 2, (self.lo[1] + self.hi[1]) / 2)

    def to_json(self) -> list:
        return [list(self.lo), list(self.hi)]

    @classmethod
    def from_json(cls, data: list) -> Area:
        return cls(_point(data[0]), _point(data[1]))


def _fold(x: float, lo: float, hi: float) -> float:
    width = hi - lo
    if width <= 0:
        return lo
    y = (x - lo) % (2 * width)
    return lo + (2 * width - y if y > width else y)


def _flipped(x: float, lo: float, hi: float) -> bool:
    """True when an unbounded walk to x crossed the borders [lo, hi] an odd number of times: folded
    back inside, it now heads the other way."""
    width = hi - lo
    return width > 0 and math.floor((x - lo) / width) % 2 == 1


@dataclass(frozen=True)
class RandomWaypoint:
    area: Area
    speed: tuple[float, float]  # m/s, [min, max]
    pause: float = 0.0  # seconds at each waypoint

    kind = "random_waypoint"


@dataclass(frozen=True)
class RandomWalk:
    area: Area
    speed: tuple[float, float]  # m/s, [min, max]
    interval: float = 5.0  # seconds per direction

    kind = "random_walk"


@dataclass(frozen=True)
class RandomDirection:
    area: Area
    speed: tuple[float, float]  # m/s, [min, max]
    pause: float = 0.0  # seconds at the border before turning

    kind = "random_direction"


@dataclass(frozen=True)
class GaussMarkov:
    area: Area
    speed: tuple[float, float]  # m/s, [min, max]: the mean speed is their middle, σ_s a quarter of their span
    alpha: float = 0.75  # memory: 0 draws each step afresh, 1 never turns
    interval: float = 1.0  # seconds between updates of speed and direction

    kind = "gauss_markov"


@dataclass(frozen=True)
class Group:
    leader: Motion  # the reference point: the leader's own motion
    area: Area  # the member is held inside it
    radius: float = 5.0  # metres the member wanders from its place in the group
    interval: float = 5.0  # seconds per deviation leg

    kind = "group"


@dataclass(frozen=True)
class Trace:
    points: tuple[Waypoint, ...]  # times increasing

    kind = "trace"

    @property
    def area(self) -> Area:
        xs, ys = [p[1] for p in self.points], [p[2] for p in self.points]
        return Area((min(xs), min(ys)), (max(xs), max(ys)))

    @property
    def start(self) -> Point:
        return (self.points[0][1], self.points[0][2])


Model = RandomWaypoint | RandomWalk | RandomDirection | GaussMarkov | Group | Trace
KINDS = tuple(m.kind for m in (RandomWaypoint, RandomWalk, RandomDirection, GaussMarkov, Group, Trace))

# Gauss-Markov's direction noise (radians): wide enough that a walk turns within a few steps.
GAUSS_MARKOV_SIGMA_DIRECTION = math.pi / 4
# A leg ending on a border stops there up to rounding: closer than this is on it.
ON_BORDER_M = 1e-6
# Within this share of the area's width of a border, Gauss-Markov's mean direction points inside.
GAUSS_MARKOV_EDGE = 0.1


@dataclass(frozen=True)
class Motion:
    """Everything a trajectory is a function of, besides the time."""

    model: Model
    seed: int
    start: Point

    def to_json(self) -> dict:
        m = self.model
        if isinstance(m, Group):
            extra = {"leader": m.leader.to_json(), "area": m.area.to_json(), "radius": m.radius,
                     "interval": m.interval}
        elif isinstance(m, Trace):
            extra = {"points": [list(p) for p in m.points]}
        else:
            extra = {"area": m.area.to_json(), "speed": list(m.speed)}
            extra |= ({"pause": m.pause} if isinstance(m, RandomWaypoint | RandomDirection)
                      else {"interval": m.interval})
            if isinstance(m, GaussMarkov):
                extra["alpha"] = m.alpha
        return {"model": m.kind, **extra, "seed": self.seed, "start": list(self.start)}

    @classmethod
    def from_json(cls, data: dict) -> Motion:
        kind = data["model"]
        model: Model
        if kind == Group.kind:
            model = Group(Motion.from_json(data["leader"]), Area.from_json(data["area"]), float(data["radius"]),
                          float(data["interval"]))
        elif kind == Trace.kind:
            model = Trace(tuple((float(t), float(x), float(y)) for t, x, y in data["points"]))
        elif kind in (RandomWaypoint.kind, RandomWalk.kind, RandomDirection.kind, GaussMarkov.kind):
            area = Area.from_json(data["area"])
            speed = (float(data["speed"][0]), float(data["speed"][1]))
            if kind == RandomWaypoint.kind:
                model = RandomWaypoint(area, speed, float(data.get("pause", 0.0)))
            elif kind == RandomDirection.kind:
                model = RandomDirection(area, speed, float(data.get("pause", 0.0)))
            elif kind == RandomWalk.kind:
                model = RandomWalk(area, speed, float(data["interval"]))
            else:
                model = GaussMarkov(area, speed, float(data["alpha"]), float(data["interval"]))
        else:
            raise ValueError(f"unknown mobility model {kind!r}; known: {', '.join(KINDS)}")
        return cls(model, int(data["seed"]), _point(data["start"]))


def _point(p: list) -> Point:
    return (float(p[0]), float(p[1]))


def node_seed(lab_seed: int, node: str) -> int:
    """A node's own seed: stable across processes and machines (Python's hash() is salted per run)."""
    return int.from_bytes(hashlib.sha256(f"{lab_seed}:{node}".encode()).digest()[:8], "big")


@dataclass(frozen=True)
class Leg:
    """Straight motion from `origin` at `velocity` during [t0, t1]; the area folds it back inside."""

    t0: float
    t1: float
    origin: Point
    velocity: Point

    def unfolded(self, t: float) -> Point:
        dt = t - self.t0
        return (self.origin[0] + self.velocity[0] * dt, self.origin[1] + self.velocity[1] * dt)

    def at(self, t: float, area: Area) -> Point:
        return area.fold(self.unfolded(t))


@dataclass
class Trajectory:
    """One motion's path, drawn lazily. A group member's path is its own deviation legs (relative to
    its place in the group) over its leader's trajectory."""

    motion: Motion
    _rng: random.Random = field(init=False, repr=False)
    _legs: list[Leg] = field(init=False, repr=False)
    _ends: list[float] = field(init=False, repr=False)
    _leader: Trajectory | None = field(init=False, repr=False, default=None)
    # Gauss-Markov's state after the last leg: speed (m/s), direction (radians), mean direction
    _gm: tuple[float, float, float] | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.motion.seed)
        self._legs, self._ends = [], []
        if isinstance(self.motion.model, Group):
            self._leader = Trajectory(self.motion.model.leader)

    def position(self, t: float) -> Point:
        """Where the node is t seconds after its motion began (at the start before that)."""
        if not math.isfinite(t):
            raise ValueError(f"time must be finite, not {t}")
        if t <= 0:
            return self.motion.start
        leg = self._leg(t)
        m = self.motion.model
        if isinstance(m, Group):
            assert self._leader is not None
            lead, lead0, start = self._leader.position(t), m.leader.start, self.motion.start
            dx, dy = leg.unfolded(t)
            return m.area.clamp((lead[0] + start[0] - lead0[0] + dx, lead[1] + start[1] - lead0[1] + dy))
        return leg.at(t, m.area)

    def _leg(self, t: float) -> Leg:
        while not self._ends or self._ends[-1] < t:
            self._extend()
        return self._legs[bisect.bisect_left(self._ends, t)]

    def _extend(self) -> None:
        m = self.motion.model
        t0 = self._ends[-1] if self._ends else 0.0
        if isinstance(m, Group):
            self._extend_group(m, t0)
        elif isinstance(m, Trace):
            self._extend_trace(m)
        else:
            here = self._legs[-1].at(t0, m.area) if self._legs else self.motion.start
            if isinstance(m, RandomWaypoint):
                self._extend_waypoint(m, t0, here)
            elif isinstance(m, RandomWalk):
                speed, angle = self._rng.uniform(*m.speed), self._rng.uniform(0.0, 2 * math.pi)
                self._add(Leg(t0, t0 + m.interval, here, (speed * math.cos(angle), speed * math.sin(angle))))
            elif isinstance(m, RandomDirection):
                self._extend_direction(m, t0, here)
            else:
                self._extend_gauss_markov(m, t0, here)

    def _extend_waypoint(self, m: RandomWaypoint, t0: float, here: Point) -> None:
        rng = self._rng
        speed = rng.uniform(*m.speed)
        target = (rng.uniform(m.area.lo[0], m.area.hi[0]), rng.uniform(m.area.lo[1], m.area.hi[1]))
        d = math.dist(here, target)
        duration = d / speed
        v = ((target[0] - here[0]) / duration, (target[1] - here[1]) / duration) if d > 0 else (0.0, 0.0)
        self._add(Leg(t0, t0 + duration, here, v))
        if m.pause > 0:
            self._add(Leg(t0 + duration, t0 + duration + m.pause, target, (0.0, 0.0)))

    def _extend_direction(self, m: RandomDirection, t0: float, here: Point) -> None:
        rng, (lo, hi) = self._rng, (m.area.lo, m.area.hi)
        speed = rng.uniform(*m.speed)
        # Directions pointing back inside: away from every border the node stands on.
        for _ in range(64):
            angle = rng.uniform(0.0, 2 * math.pi)
            c, s = math.cos(angle), math.sin(angle)
            if not ((here[0] <= lo[0] + ON_BORDER_M and c < 0) or (here[0] >= hi[0] - ON_BORDER_M and c > 0)
                    or (here[1] <= lo[1] + ON_BORDER_M and s < 0) or (here[1] >= hi[1] - ON_BORDER_M and s > 0)):
                break
        else:  # a corner leaves a quarter of the circle: 64 misses in a row do not happen
            c, s = _unit(here, m.area.centre)
        # Time to the first border along (c, s); the leg ends exactly on it.
        limits = [(hi[0] - here[0]) / (speed * c) if c > 0 else (lo[0] - here[0]) / (speed * c) if c < 0 else math.inf,
                  (hi[1] - here[1]) / (speed * s) if s > 0 else (lo[1] - here[1]) / (speed * s) if s < 0 else math.inf]
        duration = max(min(limits), 0.0)
        leg = Leg(t0, t0 + duration, here, (speed * c, speed * s))
        self._add(leg)
        if m.pause > 0:
            self._add(Leg(t0 + duration, t0 + duration + m.pause, m.area.clamp(leg.unfolded(leg.t1)), (0.0, 0.0)))

    def _extend_gauss_markov(self, m: GaussMarkov, t0: float, here: Point) -> None:
        rng, area = self._rng, m.area
        mean_speed, sigma_speed = (m.speed[0] + m.speed[1]) / 2, (m.speed[1] - m.speed[0]) / 4
        if self._gm is None:
            direction = rng.uniform(0.0, 2 * math.pi)
            self._gm = (rng.uniform(*m.speed), direction, direction)
        else:
            speed, direction, mean_direction = self._gm
            aim = mean_direction
            margin = [GAUSS_MARKOV_EDGE * (area.hi[i] - area.lo[i]) for i in (0, 1)]
            if any(here[i] < area.lo[i] + margin[i] or here[i] > area.hi[i] - margin[i] for i in (0, 1)):
                aim = math.atan2(*reversed(_unit(here, area.centre)))
            aim = direction + _wrap(aim - direction)  # the mean on the same turn as the direction
            a, noise = m.alpha, math.sqrt(1 - m.alpha ** 2)
            speed = a * speed + (1 - a) * mean_speed + noise * rng.gauss(0.0, sigma_speed)
            direction = a * direction + (1 - a) * aim + noise * rng.gauss(0.0, GAUSS_MARKOV_SIGMA_DIRECTION)
            self._gm = (min(max(speed, m.speed[0]), m.speed[1]), direction, mean_direction)
        speed, direction, mean_direction = self._gm
        leg = Leg(t0, t0 + m.interval, here, (speed * math.cos(direction), speed * math.sin(direction)))
        self._add(leg)
        # A leg folded back off a border leaves the node heading the other way: so does its memory.
        end = leg.unfolded(leg.t1)
        vx, vy = math.cos(direction), math.sin(direction)
        if _flipped(end[0], area.lo[0], area.hi[0]):
            vx = -vx
        if _flipped(end[1], area.lo[1], area.hi[1]):
            vy = -vy
        self._gm = (speed, math.atan2(vy, vx), mean_direction)

    def _extend_group(self, m: Group, t0: float) -> None:
        # the deviation from the member's place in the group: waypoints uniform in a disc of `radius`
        here = self._legs[-1].unfolded(t0) if self._legs else (0.0, 0.0)
        r, angle = m.radius * math.sqrt(self._rng.random()), self._rng.uniform(0.0, 2 * math.pi)
        target = (r * math.cos(angle), r * math.sin(angle))
        v = ((target[0] - here[0]) / m.interval, (target[1] - here[1]) / m.interval)
        self._add(Leg(t0, t0 + m.interval, here, v))

    def _extend_trace(self, m: Trace) -> None:
        pts, i = m.points, len(self._legs)
        if i == 0 and pts[0][0] > 0:  # before the trace's first time: where it starts
            self._add(Leg(0.0, pts[0][0], m.start, (0.0, 0.0)))
            return
        k = i - (1 if pts[0][0] > 0 else 0)  # the leg from point k to point k + 1
        if k + 1 >= len(pts):
            self._add(Leg(pts[-1][0], math.inf, (pts[-1][1], pts[-1][2]), (0.0, 0.0)))
            return
        (ta, xa, ya), (tb, xb, yb) = pts[k], pts[k + 1]
        self._add(Leg(ta, tb, (xa, ya), ((xb - xa) / (tb - ta), (yb - ya) / (tb - ta))))

    def _add(self, leg: Leg) -> None:
        self._legs.append(leg)
        self._ends.append(leg.t1)


def _unit(p: Point, q: Point) -> Point:
    d = math.dist(p, q)
    return ((q[0] - p[0]) / d, (q[1] - p[1]) / d) if d > 0 else (1.0, 0.0)


def _wrap(angle: float) -> float:
    """The same angle in [-π, π)."""
    return (angle + math.pi) % (2 * math.pi) - math.pi

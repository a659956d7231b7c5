"""Seeded mobility models: where a moving node is, t seconds after its motion started.

Pure. A trajectory is a function of (model, seed, start, t): its legs are drawn in order from its own
`random.Random(seed)` and only as far as someone asks, so the position at a time does not depend on
how often, or in what order, it was sampled before. That is what makes a run repeatable: the medium
samples it twice a second, a test samples it once, both see the same path.

- Random waypoint: pick a uniform point in the area, travel to it in a straight line at a uniform
  speed in [min, max], pause there, repeat.
- Random walk: pick a uniform direction and a uniform speed in [min, max], walk for `interval`
  seconds, bouncing off the area's borders (reflection), repeat.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
from dataclasses import dataclass, field

Point = tuple[float, float]


@dataclass(frozen=True)
class Area:
    lo: Point
    hi: Point

    def contains(self, p: Point) -> bool:
        return all(self.lo[i] <= p[i] <= self.hi[i] for i in (0, 1))

    def fold(self, p: Point) -> Point:
        """Where an unbounded straight walk ends up once every crossing of a border is reflected."""
        return (_fold(p[0], self.lo[0], self.hi[0]), _fold(p[1], self.lo[1], self.hi[1]))


def _fold(x: float, lo: float, hi: float) -> float:
    width = hi - lo
    if width <= 0:
        return lo
    y = (x - lo) % (2 * width)
    return lo + (2 * width - y if y > width else y)


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


Model = RandomWaypoint | RandomWalk


@dataclass(frozen=True)
class Motion:
    """Everything a trajectory is a function of, besides the time."""

    model: Model
    seed: int
    start: Point

    def to_json(self) -> dict:
        m = self.model
        extra = {"pause": m.pause} if isinstance(m, RandomWaypoint) else {"interval": m.interval}
        return {"model": m.kind, "area": [list(m.area.lo), list(m.area.hi)], "speed": list(m.speed),
                **extra, "seed": self.seed, "start": list(self.start)}

    @classmethod
    def from_json(cls, data: dict) -> Motion:
        area = Area(_point(data["area"][0]), _point(data["area"][1]))
        speed = (float(data["speed"][0]), float(data["speed"][1]))
        if data["model"] == RandomWaypoint.kind:
            model: Model = RandomWaypoint(area, speed, float(data.get("pause", 0.0)))
        elif data["model"] == RandomWalk.kind:
            model = RandomWalk(area, speed, float(data["interval"]))
        else:
            raise ValueError(f"unknown mobility model {data['model']!r}")
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

    def at(self, t: float, area: Area) -> Point:
        dt = t - self.t0
        return area.fold((self.origin[0] + self.velocity[0] * dt, self.origin[1] + self.velocity[1] * dt))


@dataclass
class Trajectory:
    motion: Motion
    _rng: random.Random = field(init=False, repr=False)
    _legs: list[Leg] = field(init=False, repr=False)
    _ends: list[float] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.motion.seed)
        self._legs, self._ends = [], []

    def position(self, t: float) -> Point:
        """Where the node is t seconds after its motion began (at the start before that)."""
        if not math.isfinite(t):
            raise ValueError(f"time must be finite, not {t}")
        if t <= 0:
            return self.motion.start
        while not self._ends or self._ends[-1] < t:
            self._extend()
        leg = self._legs[bisect.bisect_left(self._ends, t)]
        return leg.at(t, self.motion.model.area)

    def legs_until(self, t: float) -> list[Leg]:
        """The legs drawn so far, covering at least [0, t]: what tests check speeds and pauses on."""
        self.position(t)
        return list(self._legs)

    def _extend(self) -> None:
        m, rng = self.motion.model, self._rng
        t0 = self._ends[-1] if self._ends else 0.0
        here = self._legs[-1].at(t0, m.area) if self._legs else self.motion.start
        speed = rng.uniform(*m.speed)
        if isinstance(m, RandomWaypoint):
            target = (rng.uniform(m.area.lo[0], m.area.hi[0]), rng.uniform(m.area.lo[1], m.area.hi[1]))
            d = math.dist(here, target)
            duration = d / speed
            v = ((target[0] - here[0]) / duration, (target[1] - here[1]) / duration) if d > 0 else (0.0, 0.0)
            self._add(Leg(t0, t0 + duration, here, v))
            if m.pause > 0:
                self._add(Leg(t0 + duration, t0 + duration + m.pause, target, (0.0, 0.0)))
        else:
            angle = rng.uniform(0.0, 2 * math.pi)
            self._add(Leg(t0, t0 + m.interval, here, (speed * math.cos(angle), speed * math.sin(angle))))

    def _add(self, leg: Leg) -> None:
        self._legs.append(leg)
        self._ends.append(leg.t1)

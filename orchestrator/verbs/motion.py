"""`motion NODE MODEL SPEED`: set a node moving by a mobility model at one speed, from where it is
now, from now on (SPEED 0 pins it there). What bench/bench_handoff.py drives each run with.

The area comes from the node's `mobility:` block in the lab's topology (the area it may roam), the
speed is [SPEED, SPEED] m/s, every other option the model's default, the seed the node's own. The lab's mobility clock
restarts: any other moving node sets off again along its own model from where it is now (a
trajectory is a function of its start, so the others' paths change too; the bench moves one node).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from orchestrator.errors import NotFound, UsageError
from orchestrator.air import mobility
from orchestrator.air.airspace import MediumConfig
from orchestrator.lab import labdir
from orchestrator.lab.topology import MAX_SPEED, load_topology
from orchestrator.medium import control as medium_control

MODELS = ("random_waypoint", "random_walk", "random_direction", "gauss_markov")


def motion_at(model: str, speed: float, area: mobility.Area, seed: int, start: tuple[float, float]) -> mobility.Motion:
    """`model` at exactly `speed` m/s in `area` from `start`, with each model's default options."""
    pace = (speed, speed)
    kinds: dict[str, mobility.Model] = {
        "random_waypoint": mobility.RandomWaypoint(area, pace), "random_walk": mobility.RandomWalk(area, pace),
        "random_direction": mobility.RandomDirection(area, pace), "gauss_markov": mobility.GaussMarkov(area, pace)}
    if model not in kinds:
        raise UsageError(f"model {model!r}: one of {', '.join(MODELS)}")
    return mobility.Motion(kinds[model], seed, start)


def run(lab_dir: Path, node: str, model: str, speed: float) -> dict:
    lab_dir = Path(lab_dir)
    if not 0 <= speed <= MAX_SPEED:
        raise UsageError(f"speed {speed:g} m/s: give 0 (stand still) to {MAX_SPEED:g}")
    topo = load_topology(labdir.read_state(lab_dir)["topology"])
    if node not in topo.nodes:
        raise NotFound(f"no node {node!r} in this lab; nodes: {', '.join(sorted(topo.nodes))}")
    planned = topo.motion_of(node)
    if planned is None or isinstance(planned.model, mobility.Trace):
        raise UsageError(f"{node} has no area to roam: give it a random_*, gauss_markov or group `mobility:` "
                         "block in the topology")
    where = medium_control.positions_now(lab_dir)
    area = planned.model.area
    start = area.clamp((float(where[node][0]), float(where[node][1])))
    moving = motion_at(model, speed, area, planned.seed, start) if speed > 0 else None

    def edit(cfg: MediumConfig) -> MediumConfig:
        radios = []
        for r in cfg.radios:
            if r.name == node:
                r = replace(r, position=start, motion=moving)
            elif r.motion is not None:
                here = (float(where[r.name][0]), float(where[r.name][1]))
                r = replace(r, position=here, motion=replace(r.motion, start=here))
            radios.append(r)
        return replace(cfg, radios=tuple(radios), mobility_epoch=time.time())

    cfg = medium_control.change(lab_dir, edit)
    return {"node": node, "model": model if speed > 0 else "still", "speed": speed, "start": list(start),
            "mobility_epoch": cfg.mobility_epoch, "medium_version": cfg.version}

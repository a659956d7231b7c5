"""`impair A B [--loss %] [--delay ms] [--jitter ms] [--rate Mb/s] [--direction both|a_to_b|b_to_a]`
and `impair A B --clear`: what the medium does to the frames of one link on top of its radio model,
changed while the lab runs (as containerlab's `tools netem` does for a wire). The values given
replace what was in force on that direction; the running medium applies them before this returns.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from orchestrator.errors import UsageError
from orchestrator.air.airspace import Impairment, MediumConfig, impairments_in_force
from orchestrator.medium import control as medium_control

DIRECTIONS = ("both", "a_to_b", "b_to_a")
LIMITS = {"loss_pct": 100.0, "delay_ms": 10_000.0, "jitter_ms": 10_000.0, "rate_mbps": 1_000.0}


def run(lab_dir: Path, a: str, b: str, loss_pct: float = 0.0, delay_ms: float = 0.0, jitter_ms: float = 0.0,
        rate_mbps: float = 0.0, direction: str = "both", clear: bool = False) -> dict:
    """Returns {"link": [a, b], "medium_version", "impairments": every impairment in force, as
    medium.json has them}. Raises errors.UsageError (a bad value or direction, a node paired with
    itself; errors.NotFound: an unknown node), naming what to change; nothing is changed then."""
    values = {"loss_pct": loss_pct, "delay_ms": delay_ms, "jitter_ms": jitter_ms, "rate_mbps": rate_mbps}
    for name, value in values.items():
        if not 0 <= value <= LIMITS[name]:
            raise UsageError(f"{name} {value:g}: give 0 to {LIMITS[name]:g}; nothing was changed")
    if direction not in DIRECTIONS:
        raise UsageError(f"direction {direction!r}: use {', '.join(DIRECTIONS)}; nothing was changed")
    if a == b:
        raise UsageError(f"a link joins two nodes: {a} twice; name another for B")
    imp = Impairment(**values)
    ways = [(a, b)] * (direction in ("both", "a_to_b")) + [(b, a)] * (direction in ("both", "b_to_a"))

    def edit(cfg: MediumConfig) -> MediumConfig:
        for node in (a, b):
            cfg.radio(node)  # errors.NotFound naming the nodes there are, before anything changes
        impairments = dict(cfg.impairments)
        for way in ways:
            if clear or imp.none:
                impairments.pop(way, None)
            else:
                impairments[way] = imp
        return replace(cfg, impairments=impairments)

    cfg = medium_control.change(Path(lab_dir), edit)
    return {"link": [a, b], "medium_version": cfg.version, "impairments": impairments_in_force(cfg)}

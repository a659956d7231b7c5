"""`move NODE X Y`: put a node somewhere else; the running medium re-computes who hears it.

The kernel's 802.11s stack reacts as it would to a real move: peer links to radios now out of
range time out, new ones form, HWMP finds other paths. A node that was following a mobility model
stops there: `move` pins it, for the rest of the lab's life (a re-run of `up` keeps it pinned).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from orchestrator.errors import UsageError
from orchestrator.air.airspace import Airspace, MediumConfig, mac_bytes
from orchestrator.lab.topology import MAX_COORD
from orchestrator.medium import control as medium_control


def run(lab_dir: Path, node: str, x: float, y: float) -> dict:
    if not all(abs(c) <= MAX_COORD for c in (x, y)):
        raise UsageError(f"({x:g}, {y:g}): each coordinate must be within ±{MAX_COORD:g} m; nothing was moved")

    was_moving: list[str] = []

    def edit(cfg: MediumConfig) -> MediumConfig:
        motion = cfg.radio(node).motion  # errors.NotFound naming the nodes there are
        was_moving[:] = [motion.model.kind] if motion else []
        return replace(cfg, radios=tuple(replace(r, position=(float(x), float(y)), motion=None) if r.name == node
                                         else r for r in cfg.radios))

    cfg = medium_control.change(Path(lab_dir), edit)
    heard = Airspace(cfg).links[mac_bytes(cfg.radio(node).mac)]
    result = {"node": node, "position": [x, y], "medium_version": cfg.version,
              "in_range": sorted(link.rx for link in heard),
              "signal_dbm": {link.rx: link.signal_dbm for link in heard}}
    if was_moving:
        result["mobility"] = (f"stopped: {node} was moving ({was_moving[0]}) and is now pinned here "
                              "for the rest of the lab's life")
    return result

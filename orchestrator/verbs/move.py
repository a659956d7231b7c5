"""`move NODE X Y`: put a node somewhere else; the running medium re-computes who hears it.

The kernel's 802.11s stack reacts as it would to a real move: peer links to radios now out of
range time out, new ones form, HWMP finds other paths.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from orchestrator import mediumctl
from orchestrator.airspace import Airspace, MediumConfig, mac_bytes
from orchestrator.topology import MAX_COORD


def run(lab_dir: Path, node: str, x: float, y: float) -> dict:
    if not all(abs(c) <= MAX_COORD for c in (x, y)):
        raise ValueError(f"each coordinate must be within ±{MAX_COORD:g} m")

    def edit(cfg: MediumConfig) -> MediumConfig:
        cfg.radio(node)  # a LookupError naming the nodes there are
        return replace(cfg, radios=tuple(replace(r, position=(float(x), float(y))) if r.name == node else r
                                         for r in cfg.radios))

    cfg = mediumctl.change(Path(lab_dir), edit)
    heard = Airspace(cfg).links[mac_bytes(cfg.radio(node).mac)]
    return {"node": node, "position": [x, y], "medium_version": cfg.version,
            "in_range": sorted(link.rx for link in heard),
            "signal_dbm": {link.rx: link.signal_dbm for link in heard}}

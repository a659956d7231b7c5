"""`peers NODE`: the node's 802.11s stations: peer, link state, signal."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from orchestrator.air.airspace import impairments_in_force, read_config
from orchestrator.kernel import mesh
from orchestrator.lab import labdir
from orchestrator.lab.plan import MESH_IFNAME


def run(lab_dir: Path, node: str) -> dict:
    lab_dir = Path(lab_dir)
    me = labdir.lab_node(lab_dir, node)
    names = {n["mac"]: name for name, n in labdir.read_lab_json(lab_dir)["nodes"].items()}
    rows = [{"peer": names.get(s.mac, "?"), **asdict(s)} for s in mesh.stations(me["netns"], MESH_IFNAME)]
    impaired = _impairments(lab_dir)
    for row in rows:  # what the medium does to this link on top of its radio model, each way
        out, back = impaired.get((node, row["peer"])), impaired.get((row["peer"], node))
        if out or back:
            row["impairment"] = {"out": out, "in": back}
    return {"node": node, "peers": rows}


def _impairments(lab_dir: Path) -> dict[tuple[str, str], str]:
    try:
        cfg = read_config(lab_dir)
    except (LookupError, OSError, ValueError):  # no medium: nothing impaired
        return {}
    return {(i["from"], i["to"]): i["summary"] for i in impairments_in_force(cfg)}

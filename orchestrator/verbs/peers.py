"""`peers NODE`: the node's 802.11s stations: peer, link state, signal."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from orchestrator import lab, mesh
from orchestrator.plan import MESH_IFNAME


def run(lab_dir: Path, node: str) -> dict:
    lab_dir = Path(lab_dir)
    me = lab.lab_node(lab_dir, node)
    names = {n["mac"]: name for name, n in lab.read_lab_json(lab_dir)["nodes"].items()}
    rows = [{"peer": names.get(s.mac, "?"), **asdict(s)} for s in mesh.stations(me["netns"], MESH_IFNAME)]
    return {"node": node, "peers": rows}

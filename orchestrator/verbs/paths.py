"""`paths NODE`: the node's HWMP mesh paths: destination, next hop, hop count, metric."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from orchestrator.kernel import mesh
from orchestrator.lab import labdir
from orchestrator.lab.plan import MESH_IFNAME


def run(lab_dir: Path, node: str) -> dict:
    lab_dir = Path(lab_dir)
    me = labdir.lab_node(lab_dir, node)
    names = {n["mac"]: name for name, n in labdir.read_lab_json(lab_dir)["nodes"].items()}
    rows = [
        {"destination_node": names.get(p.destination, "?"), "next_hop_node": names.get(p.next_hop, "?"),
         **asdict(p)}
        for p in mesh.mpaths(me["netns"], MESH_IFNAME)
    ]
    return {"node": node, "paths": rows}

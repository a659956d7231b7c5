"""`status`: one row per node: role, addresses, REST URL, established mesh peers, serving or not."""

from __future__ import annotations

from pathlib import Path

from orchestrator import lab, mesh
from orchestrator.health import is_healthy, process_alive
from orchestrator.plan import MESH_IFNAME


def run(lab_dir: Path) -> dict:
    lab_dir = Path(lab_dir)
    info = lab.read_lab_json(lab_dir)
    state = lab.read_state(lab_dir)
    macs = {n["mac"]: name for name, n in info["nodes"].items()}
    rows = []
    for name, node in info["nodes"].items():
        try:
            peers = sorted(macs.get(s.mac, s.mac) for s in mesh.stations(node["netns"], MESH_IFNAME)
                           if s.plink_state == "ESTAB")
        except Exception as exc:  # a node whose netns is gone is reported, not fatal to the table
            peers = [f"error: {exc}"]
        rows.append({
            "node": name,
            "role": node["role"],
            "mesh_ip": node["mesh_ip"],
            "rest_url": node["rest_url"],
            "peers": peers,
            "process": "running" if process_alive(state.get("pids", {}).get(name)) else "stopped",
            "serving": is_healthy(node["api_url"], timeout=2.0),
        })
    return {"lab": info["lab"], "nodes": rows, "timings": state.get("timings", {})}

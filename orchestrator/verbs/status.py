"""`status`: one row per node: role, position now, addresses, REST URL, established mesh peers,
serving or not."""

from __future__ import annotations

from pathlib import Path

from orchestrator.kernel import mesh
from orchestrator.lab import labdir
from orchestrator.lab.plan import MESH_IFNAME
from orchestrator.medium import control as medium_control
from orchestrator.runtime.health import is_healthy, process_alive


def run(lab_dir: Path) -> dict:
    lab_dir = Path(lab_dir)
    info = labdir.read_lab_json(lab_dir)
    state = labdir.read_state(lab_dir)
    macs = {n["mac"]: name for name, n in info["nodes"].items()}
    where = medium_control.positions_now(lab_dir)  # where `move` put a node, or its mobility has it now
    rows = []
    for name, node in info["nodes"].items():
        try:
            links = sorted((macs.get(s.mac, s.mac), s) for s in mesh.stations(node["netns"], MESH_IFNAME)
                           if s.plink_state == "ESTAB")
            peers = [peer for peer, _ in links]
            security = [f"{peer}: {link_security(s)}" for peer, s in links]
        except Exception as exc:  # a node whose netns is gone is reported, not fatal to the table
            peers = security = [f"error: {exc}"]
        rows.append({
            "node": name,
            "role": node["role"],
            "position": where.get(name, node.get("position")),
            "mesh_ip": node["mesh_ip"],
            "rest_url": node["rest_url"],
            "peers": peers,
            "security": security,
            "process": "running" if process_alive(state.get("pids", {}).get(name)) else "stopped",
            "serving": is_healthy(node["api_url"], timeout=2.0),
        })
    timings = state.get("timings", {})
    # Convergence: seconds from the start of the last `up` (in the VM: after its boot) until every
    # node had an established link to each planned neighbour; `up` waits for exactly that.
    return {"lab": info["lab"], "mesh_security": info.get("mesh", {}).get("security", "none"), "nodes": rows,
            "timings": timings, "convergence_s": timings.get("peering_s"),
            "medium": medium_control.health(lab_dir, state)}


def link_security(sta: mesh.Station) -> str:
    """One established link's protection, as the kernel reports it."""
    if sta.authorized is None:
        return "unknown"
    if not sta.authorized:
        return "not authorized"
    return "authorized, MFP" if sta.mfp else "authorized, no MFP"

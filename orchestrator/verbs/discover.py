"""`discover NODE`: the authorities a client has heard announced on the mesh (GET /discovery),
each with the radio hops to it: the HWMP path to the MAC of the node that holds the address."""

from __future__ import annotations

from pathlib import Path

import httpx

from orchestrator.errors import UsageError
from orchestrator.kernel import mesh
from orchestrator.lab import labdir
from orchestrator.lab.plan import MESH_IFNAME


def run(lab_dir: Path, node: str) -> dict:
    lab_dir = Path(lab_dir)
    me = labdir.lab_node(lab_dir, node)
    if me["role"] != "client":
        raise UsageError(f"{node} is an authority; discovery runs on clients: try a client node")
    resp = httpx.get(f"{me['api_url']}/discovery", timeout=30.0)
    resp.raise_for_status()
    view = resp.json()
    by_ip = {n["mesh_ip"]: (name, n["mac"]) for name, n in labdir.read_lab_json(lab_dir)["nodes"].items()}
    hops = mesh.hops_from(me["netns"], MESH_IFNAME)

    def locate(address: str | None) -> tuple[str | None, int | None]:
        if not address:
            return None, None
        name, mac = by_ip.get(address.rsplit(":", 1)[0], (None, None))
        return name, hops.get(mac) if mac else None

    for row in view.get("authorities", []):
        row["node"], row["hop_count"] = locate(row.get("address"))
    for row in view.get("ignored", []):
        row["from_node"], row["hop_count"] = locate(row.get("address"))
    return {"node": node, **view}

"""`balance NODE`: the accounts a node knows, as it sees them (an authority of several shards:
the accounts of every shard, each held by exactly one, meshpay/shards.py)."""

from __future__ import annotations

from pathlib import Path

import httpx

from orchestrator.lab import labdir


def run(lab_dir: Path, node: str) -> dict:
    me = labdir.lab_node(Path(lab_dir), node)
    services = labdir.node_services(node, me)
    accounts = []
    for service in services:
        resp = httpx.get(f"{service['api_url']}/accounts", timeout=30.0)
        resp.raise_for_status()
        # which shard holds it, where there is more than one
        accounts += resp.json() if len(services) == 1 else [{**a, "shard": service["shard"]} for a in resp.json()]
    return {"node": node, "accounts": accounts}

"""`balance NODE`: the accounts a node knows, as it sees them."""

from __future__ import annotations

from pathlib import Path

import httpx

from orchestrator.lab import labdir


def run(lab_dir: Path, node: str) -> dict:
    me = labdir.lab_node(Path(lab_dir), node)
    resp = httpx.get(f"{me['api_url']}/accounts", timeout=30.0)
    resp.raise_for_status()
    return {"node": node, "accounts": resp.json()}

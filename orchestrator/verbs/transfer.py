"""`transfer --from A --to B --amount N`: client A runs a whole FastPay transfer to B."""

from __future__ import annotations

from pathlib import Path

import httpx

from orchestrator import lab


def run(lab_dir: Path, src: str, dst: str, amount: int, timeout: float = 60.0) -> dict:
    lab_dir = Path(lab_dir)
    sender = lab.lab_node(lab_dir, src)
    lab.lab_node(lab_dir, dst)
    if sender["role"] != "client":
        raise ValueError(f"{src} is an authority; transfers start at a client node")
    resp = httpx.post(f"{sender['api_url']}/transfers", json={"to": dst, "amount": amount},
                      headers={"Authorization": f"Bearer {lab.read_token(lab_dir)}"}, timeout=timeout)
    body = resp.json()
    if resp.status_code >= 400:
        raise ValueError(f"{src} refused the transfer ({resp.status_code}): {body.get('detail', body)}")
    return body

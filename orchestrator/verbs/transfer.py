"""`transfer --from A --to B --amount N`: client A runs a whole FastPay transfer to B.

The result is the node's record (per-authority vote and confirm timings, latency; `outcome`
confirmed) plus, read from the sender's mesh right after the transfer, the radio hops to each
authority, and a flat `metrics` block (orchestrator/report/meshmetrics.py). A transfer no quorum
voted for (the node answers 502 with its record, outcome rejected or pending) raises
errors.NotConfirmed carrying that same record, hops and metrics included: the CLI prints it under
`--format json` and exits 1; a scenario keeps it as its step's result."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from pyroute2.netlink.exceptions import NetlinkError

from orchestrator.errors import MeshpayError, NotConfirmed, UsageError
from orchestrator.kernel import mesh
from orchestrator.lab import labdir
from orchestrator.lab.plan import MESH_IFNAME
from orchestrator.report import meshmetrics, transferlog


# A node drives an order for up to its transfer_deadline_s (25 s), after finishing an earlier
# pending one first: room for both rounds.
TIMEOUT_S = 120.0


def run(lab_dir: Path, src: str, dst: str, amount: int, timeout: float = TIMEOUT_S) -> dict:
    """The confirmed transfer's record (module docstring). Errors: errors.NotConfirmed (exit 1,
    with the record), errors.NotFound / UsageError (an unknown node, an authority as sender),
    errors.MeshpayError (the node refused the order); httpx's when the node does not answer."""
    lab_dir = Path(lab_dir)
    started = time.time()
    try:
        body = _transfer(lab_dir, src, dst, amount, timeout)
    except Exception as exc:
        transferlog.append(lab_dir, {"time": started, "from": src, "to": dst, "amount": amount, "outcome": "error",
                                     "latency_ms": None, "error": str(exc)[:300]})
        raise
    transferlog.append(lab_dir, {"time": started, "from": src, "to": dst, "amount": amount,
                                 "outcome": body.get("outcome"), "latency_ms": body["metrics"]["latency_ms"],
                                 "error": None})
    if body.get("outcome") != "confirmed":
        raise not_confirmed(body)
    return body


def not_confirmed(record: dict) -> NotConfirmed:
    """The error of a transfer no quorum voted for: one line that says which authorities gave no
    vote and why, and where to look next; `record` kept whole."""
    why = ", ".join(f"{a} ({t.get('reason') or t.get('vote')})" for a, t in (record.get("authorities") or {}).items()
                    if not a.startswith("recipient:") and t.get("vote") != "ok")
    return NotConfirmed(f"transfer {record.get('id', '?')} was not confirmed (outcome {record.get('outcome')}): "
                        f"no quorum of authorities voted; no vote from {why or 'none'}; "
                        "`meshpay-lab status` shows which serve", record=record)


def _transfer(lab_dir: Path, src: str, dst: str, amount: int, timeout: float) -> dict:
    sender = labdir.lab_node(lab_dir, src)
    labdir.lab_node(lab_dir, dst)
    if sender["role"] != "client":
        raise UsageError(f"{src} is an authority; transfers start at a client node: name a client with --from")
    resp = httpx.post(f"{sender['api_url']}/transfers", json={"to": dst, "amount": amount},
                      headers={"Authorization": f"Bearer {labdir.read_token(lab_dir)}"}, timeout=timeout)
    body = resp.json()
    # 502 carries the transfer's record (outcome rejected or pending: no quorum voted): it gets its
    # hops and metrics like a confirmed one before run() raises it. Anything else >= 400 is a
    # refusal with a `detail` (insufficient balance, an earlier order still pending).
    if resp.status_code >= 400 and not (resp.status_code == 502 and "outcome" in body):
        raise MeshpayError(f"{src} refused the transfer ({resp.status_code}): {body.get('detail', body)}; "
                           f"`meshpay-lab balance {src}` shows what it holds and what is pending")
    authorities = {name: n["mac"] for name, n in labdir.read_lab_json(lab_dir)["nodes"].items()
                   if n["role"] == "authority"}
    try:
        by_mac = mesh.hops_from(sender["netns"], MESH_IFNAME)
    except (OSError, RuntimeError, NetlinkError) as exc:
        # The money has moved: a sender whose mesh cannot be read now still gets its result.
        by_mac = {}
        body["hops_error"] = f"could not read {src}'s mesh paths: {exc}"
    hops = meshmetrics.authority_hops(authorities, by_mac)
    for name, entry in (body.get("authorities") or {}).items():
        if name in hops:
            entry["hop_count"] = hops[name]
            # Unanswered, and the sender's mesh holds no HWMP path to it: the mesh found no path.
            if entry.get("reason") in ("connect timeout", "no answer") and hops[name] is None:
                entry["reason"] = "no path"
    body["metrics"] = meshmetrics.transfer_metrics(body, hops)
    return body

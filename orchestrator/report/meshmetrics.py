"""The figures the lab reports about its mesh, computed from what verbs return (pure, no I/O).

Per transfer: latency, time to quorum (the vote quorum, i.e. when the certificate was formed),
radio hops to each authority and each authority's vote round trip. Per scenario record: healing,
the time from a node's isolation to the first transfer confirmed after it.
"""

from __future__ import annotations

from typing import Any


def authority_hops(authority_macs: dict[str, str], hops_by_mac: dict[str, int | None]) -> dict[str, int | None]:
    """Hops from the sender to each authority (by name); None where the sender knows no way there."""
    return {name: hops_by_mac.get(mac) for name, mac in sorted(authority_macs.items())}


def transfer_metrics(result: dict[str, Any], hops: dict[str, int | None]) -> dict[str, Any]:
    """The flat metrics block of one transfer result as the node returned it (POST /transfers).

    `vote_ms` is None for an authority whose vote had not come back when the quorum was reached:
    the node stops timing it then. Latency fields are None for a transfer that was not confirmed.
    """
    latency = result.get("latency_ms") or {}
    timings = result.get("authorities") or {}
    return {
        "outcome": result.get("outcome"),
        "latency_ms": latency.get("total"),
        "time_to_quorum_ms": latency.get("certificate"),
        "hops": dict(hops),
        "vote_ms": {name: (timings.get(name) or {}).get("vote_ms") for name in hops},
    }


def healing(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each successful `isolate` step of a scenario record: seconds from the isolation being
    applied (the end of its step: the fault verb returns once the medium applied it) to the first
    transfer confirmed after it; `healing_s` None if none was."""
    out = []
    for i, row in enumerate(steps):
        if not (row["do"] == "fault" and row["args"].get("action") == "isolate" and row["ok"]):
            continue
        isolated_s = row["start_s"] + row["duration_s"]
        confirmed = next((later["confirmed_s"] for later in steps[i + 1:]
                          if later["do"] == "transfer" and later.get("confirmed_s") is not None), None)
        out.append({"step": row["index"], "node": row.get("node", row["args"].get("node")),
                    "isolated_s": round(isolated_s, 3),
                    "healing_s": None if confirmed is None else round(confirmed - isolated_s, 3)})
    return out

"""`fault kill|restart|isolate|heal NODE`: break a node, and mend it.

kill stops the node's FastPay service, every shard process of an authority of several (its radio
stays on the mesh and keeps relaying, as a crashed application on a working router would);
restart starts every one of them that is not running again, each from its own database.
isolate has the medium deliver nothing to or from the node's radio (a node gone dark: its
peers' links time out, HWMP routes around it); heal undoes that.
"""

from __future__ import annotations

import signal
import time
from dataclasses import replace
from pathlib import Path

from orchestrator.errors import UsageError
from orchestrator import labfiles
from orchestrator.lab import labdir, nodeconfig
from orchestrator.medium import control as medium_control
from orchestrator.runtime import procs, runtime_for
from orchestrator.runtime.base import NodeRef, NodeService
from orchestrator.runtime.health import process_alive, wait_healthy

ACTIONS = ("kill", "restart", "isolate", "heal")
STOP_TIMEOUT_S = 10.0
SERVING_TIMEOUT_S = 300.0


def run(lab_dir: Path, action: str, node: str) -> dict:
    lab_dir = Path(lab_dir)
    if action not in ACTIONS:
        raise UsageError(f"unknown fault {action!r}: use one of {', '.join(ACTIONS)}")
    info = labdir.lab_node(lab_dir, node)  # errors.NotFound naming the nodes there are
    if action in ("isolate", "heal"):
        return _isolation(lab_dir, node, action == "isolate")
    state = labdir.read_state(lab_dir)
    services = labdir.node_services(node, info)
    if action == "kill":
        return _kill(state, node, services)
    return _restart(lab_dir, state, node, info, services)


def _isolation(lab_dir: Path, node: str, isolate: bool) -> dict:
    def edit(cfg):
        cfg.radio(node)
        isolated = cfg.isolated | {node} if isolate else cfg.isolated - {node}
        return replace(cfg, isolated=frozenset(isolated))

    cfg = medium_control.change(lab_dir, edit)
    return {"node": node, "action": "isolate" if isolate else "heal", "isolated": sorted(cfg.isolated),
            "medium_version": cfg.version, "time": time.time()}


def _kill(state: dict, node: str, services: list[dict]) -> dict:
    pids = {s["key"]: state.get("pids", {}).get(s["key"]) for s in services}
    running = [pid for pid in pids.values() if process_alive(pid)]
    # the launcher made each process a session (and group) leader: its group is the process;
    # every shard at once, as a crash of the host's authority would take them
    for pid in running:
        procs.send(pid, signal.SIGTERM, group=True)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while any(process_alive(pid) for pid in running) and time.monotonic() < deadline:
        for pid in running:
            procs.reap(pid)  # not our child (the launcher forked it): init reaps it
        time.sleep(0.1)
    for pid in running:
        if process_alive(pid):
            procs.send(pid, signal.SIGKILL, group=True)
    first = services[0]["key"]
    return {"node": node, "action": "kill", "pid": pids[first], "was_running": bool(running),
            "pids": pids, "time": time.time()}


def _restart(lab_dir: Path, state: dict, node: str, info: dict, services: list[dict]) -> dict:
    pids = state.setdefault("pids", {})
    first = services[0]["key"]
    stopped = [s for s in services if not process_alive(pids.get(s["key"]))]
    if not stopped:
        return {"node": node, "action": "restart", "pid": pids[first], "already_running": True,
                "pids": {s["key"]: pids[s["key"]] for s in services}}
    rt = runtime_for(state.get("runtime", "netns"), state["lab"], lab_dir)
    ref = NodeRef(lab=state["lab"], name=node, netns=info["netns"])
    logs = {s["key"]: labdir.node_file(lab_dir, node, labfiles.NODE_LOG, s["shard"]) for s in stopped}
    t0 = time.monotonic()
    pids.update(rt.start_services([  # as `up` does
        NodeService(ref, nodeconfig.config_path(lab_dir, node, s["shard"]), logs[s["key"]], s["key"])
        for s in stopped]))
    labdir.write_state(lab_dir, state)
    wait_healthy({s["key"]: s["api_url"] for s in stopped}, SERVING_TIMEOUT_S, pids=pids, logs=logs)
    return {"node": node, "action": "restart", "pid": pids[first], "already_running": False,
            "pids": {s["key"]: pids[s["key"]] for s in services}, "restarted": [s["key"] for s in stopped],
            "serving_after_s": round(time.monotonic() - t0, 2)}


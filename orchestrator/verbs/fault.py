"""`fault kill|restart|isolate|heal NODE`: break a node, and mend it.

kill stops the node's FastPay service (its radio stays on the mesh and keeps relaying, as a
crashed application on a working router would); restart starts the service again from its
database. isolate has the medium deliver nothing to or from the node's radio (a node gone dark:
its peers' links time out, HWMP routes around it); heal undoes that.
"""

from __future__ import annotations

import signal
import time
from dataclasses import replace
from pathlib import Path

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
        raise ValueError(f"unknown fault {action!r}: use one of {', '.join(ACTIONS)}")
    info = labdir.lab_node(lab_dir, node)  # LookupError naming the nodes there are
    if action in ("isolate", "heal"):
        return _isolation(lab_dir, node, action == "isolate")
    state = labdir.read_state(lab_dir)
    if action == "kill":
        return _kill(lab_dir, state, node)
    return _restart(lab_dir, state, node, info)


def _isolation(lab_dir: Path, node: str, isolate: bool) -> dict:
    def edit(cfg):
        cfg.radio(node)
        isolated = cfg.isolated | {node} if isolate else cfg.isolated - {node}
        return replace(cfg, isolated=frozenset(isolated))

    cfg = medium_control.change(lab_dir, edit)
    return {"node": node, "action": "isolate" if isolate else "heal", "isolated": sorted(cfg.isolated),
            "medium_version": cfg.version, "time": time.time()}


def _kill(lab_dir: Path, state: dict, node: str) -> dict:
    pid = state.get("pids", {}).get(node)
    was_running = process_alive(pid)
    if was_running:
        # the launcher made each service a session (and group) leader: its group is the service
        procs.send(pid, signal.SIGTERM, group=True)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while process_alive(pid) and time.monotonic() < deadline:
            procs.reap(pid)  # not our child (the launcher forked it): init reaps it
            time.sleep(0.1)
        if process_alive(pid):
            procs.send(pid, signal.SIGKILL, group=True)
    return {"node": node, "action": "kill", "pid": pid, "was_running": was_running, "time": time.time()}


def _restart(lab_dir: Path, state: dict, node: str, info: dict) -> dict:
    pids = state.setdefault("pids", {})
    if process_alive(pids.get(node)):
        return {"node": node, "action": "restart", "pid": pids[node], "already_running": True}
    rt = runtime_for(state.get("runtime", "netns"), state["lab"], lab_dir)
    ref = NodeRef(lab=state["lab"], name=node, netns=info["netns"])
    node_dir = labdir.node_dir(lab_dir, node)
    log = node_dir / labfiles.NODE_LOG
    t0 = time.monotonic()
    pids.update(rt.start_services([NodeService(ref, nodeconfig.config_path(lab_dir, node), log)]))  # as `up` does
    labdir.write_state(lab_dir, state)
    wait_healthy({node: info["api_url"]}, SERVING_TIMEOUT_S, pids=pids, logs={node: log})
    return {"node": node, "action": "restart", "pid": pids[node], "already_running": False,
            "serving_after_s": round(time.monotonic() - t0, 2)}


"""The secured mesh (`mesh.security: sae`): one wpa_supplicant per node, in mesh mode.

wpa_supplicant joins the mesh instead of the kernel's open join, authenticates every peer with
SAE (the mesh password), runs the peering itself (`user_mpm=1`) and turns on management frame
protection (`ieee80211w=2`); the kernel then marks a peer `authorized` and `MFP` and encrypts
its frames. A node with another password fails SAE, so it never peers and never carries traffic.

Each supplicant runs inside its node's network namespace (started through the runtime, so
`down`, which stops every process there, stops it too). Its config, which holds the password, is
owner-only in the lab directory; its control socket lives under /run, because the lab directory
may be a 9p share in the VM and 9p refuses sockets.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import MeshpayError
from orchestrator.kernel import mesh
from orchestrator.lab import labdir
from orchestrator.lab.plan import MESH_IFNAME, NodePlan, Plan
from orchestrator.runtime.base import NodeRef
from orchestrator.runtime.health import process_alive

log = logging.getLogger(__name__)

RUN_ROOT = Path("/run/meshpay-lab")
JOIN_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class SupplicantFiles:
    config: Path
    log: Path
    ctrl_dir: Path


def files_for(lab_dir: Path, lab_name: str, node: str) -> SupplicantFiles:
    return SupplicantFiles(
        config=labdir.node_dir(lab_dir, node) / "wpa_supplicant.conf",
        log=labdir.node_dir(lab_dir, node) / "wpa_supplicant.log",
        ctrl_dir=RUN_ROOT / lab_name / node,
    )


def password_for(plan: Plan, node: NodePlan, lab_secret: str) -> str:
    """The node's SAE password: its own override, else the topology's, else the lab's secret."""
    return node.mesh_password or plan.mesh_password or lab_secret


def config_text(mesh_id: str, freq: int, password: str, ctrl_dir: Path,
                beacon_interval: int | None = None, dtim_period: int | None = None) -> str:
    # Mesh id and password go in hex, which wpa_supplicant takes for any string field: no value
    # can then close the quotes or the line and inject a setting.
    timing = ((f"  beacon_int={beacon_interval}\n" if beacon_interval is not None else "")
              + (f"  dtim_period={dtim_period}\n" if dtim_period is not None else ""))
    return (
        f"ctrl_interface=DIR={ctrl_dir}\n"
        "user_mpm=1\n"
        "network={\n"
        f"  ssid={mesh_id.encode().hex()}\n"
        "  mode=5\n"
        f"  frequency={freq}\n"
        f"{timing}"
        "  key_mgmt=SAE\n"
        f"  sae_password={password.encode().hex()}\n"
        "  ieee80211w=2\n"
        "}\n"
    )


def argv(ifname: str, config: Path) -> list[str]:
    # Foreground (-t: timestamped log lines): the runtime owns the process and its output.
    return ["wpa_supplicant", "-t", "-i", ifname, "-D", "nl80211", "-c", str(config)]


def start_all(lab_dir: Path, plan: Plan, state: dict, runtime, refs: dict[str, NodeRef]) -> None:
    """Start a supplicant on every node that lacks a live one, then apply the topology's kernel
    mesh params once each has joined (wpa_supplicant's join sets only its own)."""
    pids = state.setdefault("supplicants", {})
    started = []
    for node in plan.nodes:
        if process_alive(pids.get(node.name)):
            continue
        files = files_for(lab_dir, plan.lab, node.name)
        files.ctrl_dir.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        text = config_text(plan.mesh_id, plan.freq, password_for(plan, node, state["mesh_secret"]),
                           files.ctrl_dir, plan.beacon_interval, plan.dtim_period)
        labdir.write_secret_text(files.config, text)
        pids[node.name] = runtime.start(refs[node.name], argv(MESH_IFNAME, files.config), files.log)
        started.append(node)
    for node in started:
        _apply_params_when_joined(lab_dir, plan, node, pids[node.name])


def _apply_params_when_joined(lab_dir: Path, plan: Plan, node: NodePlan, pid: int) -> None:
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    while True:
        if not process_alive(pid):
            tail = _tail(files_for(lab_dir, plan.lab, node.name).log)
            raise MeshpayError(f"wpa_supplicant of {node.name} exited; its log ends:\n{tail}\n"
                               "check that wpa_supplicant (package wpasupplicant) has mesh support")
        try:
            # An empty update still fails with ENOLINK until the mesh is joined: it doubles as the probe.
            mesh.set_mesh_params(node.netns, MESH_IFNAME, plan.mesh_params_of(node))
            return
        except mesh.NotJoined:
            pass
        if time.monotonic() > deadline:
            raise MeshpayError(f"{node.name}: wpa_supplicant did not join mesh {plan.mesh_id!r} in "
                               f"{JOIN_TIMEOUT_S:.0f} s; its log {files_for(lab_dir, plan.lab, node.name).log} "
                               "says why (a wrong mesh.password fails every join)")
        time.sleep(0.2)


def remove_run_dir(lab_name: str) -> None:
    shutil.rmtree(RUN_ROOT / lab_name, ignore_errors=True)


def _tail(path: Path, lines: int = 10) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc.strerror})"


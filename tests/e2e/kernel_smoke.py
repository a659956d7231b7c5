"""The kernel layer on a real kernel: 4 hwsim radios in 4 netns, an 802.11s line 0-1-2-3.

Run as root on a kernel with mac80211_hwsim (tests/e2e/test_kernel.py boots a virtme-ng VM for
it when the host has none). It uses only the controller's kernel modules, checks what the kernel
reports, removes everything it made, and prints one line `KERNEL_SMOKE_JSON {...}`.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from orchestrator.errors import MeshpayError  # noqa: E402
from orchestrator.kernel import mesh, mgmt, radio  # noqa: E402
from orchestrator.kernel.netns import pids_in_netns  # noqa: E402
from orchestrator.runtime.base import NodeRef  # noqa: E402
from orchestrator.runtime.netns import NetnsRuntime  # noqa: E402

LAB = "ksmoke"
N = 4
MESH_ID = "meshpay-smoke"
FREQ = 2412
BRIDGE = "mplksmokebr"
PARAMS = {
    "mesh_fwding": 1,
    "mesh_hwmp_rootmode": 0,
    "mesh_hwmp_active_path_timeout": 5000,
    "mesh_hwmp_preq_min_interval": 10,
    "mesh_path_refresh_time": 1000,
}
MARKER = "KERNEL_SMOKE_JSON "


def mac(i: int) -> str:
    return f"02:4d:50:00:00:{i + 1:02x}"


def mesh_ip(i: int) -> str:
    return f"10.77.0.{i + 1}"


def mgmt_ip(i: int) -> str:
    return f"172.31.99.{i + 1}"


def wait_for(what: str, check, timeout: float, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout} s")
        time.sleep(step)


def ping(netns: str | None, address: str, count: int = 1, wait: int = 2) -> subprocess.CompletedProcess:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    return subprocess.run([*prefix, "ping", "-n", "-c", str(count), "-i", "0.2", "-W", str(wait), address],
                          capture_output=True, text=True)


def rtt_avg_ms(output: str) -> float | None:
    for line in output.splitlines():
        if "min/avg/max" in line:
            return float(line.split("=")[1].split("/")[1])
    return None


def ensure_hwsim() -> None:
    if not os.path.exists("/sys/module/mac80211_hwsim"):
        subprocess.run(["modprobe", "mac80211_hwsim", "radios=0"], check=True)


def build(rt: NetnsRuntime, nodes: list[NodeRef], summary: dict) -> float:
    """Make the lab; returns when (monotonic) the last node joined the mesh."""
    t = time.monotonic()
    mgmt.create_bridge(BRIDGE, "172.31.99.254/24", lab=LAB)
    for i, node in enumerate(nodes):
        rt.create(node)
        r = radio.create_radio(node.netns, mac=mac(i))
        assert r.mac == mac(i), (r, mac(i))
        radio.move_phy(r.phy_index, rt.netns_path(node))
        mesh.create_mesh_point(node.netns, r.phy_index, "mesh0", mac=mac(i), cidr=f"{mesh_ip(i)}/24")
        mesh.join_mesh(node.netns, "mesh0", MESH_ID, FREQ, PARAMS)
        last_join = time.monotonic()
        mgmt.add_node_link(BRIDGE, node.netns, f"mplksmoke{i}", cidr=f"{mgmt_ip(i)}/24", lab=LAB)
    # the kernel lists a radio only to its phy's netns; list_radios asks every named netns
    summary["radios_in_root_only"] = [r.name for r in radio.list_radios(f"mpl-{LAB}-") if r.netns is None]
    # wiphy names are global: a name held by a phy in a node's netns must be refused, cleanly
    try:
        radio.create_radio(nodes[0].netns)
        summary["duplicate_name_refused"] = False
    except MeshpayError:
        summary["duplicate_name_refused"] = [r for r in radio.list_radios() if r.netns is None] == []
    summary["radios_in_node0"] = [r.name for r in radio.list_radios(f"mpl-{LAB}-", netns=nodes[0].netns)]
    # read back with iw, not our own netlink code: did the join apply the topology's params?
    iw = subprocess.run(["ip", "netns", "exec", nodes[0].netns, "iw", "dev", "mesh0", "get", "mesh_param",
                         "mesh_hwmp_preq_min_interval"], capture_output=True, text=True, check=True)
    summary["mesh_params_node0"] = {"mesh_hwmp_preq_min_interval": int(iw.stdout.split()[0])}
    summary["build_s"] = round(time.monotonic() - t, 2)
    return last_join


def peer_and_cut(nodes: list[NodeRef], last_join: float, summary: dict) -> None:

    def all_estab():
        for node in nodes:
            states = [s.plink_state for s in mesh.stations(node.netns, "mesh0")]
            if len(states) != N - 1 or any(s != "ESTAB" for s in states):
                return False
        return True

    wait_for("full peering", all_estab, timeout=90)
    summary["peering_after_last_join_s"] = round(time.monotonic() - last_join, 2)

    t = time.monotonic()
    for i, node in enumerate(nodes):
        for j in range(N):
            if abs(i - j) > 1:
                mesh.block_peer(node.netns, "mesh0", mac(j))

    def is_line():
        for i, node in enumerate(nodes):
            for s in mesh.stations(node.netns, "mesh0"):
                j = int(s.mac.rsplit(":", 1)[1], 16) - 1
                want = "ESTAB" if abs(i - j) == 1 else "BLOCKED"
                if s.plink_state != want:
                    return False
        return True

    wait_for("line topology", is_line, timeout=30)
    summary["block_s"] = round(time.monotonic() - t, 2)
    summary["stations_node1"] = [
        {"mac": s.mac, "plink": s.plink_state, "signal_dbm": s.signal_dbm} for s in mesh.stations(nodes[1].netns, "mesh0")
    ]


def prove_paths(rt: NetnsRuntime, nodes: list[NodeRef], summary: dict) -> None:
    t = time.monotonic()
    wait_for("first ping 0->3", lambda: ping(nodes[0].netns, mesh_ip(3)).returncode == 0, timeout=90, step=0)
    summary["first_ping_3hops_s"] = round(time.monotonic() - t, 2)
    out = ping(nodes[0].netns, mesh_ip(3), count=10)
    assert out.returncode == 0, out.stdout + out.stderr
    summary["ping_3hops_rtt_avg_ms"] = rtt_avg_ms(out.stdout)
    summary["ping_3hops_loss"] = next((p for p in out.stdout.split(",") if "loss" in p), "").strip()

    paths = {p.destination: p for p in mesh.mpaths(nodes[0].netns, "mesh0")}
    summary["mpaths_node0"] = {d: {"next_hop": p.next_hop, "hops": p.hop_count, "metric": p.metric,
                                   "flags": list(p.flags)} for d, p in paths.items()}
    assert paths[mac(3)].hop_count == 3, paths[mac(3)]
    assert paths[mac(3)].next_hop == mac(1), paths[mac(3)]

    for i in range(N):
        out = ping(None, mgmt_ip(i))
        assert out.returncode == 0, f"mgmt {mgmt_ip(i)}: {out.stdout}{out.stderr}"
    summary["mgmt_ping_ok"] = True

    log = Path("/tmp") / f"{LAB}-node.log"
    pid = rt.start(nodes[2], ["sleep", "300"], log)
    assert pid in pids_in_netns(rt.netns_path(nodes[2])), pid
    rt.stop(nodes[2])
    assert pids_in_netns(rt.netns_path(nodes[2])) == []
    summary["runtime_start_stop_ok"] = True


def teardown(rt: NetnsRuntime, summary: dict) -> None:
    """Remove the lab knowing only its name, as `down` must after a crash."""
    t = time.monotonic()
    names = rt.list(LAB)
    summary["radios_listed_before_down"] = [r.name for r in radio.list_radios(f"mpl-{LAB}-")]
    summary["swept_radios"] = radio.sweep_radios(f"mpl-{LAB}-")
    for netns in names:
        rt.delete(NodeRef(LAB, netns.removeprefix(f"mpl-{LAB}-"), netns))
    for link in mgmt.owned_links(LAB):
        mgmt.delete_link(link)
    summary["teardown_s"] = round(time.monotonic() - t, 2)
    summary["leftover_radios"] = [r.name for r in radio.list_radios(f"mpl-{LAB}-")]
    summary["leftover_netns"] = rt.list(LAB)
    summary["leftover_links"] = mgmt.owned_links(LAB)


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    started = time.monotonic()
    summary: dict = {"kernel": os.uname().release, "ok": False}
    rt = NetnsRuntime()
    nodes = [NodeRef(LAB, f"n{i}", f"mpl-{LAB}-n{i}") for i in range(N)]
    try:
        ensure_hwsim()
        last_join = build(rt, nodes, summary)
        peer_and_cut(nodes, last_join, summary)
        prove_paths(rt, nodes, summary)
        summary["ok"] = True
    except Exception:
        summary["error"] = traceback.format_exc()
    finally:
        try:
            teardown(rt, summary)
        except Exception:
            summary["ok"] = False
            summary["teardown_error"] = traceback.format_exc()
    if summary.get("leftover_radios") or summary.get("leftover_netns") or summary.get("leftover_links"):
        summary["ok"] = False
    summary["total_s"] = round(time.monotonic() - started, 2)
    print(MARKER + json.dumps(summary), flush=True)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""The docker runtime for real: every node of the demo lab in its own container (`runtime:
docker`, a real Docker engine, inside the VM where this kernel has no mac80211_hwsim), FastPay
transfers across the mesh, a restarted container back on the mesh after `up`, and `down` leaving
no container, netns or radio."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.lab.plan import make_plan
from orchestrator.lab.topology import load_topology
from orchestrator.runtime import engine

pytestmark = pytest.mark.e2e

REPO = Path(__file__).parents[2]
CLI = [sys.executable, "-m", "orchestrator.cli"]
TOPOLOGY = REPO / "topologies" / "5auth3client-docker.yaml"
# The docker CLI inside the lab's kernel: the engine `up` started there, else the system's.
DOCKER = ("docker -H unix://$(s=/run/meshpay-lab/docker/docker.sock; [ -S $s ] && echo $s "
          "|| echo /var/run/docker.sock)")
TIMINGS: dict[str, float] = {}


def cli(env: dict, *args: str, timeout: float = 1500, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([*CLI, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"meshpay-lab {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def cli_json(env: dict, *args: str) -> dict:
    return json.loads(cli(env, *args, "--format", "json").stdout)


def timed(name: str, fn, *args, **kwargs):
    started = time.monotonic()
    result = fn(*args, **kwargs)
    TIMINGS[name] = round(time.monotonic() - started, 1)
    return result


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    env = {**os.environ, "MESHPAY_LAB_ROOT": str(tmp_path_factory.mktemp("docker-labs"))}
    if not image_available():
        timed("image_build_s", cli, env, "image", "build")
    plan = make_plan(load_topology(TOPOLOGY))
    timed("up_s", cli, env, "up", str(TOPOLOGY))
    lab_dir = Path(env["MESHPAY_LAB_ROOT"]) / plan.lab
    yield env, plan, lab_dir
    if lab_dir.exists():
        cli(env, "down", check=False)
    print(f"\ndocker e2e timings: {json.dumps(TIMINGS)}")


def image_available() -> bool:
    """The saved tarball (VM labs load it), or the image in an engine answering here."""
    if (engine.IMAGE_DIR / engine.IMAGE_TAR).exists():
        return True
    try:
        engine.client(start=False).images.get(engine.NODE_IMAGE)
        return True
    except Exception:  # no engine, or no image in it: build
        return False


def sh(env: dict, node: str, script: str) -> str:
    return cli(env, "exec", node, "--", "sh", "-c", script).stdout


def test_every_node_runs_in_its_own_labelled_container(lab):
    env, plan, _ = lab
    names = sh(env, "auth1", f"{DOCKER} ps --filter label=meshpay-lab.lab={plan.lab} --format '{{{{.Names}}}}'")
    assert sorted(names.split()) == sorted(f"meshpay-{plan.lab}-{n.name}" for n in plan.nodes)
    # the node's service runs inside the container, not beside it
    top = sh(env, "auth1", f"{DOCKER} top meshpay-{plan.lab}-auth3")
    assert "meshpay-node" in top, top


def test_mesh_peers_as_planned_and_every_node_serves(lab):
    env, plan, _ = lab
    rows = {row["node"]: row for row in cli_json(env, "status")["nodes"]}
    for node in plan.nodes:
        assert rows[node.name]["peers"] == sorted(plan.neighbours(node.name)), node.name
        assert rows[node.name]["serving"] is True, node.name


def test_transfer_between_containers_rides_the_mesh(lab):
    env, plan, _ = lab
    counter = "cat /sys/class/net/mesh0/statistics/rx_bytes"
    before = int(sh(env, "auth5", counter))
    result = timed("transfer_s", cli_json, env, "transfer", "--from", "client1", "--to", "client3", "--amount", "25")
    assert result["outcome"] == "confirmed", result
    assert len(result["certificate"]["signatures"]) >= 4
    assert int(sh(env, "auth5", counter)) > before


def test_a_restarted_container_rejoins_the_mesh_after_up(lab):
    env, plan, lab_dir = lab
    sh(env, "auth1", f"{DOCKER} restart -t 2 meshpay-{plan.lab}-auth3")
    timed("reconcile_up_s", cli, env, "up", str(TOPOLOGY))
    rows = {row["node"]: row for row in cli_json(env, "status")["nodes"]}
    assert rows["auth3"]["peers"] == sorted(plan.neighbours("auth3"))
    assert all(row["serving"] for row in rows.values()), rows
    result = cli_json(env, "transfer", "--from", "client2", "--to", "client1", "--amount", "5")
    assert result["outcome"] == "confirmed", result
    keys = json.loads((lab_dir / "lab.json").read_text())["nodes"]
    accounts = {a["id"]: a for a in cli_json(env, "balance", "auth3")["accounts"]}
    # auth3 kept its database across the restart (its node directory is mounted) and voted again
    assert accounts[keys["client1"]["public_key"]]["balance"] == 1000 - 25 + 5


def test_down_leaves_no_container_netns_or_radio(lab):
    env, plan, lab_dir = lab
    removed = timed("down_s", cli_json, env, "down")
    assert "error" not in removed and removed["leftover"] == [], removed
    assert sorted(removed["nodes"]) == sorted(n.netns for n in plan.nodes)
    assert len(removed["radios"]) == len(plan.nodes)
    assert not lab_dir.exists()

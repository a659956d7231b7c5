"""Two labs at once on one kernel, driven through `meshpay-lab` as a user would (the native route,
as on a host with mac80211_hwsim). Run as root on a kernel with hwsim; tests/e2e/test_two_labs.py
boots one virtme-ng VM for it. Prints one line `TWO_LABS_JSON {...}` with what it saw.

The labs are named lab373 and lab755, which the old 16-bit hash of the name gave the same id,
radios, bridge, MACs and management subnet.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from orchestrator.kernel import mgmt, radio  # noqa: E402

MARKER = "TWO_LABS_JSON "
TOPOLOGY = """name: {name}
medium: {{model: free_space, loss: false}}
defaults: {{range: 100}}
nodes:
  auth1: {{role: authority, position: [0, 0]}}
  client1: {{role: client, position: [40, 0]}}
  client2: {{role: client, position: [0, 40]}}
"""
LABS = {"lab373": 5, "lab755": 7}  # each lab's transfer amount: its own, so each is told apart


def cli_env(root: Path | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MESHPAY_LAB_ROOT"}
    return {**env, "COLUMNS": "200", "PYTHONPATH": str(REPO)} | ({"MESHPAY_LAB_ROOT": str(root)} if root else {})


def cli(root: Path | None, *args: str, timeout: float = 900, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """meshpay-lab ARGS with its labs under `root`; None: no root at all, labs found by the registry."""
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], cwd=cwd, env=cli_env(root),
                          capture_output=True, text=True, timeout=timeout)


def cli_json(root: Path, *args: str) -> tuple[int, dict]:
    done = cli(root, *args, "--format", "json")
    try:
        return done.returncode, json.loads(done.stdout)
    except ValueError:
        raise AssertionError(f"meshpay-lab {' '.join(args)}: no JSON ({done.returncode}):\n"
                             f"{done.stdout}\n{done.stderr}") from None


def leftovers() -> dict:
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    procs = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return {
        "netns": sorted(n for n in netns if n.startswith("mpl-")),
        "radios": sorted(r.name for r in radio.list_radios("mpl")),
        "links": sorted(mgmt.owned_links("lab373") + mgmt.owned_links("lab755"))
        + sorted(line.split(":")[1].strip() for line in links.splitlines() if ": mp" in line),
        "processes": sorted(p for p in procs.splitlines() if ("meshpay" in p or "orchestrator" in p)
                            and "two_labs" not in p and "orchestrator.cli" not in p),
    }


def main() -> int:
    summary: dict = {"ok": False, "kernel": os.uname().release}
    work = Path(tempfile.mkdtemp(prefix="two-labs-"))
    roots = {name: work / name for name in LABS}  # two roots: the registry, not a folder, finds them
    try:
        subprocess.run(["modprobe", "mac80211_hwsim", "radios=0"], check=True)
        topo = {}
        for name in LABS:
            topo[name] = work / f"{name}.yaml"
            topo[name].write_text(TOPOLOGY.format(name=name))
        # both at once: the registry's lock, not luck, keeps their identities apart
        t0 = time.monotonic()
        ups = {name: subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "up", "--no-vm", str(topo[name])],
                                      cwd=REPO, env=cli_env(roots[name]), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for name in LABS}
        for name, proc in ups.items():
            out, err = proc.communicate(timeout=900)
            assert proc.returncode == 0, f"up {name}: {out}\n{err}"
        summary["both_up_s"] = round(time.monotonic() - t0, 1)

        info = {name: json.loads((roots[name] / name / "lab.json").read_text()) for name in LABS}
        summary["identity"] = {n: [i["lab_id"], i["mgmt_subnet"]] for n, i in info.items()}
        summary["macs"] = {n: sorted(v["mac"] for v in i["nodes"].values()) for n, i in info.items()}

        # the same name from another file is refused, naming the running lab's file
        other = work / "other.yaml"
        other.write_text(TOPOLOGY.format(name="lab373").replace("[40, 0]", "[30, 0]"))
        refused = cli(roots["lab373"], "up", "--no-vm", str(other))
        summary["same_name_refused"] = [refused.returncode, refused.stderr.strip().splitlines()[-1:]]
        elsewhere = cli(work / "elsewhere", "up", "--no-vm", str(topo["lab373"]))
        summary["same_name_elsewhere_refused"] = [elsewhere.returncode, elsewhere.stderr.strip().splitlines()[-1:]]

        # from a directory with no labs under it and no root given: the registry finds both
        empty = work / "empty"
        empty.mkdir()
        listed = cli(None, "list", "--format", "json", cwd=empty)
        summary["listed"] = sorted(row["lab"] for row in json.loads(listed.stdout)["labs"])
        status = cli(None, "status", "--lab", "lab755", "--format", "json", cwd=empty)
        summary["status_from_anywhere"] = [status.returncode, json.loads(status.stdout).get("lab")]

        summary["peers"], summary["transfers"], summary["balances"] = {}, {}, {}
        for name, amount in LABS.items():
            rc, status = cli_json(roots[name], "status", "--lab", name)
            summary["peers"][name] = {row["node"]: row["peers"] for row in status["nodes"]}
            rc, record = cli_json(roots[name], "transfer", "--lab", name, "--from", "client1", "--to", "client2",
                                  "--amount", str(amount))
            summary["transfers"][name] = [rc, record.get("outcome")]
        for name in LABS:
            rc, bal = cli_json(roots[name], "balance", "auth1", "--lab", name)
            summary["balances"][name] = sorted(a["balance"] for a in bal["accounts"])

        rc, removed = cli_json(roots["lab373"], "down", "--lab", "lab373")
        summary["down_first"] = [rc, removed.get("leftover")]
        rc, status = cli_json(roots["lab755"], "status", "--lab", "lab755")
        summary["second_after_first_down"] = [rc, [row["serving"] for row in status["nodes"]]]
        rc, record = cli_json(roots["lab755"], "transfer", "--lab", "lab755", "--from", "client2", "--to",
                              "client1", "--amount", "1")
        summary["second_transfer_after_first_down"] = [rc, record.get("outcome")]
        rc, removed = cli_json(roots["lab755"], "down", "--lab", "lab755")
        summary["down_second"] = [rc, removed.get("leftover")]
        summary["leftovers"] = leftovers()
        summary["registry_after"] = json.loads(Path("/run/meshpay-lab/registry.json").read_text())["labs"]
        summary["ok"] = True
    except Exception as exc:  # the summary says what failed; the test asserts on it
        summary["error"] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-3000:]}"
        for name in LABS:
            cli(roots[name], "down", "--lab", name)
    print(MARKER + json.dumps(summary), flush=True)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""Two labs at once on one kernel (inside one virtme-ng VM where this kernel has no hwsim), named
so that the old hash of the name gave them the same id: each lab's transfers reach only its own
nodes, `down` of one leaves the other serving, `down` of the other leaves nothing behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.vm import machine

pytestmark = pytest.mark.e2e

SCRIPT = Path(__file__).with_name("two_labs.py")
MARKER = "TWO_LABS_JSON "
TIMEOUT_S = 1200


def _hwsim_here() -> bool:
    return Path("/sys/module/mac80211_hwsim").exists() or subprocess.run(
        ["modprobe", "mac80211_hwsim", "radios=0"], capture_output=True).returncode == 0


def _summary(text: str) -> dict:
    lines = [line for line in text.splitlines() if line.startswith(MARKER)]
    assert lines, f"two_labs.py printed no summary; output tail:\n{text[-4000:]}"
    return json.loads(lines[-1][len(MARKER):])


def test_two_labs_on_one_kernel_never_touch_each_other(tmp_path: Path) -> None:
    if _hwsim_here():
        done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=TIMEOUT_S)
        text = done.stdout + done.stderr
    else:
        out = tmp_path / "two_labs.out"
        machine.run_once(["/bin/sh", "-c", f"{sys.executable} {SCRIPT} > {out} 2>&1"], rwdirs=[tmp_path],
                    timeout=TIMEOUT_S, memory="3G")
        text = out.read_text() if out.exists() else ""
    s = _summary(text)
    print(json.dumps(s, indent=1))
    assert s["ok"], s.get("error")

    # distinct identities although the names hash alike
    (id_a, net_a), (id_b, net_b) = s["identity"]["lab373"], s["identity"]["lab755"]
    assert id_a != id_b and net_a != net_b
    assert not set(s["macs"]["lab373"]) & set(s["macs"]["lab755"])
    assert s["same_name_refused"][0] == 1 and "another file" in s["same_name_refused"][1][0]
    assert s["same_name_elsewhere_refused"][0] == 1 and "already up, in" in s["same_name_elsewhere_refused"][1][0]
    assert s["listed"] == ["lab373", "lab755"]
    assert s["status_from_anywhere"] == [0, "lab755"]

    # each lab's mesh holds only its own nodes: a peer from the other lab would show as a bare MAC
    for lab, peers in s["peers"].items():
        for node, mine in peers.items():
            assert set(mine) <= {"auth1", "client1", "client2"} - {node} and mine, (lab, node, mine)
    assert s["transfers"] == {"lab373": [0, "confirmed"], "lab755": [0, "confirmed"]}
    # each authority saw only its own lab's transfer (5 in one, 7 in the other)
    assert {995, 1005} <= set(s["balances"]["lab373"]) and not {993, 1007} & set(s["balances"]["lab373"])
    assert {993, 1007} <= set(s["balances"]["lab755"]) and not {995, 1005} & set(s["balances"]["lab755"])

    assert s["down_first"] == [0, []]
    assert s["second_after_first_down"] == [0, [True, True, True]]
    assert s["second_transfer_after_first_down"] == [0, "confirmed"]
    assert s["down_second"] == [0, []]
    assert s["leftovers"] == {"netns": [], "radios": [], "links": [], "processes": []}
    assert s["registry_after"] == {}

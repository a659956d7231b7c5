"""`meshpay-lab capture` on a running line3 lab (issue 14), called from test_lab.py's line3 test so
it shares that lab: a capture, started and stopped as a user would (Ctrl-C), over a move that
makes a new peer link and a transfer; tshark reads the file as it is and finds mesh beacons with
the lab's mesh ID, HWMP path requests and replies, peering frames and FastPay data frames."""

from __future__ import annotations

import json
import signal
import subprocess
import time

from orchestrator.lab.plan import WIRE_PORT

from .labdriver import CLI, REPO, Lab, wait_for


def tshark(path, display_filter: str, *fields: str) -> list[list[str]]:
    argv = ["tshark", "-r", str(path), "-Y", display_filter, "-T", "fields", "-E", "separator=|"]
    for f in fields or ("frame.number",):
        argv += ["-e", f]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"tshark -Y {display_filter!r} failed: {done.stderr}"
    return [line.split("|") for line in done.stdout.splitlines()]


def stats_capture(lab: Lab) -> dict:
    try:
        return json.loads((lab.lab_dir / "medium-stats.json").read_text()).get("capture") or {}
    except (OSError, ValueError):
        return {}


def check_capture_on_line3(lab: Lab) -> None:
    out = lab.root / "line3.pcapng"
    proc = subprocess.Popen([*CLI, "capture", "--out", str(out), "--format", "json"], cwd=REPO, env=lab.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for("the capture to start", lambda: stats_capture(lab).get("state") == "on" or proc.poll() is not None,
                 timeout=120, every=1.0)
        assert proc.poll() is None, proc.communicate()
        # client2 moves between auth3 and auth4: a new peer link with auth3 (peering frames)
        lab.cli("move", "client2", "250", "10")
        wait_for("client2 peered with auth3", lambda: any(
            p["peer"] == "auth3" and p["plink_state"] == "ESTAB" for p in lab.json("peers", "client2")["peers"]),
            timeout=120, every=3.0)
        result = lab.json("transfer", "--from", "client2", "--to", "client1", "--amount", "3")
        assert result["outcome"] == "confirmed", result
        time.sleep(1.0)  # the last frames of the transfer reach the file
    finally:
        proc.send_signal(signal.SIGINT)  # as a user's Ctrl-C
        stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, f"capture failed: {stdout}\n{stderr}"
    report = json.loads(stdout)
    assert report["state"] == "done" and report["records"] > 0 and report["out"] == str(out), report

    mac = {n.name: n.mac for n in lab.plan.nodes}
    mesh_id = lab.plan.mesh_id
    beacons = tshark(out, f'wlan.fc.type_subtype == 0x0008 && wlan.mesh.id == "{mesh_id}"', "wlan.ta")
    assert {row[0] for row in beacons} == set(mac.values()), "every radio's mesh beacons, with the mesh ID"
    assert tshark(out, "wlan.fixed.mesh_action == 1 && wlan.tag.number == 130"), "no HWMP PREQ"
    assert tshark(out, "wlan.fixed.mesh_action == 1 && wlan.tag.number == 131"), "no HWMP PREP"
    peering = tshark(out, "wlan.fixed.selfprot_action", "wlan.fixed.selfprot_action", "wlan.ta", "wlan.ra")
    opened = {(int(a, 0), ta, ra) for a, ta, ra in peering}  # tshark prints 0x01
    assert (1, mac["client2"], mac["auth3"]) in opened and (2, mac["client2"], mac["auth3"]) in opened, \
        f"no mesh peering open and confirm from client2 to auth3 in {sorted(opened)}"
    votes = tshark(out, f"wlan.fc.type == 2 && wlan.sa == {mac['client2']} && tcp.dstport == {WIRE_PORT}", "wlan.da")
    asked = {row[0] for row in votes}
    authorities = {mac[n.name] for n in lab.plan.nodes if n.role == "authority"}
    assert authorities <= asked, f"FastPay data frames from client2 reached {asked}, not every authority"
    # the radiotap of every received record has a signal and a rate; acked unicast data was sent
    assert tshark(out, "wlan.fc.type == 2 && radiotap.dbm_antsignal < 0 && radiotap.datarate > 0")
    assert tshark(out, "wlan.fc.type == 2 && radiotap.txflags == 0"), "no data frame sent and acknowledged"

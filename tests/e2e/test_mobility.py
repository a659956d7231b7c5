"""Mobility on the real kernel: the medium moves client1 (random waypoint) and client2 (random walk)
along exactly the paths orchestrator/air/mobility.py computes for the shipped seed, the mesh follows
(client1 peers with authorities it could not hear at the start and drops auth1 once out of its
range) while the two keep paying each other and every transfer confirms, `move` pins a moving node,
and `draw --live` follows them in a real headless chromium. Handoff latency while moving is
measured by bench/bench_handoff.py, not asserted here."""

from __future__ import annotations

import math
import re
import subprocess
import threading
from functools import partial

import pytest

from orchestrator.air.mobility import Trajectory

from .labdriver import CLI, REPO, Lab, lab_fixture, wait_for

pytestmark = pytest.mark.e2e

# Each poll is a CLI call through the VM's agent.
wait_for = partial(wait_for, every=3.0)
# The medium reports positions with 3 decimals, for the wall-clock time it computed them at.
TOLERANCE_M = 0.01
LINK_EXPIRY_S = 100.0  # mesh_plink_timeout 10 s, checked by the kernel's once-a-minute housekeeping


mobile = lab_fixture("mobile.yaml", "mobile")
DRAWN_CLIENT1 = ("(() => { const c = document.querySelector('#node-client1'); "
                 "return c && [+c.getAttribute('cx'), +c.getAttribute('cy')]; })()")


def medium(lab: Lab) -> dict:
    return lab.json("status")["medium"]


def peers(lab: Lab, node: str) -> set[str]:
    return {p["peer"] for p in lab.json("peers", node)["peers"] if p["plink_state"] == "ESTAB"}


def expected(lab: Lab, node: str, report: dict) -> tuple[float, float]:
    return Trajectory(lab.plan.node(node).motion).position(report["positions_time"] - report["mobility_epoch"])


def test_mobile_nodes_are_where_their_seeded_trajectories_put_them(mobile: Lab):
    first, _ = wait_for("the medium reports moving nodes", lambda: (m := medium(mobile)).get("positions") and m, 30)
    second, _ = wait_for("a report 3 s later",
                         lambda: (m := medium(mobile))["positions_time"] > first["positions_time"] + 3 and m, 30)
    print("reported:", first["positions"], "then", second["positions"], "at", second["positions_time"])
    assert first["mobility_epoch"] == second["mobility_epoch"]
    for report in (first, second):
        assert set(report["positions"]) == {"client1", "client2"}
        for node in ("client1", "client2"):
            assert math.dist(report["positions"][node], expected(mobile, node, report)) < TOLERANCE_M, node
    assert first["positions"]["client1"] != second["positions"]["client1"]
    assert first["positions"]["client2"] != second["positions"]["client2"]
    rows = {row["node"]: row["position"] for row in mobile.json("status")["nodes"]}
    assert rows["auth1"] == [0.0, 0.0] and rows["client1"] != [0.0, 60.0]


class Payments(threading.Thread):
    """client1 and client2 pay each other in turn, one transfer after the other, until stopped:
    a run of transfers while both move (issue 16's handoff test; their latency is the bench's)."""

    def __init__(self, lab: Lab) -> None:
        super().__init__(daemon=True)
        self.lab = lab
        self.stop = threading.Event()
        self.outcomes: list[str] = []

    def run(self) -> None:
        turn = 0
        while not self.stop.is_set():
            src, dst = ("client1", "client2") if turn % 2 == 0 else ("client2", "client1")
            turn += 1
            done = self.lab.cli("transfer", "--from", src, "--to", dst, "--amount", "1", "--format", "json",
                                check=False)
            self.outcomes.append(f"{src}: {done.stdout.strip()[-300:] or done.stderr.strip()[-300:]}"
                                 if done.returncode else "confirmed")


def test_client1_peers_anew_as_it_moves_and_drops_auth1_out_of_range(mobile: Lab):
    at_start = set(mobile.plan.neighbours("client1"))
    assert at_start == {"auth1"}
    payments = Payments(mobile)
    payments.start()
    # auth2, auth3, auth4 come in range as it moves along the row (client2 too, where they meet)
    gained, gained_s = wait_for("client1 peers with a node it could not hear at the start",
                                lambda: peers(mobile, "client1") - at_start, 60)
    _, lost_s = wait_for("client1 drops auth1", lambda: "auth1" not in peers(mobile, "client1"), LINK_EXPIRY_S)
    report = medium(mobile)
    auth1 = mobile.plan.node("auth1")
    print(f"client1 gained {sorted(gained)} after {gained_s} s, dropped auth1 {lost_s} s later, "
          f"{report['positions_time'] - report['mobility_epoch']:.1f} s into the run")
    assert math.dist(report["positions"]["client1"], auth1.position) > auth1.range
    payments.stop.set()
    payments.join(timeout=180)
    # every transfer made while client1 left auth1 for the authorities further along confirmed
    assert len(payments.outcomes) >= 5, payments.outcomes
    assert [o for o in payments.outcomes if o != "confirmed"] == [], payments.outcomes


def test_the_live_view_follows_a_moving_node_in_a_real_browser(mobile: Lab, chromium):
    """`draw --live` in Debian's headless chromium: the page draws client1 where the medium has it,
    redraws it elsewhere as it moves, and shows the peer links and a transfer's outcome."""
    view = subprocess.Popen([*CLI, "draw", "--live", "--port", "0"], cwd=REPO, env=mobile.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = view.stdout.readline()  # "live view of mobile on http://127.0.0.1:PORT/ (Ctrl-C stops it)"
        url = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert url, f"draw --live said {line!r}; stderr: {view.stderr.read() if view.poll() is not None else ''}"
        chromium.open(url[0])
        chromium.wait_for("document.querySelector('#status').textContent.startsWith('frame ')", 30)
        first = chromium.evaluate(DRAWN_CLIENT1)
        moved = chromium.wait_for(f"(() => {{ const p = {DRAWN_CLIENT1}; "
                                  f"return p && (p[0] != {first[0]} || p[1] != {first[1]}) && p; }})()", 30)
        print("client1 drawn at", first, "then", moved)
        # the nodes' peer links arrive through the VM's agent, node by node
        chromium.wait_for("document.querySelectorAll('#mesh line.link').length >= 3", 120)
        mobile.cli("transfer", "--from", "client2", "--to", "client1", "--amount", "1")
        chromium.wait_for("document.querySelector('#transfers').textContent.includes('client2 → client1')", 30)
        assert "confirmed in" in chromium.evaluate("document.querySelector('#transfers').textContent")
        assert chromium.evaluate("document.querySelectorAll('#mesh line.transfer').length") >= 1
    finally:
        view.terminate()
        view.wait(timeout=30)


def test_move_pins_a_moving_node(mobile: Lab):
    moved = mobile.json("move", "client2", "310", "0")  # past the end of the row: 40 m from auth4, 130 m from auth3
    assert "auth4" in moved["in_range"] and "auth3" not in moved["in_range"], moved
    assert "stopped" in moved["mobility"], moved
    report, _ = wait_for("the medium stops reporting client2 as moving",
                         lambda: "client2" not in (m := medium(mobile))["positions"] and m, 15)
    assert set(report["positions"]) == {"client1"}
    rows = {row["node"]: row["position"] for row in mobile.json("status")["nodes"]}
    assert rows["client2"] == [310.0, 0.0]

"""`draw --live` on a fake lab (and in a real headless chromium): each frame takes positions from the medium's files as they are now,
links and routes from the nodes' latest answers, recent transfers from the transfer log; the HTTP
server answers / and /frame on 127.0.0.1."""

from __future__ import annotations

import json
import re
import threading

import httpx
import pytest

from orchestrator import liveview
from orchestrator.air.airspace import MediumConfig, Radio, write_config
from orchestrator.air.mobility import Area, Motion, RandomWalk
from orchestrator.air.propagation import Model
from orchestrator.medium.process import STATS_FILE
from orchestrator.report import transferlog
from orchestrator.verbs import mesh_tables

POSITIONS = {"client1": (0.0, 0.0), "relay1": (70.0, 70.0), "auth1": (140.0, 0.0), "client2": (190.0, 0.0)}
LINKS = [("client1", "relay1"), ("relay1", "auth1"), ("auth1", "client2")]
NEXT = {"client1": {"auth1": "relay1"}, "relay1": {"auth1": "auth1"}}
WALK = Motion(RandomWalk(Area((-50.0, -50.0), (50.0, 50.0)), (1.0, 2.0), 5.0), seed=1, start=(0.0, 0.0))


def dispatch(lab_dir, verb):
    assert verb == "mesh_tables"
    return mesh_tables.run(lab_dir, ask=ask)


def ask(lab_dir, verb, node):
    if verb == "peers":
        return {"peers": [{"peer": b if a == node else a, "plink_state": "ESTAB"} for a, b in LINKS if node in (a, b)]}
    return {"paths": [{"destination_node": d, "next_hop_node": n} for d, n in NEXT.get(node, {}).items()]}


def lab_dir_with_a_mover(tmp_path):
    nodes = {name: {"role": "authority" if name.startswith("auth") else "client", "position": list(pos),
                    "range": 100.0, "mac": f"02:00:00:00:00:0{i}"} for i, (name, pos) in enumerate(POSITIONS.items())}
    (tmp_path / "lab.json").write_text(json.dumps({"lab": "live", "nodes": nodes}))
    radios = tuple(Radio(name, n["mac"], tuple(n["position"]), 100.0, WALK if name == "client1" else None)
                   for name, n in nodes.items())
    write_config(tmp_path, MediumConfig(2412, Model(kind="free_space"), radios, mobility_epoch=1.0))
    move(tmp_path, (0.0, 0.0))
    return tmp_path


def move(lab_dir, where):
    """What the medium reports for its moving radio (medium-stats.json)."""
    (lab_dir / STATS_FILE).write_text(json.dumps({"positions": {"client1": list(where)}}))


def circle(svg: str, node: str) -> tuple[float, float]:
    found = re.search(rf'<circle id="node-{node}" cx="([-\d.]+)" cy="([-\d.]+)"', svg)
    assert found, svg
    return float(found[1]), float(found[2])


def test_a_frame_follows_the_medium_and_keeps_its_scale(tmp_path):
    live = liveview.LiveMesh(lab_dir_with_a_mover(tmp_path), dispatch=dispatch)
    first = live.frame()
    move(tmp_path, (30.0, -20.0))
    second = live.frame()
    assert first["positions"]["client1"] == [0.0, 0.0] and second["positions"]["client1"] == [30.0, -20.0]
    (x1, y1), (x2, y2) = circle(first["svg"], "client1"), circle(second["svg"], "client1")
    assert x2 > x1 and y2 > y1  # east and south: right and down
    # the mover's area is in the frame from the start: the nodes that stay put are drawn where they were
    assert circle(first["svg"], "auth1") == circle(second["svg"], "auth1")
    assert first["links"] == [] and first["links_age_s"] is None  # nobody asked yet


def test_links_routes_and_transfers_come_in_once_the_nodes_are_asked(tmp_path):
    lab_dir = lab_dir_with_a_mover(tmp_path)
    transferlog.append(lab_dir, {"time": 100.0, "from": "client1", "to": "client2", "amount": 5,
                                 "outcome": "confirmed", "latency_ms": 184.2, "error": None})
    transferlog.append(lab_dir, {"time": 101.0, "from": "client2", "to": "client1", "amount": 1,
                                 "outcome": "error", "latency_ms": None, "error": "no quorum <b>"})
    live = liveview.LiveMesh(lab_dir, dispatch=dispatch)
    live.ask_nodes_once()
    f = live.frame()
    assert f["links"] == sorted(sorted(link) for link in LINKS)
    assert f["routes"] == [["client2"]]  # the latest sender, client2, knows no path
    assert "route client2 → auth1 known only as far as client2" in f["notes"]
    live.sender = "client1"
    live.ask_nodes_once()
    f = live.frame()
    assert f["routes"] == [["client1", "relay1", "auth1"]]
    assert f["svg"].count('class="transfer"') == 2
    assert "transfer client1 → client2: confirmed in 184 ms" in f["svg"]
    table = f["transfers_html"]
    assert table.index("client2 → client1") < table.index("client1 → client2")  # newest first
    assert "no quorum &lt;b&gt;" in table  # escaped


def test_the_transfer_log_keeps_the_last_ones_and_survives_a_torn_line(tmp_path):
    for i in range(30):
        transferlog.append(tmp_path, {"time": i, "from": "a", "to": "b", "outcome": "confirmed"})
    with (tmp_path / transferlog.LOG_FILE).open("a") as f:
        f.write('{"time": 99, "fro')  # a line being written
    assert [t["time"] for t in transferlog.recent(tmp_path, 5)] == [25, 26, 27, 28, 29]
    assert transferlog.recent(tmp_path / "nothing-here") == []


@pytest.fixture
def server(tmp_path):
    live = liveview.LiveMesh(lab_dir_with_a_mover(tmp_path), dispatch=dispatch)
    srv = liveview.make_server(live, 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_the_server_answers_the_page_and_frames_on_localhost(server, tmp_path):
    assert server.startswith("http://127.0.0.1:")
    page = httpx.get(server + "/").text
    assert "<svg" in page and 'fetch("frame"' in page and "setTimeout(redraw, 1000)" in page
    move(tmp_path, (10.0, 10.0))
    frame = httpx.get(server + "/frame").json()
    assert frame["positions"]["client1"] == [10.0, 10.0]
    assert httpx.get(server + "/nope").status_code == 404
    (tmp_path / "lab.json").unlink()  # a lab taken down under the view
    (tmp_path / "medium.json").unlink()
    broken = httpx.get(server + "/frame")
    assert broken.status_code == 200  # lab.json was read at start; positions fall back to it


# --- in a real headless chromium (Debian's, installed by install.sh); tests/e2e/test_mobility.py does
# the same against a real lab ---

DRAWN = "(() => { const c = document.querySelector('#node-client1'); return c && [+c.getAttribute('cx'), +c.getAttribute('cy')]; })()"


@pytest.fixture
def live_url(tmp_path):
    (tmp_path / "lab").mkdir()
    live = liveview.LiveMesh(lab_dir_with_a_mover(tmp_path / "lab"), dispatch=dispatch)
    live.start()
    srv = liveview.make_server(live, 0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/"
    live.stop()
    srv.shutdown()
    srv.server_close()


@pytest.mark.integration  # a real chromium process
def test_the_page_redraws_a_moving_node_and_new_transfers(chromium, live_url, tmp_path):
    chromium.open(live_url)
    chromium.wait_for("document.querySelector('#status') && document.querySelector('#status').textContent"
                      ".startsWith('frame ')")
    before = chromium.evaluate(DRAWN)
    assert chromium.evaluate("document.querySelectorAll('#mesh svg circle[id^=node-]').length") == 4
    move(tmp_path / "lab", (40.0, 30.0))
    transferlog.append(tmp_path / "lab", {"time": 5.0, "from": "client1", "to": "client2", "amount": 1,
                                          "outcome": "confirmed", "latency_ms": 99.0, "error": None})
    after = chromium.wait_for(f"(() => {{ const p = {DRAWN}; return p && (p[0] != {before[0]} || p[1] != {before[1]})"
                              " && p; })()", timeout=10)
    assert after[0] > before[0] and after[1] < before[1]  # east and north: right and up
    assert chromium.wait_for("document.querySelector('#transfers').textContent.includes('confirmed in 99 ms')", 10)
    assert chromium.wait_for("document.querySelectorAll('#mesh line.transfer').length == 1", 10)

"""`draw` on a fake diamond lab: positions from medium.json over lab.json, links from peers, routes
by following next hops; the SVG's geometry; the PNG, or a clear word when matplotlib is missing."""

from __future__ import annotations

import json
import re

import pytest

from orchestrator.report import meshmap
from orchestrator.verbs import draw, mesh_tables

POSITIONS = {"client1": (0, 0), "relay1": (70, 70), "relay2": (70, -70), "auth1": (140, 0),
             "auth2": (165, 20), "client2": (190, 0)}
LINKS = [("client1", "relay1"), ("client1", "relay2"), ("relay1", "auth1"), ("relay2", "auth1"),
         ("auth1", "auth2"), ("auth2", "client2")]
# next hops towards each authority, per node
NEXT = {"client1": {"auth1": "relay2", "auth2": "relay2"}, "relay2": {"auth1": "auth1", "auth2": "auth1"},
        "auth1": {"auth2": "auth2"}}


@pytest.fixture
def diamond(tmp_path):
    nodes = {name: {"role": "authority" if name.startswith("auth") else "client", "position": list(pos),
                    "range": 100.0, "mac": f"02:00:00:00:00:0{i}"} for i, (name, pos) in enumerate(POSITIONS.items())}
    (tmp_path / "lab.json").write_text(json.dumps({"lab": "diamond", "nodes": nodes}))
    return tmp_path


def fake_dispatch(calls=None, broken=()):
    """`dispatch` answering `mesh_tables` as the verb does, over fake per-node peers and paths."""
    def dispatch(lab_dir, verb):
        if calls is not None:
            calls.append(verb)
        return mesh_tables.run(lab_dir, ask=ask)

    def ask(lab_dir, verb, node):
        if node in broken:
            raise RuntimeError(f"{node} is gone")
        if verb == "peers":
            peers = [b if a == node else a for a, b in LINKS if node in (a, b)]
            return {"peers": [{"peer": p, "plink_state": "ESTAB"} for p in peers]
                    + [{"peer": "stranger", "plink_state": "ESTAB"}, {"peer": "client2", "plink_state": "HOLDING"}]}
        return {"paths": [{"destination_node": d, "next_hop_node": n} for d, n in NEXT.get(node, {}).items()]}
    return dispatch


def test_snapshot_from_lab_json_peers_and_paths(diamond):
    calls = []
    m = draw.snapshot(diamond, "client1", fake_dispatch(calls))
    assert m.node("relay1").position == (70, 70) and not m.node("relay1").isolated
    assert m.links == {frozenset(link) for link in LINKS}  # not the stranger, not the HOLDING link
    assert m.routes == (("client1", "relay2", "auth1"), ("client1", "relay2", "auth1", "auth2"))
    assert calls == ["mesh_tables"]  # one call where the lab lives, not one per node and hop


def test_positions_and_isolation_come_from_the_medium(diamond):
    radios = [{"name": n, "mac": "02:00:00:00:00:01", "position": [x, y], "range": 100}
              for n, (x, y) in POSITIONS.items()]
    radios[1]["position"] = [-40, 0]
    (diamond / "medium.json").write_text(json.dumps({
        "version": 3, "freq": 2412, "loss": True, "radios": radios, "isolated": ["relay2"],
        "model": {"kind": "free_space", "tx_power_dbm": 20, "noise_dbm": -91, "exponent": 3, "ref_distance_m": 1}}))
    m = draw.snapshot(diamond, None, fake_dispatch())
    assert m.node("relay1").position == (-40.0, 0.0)
    assert [n.name for n in m.nodes if n.isolated] == ["relay2"]
    assert m.routes == ()  # no sender given, no scenario run


def test_the_last_scenario_transfer_names_the_sender(diamond):
    (diamond / "runs").mkdir()
    (diamond / "runs" / "s.json").write_text(json.dumps({"scenario": "s", "steps": [
        {"do": "transfer", "args": {"from": "client2", "to": "client1", "amount": 1}},
        {"do": "wait", "args": {"seconds": 1}}]}))
    m = draw.snapshot(diamond, None, fake_dispatch())
    assert [r[0] for r in m.routes] == ["client2", "client2"]
    assert "route client2 → auth1 known only as far as client2" in m.notes


def test_an_unanswering_node_is_drawn_and_noted(diamond):
    m = draw.snapshot(diamond, "client1", fake_dispatch(broken={"relay2"}))
    assert "peers of relay2: relay2 is gone" in m.notes
    assert frozenset(("client1", "relay2")) in m.links  # client1 still reports it
    assert m.routes[0] == ("client1", "relay2")


def test_svg_puts_north_up_and_fits_the_width(diamond):
    m = draw.snapshot(diamond, "client1", fake_dispatch())
    f = meshmap.Frame.fit(m.nodes)
    assert f.px((0, 0))[0] == meshmap.MARGIN_PX and f.px((190, 0))[0] == meshmap.WIDTH_PX - meshmap.MARGIN_PX
    assert f.px((70, 70))[1] == meshmap.MARGIN_PX and f.px((70, -70))[1] == f.height - meshmap.MARGIN_PX
    svg = meshmap.svg(m)
    assert len(re.findall(r'stroke-width="2"><title>', svg)) == len(LINKS)
    assert len(re.findall(r"<title>route hop", svg)) == 3  # shared hops drawn once
    assert svg.count('r="14"') == len(POSITIONS)


def test_one_node_or_a_line_still_fits():
    for nodes in ((meshmap.Node("a", "authority", (5, 5), 100),),
                  tuple(meshmap.Node(f"n{i}", "client", (0, 80 * i), 100) for i in range(10))):
        f = meshmap.Frame.fit(nodes)
        for n in nodes:
            x, y = f.px(n.position)
            assert 0 <= x <= meshmap.WIDTH_PX and 0 <= y <= f.height <= meshmap.MAX_HEIGHT_PX


def test_names_are_escaped():
    m = meshmap.MeshMap("x", (meshmap.Node("<b>", "client", (0, 0), 10),), frozenset(), notes=("a & b",))
    page = meshmap.page(m, "t<")
    assert "<b>" not in page.replace("<body", "") and "&lt;b&gt;" in page and "a &amp; b" in page


def test_run_writes_html_and_png_or_says_why_not(diamond, tmp_path, request):
    out = draw.run(diamond, str(tmp_path / "pics"), "client1", dispatch=fake_dispatch())
    assert (tmp_path / "pics" / "mesh.html").read_text().startswith("<!doctype html>")
    assert (tmp_path / "pics" / "mesh.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out["png_problem"] is None and out["links"] == len(LINKS)

    request.getfixturevalue("no_matplotlib")  # only now: the first half draws the PNG
    out = draw.run(diamond, str(tmp_path / "bare"), "client1", dispatch=fake_dispatch())
    assert out["png"] is None and "pip install 'meshpay-lab[plots]'" in out["png_problem"]
    assert (tmp_path / "bare" / "mesh.html").exists() and not (tmp_path / "bare" / "mesh.png").exists()


def test_topology_is_the_same_command_as_draw():
    from typer.testing import CliRunner

    from orchestrator.cli import app

    runner = CliRunner()
    topology, drawn = (runner.invoke(app, [name, "--help"]) for name in ("topology", "draw"))
    assert topology.exit_code == 0 and "--from" in topology.output and "--out" in topology.output
    options = [line for line in topology.output.splitlines() if line.strip().startswith("│ --")]
    assert options and options == [line for line in drawn.output.splitlines() if line.strip().startswith("│ --")]


def test_up_records_each_nodes_range_where_draw_reads_it_without_a_medium():
    # The fixture above gives lab.json a `range`: `up` writes it (lab_info), from the plan.
    from pathlib import Path

    from orchestrator.lab import keys
    from orchestrator.lab.plan import make_plan
    from orchestrator.lab.topology import load_topology
    from orchestrator.verbs.up import lab_info

    plan = make_plan(load_topology(Path(__file__).parents[2] / "topologies" / "line3.yaml"))
    info = lab_info(plan, {"seeds": {n.name: keys.new_seed() for n in plan.nodes}})
    assert {name: n["range"] for name, n in info["nodes"].items()} == {n.name: n.range for n in plan.nodes}
    assert all(n.range > 0 for n in plan.nodes)

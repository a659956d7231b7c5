"""Per-link impairments: from the topology's `links:` and the `impair` verb into medium.json, and
what the medium's per-frame path does with them (loss, delay with jitter, a rate cap)."""

import json
import struct

import pytest
from test_draw import POSITIONS, fake_dispatch
from test_medium import FAMILY, MACS, air, decode, kernel_frame
from test_mediumctl import TOPO, lab_dir  # noqa: F401 - the fake-medium lab fixture

from orchestrator.errors import UsageError
from orchestrator.medium import process as medium_process
from orchestrator.medium import hwsim
from orchestrator.report import meshmap
from orchestrator.air.airspace import (RATE_BACKLOG_S, Airspace, Impairment, MediumConfig, Radio, impairments_in_force,
                                   mac_bytes, read_config, write_config)
from orchestrator.air.propagation import Model
from orchestrator.air.shaping import Shaping
from orchestrator.lab.plan import make_plan
from orchestrator.lab.scenario import parse_scenario
from orchestrator.lab.topology import TopologyError, parse_topology
from orchestrator.medium.control import config_for
from orchestrator.verbs import draw, impair


def impaired_air(**ways: Impairment) -> Airspace:
    """air() (n0 - n1 - n2, 100 m apart, no loss) with impairments keyed like n1_n2."""
    cfg = air().config
    imps = {tuple(k.split("_")): v for k, v in ways.items()}
    return Airspace(MediumConfig(cfg.freq, cfg.model, cfg.radios, cfg.loss, impairments=imps))


def test_links_entries_impair_each_direction_without_blocking_peering():
    topo = TOPO + """links:
  - {a: a, b: b, loss_pct: 20, delay_ms: 50, jitter_ms: 5}
  - {a: b, b: c, rate_mbps: 2, direction: b_to_a}
  - {a: a, b: c}
"""
    plan = make_plan(parse_topology(topo))
    assert plan.link_blocked == (("a", "c"),)  # a plain entry still blocks; impairing ones do not
    cfg = config_for(plan)
    assert cfg.impairments == {("a", "b"): Impairment(20, 50, 5), ("b", "a"): Impairment(20, 50, 5),
                               ("c", "b"): Impairment(rate_mbps=2)}
    assert MediumConfig.from_json(cfg.to_json()).impairments == cfg.impairments
    rows = impairments_in_force(cfg)
    assert rows[0] == {"from": "a", "to": "b", "loss_pct": 20, "delay_ms": 50, "jitter_ms": 5,
                       "summary": "loss 20%, delay 50±5 ms"}


@pytest.mark.parametrize(("entry", "message"), [
    ("{a: a, b: b, loss_pct: 120}", "loss_pct"),
    ("{a: a, b: b, delay_ms: -1}", "delay_ms"),
    ("{a: a, b: b, rate_mbps: 1, direction: up}", "direction"),
])
def test_bad_impairments_are_refused_naming_the_field(entry, message):
    with pytest.raises(TopologyError, match=message):
        parse_topology(TOPO + f"links:\n  - {entry}\n")


def test_impairing_a_lab_without_a_medium_is_refused():
    topo = TOPO.replace("medium: {model: log_distance, exponent: 2.5}", "medium: none")
    with pytest.raises(TopologyError, match="links.0. impairs a-b, which needs the wireless medium"):
        parse_topology(topo + "links:\n  - {a: a, b: b, loss_pct: 5}\n")


def test_full_loss_on_one_direction_fails_every_attempt_that_way_only():
    a = impaired_air(n1_n2=Impairment(loss_pct=100))
    counters = medium_process.Counters()
    frame = kernel_frame(1, mac_bytes(MACS[2]))
    msgs = medium_process.feed(frame, len(frame), a, hwsim.Codec(FAMILY), lambda: 0.999, counters)
    assert [decode(m)[0] for m in msgs] == [hwsim.HWSIM_CMD_TX_INFO_FRAME]  # no delivery, no ACK
    assert counters.unacked == 1 and counters.dropped_loss == 1 and counters.medium_lost == 0
    back = kernel_frame(2, mac_bytes(MACS[1]))
    msgs = medium_process.feed(back, len(back), a, hwsim.Codec(FAMILY), lambda: 0.999, counters)
    assert counters.acked == 1  # n2 -> n1 is not impaired


def test_a_delayed_delivery_waits_and_the_sender_hears_its_ack_at_once():
    a = impaired_air(n1_n2=Impairment(delay_ms=50, jitter_ms=10))
    assert a.shaped
    shaping, counters = Shaping(), medium_process.Counters()
    frame = kernel_frame(1, b"\xff" * 6, flags=2)  # n1's broadcast: n0 now, n2 delayed
    msgs = medium_process.feed(frame, len(frame), a, hwsim.Codec(FAMILY), lambda: 1.0, counters, shaping=shaping)
    assert [decode(m)[1].get(hwsim.A_RECEIVER) for m in msgs[:-1]] == [mac_bytes(MACS[0])]
    assert len(shaping) == 1 and counters.delayed == 1 and counters.deliveries == 2
    due = shaping.next_due()
    assert shaping.pop_due(due - 0.001) == []
    held = shaping.pop_due(due)
    assert decode(held[0])[1][hwsim.A_RECEIVER] == mac_bytes(MACS[2])
    frame = kernel_frame(1, mac_bytes(MACS[2]))
    msgs = medium_process.feed(frame, len(frame), a, hwsim.Codec(FAMILY), lambda: 0.5, counters, shaping=shaping)
    flags = struct.unpack("=I", decode(msgs[-1])[1][hwsim.A_FLAGS])[0]
    assert len(msgs) == 1 and flags & hwsim.HWSIM_TX_STAT_ACK  # acked now, delivered 50 ms later


def test_delay_and_jitter_draws_stay_in_their_window():
    link = impaired_air(n1_n2=Impairment(delay_ms=50, jitter_ms=10)).by_dest[mac_bytes(MACS[1])][mac_bytes(MACS[2])]
    shaping = Shaping()
    for draw, expect in ((0.0, 0.040), (0.5, 0.050), (0.999999, 0.060)):
        assert shaping.due_at(b"t", link, 100, 10.0, lambda d=draw: d) == pytest.approx(10.0 + expect, abs=1e-5)


def test_a_rate_cap_queues_frames_and_drops_past_its_backlog():
    link = impaired_air(n1_n2=Impairment(rate_mbps=1)).by_dest[mac_bytes(MACS[1])][mac_bytes(MACS[2])]
    shaping = Shaping()
    # 1250 bytes at 1 Mb/s: 10 ms each, back to back
    dues = [shaping.due_at(b"t", link, 1250, 0.0, lambda: 0.5) for _ in range(3)]
    assert dues == pytest.approx([0.01, 0.02, 0.03])
    n = int(RATE_BACKLOG_S / 0.01) + 5
    more = [shaping.due_at(b"t", link, 1250, 0.0, lambda: 0.5) for _ in range(n)]
    assert None in more and all(d is None for d in more[more.index(None):])
    assert shaping.due_at(b"t", link, 1250, 10.0, lambda: 0.5) == pytest.approx(10.01)  # drained by then


def test_a_unicast_dropped_by_a_full_rate_line_is_not_acknowledged():
    a = impaired_air(n1_n2=Impairment(rate_mbps=0.0005))  # 40 bytes take 0.64 s: the second waits too long
    shaping, counters = Shaping(), medium_process.Counters()
    codec = hwsim.Codec(FAMILY)
    for _ in range(2):
        frame = kernel_frame(1, mac_bytes(MACS[2]))
        msgs = medium_process.feed(frame, len(frame), a, codec, lambda: 0.5, counters, shaping=shaping)
    flags = struct.unpack("=I", decode(msgs[-1])[1][hwsim.A_FLAGS])[0]
    assert not flags & hwsim.HWSIM_TX_STAT_ACK
    assert counters.dropped_rate == 1 and counters.acked == 1 and counters.unacked == 1


def test_the_verb_sets_and_clears_impairments_and_the_medium_applies_them(lab_dir):  # noqa: F811
    out = impair.run(lab_dir, "a", "b", loss_pct=100)
    assert out["medium_version"] == 1
    assert [(i["from"], i["to"], i["summary"]) for i in out["impairments"]] == [
        ("a", "b", "loss 100%"), ("b", "a", "loss 100%")]
    out = impair.run(lab_dir, "b", "c", delay_ms=50, direction="a_to_b")
    assert ("b", "c", "delay 50±0 ms") in [(i["from"], i["to"], i["summary"]) for i in out["impairments"]]
    assert ("c", "b") not in read_config(lab_dir).impairments
    out = impair.run(lab_dir, "a", "b", clear=True)
    assert [(i["from"], i["to"]) for i in out["impairments"]] == [("b", "c")]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"a": "a", "b": "zz", "loss_pct": 5}, "no node 'zz'"),
    ({"a": "a", "b": "b", "loss_pct": 101}, "loss_pct 101: give 0 to 100"),
    ({"a": "a", "b": "b", "direction": "up"}, "direction 'up'"),
    ({"a": "a", "b": "a", "loss_pct": 5}, "two nodes"),
])
def test_the_verb_refuses_bad_input_and_changes_nothing(lab_dir, kwargs, message):  # noqa: F811
    before = read_config(lab_dir)
    with pytest.raises(UsageError, match=message):  # NotFound for the unknown node: also exit 2
        impair.run(lab_dir, **kwargs)
    assert read_config(lab_dir) == before


def test_a_scenario_step_impairs_a_link():
    scenario = parse_scenario("""name: slow
steps:
  - {at: 0, do: impair, a: auth1, b: relay1, delay_ms: 50, jitter_ms: 5}
  - {at: 10, do: impair, a: auth1, b: relay1, clear: true}
""")
    assert scenario.steps[0].verb() == ("impair", {"a": "auth1", "b": "relay1", "loss_pct": 0.0, "delay_ms": 50.0,
                                                   "jitter_ms": 5.0, "rate_mbps": 0.0, "direction": "both",
                                                   "clear": False})
    assert scenario.steps[1].verb()[1]["clear"] is True


def test_draw_marks_impaired_links_and_notes_each_direction(tmp_path):
    nodes = {name: {"role": "authority" if name.startswith("auth") else "client", "position": list(pos),
                    "range": 100.0, "mac": f"02:00:00:00:00:0{i}"} for i, (name, pos) in enumerate(POSITIONS.items())}
    (tmp_path / "lab.json").write_text(json.dumps({"lab": "diamond", "nodes": nodes}))
    radios = tuple(Radio(n, f"02:00:00:00:00:0{i}", pos, 100.0) for i, (n, pos) in enumerate(POSITIONS.items()))
    write_config(tmp_path, MediumConfig(2412, Model("free_space"), radios, impairments={
        ("client1", "relay1"): Impairment(loss_pct=100), ("relay1", "client1"): Impairment(delay_ms=5)}))
    m = draw.snapshot(tmp_path, None, fake_dispatch())
    assert m.impaired == {frozenset(("client1", "relay1")): "client1→relay1 loss 100%; relay1→client1 delay 5±0 ms"}
    assert "impaired: client1→relay1 loss 100%; relay1→client1 delay 5±0 ms" in m.notes
    picture = meshmap.svg(m)
    assert picture.count('stroke-dasharray="8 4"') == 1 and "impaired: client1→relay1 loss 100%" in picture

"""Capture: the medium's records of frames sent and received, read back by tshark (installed by
install.sh), and the capture.json control the `capture` verb and the medium share."""

import json
import os
import struct
import subprocess
import threading
import time

import pytest
from test_medium import FAMILY, MACS, air, kernel_frame

from orchestrator.errors import MeshpayError, NotFound, UsageError
from orchestrator.air import capture
from orchestrator.air.airspace import mac_bytes
from orchestrator.lab import labdir
from orchestrator.medium import process as medium_process
from orchestrator.medium import hwsim
from orchestrator.medium.process import STATS_FILE
from orchestrator.verbs import capture as capture_verb

RADIOS = {f"n{i}": mac_bytes(m) for i, m in enumerate(MACS)}


def tshark(path, *fields, display_filter=""):
    argv = ["tshark", "-r", str(path), "-T", "fields", "-E", "separator=|"]
    for f in ("frame.interface_name", *fields):
        argv += ["-e", f]
    if display_filter:
        argv += ["-Y", display_filter]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return [line.split("|") for line in done.stdout.splitlines()]


def mesh_beacon(tx: int, mesh_id: bytes) -> bytes:
    """A mesh beacon: header, timestamp, interval, capabilities, SSID (empty), Mesh ID."""
    header = b"\x80\x00\x00\x00" + b"\xff" * 6 + mac_bytes(MACS[tx]) * 2 + b"\x00\x00"
    body = bytes(8) + struct.pack("<HH", 100, 0) + b"\x00\x00" + bytes([114, len(mesh_id)]) + mesh_id
    return header + body


def start(tmp_path, nodes=None, until=None, cid="c1"):
    req = capture.CaptureRequest(cid, str(tmp_path / "caps" / f"{cid}.pcapng"), nodes, until)
    capture.write_request(tmp_path, req)
    return req


def test_sent_and_received_frames_read_back_with_rate_signal_and_ack(tmp_path):
    caps = capture.Captures(tmp_path)
    req = start(tmp_path, nodes=("n0", "n1", "n2"))
    assert caps.poll(RADIOS, 0) and caps.active is not None
    counters = medium_process.Counters()
    codec = hwsim.Codec(FAMILY)
    # n1 -> n2 unicast, acked at rate index 11 (54 Mb/s); n0 -> n2 out of range: failed
    for tx, dest in ((1, 2), (0, 2)):
        buf = kernel_frame(tx, mac_bytes(MACS[dest]))
        medium_process.feed(buf, len(buf), air(), codec, lambda: 0.5, counters, capture=caps.active)
    # a mesh beacon from n1, heard by n0 and n2
    beacon = hwsim.TxFrame(mac_bytes(MACS[1]), mesh_beacon(1, b"labmesh"), 0, bytes(8), 3, 2412)
    medium_process.route(air(), codec, beacon, lambda: 0.5, 2412, counters, capture=caps.active)
    caps.stop()
    assert caps.report()["state"] == "done" and caps.report()["records"] == 1 + 1 + 1 + 1 + 2
    rows = tshark(req.file, "wlan.fc.type_subtype", "radiotap.datarate", "radiotap.dbm_antsignal",
                  "radiotap.txflags", "radiotap.data_retries", "radiotap.channel.freq", "wlan.mesh.id")
    as_tuples = [tuple(r) for r in rows]
    # n1's unicast: sent (acked, first attempt, 54 Mb/s), received by n2 at -60 dBm
    assert ("n1", "0x0028", "54", "", "0x0000", "0", "2412", "") in as_tuples
    assert ("n2", "0x0028", "54", "-60", "", "", "2412", "") in as_tuples
    # n0's unicast to n2, out of range: failed after its 5 attempts (2 at 54, 3 at 1 Mb/s)
    assert ("n0", "0x0028", "1", "", "0x0001", "4", "2412", "") in as_tuples
    beacons = [r for r in as_tuples if r[1] == "0x0008"]
    assert sorted(r[0] for r in beacons) == ["n0", "n1", "n2"]
    assert all(r[7] == "labmesh" for r in beacons), beacons
    assert [r[4] for r in beacons if r[0] == "n1"] == ["0x0008"]  # group: sent expecting no ACK


def test_only_the_chosen_radios_are_recorded(tmp_path):
    caps = capture.Captures(tmp_path)
    req = start(tmp_path, nodes=("n2",))
    caps.poll(RADIOS, 0)
    buf = kernel_frame(1, b"\xff" * 6, flags=2)  # n1's broadcast reaches n0 and n2
    medium_process.feed(buf, len(buf), air(), hwsim.Codec(FAMILY), lambda: 0.5, medium_process.Counters(), capture=caps.active)
    caps.stop()
    assert [r[0] for r in tshark(req.file)] == ["n2"]


def test_a_capture_stops_when_its_request_goes_or_its_time_is_up_and_does_not_restart(tmp_path):
    caps = capture.Captures(tmp_path)
    start(tmp_path, until=1000.0)
    assert caps.poll(RADIOS, 0, now=999.0) and caps.active is not None
    assert not caps.poll(RADIOS, 0, now=999.5)
    assert caps.poll(RADIOS, 0, now=1000.0) and caps.active is None and caps.report()["state"] == "done"
    assert not caps.poll(RADIOS, 0, now=1001.0) and caps.active is None  # the same request: not again
    start(tmp_path, cid="c2")
    assert caps.poll(RADIOS, 0) and caps.active.req.id == "c2"
    capture.request_path(tmp_path).unlink()
    assert caps.poll(RADIOS, 0) and caps.active is None and caps.report() == {
        "id": "c2", "file": str(tmp_path / "caps" / "c2.pcapng"), "state": "done", "records": 0, "nodes": None}


def test_a_request_naming_an_unknown_radio_fails_with_its_name(tmp_path):
    caps = capture.Captures(tmp_path)
    start(tmp_path, nodes=("n9",))
    caps.poll(RADIOS, 0)
    assert caps.active is None and caps.report()["state"] == "failed" and "n9" in caps.report()["error"]


@pytest.fixture
def medium_lab(tmp_path):
    """A lab directory with a fake medium: a thread that runs the real capture control and writes
    medium-stats.json as the medium does."""
    from orchestrator.medium import control as medium_control
    from orchestrator.air.airspace import write_config
    from orchestrator.lab.plan import make_plan
    from orchestrator.lab.topology import parse_topology

    plan = make_plan(parse_topology("name: m\nnodes:\n  a: {role: authority, position: [0, 0]}\n"
                                    "  b: {role: client, position: [50, 0]}\n"))
    write_config(tmp_path, medium_control.config_for(plan))
    labdir.write_state(tmp_path, {"lab": "m", "medium": {"pid": os.getpid(), "netns": plan.medium.netns}})
    caps = capture.Captures(tmp_path)
    radios = {n.name: mac_bytes(n.mac) for n in plan.nodes}
    stop = threading.Event()

    def report():
        tmp = tmp_path / "stats.tmp"
        tmp.write_text(json.dumps({"version": 0, "time": time.time(), "capture": caps.report()}))
        os.replace(tmp, tmp_path / STATS_FILE)

    def fake_medium():
        while not stop.wait(0.02):
            caps.poll(radios, 0)
            report()

    report()
    t = threading.Thread(target=fake_medium, daemon=True)
    t.start()
    yield tmp_path
    stop.set()
    t.join()


def test_the_verb_starts_and_stops_a_capture_the_medium_runs(medium_lab):
    with pytest.raises(MeshpayError, match="no capture runs"):
        capture_verb.run(medium_lab, "stop")
    started = capture_verb.run(medium_lab, "start", nodes=["b"])
    assert started["state"] == "on" and started["nodes"] == ["b"]
    with pytest.raises(MeshpayError, match="runs already"):
        capture_verb.run(medium_lab, "start")
    done = capture_verb.run(medium_lab, "stop")
    assert done["state"] == "done" and done["id"] == started["id"]
    assert open(done["file"], "rb").read(4) == b"\x0a\x0d\x0d\x0a"  # a pcapng section header
    assert capture_verb.run(medium_lab, "stop") == done  # stopped already: says how it ended


def test_the_verb_refuses_bad_input_and_changes_nothing(medium_lab):
    with pytest.raises(NotFound, match="no node zz in this lab; nodes: a, b"):
        capture_verb.run(medium_lab, "start", nodes=["zz"])
    with pytest.raises(UsageError, match="--duration -1"):
        capture_verb.run(medium_lab, "start", duration=-1)
    with pytest.raises(UsageError, match="use start or stop"):
        capture_verb.run(medium_lab, "pause")
    assert not capture.request_path(medium_lab).exists()

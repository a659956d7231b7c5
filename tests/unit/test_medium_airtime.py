"""Airtime and contention (opt-in): frame durations at their rate, deferral while the channel is
busy, and collisions of hidden terminals at the receiver between them."""

import struct

import pytest
from test_medium import FAMILY, MACS, air, decode, kernel_frame
from test_mediumctl import TOPO

from orchestrator.air import airtime
from orchestrator.air.airspace import Airspace, mac_bytes
from orchestrator.air.shaping import Shaping
from orchestrator.lab.plan import make_plan
from orchestrator.lab.topology import parse_topology
from orchestrator.medium import process as medium_process
from orchestrator.medium import hwsim
from orchestrator.medium.control import config_for

N = [mac_bytes(m) for m in MACS]  # n0 - n1 - n2 in a line, 100 m apart: n0 and n2 are hidden


def timed_air() -> Airspace:
    cfg = air().config
    return Airspace(cfg.__class__(cfg.freq, cfg.model, cfg.radios, cfg.loss, airtime=True))


def test_durations_follow_the_standard():
    assert airtime.duration_s(1500, 11, 2412) == pytest.approx(250e-6)  # 54 Mb/s ERP-OFDM: 56 symbols
    assert airtime.duration_s(1500, 0, 2412) == pytest.approx(192e-6 + 1504 * 8 / 1e6)  # 1 Mb/s DSSS
    assert airtime.duration_s(1500, 11, 5180) == pytest.approx(244e-6)  # no signal extension on 5 GHz
    assert (airtime.ack_rate(11), airtime.ack_rate(5), airtime.ack_rate(3)) == (8, 4, 3)


def test_a_radio_defers_while_it_hears_a_neighbour_send():
    a, ch = timed_air(), airtime.Channel()
    first, end0, _ = airtime.transmit(a, ch, N[0], b"\xff" * 6, [(11, 1)], 1500, 0.0, lambda: 0.0)
    second, end1, _ = airtime.transmit(a, ch, N[1], b"\xff" * 6, [(11, 1)], 1500, 0.0, lambda: 0.0)
    on_air = airtime.duration_s(1500, 11, 2412)
    assert end1 - on_air >= end0  # n1 heard n0 and started after it
    assert ch.collisions == 0 and len(second.delivered) == 2


def test_hidden_terminals_collide_at_the_receiver_between_them_and_the_retry_gets_through():
    a, ch = timed_air(), airtime.Channel()
    # n0 and n2 cannot hear each other; both send to n1 at once
    one, end0, status0 = airtime.transmit(a, ch, N[0], N[1], [(11, 3)], 1500, 0.0, lambda: 0.0)
    two, end2, status2 = airtime.transmit(a, ch, N[2], N[1], [(11, 3)], 1500, 0.0, lambda: 0.0)
    assert one.acked and one.tries == ((11, 1),)
    assert ch.collisions == 1  # n2's first attempt overlapped n0's frame at n1
    assert two.acked and two.tries == ((11, 2),) and end2 > end0
    assert status0 > end0 and status2 > end2  # the status waits for the ACK
    lone, _, _ = airtime.transmit(timed_air(), airtime.Channel(), N[2], N[1], [(11, 1)], 1500, 10.0, lambda: 0.0)
    assert lone.acked  # alone on the air, the same frame gets through


def test_with_airtime_on_the_medium_holds_deliveries_and_status_until_the_frame_is_over():
    a, ch, shaping, counters = timed_air(), airtime.Channel(), Shaping(), medium_process.Counters()
    frame = kernel_frame(1, N[2])
    msgs = medium_process.feed(frame, len(frame), a, hwsim.Codec(FAMILY), lambda: 0.5, counters, shaping=shaping,
                       channel=ch)
    assert msgs == [] and len(shaping) == 2
    held = shaping.pop_due(float("inf"))
    assert [decode(m)[0] for m in held] == [hwsim.HWSIM_CMD_FRAME, hwsim.HWSIM_CMD_TX_INFO_FRAME]
    assert struct.unpack("=I", decode(held[1])[1][hwsim.A_FLAGS])[0] & hwsim.HWSIM_TX_STAT_ACK
    assert counters.acked == 1 and counters.collisions == 0


def test_airtime_is_a_topology_switch_off_by_default():
    assert not config_for(make_plan(parse_topology(TOPO))).airtime
    on = TOPO.replace("exponent: 2.5}", "exponent: 2.5, airtime: true}")
    cfg = config_for(make_plan(parse_topology(on)))
    assert cfg.airtime and cfg.__class__.from_json(cfg.to_json()).airtime


def _route_at_once(monkeypatch, frames: list[tuple[int, bytes, tuple]]) -> medium_process.Counters:
    """Route `frames` (sender index, destination, retry chain) one after the other at one instant
    of the medium's clock, airtime on, no random backoff; the counters they leave."""
    monkeypatch.setattr(medium_process.time, "monotonic", lambda: 100.0)
    a, ch, shaping, counters = timed_air(), airtime.Channel(), Shaping(), medium_process.Counters()
    for sender, dest, chain in frames:
        buf = kernel_frame(sender, dest, flags=2 if dest[0] & 1 else 1, rates=chain)
        tx = hwsim.decode_frame(hwsim.parse_attrs(buf, 20, len(buf)))
        medium_process.route(a, hwsim.Codec(FAMILY), tx, lambda: 0.0, 2412, counters, shaping=shaping, channel=ch)
    return counters


def test_a_group_copy_lost_to_a_collision_is_one_dropped_frame(monkeypatch):
    # n0 and n2 (hidden from each other) broadcast at once: n2's copy to n1 collides with n0's frame
    c = _route_at_once(monkeypatch, [(0, b"\xff" * 6, ((0, 1),)), (2, b"\xff" * 6, ((0, 1),))])
    assert (c.collisions, c.dropped_collision, c.dropped_loss) == (1, 1, 0)
    assert c.model_dropped == 1  # once, not also as a loss drawn from the SNR
    assert c.deliveries == 1  # n0's frame reached n1; n2's reached nobody


def test_a_unicast_frame_lost_to_collisions_is_one_dropped_frame_and_a_retry_that_gets_through_none(monkeypatch):
    lost = _route_at_once(monkeypatch, [(0, N[1], ((0, 1),)), (2, N[1], ((0, 1),))])
    assert (lost.collisions, lost.dropped_collision, lost.dropped_loss, lost.unacked) == (1, 1, 0, 1)
    assert lost.model_dropped == 1
    saved = _route_at_once(monkeypatch, [(0, N[1], ((0, 1),)), (2, N[1], ((0, 3),))])
    assert saved.collisions == 1 and saved.acked == 2  # n2's second attempt came after n0's frame
    assert saved.model_dropped == 0  # a collided attempt a retry made good lost no frame

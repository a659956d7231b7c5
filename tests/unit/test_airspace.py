import itertools

import pytest

from orchestrator.air.airspace import Airspace, MediumConfig, Radio, mac_bytes, read_config, write_config
from orchestrator.air.propagation import Model

MACS = [f"02:00:00:00:00:{i:02x}" for i in range(5)]
BCAST = b"\xff" * 6


def line(n=4, spacing=100.0, rng=100.0, loss=False, isolated=(), model="free_space"):
    return MediumConfig(freq=2412, model=Model(model), loss=loss, isolated=frozenset(isolated),
                        radios=tuple(Radio(f"n{i}", MACS[i], (spacing * i, 0.0), rng) for i in range(n)))


def m(i):
    return mac_bytes(MACS[i])


def always(value):
    return lambda: value


def test_a_frame_reaches_only_radios_in_range():
    air = Airspace(line())
    out = air.transmit(m(1), BCAST, [(0, 1)], always(0.5))
    assert sorted(link.rx for link, _ in out.delivered) == ["n0", "n2"]
    assert not out.acked
    assert [link.rx for link, _ in air.transmit(m(0), BCAST, [(0, 1)], always(0.5)).delivered] == ["n1"]


def test_the_shorter_range_decides():
    cfg = line(2)
    cfg = MediumConfig(freq=2412, model=cfg.model, loss=False,
                       radios=(cfg.radios[0], Radio("n1", MACS[1], (100.0, 0.0), 50.0)))
    assert Airspace(cfg).transmit(m(0), BCAST, [(0, 1)], always(0.5)).delivered == ()


def test_unicast_in_range_is_delivered_once_and_acked_with_the_link_signal():
    air = Airspace(line())
    out = air.transmit(m(1), m(2), [(11, 2), (0, 4)], always(0.5))
    assert [(link.rx, rate) for link, rate in out.delivered] == [("n2", 11)]
    assert out.acked and out.tries == ((11, 1),)
    assert out.ack_signal_dbm == round(20 - 80.1)


def test_unicast_out_of_range_uses_every_attempt_and_is_not_acked():
    air = Airspace(line())
    out = air.transmit(m(0), m(3), [(11, 2), (0, 4)], always(0.5))
    assert out.delivered == () and not out.acked
    assert out.tries == ((11, 2), (0, 4))


def test_retries_walk_down_the_chain_until_a_draw_succeeds():
    # far apart with log-distance loss: 54 Mb/s always fails, 1 Mb/s gets through
    cfg = line(2, spacing=60.0, loss=True, model="log_distance")
    air = Airspace(cfg)
    link = air.by_dest[m(0)][m(1)]
    assert link.loss[11] > 0.99 and link.loss[0] < 0.01
    out = air.transmit(m(0), m(1), [(11, 3), (0, 2)], always(0.5))
    assert out.acked and out.tries == ((11, 3), (0, 1))
    assert out.delivered[0][1] == 0


def test_broadcast_loss_is_drawn_per_receiver():
    cfg = line(3, spacing=60.0, loss=True, model="log_distance")
    air = Airspace(cfg)
    draws = itertools.cycle([0.0, 0.999])  # the first receiver loses it, the second does not
    out = air.transmit(m(1), BCAST, [(0, 1)], lambda: next(draws))
    assert len(out.delivered) == 1


def test_isolated_radio_neither_hears_nor_is_heard():
    air = Airspace(line(isolated={"n1"}))
    assert air.transmit(m(1), BCAST, [(0, 1)], always(0.5)).delivered == ()
    assert [link.rx for link, _ in air.transmit(m(0), BCAST, [(0, 1)], always(0.5)).delivered] == []
    assert not air.transmit(m(0), m(1), [(0, 4)], always(0.5)).acked


def test_unicast_to_an_address_that_is_no_radio_goes_to_everyone_in_range_unacked():
    air = Airspace(line())
    out = air.transmit(m(1), bytes.fromhex("020000abcdef"), [(0, 2)], always(0.5))
    assert sorted(link.rx for link, _ in out.delivered) == ["n0", "n2"] and not out.acked


def test_config_round_trips_through_the_lab_dir(tmp_path):
    cfg = line(isolated={"n2"})
    write_config(tmp_path, cfg)
    assert read_config(tmp_path) == cfg
    assert cfg.radio("n3").position == (300.0, 0.0)
    with pytest.raises(LookupError, match="nodes: n0"):
        cfg.radio("nope")


def test_missing_config_says_the_lab_has_no_medium(tmp_path):
    with pytest.raises(LookupError, match="medium: none"):
        read_config(tmp_path)

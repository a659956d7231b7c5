import math

import pytest

from orchestrator.air.propagation import Model, frame_loss, free_space_loss_db, loss_by_rate, path_loss_db, signal_dbm


def test_free_space_matches_friis_at_2412_mhz():
    # 100 m at 2412 MHz: 20log10(100) + 20log10(2412) - 27.55 = 80.1 dB
    assert free_space_loss_db(100, 2412) == pytest.approx(80.1, abs=0.05)
    # every doubling of distance costs 6 dB
    assert free_space_loss_db(200, 2412) - free_space_loss_db(100, 2412) == pytest.approx(6.02, abs=0.01)


def test_log_distance_grows_10n_db_per_decade_past_the_reference():
    m = Model("log_distance", exponent=3.0, ref_distance_m=1.0)
    assert path_loss_db(m, 1, 2412) == pytest.approx(free_space_loss_db(1, 2412))
    assert path_loss_db(m, 100, 2412) - path_loss_db(m, 10, 2412) == pytest.approx(30.0)
    # with exponent 2 it is free space
    assert path_loss_db(Model("log_distance", exponent=2.0), 250, 2412) == pytest.approx(free_space_loss_db(250, 2412))


def test_signal_is_power_minus_loss_and_closer_is_louder():
    m = Model("free_space", tx_power_dbm=20)
    assert signal_dbm(m, 100, 2412) == pytest.approx(20 - free_space_loss_db(100, 2412))
    assert signal_dbm(m, 10, 2412) > signal_dbm(m, 100, 2412)
    assert signal_dbm(m, 0.0, 2412) == signal_dbm(m, 1.0, 2412)  # no gain under a metre


def test_unknown_model_says_which_exist():
    with pytest.raises(ValueError, match="free_space or log_distance"):
        path_loss_db(Model("two_ray"), 10, 2412)


def test_loss_falls_with_snr_and_rises_with_rate():
    assert frame_loss(4.0, 0) == pytest.approx(0.10)  # 10 % at the 1 Mb/s threshold
    assert frame_loss(30.0, 0) < 1e-9
    assert frame_loss(-5.0, 0) > 0.99
    snr = 15.0
    losses = loss_by_rate(snr)
    assert losses[0] < losses[3] < losses[11]  # 1 Mb/s survives where 54 Mb/s does not
    assert all(0.0 <= p <= 1.0 and not math.isnan(p) for p in losses)

"""orchestrator/air/rates.py: hwsim's legacy rate table, as the medium, capture and airtime use it."""

import pytest

from orchestrator.air import capture, rates
from orchestrator.air.propagation import RATE_MIN_SNR_DB


def test_the_table_in_radiotaps_units_and_hwsims_order():
    # radiotap's Rate field and nl80211's legacy rate lists count 500 kb/s
    assert [rates.units_500k(i) for i in range(12)] == [2, 4, 11, 22, 12, 18, 24, 36, 48, 72, 96, 108]
    assert rates.units_500k(99) == 108 and rates.units_500k(-1) == 2  # clamped, as the medium's indexes are
    assert [rates.is_cck(i) for i in (0, 3, 4, 11)] == [True, True, False, False]
    assert len(RATE_MIN_SNR_DB) == len(rates.RATES_MBPS)  # one SNR threshold per rate


def test_5_ghz_has_the_ofdm_rates_only():
    assert (rates.offset(2412), rates.offset(5180)) == (0, 4)
    assert rates.band_rates(5180) == (6.0, 9.0, 12.0, 18.0, 24.0, 36.0, 48.0, 54.0)
    assert rates.band_rates(2484) == rates.RATES_MBPS


def test_capture_takes_its_rates_from_the_table():
    assert capture.rate_500k(3, 0) == 22 and capture.rate_500k(0, rates.offset(5180)) == 12
    assert capture.channel_flags(2412, 22) == capture.CHAN_2GHZ | capture.CHAN_CCK
    assert capture.channel_flags(5180, 12) == capture.CHAN_5GHZ | capture.CHAN_OFDM


def test_a_rate_that_is_not_legacy_is_refused_naming_the_ones_there_are():
    assert rates.index_of(11.0) == 3 and rates.index_of(6) == 4
    with pytest.raises(ValueError, match=r"not an 802.11b/g rate \(the legacy ones: 1, 2, 5.5, 11, 6"):
        rates.index_of(65.0)

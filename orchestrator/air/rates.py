"""mac80211_hwsim's legacy bitrates, the one table of them in the lab.

hwsim gives its 2.4 GHz band these rates in this order (drivers/net/wireless/mac80211_hwsim.c,
`hwsim_rates`, Linux 6.1): 1, 2, 5.5, 11 Mb/s DSSS/CCK, then 6 to 54 Mb/s OFDM. Its 5 GHz band
has the OFDM ones only, so a 5 GHz radio's rate index 0 is this table's index 4 (`offset`). A
frame's retry chain (HWSIM_ATTR_TX_INFO) and a delivery's HWSIM_ATTR_RX_RATE carry the band's
index; the medium adds the offset to get the absolute index used here, by airtime.py (durations),
capture.py (radiotap's rate, in 500 kb/s) and propagation.py (its per-rate SNR thresholds).
"""

from __future__ import annotations

RATES_MBPS: tuple[float, ...] = (1.0, 2.0, 5.5, 11.0, 6.0, 9.0, 12.0, 18.0, 24.0, 36.0, 48.0, 54.0)
OFDM_FROM = 4  # absolute indexes below this are DSSS/CCK (IEEE 802.11-2020 clauses 15 and 16)
FIVE_GHZ_MHZ = 5000  # hwsim's channels at or above this are its 5 GHz band


def offset(freq_mhz: int) -> int:
    """What to add to a band's rate index to get the absolute index: 4 on 5 GHz, else 0."""
    return OFDM_FROM if freq_mhz >= FIVE_GHZ_MHZ else 0


def is_cck(index: int) -> bool:
    """True for the DSSS/CCK rates (absolute index)."""
    return index < OFDM_FROM


def units_500k(index: int) -> int:
    """The rate at absolute index `index` in 500 kb/s units (radiotap's Rate field, and nl80211's
    legacy rate lists); an index past either end is clamped to it."""
    return round(RATES_MBPS[min(max(index, 0), len(RATES_MBPS) - 1)] * 2)


def band_rates(freq_mhz: int) -> tuple[float, ...]:
    """The legacy rates (Mb/s) a radio on that channel has."""
    return RATES_MBPS[offset(freq_mhz):]


def index_of(mbps: float) -> int:
    """The absolute index of a legacy rate in Mb/s (OFDM for 6 Mb/s and up). ValueError, listing
    the rates, for anything else (an HT MCS rate, a typo)."""
    if mbps not in RATES_MBPS:
        raise ValueError(f"{mbps:g} Mb/s is not an 802.11b/g rate "
                         f"(the legacy ones: {', '.join(f'{r:g}' for r in RATES_MBPS)})")
    return RATES_MBPS.index(mbps)

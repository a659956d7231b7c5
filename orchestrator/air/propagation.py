"""Radio propagation: path loss over distance, received signal, and the chance a frame is lost.

Pure functions, no I/O: the medium process (orchestrator/medium/process.py) evaluates them once per pair
of radios when positions change, never per frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Minimum SNR (dB) at which each of hwsim's 2.4 GHz legacy rates (index = HWSIM_ATTR_RX_RATE, the
# order of hwsim_rates: 1, 2, 5.5, 11 Mb/s DSSS/CCK then 6..54 Mb/s OFDM) starts to get through;
# typical receiver-sensitivity figures, 10 % PER at this SNR.
RATE_MIN_SNR_DB = (4.0, 6.0, 8.0, 10.0, 6.0, 7.8, 9.0, 10.8, 17.0, 18.8, 24.0, 24.6)
# How sharply the loss falls with SNR past the threshold: a few dB take PER from ~90 % to ~1 %.
PER_SLOPE_PER_DB = 1.1
_LN9 = math.log(9.0)  # PER is exactly 10 % at the threshold


@dataclass(frozen=True)
class Model:
    kind: str  # "free_space" or "log_distance"
    tx_power_dbm: float = 20.0
    noise_dbm: float = -91.0
    exponent: float = 3.0
    ref_distance_m: float = 1.0


def free_space_loss_db(distance_m: float, freq_mhz: float) -> float:
    """Friis free-space path loss; distances under a metre count as one (no gain up close)."""
    d = max(distance_m, 1.0)
    return 20 * math.log10(d) + 20 * math.log10(freq_mhz) - 27.55


def path_loss_db(model: Model, distance_m: float, freq_mhz: float) -> float:
    if model.kind == "free_space":
        return free_space_loss_db(distance_m, freq_mhz)
    if model.kind == "log_distance":
        d0 = model.ref_distance_m
        d = max(distance_m, d0)
        return free_space_loss_db(d0, freq_mhz) + 10 * model.exponent * math.log10(d / d0)
    raise ValueError(f"unknown path-loss model {model.kind!r}: use free_space or log_distance")


def signal_dbm(model: Model, distance_m: float, freq_mhz: float) -> float:
    return model.tx_power_dbm - path_loss_db(model, distance_m, freq_mhz)


def frame_loss(snr_db: float, rate_idx: int) -> float:
    """Probability that one transmission at rate `rate_idx` is not received, given the SNR."""
    threshold = RATE_MIN_SNR_DB[min(max(rate_idx, 0), len(RATE_MIN_SNR_DB) - 1)]
    x = PER_SLOPE_PER_DB * (snr_db - threshold) + _LN9
    if x > 40:  # exp would underflow to a loss of 0 anyway
        return 0.0
    return 1.0 / (1.0 + math.exp(x))


def loss_by_rate(snr_db: float) -> tuple[float, ...]:
    """frame_loss for every rate index, so the medium looks a frame's loss up instead of computing it."""
    return tuple(frame_loss(snr_db, i) for i in range(len(RATE_MIN_SNR_DB)))

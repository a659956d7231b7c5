"""Airtime and contention, when a topology turns them on (`medium: {airtime: true}`; off by default,
see docs/medium.md for what it costs): each frame occupies the channel for its duration at its
rate, a radio defers while it hears the channel busy (DIFS and a random backoff, doubled after
each failed attempt), and a frame that overlaps at a receiver with another it hears from a sender
the transmitter could not hear (a hidden terminal) is lost there, so its sender gets no ACK and
mac80211 retries.

Simplifications, said plainly: the receiver stays locked on the frame that started first (only
the later one is lost); an ACK occupies its own duration at the sender only; time is the
medium's clock (time.monotonic()), so under TCG the spacing of frames is the VM's, not a radio's.

Durations (IEEE 802.11-2020): DSSS/CCK with the long preamble, 192 µs + bits over rate; OFDM
20 µs preamble and SIGNAL, then 4 µs symbols of 4×rate bits (16 service + 6 tail bits), plus 6 µs
signal extension on 2.4 GHz (ERP); FCS 4 bytes; slot 9 µs, SIFS 10 µs (2.4 GHz ERP; 16 µs on 5 GHz),
DIFS = SIFS + 2 slots, CWmin 15, CWmax 1023; an ACK (14 bytes) at the highest mandatory rate not
above the frame's.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from orchestrator.air import rates
from orchestrator.air.airspace import Airspace, Link, Outcome

MANDATORY = (0, 1, 2, 3, 4, 6, 8)  # 1, 2, 5.5, 11 (DSSS/CCK); 6, 12, 24 (OFDM)
SLOT_S = 9e-6
CW_MIN, CW_MAX = 15, 1023
ACK_BYTES = 14
FCS_BYTES = 4
# How long a receiver's past frames are kept to check overlaps against: longer than the longest
# frame (2,304 bytes at 1 Mb/s: 18.7 ms), short enough that the check stays a few comparisons.
HEARD_KEEP_S = 0.025


def sifs_s(freq: int) -> float:
    return 16e-6 if freq >= 5000 else 10e-6


def duration_s(nbytes: int, rate: int, freq: int) -> float:
    """Air time (s) of an `nbytes` frame (without FCS) at absolute rate index `rate` (rates.RATES_MBPS)."""
    mbps = rates.RATES_MBPS[rate]
    bits = 8 * (nbytes + FCS_BYTES)
    if rates.is_cck(rate):
        return 192e-6 + bits / (mbps * 1e6)
    symbols = math.ceil((16 + bits + 6) / (4 * mbps))
    return 20e-6 + 4e-6 * symbols + (0.0 if freq >= 5000 else 6e-6)


def ack_rate(rate: int) -> int:
    """The highest mandatory rate not above `rate`, in the same modulation family."""
    family = [r for r in MANDATORY if rates.is_cck(r) == rates.is_cck(rate) and r <= rate]
    return family[-1] if family else rate


class Channel:
    """Who hears the channel busy until when, and what each receiver heard lately."""

    def __init__(self) -> None:
        self.busy_until: dict[bytes, float] = {}  # radio MAC -> time.monotonic() its channel goes idle
        self.heard: dict[bytes, list[tuple[float, float, bytes]]] = {}  # rx MAC -> [(start, end, sender)]
        self.collisions = 0

    def access(self, tx: bytes, ready: float, cw: int, freq: int, rand: Callable[[], float]) -> float:
        """When `tx` starts sending: once its channel is idle, after DIFS and a backoff of up to `cw` slots."""
        idle = max(ready, self.busy_until.get(tx, 0.0))
        return idle + sifs_s(freq) + 2 * SLOT_S + int(rand() * (cw + 1)) * SLOT_S

    def collides(self, rx: bytes, start: float, end: float, tx: bytes) -> bool:
        return any(s < end and start < e and sender != tx for s, e, sender in self.heard.get(rx, ()))

    def occupy(self, tx: bytes, links: tuple[Link, ...], start: float, end: float) -> None:
        """`tx` sends over [start, end]: it and every radio in its range hear the channel busy."""
        busy = self.busy_until
        busy[tx] = max(busy.get(tx, 0.0), end)
        for link in links:
            busy[link.mac] = max(busy.get(link.mac, 0.0), end)
            past = self.heard.setdefault(link.mac, [])
            if past and past[0][1] < start - HEARD_KEEP_S:
                past[:] = [p for p in past if p[1] >= start - HEARD_KEEP_S]
            past.append((start, end, tx))


def transmit(air: Airspace, channel: Channel, tx: bytes, dest: bytes, chain: list[tuple[int, int]], nbytes: int,
             now: float, rand: Callable[[], float]) -> tuple[Outcome, float, float]:
    """As Airspace.transmit, with the channel's time: returns the outcome, when the deliveries
    reach their receivers (the end of the frame that got through) and when the sender's status
    is due (after the ACK, or after the last attempt). Draws loss and collisions per attempt."""
    freq, off = air.config.freq, air.rate_offset
    links = air.links.get(tx, ())
    first = chain[0][0] if chain else 0
    if dest[0] & 1 or dest not in air.links:  # group: one attempt, nobody acknowledges
        start = channel.access(tx, now, CW_MIN, freq, rand)
        end = start + duration_s(nbytes, first + off, freq)
        got = []
        for link in links:
            if rand() < link.loss[first + off]:
                continue
            if channel.collides(link.mac, start, end, tx):
                channel.collisions += 1
                continue
            got.append((link, first))
        channel.occupy(tx, links, start, end)
        return Outcome(tuple(got), False, ((first, 1),), 0), end, end
    link = air.by_dest.get(tx, {}).get(dest)
    sifs = sifs_s(freq)
    ready, cw = now, CW_MIN
    tries: list[tuple[int, int]] = []
    for rate, count in chain:
        ack = duration_s(ACK_BYTES, ack_rate(rate + off), freq)
        for attempt in range(1, count + 1):
            start = channel.access(tx, ready, cw, freq, rand)
            end = start + duration_s(nbytes, rate + off, freq)
            got = link is not None and rand() >= link.loss[rate + off]
            if got and channel.collides(dest, start, end, tx):
                channel.collisions += 1
                got = False
            channel.occupy(tx, links, start, end)
            if got:
                assert link is not None
                tries.append((rate, attempt))
                done = end + sifs + ack
                channel.busy_until[tx] = max(channel.busy_until.get(tx, 0.0), done)
                return Outcome(((link, rate),), True, tuple(tries), link.signal_dbm), end, done
            ready = end + sifs + ack  # the ACK timeout
            cw = min(2 * cw + 1, CW_MAX)
        tries.append((rate, count))
    return Outcome((), False, tuple(tries), 0), ready, ready

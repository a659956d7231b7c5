"""Deliveries held back by link impairments (airspace.Impairment): a delay with jitter, and a rate
cap that makes frames wait in line behind each other on one direction of a link.

The medium asks `due_at` when a delivery on a shaped link is to reach its receiver, keeps the
delivery here (`hold`) and sends what has come due (`pop_due`) from its loop, which sleeps no
longer than `next_due`. Times are time.monotonic() seconds. Pure but for that state: the medium
owns the socket and the clock.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

from orchestrator.air.airspace import Link, RATE_BACKLOG_S


class Shaping:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, bytes]] = []
        self._seq = 0  # keeps equal times in the order they were held
        self._free_at: dict[tuple[bytes, bytes], float] = {}  # (tx MAC, rx MAC) -> end of its line

    def due_at(self, tx: bytes, link: Link, nbytes: int, now: float, rand: Callable[[], float]) -> float | None:
        """When a frame of `nbytes` from `tx` reaches `link`'s receiver; None: dropped, the rate
        cap's line is over RATE_BACKLOG_S long."""
        when = now
        if link.rate_bps:
            key = (tx, link.mac)
            start = max(now, self._free_at.get(key, now))
            if start - now > RATE_BACKLOG_S:
                return None
            when = self._free_at[key] = start + nbytes * 8 / link.rate_bps
        if link.delay_s or link.jitter_s:
            when += max(0.0, link.delay_s + (2.0 * rand() - 1.0) * link.jitter_s)
        return when

    def hold(self, when: float, msg: bytes) -> None:
        heapq.heappush(self._heap, (when, self._seq, msg))
        self._seq += 1

    def pop_due(self, now: float) -> list[bytes]:
        out = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            out.append(heapq.heappop(heap)[2])
        return out

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def __len__(self) -> int:
        return len(self._heap)

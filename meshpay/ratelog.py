"""Refusals counted always and logged at a bounded rate, so hostile traffic cannot fill a disk.

The first refusal of an interval is logged at once (one bad frame stays visible); the others of
that interval are only counted, and one summary line per interval gives their number by kind
and the last one's detail. At most two lines per interval, whatever the flood; every refusal is
also a Prometheus counter (`meshpay_wire_refused_total{kind}`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable

from meshpay.metrics import Metrics

INTERVAL_S = 10.0
# A refusal's detail comes from the peer's bytes: keep each line short whatever it sent.
MAX_DETAIL = 200


class RefusalLog:
    def __init__(self, logger: logging.Logger, metrics: Metrics | None = None, interval: float = INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.metrics = metrics
        self.interval = interval
        self.clock = clock
        self.counts: Counter[str] = Counter()
        self._suppressed: Counter[str] = Counter()
        self._last = ""
        self._window_end = float("-inf")
        self._flush_timer: asyncio.TimerHandle | None = None

    def refused(self, kind: str, peer: object, detail: str, exc_info: bool = False) -> None:
        """Count one refusal of `kind` (bad_frame, connection_refused, handler_error ...)."""
        self.counts[kind] += 1
        if self.metrics is not None:
            self.metrics.inc("meshpay_wire_refused_total", "Wire frames and connections refused, by kind.", kind=kind)
        now = self.clock()
        if now >= self._window_end:
            self.flush()
            self._window_end = now + self.interval
            self.logger.warning("event=%s peer=%s error=%r more_within_s=%g_are_summed_up", kind, peer,
                                detail[:MAX_DETAIL], self.interval, exc_info=exc_info)
            return
        self._suppressed[kind] += 1
        self._last = f"{kind} peer={peer} error={detail[:MAX_DETAIL]!r}"
        self._schedule_flush(self._window_end - now)

    def flush(self) -> None:
        """Log the summary of what was only counted since the last line, if anything was."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if self._suppressed:
            counts = ",".join(f"{k}:{n}" for k, n in sorted(self._suppressed.items()))
            self.logger.warning("event=refusals_summary interval_s=%g counts=%s last=%r", self.interval, counts, self._last)
            self._suppressed.clear()

    def _schedule_flush(self, delay: float) -> None:
        # The summary of a flood that stops must still be written, at the interval's end.
        if self._flush_timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._flush_timer = loop.call_later(max(delay, 0.0), self.flush)

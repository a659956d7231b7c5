"""Credits a shard owes its sibling shards (shards.py), delivered at least once.

When a confirmation debits a sender in this shard and its recipient lives in another shard of
the same authority, the debit and an outbox row commit together (store.py). `forward` then sends
the credit at once, as a `ShardCredit` with the siblings' MAC, and drops the row on the
sibling's ack; a credit that could not be delivered (the sibling restarting) stays in the outbox
and is sent again every `retry_s`, also after this shard restarts. A sibling applies a credit
once (its store refuses a certificate it holds), so sending twice is harmless.
"""

from __future__ import annotations

import asyncio
import logging

from meshpay.messages import Certificate, ConfirmationAck, ShardCredit
from meshpay.metrics import Metrics
from meshpay.shards import credit_tag
from meshpay.store import Store
from meshpay.transport import PeerPool, TransportError

log = logging.getLogger("meshpay.shardlink")

RETRY_S = 1.0
REQUEST_TIMEOUT = 5.0
OUTBOX_PAGE = 256


class ShardLink:
    def __init__(self, host: str, base_port: int, key: bytes, store: Store, pool: PeerPool, metrics: Metrics,
                 retry_s: float = RETRY_S) -> None:
        self.host = host
        self.base_port = base_port
        self.key = key
        self.store = store
        self.pool = pool
        self.metrics = metrics
        self.retry_s = retry_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def forward(self, shard: int, certificate: Certificate) -> bool:
        """Deliver one owed credit to sibling `shard`; True once it acknowledged it."""
        # The debit this credit comes from must be durable before the credit leaves (store.py).
        self.store.flush()
        peer = self.pool.get(self.host, self.base_port + shard)
        try:
            reply = await peer.request(ShardCredit(certificate, credit_tag(self.key, certificate)), REQUEST_TIMEOUT)
        except TransportError as exc:
            log.info("event=shard_credit_unsent shard=%d id=%s error=%r", shard, certificate.order.transfer_id, str(exc))
            return False
        if not isinstance(reply, ConfirmationAck):
            # A sibling that refuses a credit is misconfigured (another seed, other shard count):
            # keep the credit owed and say so; it is retried.
            log.warning("event=shard_credit_refused shard=%d id=%s reply=%r", shard, certificate.order.transfer_id, reply)
            return False
        self.store.forwarded(certificate)
        self.metrics.inc("meshpay_shard_credits_sent_total", "Credits forwarded to sibling shards and acknowledged.")
        return True

    async def _run(self) -> None:
        while True:
            try:
                owed = self.store.outbox(OUTBOX_PAGE)
                if owed:
                    await asyncio.gather(*(self.forward(shard, cert) for shard, cert in owed))
            except Exception:  # a bug here must not end delivery for the life of the process
                log.exception("event=shard_link_round_failed")
            await asyncio.sleep(self.retry_s)

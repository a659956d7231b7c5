"""An authority's catch-up from its peers: it pulls the certificates it missed by itself.

Each authority keeps its certificates in a log in the order it applied them (store.py). A peer
asks for the entries after a cursor (`CertificateLogRequest`) and applies them in that order:
within one sender's account the order is the sender's sequence order, so entries never arrive
before the ones they depend on. One cursor per peer, kept in the store, so a restarted authority
asks only for what came after what it already took from that peer, never from the start.

Rounds run at start, every `interval` seconds, and at once when the service sees a sign of lag
(a sequence gap, an order ahead of the account, an unknown sender, a short balance). Entries the
authority already holds cost a lookup, no signature check (authority.handle_confirmation).
Certificates verify themselves, so a Byzantine peer can withhold or send garbage but never make
this authority apply something a quorum did not sign.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from meshpay.committee import AuthorityInfo
from meshpay.messages import Certificate, CertificateLogRequest, CertificateLogResponse
from meshpay.metrics import Metrics
from meshpay.quorum import communicate_with_quorum
from meshpay.store import Store
from meshpay.transport import PeerPool, TransportError

log = logging.getLogger("meshpay.catchup")

# Entries per request: a page of 256 three-signature certificates is about 110 KB.
LOG_PAGE = 256
# A round of a healthy network finds nothing new: one small request per peer every interval.
SYNC_INTERVAL = 5.0
# Time between rounds asked for by signs of lag, so a flood of lagging requests cannot turn
# the round loop into a busy loop against the peers.
MIN_ROUND_GAP = 0.2
REQUEST_TIMEOUT = 10.0
# Pages per peer per round: a round stays bounded; the next round goes on where it stopped.
MAX_PAGES_PER_ROUND = 400

# apply(certificate) -> True applied, False held already or invalid (skipped), None when it
# cannot be applied yet (a sequence gap): the page stops there and is asked for again.
Apply = Callable[[Certificate], "bool | None"]


@dataclass(frozen=True, slots=True)
class LogSource:
    """One shard of a peer authority (shards.py), whose log is pulled: where, and under what
    name its cursor is kept (shard 0 keeps the key it had before shards existed)."""

    name: str
    host: str
    port: int
    cursor_key: str


def log_sources(me: bytes, members: tuple[AuthorityInfo, ...]) -> list[LogSource]:
    """Every shard of every peer whose address is known from NODE_JSON; with mDNS discovery an
    authority knows no peer address and catch-up stays with the clients (see docs/node.md)."""
    sources = []
    for m in members:
        if m.public_key == me or m.host is None or m.port is None:
            continue
        for k in range(m.shards):
            sources.append(LogSource(m.name if m.shards == 1 else f"{m.name}/{k}", m.host, m.port + k,
                                     f"log_cursor:{m.public_key.hex()}" + (f":{k}" if k else "")))
    return sources


class CatchUp:
    """Pulls peers' certificate logs into this authority (this shard of it), in rounds."""

    def __init__(self, me: bytes, members: tuple[AuthorityInfo, ...], pool: PeerPool, store: Store,
                 apply: Apply, metrics: Metrics, interval: float = SYNC_INTERVAL, shard: int = 0, shards: int = 1) -> None:
        self.peers = log_sources(me, members)
        # Only certificates whose sender this shard holds are asked for: it applies the debit and
        # forwards the credit to its sibling like any confirmation (shards.py).
        self.shard = shard
        self.shards = shards
        self.pool = pool
        self.store = store
        self.apply = apply
        self.metrics = metrics
        self.interval = interval
        self._wake = asyncio.Event()
        self._waiters: list[asyncio.Future[None]] = []
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0

    def start(self) -> None:
        if self.peers and self._task is None:
            self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for waiter in self._waiters:
            waiter.cancel()

    def nudge(self) -> None:
        """Ask for a round soon, without waiting for it."""
        self._wake.set()

    async def next_round(self, timeout: float) -> None:
        """Wait until a round that starts after this call has finished, or `timeout` seconds."""
        if self._task is None:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except asyncio.TimeoutError:
            pass

    async def _run(self) -> None:
        everyone = True  # at start: this authority may have been down for a while
        while True:
            waiters, self._waiters = self._waiters, []
            self._wake.clear()
            try:
                await self.round(None if everyone else self.peers[self.rounds % len(self.peers)])
            except Exception:  # a bug here must not end catch-up for the life of the process
                log.exception("event=catchup_round_failed")
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
            await asyncio.sleep(MIN_ROUND_GAP)
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval)
                everyone = True
            except asyncio.TimeoutError:
                # Nothing pointed at a lag: one peer per round, in turn, catches the credits
                # this authority may have missed without fetching every certificate 3f times.
                everyone = False

    async def round(self, peer: LogSource | None = None) -> int:
        """Pull from `peer`, or from every peer at once; the number of certificates applied."""
        # No quorum here: each peer's log may hold certificates the others lack, so every peer
        # asked is pulled to the end (a Byzantine one can only withhold, see the module doc).
        gathered = await communicate_with_quorum([peer] if peer else self.peers, self._pull)
        gathered.raise_first_error()
        self.rounds += 1
        return sum(gathered.values().values())

    def _cursor(self, source: LogSource) -> int:
        blob = self.store.meta(source.cursor_key)
        return 0 if blob is None else int.from_bytes(blob, "big")

    async def _pull(self, member: LogSource) -> int:
        cursor = self._cursor(member)
        applied = 0
        try:
            for _ in range(MAX_PAGES_PER_ROUND):
                request = CertificateLogRequest(cursor, LOG_PAGE, self.shard, self.shards)
                reply = await self.pool.get(member.host, member.port).request(request, REQUEST_TIMEOUT)
                if not isinstance(reply, CertificateLogResponse):
                    log.info("event=catchup_refused peer=%s reply=%s", member.name, type(reply).__name__)
                    return applied
                if reply.head < cursor:
                    # The peer's log is shorter than where we stood in it: it was rebuilt.
                    log.warning("event=peer_log_rebuilt peer=%s cursor=%d head=%d", member.name, cursor, reply.head)
                    cursor = 0
                    continue
                if reply.cursor <= cursor:
                    return applied
                for cert in reply.certificates:
                    outcome = self.apply(cert)
                    if outcome is None:  # a gap: retry this page next round, after other peers
                        return applied
                    applied += outcome
                cursor = reply.cursor
                self.store.commit({}, meta={member.cursor_key: cursor.to_bytes(8, "big")})
                if cursor >= reply.head:
                    return applied
        except TransportError as exc:
            log.info("event=catchup_unreachable peer=%s error=%r", member.name, str(exc))
        return applied

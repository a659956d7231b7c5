"""An authority node: the pure decisions of authority.py wired to its store and the wire.

All state changes happen on the event loop thread without an await between reading and
committing, so handlers never interleave inside a state change. Fault injection for tests
lives apart, in faults.py, as a wrapper around `AuthorityService.handle`.
"""

from __future__ import annotations

import logging
from typing import Any

from meshpay import shards, wire
from meshpay.authority import Authority
from meshpay.catchup import LOG_PAGE, CatchUp
from meshpay.config import NodeConfig
from meshpay.messages import (
    AccountInfoRequest,
    AccountInfoResponse,
    Certificate,
    CertificateLogRequest,
    CertificateLogResponse,
    ConfirmationAck,
    ConfirmationOrder,
    ErrorCode,
    Message,
    ProtocolError,
    ShardCredit,
    TransferOrder,
    Vote,
)
from meshpay.metrics import Metrics
from meshpay.shardlink import ShardLink
from meshpay.store import Store
from meshpay.transport import PeerPool
from meshpay.views import NodeError, account_json, certificate_record

log = logging.getLogger("meshpay.node")

INFO_PAGE = 256
# How long a request that found this authority behind waits for a catch-up round (catchup.py).
CATCH_UP_WAIT = 3.0


def _fit(certs: list[Certificate], budget: int = wire.MAX_FRAME // 3) -> tuple[Certificate, ...]:
    """The longest prefix of `certs` whose encoding stays within `budget` bytes.

    Two such lists share one reply frame; certificates carry up to 256 signatures each, so a
    count limit alone could not keep the reply under the frame limit.
    """
    out: list[Certificate] = []
    size = 0
    for cert in certs:
        size += wire.certificate_size(cert)
        if size > budget:
            break
        out.append(cert)
    return tuple(out)


class AuthorityService:
    role = "authority"

    def __init__(self, config: NodeConfig, store: Store, metrics: Metrics, pool: PeerPool | None = None) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        # One shard of the authority (shards.py): shard 0 of 1 unless the committee says more.
        self.authority = Authority(config.keypair, config.committee, config.shard, config.shards)
        store.ensure_genesis({k: v for k, v in config.genesis.items() if self.authority.holds(k)})
        pool = pool or PeerPool()
        self.catch_up = CatchUp(config.public_key, config.committee.members, pool, store,
                                self._apply_pulled, metrics, shard=config.shard, shards=config.shards)
        self.link_key = shards.link_key(config.keypair)
        self.shard_link = ShardLink(config.wire_host, config.wire_port, self.link_key, store, pool, metrics)

    def start(self) -> None:
        """Start pulling missed certificates from peers and delivering credits owed to sibling
        shards (needs a running event loop)."""
        self.catch_up.start()
        if self.authority.shards > 1:
            self.shard_link.start()

    async def close(self) -> None:
        await self.catch_up.close()
        await self.shard_link.close()

    def count_request(self, msg: Message) -> None:
        self.metrics.inc("meshpay_wire_requests_total", "Wire requests received, by message type.", type=type(msg).__name__)

    async def handle(self, msg: Message) -> Message:
        """The reply to one wire request (refusals as ErrorReply), counted by type."""
        self.count_request(msg)
        return await self.respond(msg)

    async def respond(self, msg: Message) -> Message:
        """The reply to one wire request, uncounted (faults.py counts what it intercepts)."""
        try:
            if isinstance(msg, TransferOrder):
                return await self._lag_tolerant(self._order, msg)
            if isinstance(msg, ConfirmationOrder):
                ack = await self._lag_tolerant(self._confirm, msg.certificate)
                if ack.applied and not self.authority.holds(msg.certificate.order.recipient):
                    # Acknowledged once the recipient's shard has the credit too, as with one
                    # shard; if it cannot be reached now the credit stays owed (shardlink.py).
                    await self.shard_link.forward(shards.shard_of(msg.certificate.order.recipient, self.authority.shards),
                                                  msg.certificate)
                return ack
            if isinstance(msg, ShardCredit):
                return self._credit(msg)
            if isinstance(msg, AccountInfoRequest):
                return self._info(msg)
            if isinstance(msg, CertificateLogRequest):
                return self._log(msg)
            raise ProtocolError(ErrorCode.WRONG_ROLE, f"an authority does not take {type(msg).__name__}")
        except ProtocolError as exc:
            self.metrics.inc("meshpay_refusals_total", "Requests refused, by reason.", code=exc.code.name)
            return exc.reply()

    async def _lag_tolerant(self, step: Any, arg: Any) -> Any:
        """Run `step(arg)`; when it fails because this authority is behind, wait for one round of
        catch-up from the peers and try once more. The client gets an answer from an authority
        that is up to date, instead of having to resend its history."""
        try:
            return step(arg)
        except ProtocolError as exc:
            if not self._is_lag(exc, arg):
                raise
        self.metrics.inc("meshpay_lag_waits_total", "Requests that waited for a catch-up round.")
        await self.catch_up.next_round(CATCH_UP_WAIT)
        return step(arg)

    def _is_lag(self, exc: ProtocolError, arg: TransferOrder | Certificate) -> bool:
        if exc.code == ErrorCode.SEQUENCE_GAP or exc.code in (ErrorCode.INSUFFICIENT_BALANCE, ErrorCode.UNKNOWN_ACCOUNT):
            return True
        if exc.code == ErrorCode.UNEXPECTED_SEQUENCE and isinstance(arg, TransferOrder):
            account = self.store.account(arg.sender)
            return account is not None and arg.sequence > account.next_sequence
        return False

    def _order(self, order: TransferOrder) -> Vote:
        account = self.store.account(order.sender)
        new, vote = self.authority.handle_order(account, order)
        if new != account:
            self.store.commit({order.sender: new})
            self.metrics.inc("meshpay_votes_signed_total", "Transfer orders voted for (and locked).")
        else:
            self._replayed("order", order)
        return vote

    def _replayed(self, kind: str, order: TransferOrder) -> None:
        # A client retrying over a lossy mesh looks the same as an attacker replaying: both get
        # the answer already given and change nothing, and both are counted.
        self.metrics.inc("meshpay_replays_total", "Messages already handled, answered unchanged.", kind=kind)
        log.info("event=replay kind=%s id=%s sequence=%d", kind, order.transfer_id, order.sequence)

    def _settle(self, cert: Certificate) -> bool:
        """Apply a certificate if it is new here; True when it was applied."""
        order = cert.order
        sender = self.store.account(order.sender)
        recipient = self.store.account(order.recipient)
        outcome = self.authority.handle_confirmation(sender, recipient, cert)
        if outcome.applied:
            if outcome.recipient is None:  # the credit is a sibling shard's: owed in the same commit
                self.store.commit({order.sender: outcome.sender}, cert,
                                  forward_to=shards.shard_of(order.recipient, self.authority.shards))
            else:
                self.store.commit({order.sender: outcome.sender, order.recipient: outcome.recipient}, cert)
            self.metrics.inc("meshpay_confirmations_applied_total", "Certificates applied.")
            log.debug("event=confirmed id=%s amount=%d", order.transfer_id, order.amount)
        return outcome.applied

    def _confirm(self, cert: Certificate) -> ConfirmationAck:
        applied = self._settle(cert)
        if not applied:
            self._replayed("confirmation", cert.order)
        return ConfirmationAck(cert.order.sender, cert.order.sequence, applied)

    def _credit(self, msg: ShardCredit) -> ConfirmationAck:
        """A sibling shard's credit for a recipient of this shard (shards.py)."""
        if not shards.tag_is_valid(self.link_key, msg.certificate, msg.tag):
            raise ProtocolError(ErrorCode.REFUSED, "shard credit with a wrong MAC: only this authority's shards may send one")
        order = msg.certificate.order
        new = self.authority.apply_credit(self.store.account(order.recipient), msg.certificate)
        applied = self.store.commit({order.recipient: new}, msg.certificate)
        if applied:
            self.metrics.inc("meshpay_shard_credits_applied_total", "Credits from sibling shards applied.")
        return ConfirmationAck(order.sender, order.sequence, applied)

    def _apply_pulled(self, cert: Certificate) -> bool | None:
        """Apply a certificate pulled from a peer's log (catchup.py): True applied, False held
        already or refused, None for a sequence gap (to be asked for again)."""
        try:
            applied = self._settle(cert)
        except ProtocolError as exc:
            if exc.code == ErrorCode.SEQUENCE_GAP:
                return None
            self.metrics.inc("meshpay_catchup_refused_total", "Certificates from peers' logs refused, by reason.", code=exc.code.name)
            return False
        self.metrics.inc("meshpay_catchup_total", "Certificates read from peers' logs, by outcome.",
                         outcome="applied" if applied else "held")
        return applied

    def _info(self, req: AccountInfoRequest) -> AccountInfoResponse:
        self.authority.check_shard(req.account)
        limit = min(req.limit, INFO_PAGE)
        sent = _fit(self.store.sent_certificates(req.account, req.sent_from, limit)) if limit else ()
        received: tuple[Certificate, ...] = ()
        cursor = req.received_after
        if limit:
            got, _ = self.store.received_certificates(req.account, req.received_after, limit)
            received = _fit(got)
            if received:
                cursor = self.store.received_cursor(req.account, received[-1])
        return self.authority.account_info(req.account, self.store.account(req.account), sent, received, cursor)

    def _log(self, req: CertificateLogRequest) -> CertificateLogResponse:
        """A page of this shard's log: certificates whose sender is in the asker's shard
        (`shard` of `shards`), and the position to go on from (past what was filtered out)."""
        entries, head = self.store.certificate_log(req.after, min(req.limit, LOG_PAGE))
        if req.shards > 1:
            wanted = [(p, c) for p, c in entries if shards.shard_of(c.order.sender, req.shards) == req.shard]
        else:
            wanted = entries
        certs = _fit([c for _, c in wanted], wire.MAX_FRAME - 1024)
        if len(certs) < len(wanted):  # cut by the frame size: go on after the last one sent
            cursor = wanted[len(certs) - 1][0] if certs else req.after
        else:
            cursor = entries[-1][0] if entries else req.after
        return CertificateLogResponse(certs, cursor, head)

    # -- REST views ------------------------------------------------------------------------------

    def accounts(self, limit: int, offset: int) -> list[dict[str, Any]]:
        return [account_json(k, a, self.config) for k, a in self.store.accounts(limit, offset)]

    def account(self, key: bytes) -> dict[str, Any]:
        if not self.authority.holds(key):
            raise NodeError(404, f"account {key.hex()} lives in shard {shards.shard_of(key, self.authority.shards)} of "
                                 f"this authority, not in shard {self.authority.shard}: ask that shard's API")
        account = self.store.account(key)
        if account is None:
            raise NodeError(404, f"no account {key.hex()} at this authority")
        return account_json(key, account, self.config)

    def transfer_record(self, transfer_id: str) -> dict[str, Any]:
        return certificate_record(self.store, self.config, transfer_id)

    def gauges(self) -> dict[str, tuple[str, float]]:
        return {"meshpay_certificates": ("Certificates held in the store.", self.store.certificate_count())}


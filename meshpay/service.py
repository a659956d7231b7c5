"""The running node: the pure logic of authority.py and client.py, wired to the store and to
the network. All state changes happen on the event loop thread without an await between reading
and committing, so handlers never interleave inside a state change.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from meshpay import client as client_logic
from meshpay import wire
from meshpay.authority import Account, Authority
from meshpay.catchup import LOG_PAGE, CatchUp
from meshpay.committee import AuthorityInfo
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
    MAX_SEQUENCE,
    ErrorReply,
    Message,
    ProtocolError,
    TransferOrder,
    Vote,
    sign_order,
    sign_vote,
)
from meshpay.metrics import Metrics
from meshpay.store import Store
from meshpay.transport import ConnectFailed, PeerPool, TransportError

if TYPE_CHECKING:
    from meshpay.mdns import Browser

log = logging.getLogger("meshpay.node")

BYZANTINE_MODES = ("conflict", "garbage", "refuse", "delay")
# Generous for a multi-hop radio mesh on emulated CPUs; a refused connection fails at once anyway.
REQUEST_TIMEOUT = 10.0
CONFIRM_WAIT = 5.0
RECIPIENT_WAIT = 1.0
CONFIRM_RETRY_DELAYS = (0.5, 2.0)
INFO_PAGE = 256
PENDING_KEY = "pending_order"
# A transfer drives its order again (same order, same signature: authorities that voted answer
# with the same vote) until it is confirmed or rejected, or NodeConfig.transfer_deadline_s has
# passed; the pause between rounds grows as listed. An order still pending then is finished in
# the background, every PENDING_RETRY_S, so the client's next transfer finds its sequence free.
REDRIVE_PAUSE_S = (0.5, 1.0, 2.0)
PENDING_RETRY_S = 5.0
PENDING_RETRIES = 120
# How long a request that found this authority behind waits for a catch-up round (catchup.py).
CATCH_UP_WAIT = 3.0
# How long a transfer waits for announcements from a quorum (a client just started, an
# authority restarting) before it answers 503: mDNS answers in well under a second per hop.
DISCOVERY_WAIT = 20.0


def certificate_json(cert: Certificate, config: NodeConfig) -> dict[str, Any]:
    o = cert.order
    return {
        "id": o.transfer_id,
        "sender": o.sender.hex(),
        "recipient": o.recipient.hex(),
        "amount": o.amount,
        "sequence": o.sequence,
        "order_signature": o.signature.hex(),
        "signatures": [
            {"authority": config.account_name(a), "public_key": a.hex(), "signature": s.hex()}
            for a, s in cert.signatures
        ],
    }


def account_json(key: bytes, account: Account, config: NodeConfig) -> dict[str, Any]:
    pending = account.pending
    return {
        "id": key.hex(),
        "name": config.account_name(key),
        "balance": account.balance,
        "next_sequence": account.next_sequence,
        "pending": None
        if pending is None
        else {"sequence": pending.order.sequence, "recipient": pending.order.recipient.hex(), "amount": pending.order.amount},
    }


TRANSFER_ID_PATTERN = "^[0-9a-fA-F]{64}-[0-9]{1,19}$"
TRANSFER_ID_TEXT = f"<sender public key, 64 hex digits>-<sequence, 0..{MAX_SEQUENCE}>"


def parse_transfer_id(transfer_id: str) -> tuple[bytes, int]:
    """(sender key, sequence) from `<64 hex digits>-<decimal sequence>`: NodeError 400 when the
    id does not have that shape, 404 when the sequence is past MAX_SEQUENCE (no transfer can
    have it; the id matches the published pattern, so it is not malformed)."""
    if re.fullmatch(TRANSFER_ID_PATTERN, transfer_id) is None:
        raise NodeError(400, f"transfer id is {TRANSFER_ID_TEXT}, got {transfer_id[:200]!r}")
    sender, _, sequence = transfer_id.partition("-")
    if int(sequence) > MAX_SEQUENCE:
        raise NodeError(404, f"no transfer has sequence {sequence}: sequences end at {MAX_SEQUENCE}")
    return bytes.fromhex(sender), int(sequence)


def certificate_record(store: Store, config: NodeConfig, transfer_id: str) -> dict[str, Any]:
    cert = store.certificate(*parse_transfer_id(transfer_id))
    if cert is None:
        raise NodeError(404, f"no transfer {transfer_id} known to {config.name}")
    return {"id": transfer_id, "outcome": "confirmed", "certificate": certificate_json(cert, config)}


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


async def _wait_for_event_or_all(event: asyncio.Event, tasks: list[asyncio.Task[Any]], timeout: float) -> None:
    """Return when `event` is set, every task is done, or `timeout` passes; tasks keep running."""
    waiter = asyncio.ensure_future(event.wait())
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        while not event.is_set() and not all(t.done() for t in tasks):
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return
            await asyncio.wait([waiter, *[t for t in tasks if not t.done()]], timeout=left, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


class NodeError(Exception):
    """A request the node refuses; `status` is the HTTP status the API answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class AuthorityService:
    role = "authority"

    def __init__(self, config: NodeConfig, store: Store, metrics: Metrics, byzantine: str | None = None,
                 pool: PeerPool | None = None) -> None:
        if byzantine is not None and byzantine not in BYZANTINE_MODES:
            raise ValueError(f"MESHPAY_BYZANTINE must be one of {BYZANTINE_MODES}, got {byzantine!r}")
        self.config = config
        self.store = store
        self.metrics = metrics
        self.authority = Authority(config.keypair, config.committee)
        self.byzantine = byzantine
        self.delay = float(os.environ.get("MESHPAY_BYZANTINE_DELAY", "3"))
        store.ensure_genesis(config.genesis)
        self.catch_up = CatchUp(config.public_key, config.committee.members, pool or PeerPool(), store,
                                self._apply_pulled, metrics)

    def start(self) -> None:
        """Start pulling missed certificates from peers (needs a running event loop)."""
        self.catch_up.start()

    async def close(self) -> None:
        await self.catch_up.close()

    async def handle(self, msg: Message) -> Message | bytes:
        kind = type(msg).__name__
        self.metrics.inc("meshpay_wire_requests_total", "Wire requests received, by message type.", type=kind)
        if self.byzantine is not None and not isinstance(msg, (AccountInfoRequest, CertificateLogRequest)):
            if self.byzantine == "refuse":
                return ErrorReply(ErrorCode.REFUSED, "fault injection: this authority refuses everything")
            if self.byzantine == "garbage":
                return os.urandom(40)
            if self.byzantine == "delay":
                await asyncio.sleep(self.delay)
        try:
            if isinstance(msg, TransferOrder):
                if self.byzantine == "conflict":
                    return self._vote_for_anything(msg)
                return await self._lag_tolerant(self._order, msg)
            if isinstance(msg, ConfirmationOrder):
                return await self._lag_tolerant(self._confirm, msg.certificate)
            if isinstance(msg, AccountInfoRequest):
                return self._info(msg)
            if isinstance(msg, CertificateLogRequest):
                return self._log(msg)
            raise ProtocolError(ErrorCode.WRONG_ROLE, f"an authority does not take {kind}")
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

    def _vote_for_anything(self, order: TransferOrder) -> Vote:
        # Fault injection: sign every well-signed order, ignoring lock, sequence and balance.
        if not order.has_valid_signature():
            raise ProtocolError(ErrorCode.BAD_SIGNATURE, "order signature does not verify")
        return sign_vote(self.config.keypair, order)

    def _settle(self, cert: Certificate) -> bool:
        """Apply a certificate if it is new here; True when it was applied."""
        order = cert.order
        sender = self.store.account(order.sender)
        recipient = self.store.account(order.recipient)
        outcome = self.authority.handle_confirmation(sender, recipient, cert)
        if outcome.applied:
            self.store.commit({order.sender: outcome.sender, order.recipient: outcome.recipient}, cert)
            self.metrics.inc("meshpay_confirmations_applied_total", "Certificates applied.")
            log.debug("event=confirmed id=%s amount=%d", order.transfer_id, order.amount)
        return outcome.applied

    def _confirm(self, cert: Certificate) -> ConfirmationAck:
        applied = self._settle(cert)
        if not applied:
            self._replayed("confirmation", cert.order)
        return ConfirmationAck(cert.order.sender, cert.order.sequence, applied)

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
        entries, head = self.store.certificate_log(req.after, min(req.limit, LOG_PAGE))
        certs = _fit([c for _, c in entries], wire.MAX_FRAME - 1024)
        cursor = entries[len(certs) - 1][0] if certs else req.after
        return CertificateLogResponse(certs, cursor, head)

    # -- REST views ------------------------------------------------------------------------------

    def accounts(self, limit: int, offset: int) -> list[dict[str, Any]]:
        return [account_json(k, a, self.config) for k, a in self.store.accounts(limit, offset)]

    def account(self, key: bytes) -> dict[str, Any]:
        account = self.store.account(key)
        if account is None:
            raise NodeError(404, f"no account {key.hex()} at this authority")
        return account_json(key, account, self.config)

    def transfer(self, transfer_id: str) -> dict[str, Any]:
        return certificate_record(self.store, self.config, transfer_id)

    def gauges(self) -> dict[str, tuple[str, float]]:
        return {"meshpay_certificates": ("Certificates held in the store.", self.store.certificate_count())}


class ClientService:
    role = "client"

    def __init__(self, config: NodeConfig, store: Store, metrics: Metrics, pool: PeerPool,
                 discovery: Browser | None = None) -> None:
        self.config = config
        self.discovery = discovery
        self.store = store
        self.metrics = metrics
        self.pool = pool
        self.me = config.public_key
        self.committee = config.committee
        self._lock = asyncio.Lock()
        self._cursors: dict[bytes, int] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._finisher: asyncio.Task[Any] | None = None
        store.ensure_genesis({self.me: config.genesis.get(self.me, 0)})

    # -- state -----------------------------------------------------------------------------------

    def own_account(self) -> Account:
        account = self.store.account(self.me)
        assert account is not None, "ensure_genesis creates the client's own account"
        return account

    def pending_order(self) -> TransferOrder | None:
        return self.store.decode_meta_order(PENDING_KEY)

    def _record(self, cert: Certificate) -> bool:
        """Apply a verified certificate touching this client's account; True if it was new."""
        self.committee.check_certificate(cert)
        order = cert.order
        own = self.own_account()
        if order.recipient == self.me:
            applied = self.store.commit({self.me: replace(own, balance=own.balance + order.amount)}, cert)
            if applied:
                self.metrics.inc("meshpay_received_total", "Certificates received crediting this client.")
            return applied
        if order.sender == self.me:
            if order.sequence != own.next_sequence:
                return False
            pending = self.pending_order()
            meta = {PENDING_KEY: None} if pending is not None and pending.sequence <= order.sequence else None
            new = Account(own.balance - order.amount, own.next_sequence + 1, None)
            return self.store.commit({self.me: new}, cert, meta)
        raise ProtocolError(ErrorCode.WRONG_ROLE, "certificate does not involve this client")

    async def handle(self, msg: Message) -> Message | bytes:
        self.metrics.inc("meshpay_wire_requests_total", "Wire requests received, by message type.", type=type(msg).__name__)
        if isinstance(msg, ConfirmationOrder):
            try:
                applied = self._record(msg.certificate)
            except ProtocolError as exc:
                return exc.reply()
            return ConfirmationAck(msg.certificate.order.sender, msg.certificate.order.sequence, applied)
        return ErrorReply(ErrorCode.WRONG_ROLE, f"a client does not take {type(msg).__name__}")

    # -- talking to authorities ------------------------------------------------------------------

    def _address(self, member: AuthorityInfo) -> tuple[str, int]:
        """Where the member is now: its latest announcement on the mesh, else NODE_JSON's address."""
        found = None if self.discovery is None else self.discovery.address(member.public_key)
        if found is not None:
            return found
        if member.host is None or member.port is None:
            # Nothing was sent, so this authority certainly holds no lock: ConnectFailed says so.
            raise ConnectFailed(f"{member.name} has not been announced on the mesh (yet); see GET /discovery")
        return member.host, member.port

    async def _ask(self, member: AuthorityInfo, msg: Message) -> Message:
        return await self.pool.get(*self._address(member)).request(msg, REQUEST_TIMEOUT)

    async def _await_discovery(self) -> None:
        """With discovery, wait until a quorum has been heard, or refuse with what to do next."""
        if self.discovery is None or await self.discovery.wait_for_quorum(DISCOVERY_WAIT):
            return
        found = self.discovery.found
        raise NodeError(503, f"heard announcements from authorities of weight {found.heard_weight}, fewer than the "
                             f"quorum {self.committee.quorum_threshold}, within {DISCOVERY_WAIT:g} s; GET /discovery "
                             "shows who was heard and what was ignored; retry when more authorities are up")

    async def _deliver(self, host: str, port: int, msg: ConfirmationOrder) -> Message:
        """Send a confirmation, retrying a few times: it runs on after the transfer returned, and
        every authority that gets it is one fewer to bring up to date later."""
        for delay in CONFIRM_RETRY_DELAYS:
            try:
                return await self.pool.get(host, port).request(msg, REQUEST_TIMEOUT)
            except TransportError:
                await asyncio.sleep(delay)
        return await self.pool.get(host, port).request(msg, REQUEST_TIMEOUT)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _bring_up_to_date(self, member: AuthorityInfo) -> None:
        """Send an authority that lags on this account the certificates it sent and the authority
        missed, from the sequence the authority stands at. Credits are not resent: authorities
        pull what they missed from their peers' logs (catchup.py)."""
        try:
            info = await self._ask(member, AccountInfoRequest(self.me))
            their_sequence = info.next_sequence if isinstance(info, AccountInfoResponse) else 0
            for cert in self.store.sent_certificates(self.me, their_sequence, INFO_PAGE):
                await self._ask(member, ConfirmationOrder(cert))
        except TransportError:
            return

    async def _collect_votes(
        self, order: TransferOrder, timings: dict[str, dict[str, Any]]
    ) -> tuple[client_logic.VoteCollector, set[bytes]]:
        """Votes for `order`, and the authorities known NOT to hold a lock on it."""
        collector = client_logic.VoteCollector(self.committee, order)
        decided = asyncio.Event()
        unlocked: set[bytes] = set()

        async def ask(member: AuthorityInfo) -> None:
            start = time.perf_counter()
            entry = timings.setdefault(member.name, {"vote": "no answer before the quorum"})
            try:
                reply = await self._ask(member, order)
                if isinstance(reply, ErrorReply) and reply.code in client_logic.LAGGING_CODES:
                    await self._bring_up_to_date(member)
                    reply = await self._ask(member, order)
                if isinstance(reply, Vote):
                    collector.add_vote(member.public_key, reply)
                    entry["vote"] = "ok"
                    entry.pop("reason", None)
                elif isinstance(reply, ErrorReply):
                    collector.add_refusal(member.public_key, f"{reply.code.name}: {reply.message}")
                    unlocked.add(member.public_key)
                    entry["vote"] = f"refused {reply.code.name}: {reply.message}"
                    entry["reason"] = f"refused by the authority ({reply.code.name})"
                else:
                    collector.add_refusal(member.public_key, "unexpected reply")
                    entry["vote"] = f"unexpected reply {type(reply).__name__}"
                    entry["reason"] = "unexpected reply"
            except ConnectFailed as exc:
                collector.add_refusal(member.public_key, str(exc))
                unlocked.add(member.public_key)
                entry["vote"] = f"failed: {exc}"
                entry["reason"] = exc.reason
            except TransportError as exc:
                collector.add_refusal(member.public_key, str(exc))
                entry["vote"] = f"failed: {exc}"
                entry["reason"] = exc.reason
            except ProtocolError as exc:
                collector.add_refusal(member.public_key, str(exc))
                entry["vote"] = f"failed: {exc}"
                entry["reason"] = "invalid vote"
            entry["vote_ms"] = round((time.perf_counter() - start) * 1000, 3)
            if collector.has_quorum or collector.quorum_impossible:
                decided.set()

        tasks = [self._spawn(ask(m)) for m in self.committee.members]
        await _wait_for_event_or_all(decided, tasks, REQUEST_TIMEOUT * 3)
        if not collector.has_quorum:
            # No quorum: hear every authority out before judging which ones locked on the order.
            await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT * 3)
        return collector, unlocked

    async def _broadcast(self, cert: Certificate, timings: dict[str, dict[str, Any]]) -> int:
        """Send the certificate to every authority and the recipient; wait for a quorum of acks."""
        acked: dict[bytes, bool] = {}
        enough = asyncio.Event()
        msg = ConfirmationOrder(cert)

        async def confirm(member: AuthorityInfo) -> None:
            start = time.perf_counter()
            entry = timings.setdefault(member.name, {})
            entry["confirm"] = "no answer before the quorum"
            try:
                reply = await self._deliver(*self._address(member), msg)
                if isinstance(reply, ErrorReply) and reply.code == ErrorCode.SEQUENCE_GAP:
                    await self._bring_up_to_date(member)
                    reply = await self._ask(member, msg)
                if isinstance(reply, ConfirmationAck):
                    acked[member.public_key] = True
                    entry["confirm"] = "applied" if reply.applied else "already known"
                elif isinstance(reply, ErrorReply):
                    entry["confirm"] = f"refused {reply.code.name}: {reply.message}"
                else:
                    entry["confirm"] = f"unexpected reply {type(reply).__name__}"
            except TransportError as exc:
                entry["confirm"] = f"failed: {exc}"
            entry["confirm_ms"] = round((time.perf_counter() - start) * 1000, 3)
            if sum(self.committee.weight(a) for a in acked) >= self.committee.quorum_threshold:
                enough.set()

        tasks = [self._spawn(confirm(m)) for m in self.committee.members]
        recipient = self.config.client(cert.order.recipient)
        if recipient is not None:
            tasks.append(self._spawn(self._notify(recipient.host, recipient.port, msg, timings, recipient.name)))
        await _wait_for_event_or_all(enough, tasks, CONFIRM_WAIT)
        # The recipient is told in the same breath; a short extra wait lets a caller reading its
        # balance right after see the credit, without holding the transfer when it is down.
        if recipient is not None and not tasks[-1].done():
            await asyncio.wait([tasks[-1]], timeout=RECIPIENT_WAIT)
        return sum(self.committee.weight(a) for a in acked)

    async def _notify(self, host: str, port: int, msg: ConfirmationOrder, timings: dict[str, dict[str, Any]], name: str) -> None:
        start = time.perf_counter()
        try:
            reply = await self._deliver(host, port, msg)
            status = "ok" if isinstance(reply, ConfirmationAck) else f"refused: {getattr(reply, 'message', reply)}"
        except TransportError as exc:
            status = f"failed: {exc}"
        timings[f"recipient:{name}"] = {"confirm": status, "confirm_ms": round((time.perf_counter() - start) * 1000, 3)}

    async def _drive(self, order: TransferOrder) -> tuple[dict[str, Any], set[bytes]]:
        """Take a signed, persisted order to a certificate and broadcast it. Returns the round's
        record and the authorities that voted for the order or may have got it in this round."""
        start = time.perf_counter()
        timings: dict[str, dict[str, Any]] = {}
        collector, unlocked = await self._collect_votes(order, timings)
        record: dict[str, Any] = {
            "id": order.transfer_id,
            "sender": order.sender.hex(),
            "recipient": order.recipient.hex(),
            "recipient_name": self.config.account_name(order.recipient),
            "amount": order.amount,
            "sequence": order.sequence,
            "authorities": timings,
        }
        if not collector.has_quorum:
            if unlocked == set(self.committee.weights) and any(
                    entry.get("reason", "").startswith("refused by") for entry in timings.values()):
                # Every authority said no or was unreachable, and some said no: none locked on
                # this order in this round (_settle weighs the rounds before it).
                outcome = "rejected"
            elif unlocked == set(self.committee.weights):
                # No authority got it (no path yet across the mesh, every node restarting): the
                # order stays pending, to be sent again, until _settle's deadline.
                outcome = "unreachable"
            else:
                outcome = "pending"
            record.update(outcome=outcome, votes_weight=collector.weight, refusals=collector.refusals_text())
            return record, set(self.committee.weights) - unlocked
        cert = collector.certificate()
        certified = time.perf_counter()
        self._record(cert)
        ack_weight = await self._broadcast(cert, timings)
        done = time.perf_counter()
        record.update(
            outcome="confirmed",
            certificate=certificate_json(cert, self.config),
            ack_weight=ack_weight,
            latency_ms={"certificate": round((certified - start) * 1000, 3), "total": round((done - start) * 1000, 3)},
        )
        self.store.put_transfer(order.transfer_id, record)
        self.metrics.observe("meshpay_transfer_seconds", "Time from order to quorum of confirmations.", done - start)
        return record, set(self.committee.weights) - unlocked

    async def _settle(self, order: TransferOrder, deadline: float) -> dict[str, Any]:
        """Drive `order` until it is confirmed or rejected, or `deadline` (event loop time) passes.

        A round ends "pending" when some authorities could not be reached (no path yet, a node
        restarting) and the votes fell short of a quorum: the same order is sent again, never
        another one at its sequence number. The record's `attempts` counts the rounds.
        """
        loop = asyncio.get_running_loop()
        # Authorities that voted for the order, or may have got it, in any round so far: one
        # that voted in an earlier round and is unreachable now still holds its lock.
        may_hold_lock: set[bytes] = set()
        for attempt in range(1, 10_000):
            record, got_it = await self._drive(order)
            record["attempts"] = attempt
            may_hold_lock |= got_it
            pause = REDRIVE_PAUSE_S[min(attempt - 1, len(REDRIVE_PAUSE_S) - 1)]
            if record["outcome"] not in ("pending", "unreachable") or loop.time() + pause >= deadline:
                break
            await asyncio.sleep(pause)
        if record["outcome"] in ("rejected", "unreachable"):
            if may_hold_lock:
                record["outcome"] = "pending"  # someone may hold a lock on it: keep finishing it
            else:
                # No authority ever got it or every one said no: none can hold a lock on it, so
                # a different order at this sequence cannot be blocked by it.
                self.store.commit({}, meta={PENDING_KEY: None})
                record["outcome"] = "rejected"
        self.store.put_transfer(order.transfer_id, record)
        self.metrics.inc("meshpay_transfers_total", "Transfers attempted, by outcome.", outcome=record["outcome"])
        return record

    def _finish_later(self) -> None:
        """Keep driving the pending order in the background until it is decided."""
        if self._finisher is not None and not self._finisher.done():
            return

        async def finish() -> None:
            for _ in range(PENDING_RETRIES):
                await asyncio.sleep(PENDING_RETRY_S)
                async with self._lock:
                    pending = self.pending_order()
                    if pending is None:
                        return
                    if pending.sequence < self.own_account().next_sequence:
                        self.store.commit({}, meta={PENDING_KEY: None})
                        return
                    loop = asyncio.get_running_loop()
                    record = await self._settle(pending, loop.time() + self.config.transfer_deadline_s)
                    log.info("event=pending_retry transfer=%s outcome=%s", pending.transfer_id, record["outcome"])
                    if record["outcome"] != "pending":
                        return

        self._finisher = self._spawn(finish())

    # -- API operations --------------------------------------------------------------------------

    async def transfer(self, recipient: bytes, amount: int) -> dict[str, Any]:
        if recipient == self.me:
            raise NodeError(400, "cannot transfer to yourself")
        if amount <= 0:
            raise NodeError(400, "amount must be a positive integer")
        await self._await_discovery()
        loop = asyncio.get_running_loop()
        async with self._lock:
            pending = self.pending_order()
            if pending is not None:
                # A crash or a failed round left an order some authorities may have locked on:
                # finish it first, or this sequence number would stay blocked.
                previous = await self._settle(pending, loop.time() + self.config.transfer_deadline_s)
                if previous["outcome"] == "pending":
                    self._finish_later()
                    unreachable = {name: entry.get("reason") for name, entry in previous["authorities"].items()
                                   if entry.get("vote") != "ok"}
                    raise NodeError(503, f"earlier order {pending.transfer_id} could not be finished in "
                                         f"{self.config.transfer_deadline_s:g} s (no vote from {unreachable}); it is retried in "
                                         "the background every few seconds: try again later")
            own = self.own_account()
            if amount > own.balance:
                # Payments may have reached the authorities while this node was not listening.
                await self._sync_locked()
                own = self.own_account()
            if amount > own.balance:
                raise NodeError(409, f"insufficient balance: {own.balance} < {amount}")
            order = sign_order(self.config.keypair, recipient, amount, own.next_sequence)
            # Persist before sending: after a crash we must resend this order, never sign another.
            self.store.commit({}, meta={PENDING_KEY: self.store.encode_order(order)})
            record = await self._settle(order, loop.time() + self.config.transfer_deadline_s)
            if record["outcome"] == "pending":
                self._finish_later()
            return record

    async def sync(self) -> dict[str, Any]:
        await self._await_discovery()
        async with self._lock:
            return await self._sync_locked()

    async def _sync_locked(self) -> dict[str, Any]:
        new = 0
        responses: dict[bytes, AccountInfoResponse] = {}

        async def pull(member: AuthorityInfo) -> None:
            nonlocal new
            try:
                for _ in range(64):
                    own = self.own_account()
                    reply = await self._ask(member, AccountInfoRequest(self.me, own.next_sequence, self._cursors.get(member.public_key, 0), INFO_PAGE))
                    if not isinstance(reply, AccountInfoResponse) or reply.account != self.me:
                        return
                    responses[member.public_key] = reply
                    for cert in sorted(reply.sent, key=lambda c: c.order.sequence) + list(reply.received):
                        try:
                            new += self._record(cert)
                        except ProtocolError as exc:
                            log.warning("event=bad_certificate_from authority=%s error=%r", member.name, str(exc))
                    self._cursors[member.public_key] = reply.received_cursor
                    if len(reply.received) < INFO_PAGE and len(reply.sent) < INFO_PAGE:
                        return
            except TransportError as exc:
                log.info("event=sync_failed authority=%s error=%r", member.name, str(exc))

        await asyncio.gather(*(pull(m) for m in self.committee.members))
        pending = self.pending_order()
        completed = None
        if pending is not None:
            if pending.sequence < self.own_account().next_sequence:
                self.store.commit({}, meta={PENDING_KEY: None})
            else:
                completed = await self._settle(pending, asyncio.get_running_loop().time() + self.config.transfer_deadline_s)
        own = self.own_account()
        lagging = [m for m in self.committee.members if m.public_key in responses and (
            responses[m.public_key].next_sequence < own.next_sequence or responses[m.public_key].balance < own.balance)]
        await asyncio.gather(*(self._bring_up_to_date(m) for m in lagging), return_exceptions=True)
        view = client_logic.quorum_view(self.committee, responses)
        return {
            "account": account_json(self.me, own, self.config),
            "new_certificates": new,
            "pending_completed": completed,
            "updated_authorities": [m.name for m in lagging],
            "quorum": None if view is None else {"balance": view.balance, "next_sequence": view.next_sequence, "weight": view.weight},
        }

    async def quorum_read(self, key: bytes) -> dict[str, Any]:
        await self._await_discovery()
        replies = await asyncio.gather(*(self._ask(m, AccountInfoRequest(key)) for m in self.committee.members), return_exceptions=True)
        responses = {
            m.public_key: r
            for m, r in zip(self.committee.members, replies)
            if isinstance(r, AccountInfoResponse) and r.account == key
        }
        view = client_logic.quorum_view(self.committee, responses)
        if view is None:
            raise NodeError(503, f"no f+1 weight of authorities agree on account {key.hex()} ({len(responses)} answered)")
        return {"id": key.hex(), "name": self.config.account_name(key), "balance": view.balance, "next_sequence": view.next_sequence, "weight": view.weight}

    # -- REST views ------------------------------------------------------------------------------

    def accounts(self, limit: int, offset: int) -> list[dict[str, Any]]:
        return [self.account(self.me)][offset : offset + limit]

    def account(self, key: bytes) -> dict[str, Any]:
        if key != self.me:
            raise NodeError(404, "a client node only keeps its own account; add ?quorum=true to ask the authorities")
        view = account_json(self.me, self.own_account(), self.config)
        pending = self.pending_order()
        view["pending"] = None if pending is None else {"sequence": pending.sequence, "recipient": pending.recipient.hex(), "amount": pending.amount}
        return view

    def transfer_record(self, transfer_id: str) -> dict[str, Any]:
        record = self.store.transfer(transfer_id)
        if record is None:
            # Not sent from here: it may be a payment this client received.
            return certificate_record(self.store, self.config, transfer_id)
        return record

    def discovery_view(self) -> dict[str, Any]:
        if self.discovery is not None:
            return self.discovery.snapshot()
        return {"mode": "static", "authorities": [
            {"authority": m.name, "weight": m.weight, "address": f"{m.host}:{m.port}", "heard": None}
            for m in self.committee.members]}

    def gauges(self) -> dict[str, tuple[str, float]]:
        return {"meshpay_balance": ("This client's balance (local view).", self.own_account().balance)}

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

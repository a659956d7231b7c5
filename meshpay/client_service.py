"""A client node: the pure rules of client.py wired to its store and to the authorities.

The client drives its own transfers (order, votes, certificate, confirmations), records the
certificates that credit it, and reads accounts from a quorum.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from meshpay import client as client_logic
from meshpay import shards
from meshpay.authority import Account
from meshpay.committee import AuthorityInfo
from meshpay.config import NodeConfig
from meshpay.messages import (
    AccountInfoRequest,
    AccountInfoResponse,
    Certificate,
    ConfirmationAck,
    ConfirmationOrder,
    ErrorCode,
    ErrorReply,
    Message,
    ProtocolError,
    TransferOrder,
    Vote,
    sign_order,
)
from meshpay.metrics import Metrics
from meshpay.quorum import communicate_with_quorum
from meshpay.store import Store
from meshpay.transport import ConnectFailed, PeerPool, TransportError
from meshpay.views import NodeError, account_json, certificate_json, certificate_record

if TYPE_CHECKING:
    from meshpay.mdns import Browser

log = logging.getLogger("meshpay.node")

# Generous for a multi-hop radio mesh on emulated CPUs; a refused connection fails at once anyway.
REQUEST_TIMEOUT = 10.0
CONFIRM_WAIT = 5.0
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
# How long a transfer waits for announcements from a quorum (a client just started, an
# authority restarting) before it answers 503: mDNS answers in well under a second per hop.
DISCOVERY_WAIT = 20.0


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

    def _address(self, member: AuthorityInfo, msg: Message) -> tuple[str, int]:
        """Where `msg` goes at this member: the shard holding the account it names (shards.py)
        at the member's latest announcement on the mesh, else at NODE_JSON's address."""
        found = None if self.discovery is None else self.discovery.address(member.public_key)
        if found is None:
            if member.host is None or member.port is None:
                # Nothing was sent, so this authority certainly holds no lock: ConnectFailed says so.
                raise ConnectFailed(f"{member.name} has not been announced on the mesh (yet); see GET /discovery")
            found = (member.host, member.port)
        key = shards.routing_key(msg)
        if member.shards == 1 or key is None:
            return found
        return found[0], found[1] + shards.shard_of(key, member.shards)

    async def _ask(self, member: AuthorityInfo, msg: Message) -> Message:
        return await self.pool.get(*self._address(member, msg)).request(msg, REQUEST_TIMEOUT)

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
        unlocked: set[bytes] = set()

        async def ask(member: AuthorityInfo) -> bool:
            """True when the member's vote was counted."""
            start = time.perf_counter()
            entry = timings.setdefault(member.name, {"vote": "no answer before the quorum"})
            voted = False
            try:
                reply = await self._ask(member, order)
                if isinstance(reply, ErrorReply) and reply.code in client_logic.LAGGING_CODES:
                    await self._bring_up_to_date(member)
                    reply = await self._ask(member, order)
                if isinstance(reply, Vote):
                    collector.add_vote(member.public_key, reply)
                    entry["vote"] = "ok"
                    entry.pop("reason", None)
                    voted = True
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
            return voted

        # Every reply that is not a counted vote is a refusal in the collector, so the helper's
        # quorum and its "impossible" are the collector's has_quorum and quorum_impossible.
        gathered = await communicate_with_quorum(
            self.committee.members, ask, quorum=self.committee.quorum_threshold,
            weight=lambda m: self.committee.weight(m.public_key), counts=bool,
            timeout=REQUEST_TIMEOUT * 3, spawn=self._spawn)
        if not collector.has_quorum:
            # No quorum: hear every authority out before judging which ones locked on the order.
            await gathered.wait_rest(REQUEST_TIMEOUT * 3)
        return collector, unlocked

    async def _broadcast(self, cert: Certificate, timings: dict[str, dict[str, Any]]) -> int:
        """Send the certificate to every authority and the recipient; wait for a quorum of acks.
        The weight of the authorities that acknowledged it by then."""
        msg = ConfirmationOrder(cert)

        async def confirm(member: AuthorityInfo) -> bool:
            """True when the member acknowledged the certificate."""
            start = time.perf_counter()
            acked = False
            entry = timings.setdefault(member.name, {})
            entry["confirm"] = "no answer before the quorum"
            try:
                reply = await self._deliver(*self._address(member, msg), msg)
                if isinstance(reply, ErrorReply) and reply.code == ErrorCode.SEQUENCE_GAP:
                    await self._bring_up_to_date(member)
                    reply = await self._ask(member, msg)
                if isinstance(reply, ConfirmationAck):
                    acked = True
                    entry["confirm"] = "applied" if reply.applied else "already known"
                elif isinstance(reply, ErrorReply):
                    entry["confirm"] = f"refused {reply.code.name}: {reply.message}"
                else:
                    entry["confirm"] = f"unexpected reply {type(reply).__name__}"
            except TransportError as exc:
                entry["confirm"] = f"failed: {exc}"
            entry["confirm_ms"] = round((time.perf_counter() - start) * 1000, 3)
            return acked

        # Settled once a quorum applied the certificate (the paper's confirmation, section 3). The
        # recipient is told in the same breath but not waited for: its path is not one the
        # payment needs (on a mesh, often cold or through a relay that just died), and it can
        # always read the credit from the authorities.
        recipient = self.config.client(cert.order.recipient)
        notify = None if recipient is None else self._spawn(
            self._notify(recipient.host, recipient.port, msg, timings, recipient.name))
        # Short of a quorum of acks, every authority is still heard out (up to CONFIRM_WAIT) so
        # the record says what each one answered; the stragglers go on delivering afterwards.
        gathered = await communicate_with_quorum(
            self.committee.members, confirm, quorum=self.committee.quorum_threshold,
            weight=lambda m: self.committee.weight(m.public_key), counts=bool,
            timeout=CONFIRM_WAIT, stop_when_impossible=False, spawn=self._spawn)
        if recipient is not None and notify is not None and not notify.done():
            timings[f"recipient:{recipient.name}"] = {"confirm": "in flight"}
        return gathered.weight

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

    async def pay(self, recipient: bytes, amount: int) -> dict[str, Any]:
        """Move `amount` from this client to `recipient`: the REST `POST /transfers`. The record
        of the transfer, its outcome `confirmed`, `rejected` or `pending`."""
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

        # Every authority is read to the end (no quorum: each may hold credits the others lack).
        (await communicate_with_quorum(self.committee.members, pull)).raise_first_error()
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
        await communicate_with_quorum(lagging, self._bring_up_to_date)
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
        # Every authority is heard out: quorum_view wants f+1 of them agreeing, not any 2f+1.
        gathered = await communicate_with_quorum(self.committee.members, lambda m: self._ask(m, AccountInfoRequest(key)))
        responses = {
            m.public_key: r
            for m, r in gathered.values().items()
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

"""The node services in one process: 4 authorities and 2 clients over real loopback TCP."""

import asyncio

import pytest

from meshpay.config import parse_config
from meshpay.localnet import free_port
from meshpay.messages import AccountInfoRequest, ConfirmationOrder, ErrorCode, ErrorReply, sign_order
from meshpay.metrics import Metrics
from meshpay import client_service as service
from meshpay.authority_service import AuthorityService
from meshpay.client_service import PENDING_KEY, ClientService
from meshpay.faults import FaultInjection
from meshpay.views import NodeError
from meshpay.store import Store
from meshpay.transport import PeerPool, WireServer

from meshpay_helpers import World


class Cluster:
    def __init__(self, world: World, tmp_path, deadline: float = 25.0) -> None:
        self.world = world
        ports = [free_port("127.0.0.1") for _ in range(6)]
        committee = [
            {"name": f"auth{i + 1}", "public_key": k.public_key.hex(), "weight": 1, "host": "127.0.0.1", "port": ports[i]}
            for i, k in enumerate(world.auth_keys)
        ]
        clients = [
            {"name": f"client{i + 1}", "public_key": k.public_key.hex(), "host": "127.0.0.1", "port": ports[4 + i]}
            for i, k in enumerate(world.clients[:2])
        ]
        genesis = {k.public_key.hex(): 100 for k in world.clients}

        def config(name, role, seed, port):
            return parse_config({
                "name": name, "role": role, "seed": seed.hex(), "db_path": str(tmp_path / name / "state.db"),
                "wire_host": "127.0.0.1", "wire_port": port, "api_host": "127.0.0.1", "api_port": 1,
                "api_token": None, "committee": committee, "clients": clients, "genesis": genesis,
                "transfer_deadline_s": deadline,
            })

        self.authorities = [
            AuthorityService(config(f"auth{i + 1}", "authority", bytes([100 + i]) * 32, ports[i]), Store(tmp_path / f"a{i}.db"), Metrics(), pool=PeerPool())
            for i in range(4)
        ]
        self.pools = [PeerPool(), PeerPool()] + [a.catch_up.pool for a in self.authorities]
        self.clients = [
            ClientService(config(f"client{i + 1}", "client", bytes([1 + i]) * 32, ports[4 + i]), Store(tmp_path / f"c{i}.db"), Metrics(), self.pools[i])
            for i in range(2)
        ]
        # Every authority behind a fault switch, off until a test sets its mode.
        self.faults = [FaultInjection(a, None) for a in self.authorities]
        handlers = [f.handle for f in self.faults] + [c.handle for c in self.clients]
        self.servers = [WireServer(h, "127.0.0.1", ports[i]) for i, h in enumerate(handlers)]

    async def __aenter__(self) -> "Cluster":
        for server in self.servers:
            await server.start()
        for authority in self.authorities:
            authority.start()
        return self

    async def __aexit__(self, *exc) -> None:
        for c in self.clients:
            await c.close()
        for a in self.authorities:
            await a.close()
        for pool in self.pools:
            await pool.close()
        for server in self.servers:
            await server.close()


async def credited(client: ClientService, balance: int) -> None:
    """Until the recipient has been told (in the background, after the transfer settled)."""
    for _ in range(200):
        if client.own_account().balance == balance:
            return
        await asyncio.sleep(0.01)
    assert client.own_account().balance == balance


def run(tmp_path, scenario, deadline: float = 25.0):
    async def main():
        async with Cluster(World(n_clients=3), tmp_path, deadline) as cluster:
            await scenario(cluster)

    asyncio.run(asyncio.wait_for(main(), 60))


def test_transfer_credits_recipient_and_records_timings(tmp_path):
    async def scenario(c: Cluster):
        alice, bob = c.clients
        record = await alice.pay(bob.me, 30)
        assert record["outcome"] == "confirmed"
        assert set(record["authorities"]) >= {"auth1", "auth2", "auth3", "auth4", "recipient:client2"}
        assert alice.own_account().balance == 70 and alice.own_account().next_sequence == 1
        await credited(bob, 130)
        assert alice.transfer_record(record["id"])["outcome"] == "confirmed"
        await asyncio.sleep(0.05)
        for auth in c.authorities:
            assert auth.store.account(alice.me).balance == 70
        with pytest.raises(NodeError) as info:
            await alice.pay(bob.me, 1000)
        assert info.value.status == 409
        with pytest.raises(NodeError):
            await alice.pay(alice.me, 1)

    run(tmp_path, scenario)


def test_lagging_authority_is_brought_up_to_date(tmp_path):
    async def scenario(c: Cluster):
        alice, bob = c.clients
        c.faults[3].mode = "refuse"
        await alice.pay(bob.me, 10)
        await bob.pay(alice.me, 5)
        c.faults[3].mode = None
        assert c.authorities[3].store.account(alice.me).next_sequence == 0
        await alice.pay(bob.me, 1)
        for _ in range(50):
            if c.authorities[3].store.account(alice.me).next_sequence == 2:
                break
            await asyncio.sleep(0.02)
        lagger = c.authorities[3].store.account(alice.me)
        assert (lagger.next_sequence, lagger.balance) == (2, 94)

    run(tmp_path, scenario)


def test_transfer_with_f_plus_one_refusing_is_rejected_and_unlocked(tmp_path):
    async def scenario(c: Cluster):
        alice, bob = c.clients
        for f in c.faults:
            f.mode = "refuse"
        record = await alice.pay(bob.me, 10)
        assert record["outcome"] == "rejected"
        assert alice.pending_order() is None and alice.own_account().balance == 100
        for f in c.faults:
            f.mode = None
        assert (await alice.pay(bob.me, 10))["outcome"] == "confirmed"

    run(tmp_path, scenario)


def test_pending_order_left_by_a_crash_is_finished_first(tmp_path):
    async def scenario(c: Cluster):
        alice, bob = c.clients
        order = sign_order(alice.config.keypair, bob.me, 25, 0)
        alice.store.commit({}, meta={PENDING_KEY: alice.store.encode_order(order)})
        # Some authorities locked on it before the crash.
        for a in c.authorities[:2]:
            await a.handle(order)
        record = await alice.pay(bob.me, 5)
        assert record["sequence"] == 1
        assert alice.transfer_record(order.transfer_id)["outcome"] == "confirmed"
        assert alice.own_account().balance == 70 and bob.own_account().balance == 130

    run(tmp_path, scenario)


def test_sync_collects_missed_credits_and_quorum_read(tmp_path):
    async def scenario(c: Cluster):
        alice, bob = c.clients
        mallory = c.world.clients[2]
        # A transfer to alice that nobody told her about.
        order = sign_order(mallory, alice.me, 40, 0)
        votes = [await a.handle(order) for a in c.authorities]
        cert = c.world.certificate(order)
        for a in c.authorities:
            await a.handle(ConfirmationOrder(cert))
        assert alice.own_account().balance == 100
        summary = await alice.sync()
        assert summary["new_certificates"] == 1 and alice.own_account().balance == 140
        assert summary["quorum"]["balance"] == 140
        assert (await alice.sync())["new_certificates"] == 0
        view = await bob.quorum_read(mallory.public_key)
        assert view["balance"] == 60 and view["next_sequence"] == 1
        assert len(votes) == 4

    run(tmp_path, scenario)


def test_client_refuses_invalid_certificates_and_wrong_messages(tmp_path):
    async def scenario(c: Cluster):
        alice, _ = c.clients
        w = c.world
        bad = w.certificate(w.order(sender=2, recipient=0), signers=[0, 1])
        reply = await alice.handle(ConfirmationOrder(bad))
        assert isinstance(reply, ErrorReply) and reply.code == ErrorCode.INVALID_CERTIFICATE
        reply = await alice.handle(AccountInfoRequest(alice.me))
        assert isinstance(reply, ErrorReply) and reply.code == ErrorCode.WRONG_ROLE
        assert alice.own_account().balance == 100

    run(tmp_path, scenario)


def test_conflict_mode_authority_still_signs_for_real(tmp_path):
    async def scenario(c: Cluster):
        w = c.world
        byz = c.faults[0]
        byz.mode = "conflict"
        a, b = w.order(sender=2, recipient=0), w.order(sender=2, recipient=1)
        va, vb = await byz.handle(a), await byz.handle(b)
        assert va.has_valid_signature() and vb.has_valid_signature()
        honest = c.authorities[1]
        await honest.handle(a)
        refused = await honest.handle(b)
        assert isinstance(refused, ErrorReply) and refused.code == ErrorCode.CONFLICTING_ORDER

    run(tmp_path, scenario)


def test_unknown_byzantine_mode_is_refused(tmp_path):
    config = Cluster(World(), tmp_path).authorities[0].config
    with pytest.raises(ValueError, match="MESHPAY_BYZANTINE"):
        FaultInjection(AuthorityService(config, Store(":memory:"), Metrics()), "evil")


def test_account_info_pages_fit_in_one_frame(tmp_path):
    from meshpay import wire
    from meshpay.messages import Certificate

    async def scenario(c: Cluster):
        w = c.world
        auth = c.authorities[0]
        mallory = w.clients[2]
        alice = w.clients[0].public_key
        big = []
        for seq in range(60):
            order = sign_order(mallory, alice, 1, seq)
            # Certificates padded with 200 duplicate-free fake signers would be refused; store
            # directly to model a large committee's certificates.
            cert = Certificate(order, tuple((bytes([i % 256]) * 31 + bytes([seq % 256]), b"\0" * 64) for i in range(200)))
            auth.store.commit({}, cert)
            big.append(cert)
        reply = await auth.handle(AccountInfoRequest(alice, 0, 0, 256))
        assert 0 < len(reply.received) < 60
        assert len(wire.encode_frame(1, reply)) <= wire.MAX_FRAME
        nxt = await auth.handle(AccountInfoRequest(alice, 0, reply.received_cursor, 256))
        assert nxt.received[0] == big[len(reply.received)]

    run(tmp_path, scenario)


def test_received_payment_can_be_looked_up_on_the_recipient(tmp_path):
    async def scenario(c: Cluster):
        alice, bob = c.clients
        record = await alice.pay(bob.me, 3)
        await credited(bob, 103)
        seen = bob.transfer_record(record["id"])
        assert seen["certificate"]["amount"] == 3
        with pytest.raises(NodeError) as info:
            bob.transfer_record("zz-1")
        assert info.value.status == 400

    run(tmp_path, scenario)


def test_a_recipient_that_does_not_answer_does_not_hold_a_settled_transfer(tmp_path):
    """The recipient's path is not one the payment needs: the transfer returns once a quorum
    applied the certificate, and the recipient is told when it answers."""
    async def scenario(c: Cluster):
        alice, bob = c.clients
        bob_answers = asyncio.Event()
        handle = bob.handle

        async def slow_bob(msg):
            await bob_answers.wait()
            return await handle(msg)

        c.servers[5].handler = slow_bob
        record = await asyncio.wait_for(alice.pay(bob.me, 4), 30)
        assert record["outcome"] == "confirmed"
        assert record["authorities"]["recipient:client2"] == {"confirm": "in flight"}
        assert not bob_answers.is_set() and bob.own_account().balance == 100
        bob_answers.set()
        await credited(bob, 104)

    run(tmp_path, scenario)


# Rounds of a second, not the mesh's 25 s: these tests make authorities unreachable on purpose.
SHORT = 1.5


@pytest.fixture
def short_deadlines(monkeypatch):
    monkeypatch.setattr(service, "REQUEST_TIMEOUT", 0.5)


def test_votes_arriving_after_quorum_became_impossible_keep_the_order_pending(tmp_path, short_deadlines):
    async def scenario(c: Cluster):
        alice, bob = c.clients
        for server in c.servers[2:4]:  # auth3 and auth4 refuse connections at once
            await server.close()
        for f in c.faults[:2]:  # auth1 and auth2 vote, but only after that
            f.mode, f.delay = "delay", 0.2
        record = await alice.pay(bob.me, 10)
        assert record["outcome"] == "pending"
        assert record["authorities"]["auth1"]["vote"] == "ok"
        assert alice.pending_order() is not None

    run(tmp_path, scenario, SHORT)


def test_replayed_order_and_confirmation_are_answered_unchanged_counted_and_logged(tmp_path, caplog):
    async def scenario(c: Cluster):
        w = c.world
        auth = c.authorities[0]
        order = w.order(sender=2, recipient=0)
        vote = await auth.handle(order)
        before = auth.store.account(order.sender)
        assert await auth.handle(order) == vote and auth.store.account(order.sender) == before
        cert = w.certificate(order, signers=[0, 1, 2])
        assert (await auth.handle(ConfirmationOrder(cert))).applied is True
        after = auth.store.account(order.sender), auth.store.account(order.recipient)
        assert (await auth.handle(ConfirmationOrder(cert))).applied is False
        assert (auth.store.account(order.sender), auth.store.account(order.recipient)) == after
        text = auth.metrics.render()
        assert 'meshpay_replays_total{kind="order"} 1' in text
        assert 'meshpay_replays_total{kind="confirmation"} 1' in text

    with caplog.at_level("INFO", logger="meshpay.node"):
        run(tmp_path, scenario)
    replays = [r.getMessage() for r in caplog.records if "event=replay" in r.getMessage()]
    assert [m.split()[1] for m in replays] == ["kind=order", "kind=confirmation"]


def test_a_pending_order_is_finished_before_the_next_transfer_instead_of_a_409(tmp_path, short_deadlines, monkeypatch):
    monkeypatch.setattr(service, "PENDING_RETRY_S", 60.0)  # the next transfer finishes it, not the background

    async def scenario(c: Cluster):
        alice, bob = c.clients
        away = c.servers[2:4]
        for server in away:  # auth3 and auth4 unreachable: no quorum, the order stays pending
            await server.close()
        record = await alice.pay(bob.me, 10)
        assert record["outcome"] == "pending" and record["attempts"] >= 2, record
        # Each authority that did not vote says why, in words a script can count.
        assert record["authorities"]["auth3"]["reason"] == "connection refused"
        assert "reason" not in record["authorities"]["auth1"]
        for server in away:
            await server.start()
        second = await alice.pay(bob.me, 5)
        assert second["outcome"] == "confirmed" and second["sequence"] == 1
        assert alice.transfer_record(record["id"])["outcome"] == "confirmed"
        own = alice.own_account()
        assert (own.balance, own.next_sequence) == (85, 2) and alice.pending_order() is None

    run(tmp_path, scenario, SHORT)


def test_a_pending_order_is_finished_in_the_background(tmp_path, short_deadlines, monkeypatch):
    monkeypatch.setattr(service, "PENDING_RETRY_S", 0.2)

    async def scenario(c: Cluster):
        alice, bob = c.clients
        away = c.servers[2:4]
        for server in away:
            await server.close()
        record = await alice.pay(bob.me, 10)
        assert record["outcome"] == "pending"
        for server in away:
            await server.start()
        for _ in range(200):  # no new request: the client finishes its own order
            if alice.transfer_record(record["id"])["outcome"] == "confirmed":
                break
            await asyncio.sleep(0.05)
        assert alice.pending_order() is None
        assert alice.own_account().balance == 90
        assert alice.transfer_record(record["id"])["outcome"] == "confirmed"

    run(tmp_path, scenario, SHORT)


def test_authority_pulls_missed_certificates_from_peers_once_from_where_it_stands(tmp_path):
    from meshpay.messages import CertificateLogRequest

    async def scenario(c: Cluster):
        alice, bob = c.clients
        lagger = c.authorities[3]
        c.faults[3].mode = "refuse"  # it misses every order and confirmation of these transfers
        for _ in range(3):
            await alice.pay(bob.me, 10)
        await bob.pay(alice.me, 5)
        c.faults[3].mode = None
        assert lagger.store.account(alice.me).next_sequence == 0
        asked: list[int] = []
        real_log = c.authorities[0]._log
        c.authorities[0]._log = lambda req: asked.append(req.after) or real_log(req)
        assert await lagger.catch_up.round() == 4
        assert lagger.store.account(alice.me) == c.authorities[0].store.account(alice.me)
        assert lagger.store.account(bob.me) == c.authorities[0].store.account(bob.me)
        # The next round starts where the last one stopped: nothing is sent twice.
        head = c.authorities[0].store.certificate_log(0, 1)[1]
        assert await lagger.catch_up.round() == 0
        assert asked[0] == 0 and asked[-1] == head
        # A restarted authority keeps its cursors: the store remembers where it stood.
        reply = await c.authorities[0].handle(CertificateLogRequest(head, 10))
        assert reply.certificates == () and reply.head == head

    run(tmp_path, scenario)


def test_order_that_finds_the_authority_behind_waits_for_catch_up_and_gets_a_vote(tmp_path):
    from meshpay.messages import Vote

    async def scenario(c: Cluster):
        alice, bob = c.clients
        lagger = c.authorities[3]
        c.faults[3].mode = "refuse"
        await alice.pay(bob.me, 10)
        c.faults[3].mode = None
        assert lagger.store.account(alice.me).next_sequence == 0
        # Sequence 1 is ahead of this authority: it pulls sequence 0 from its peers, then votes.
        reply = await lagger.handle(c.world.order(sender=0, recipient=1, amount=1, sequence=1))
        assert isinstance(reply, Vote)
        assert 'meshpay_lag_waits_total 1' in lagger.metrics.render()

    run(tmp_path, scenario)


@pytest.mark.parametrize("value", [2**63, 2**64 - 1])
def test_out_of_range_integers_on_the_wire_get_malformed_not_internal(tmp_path, value):
    from meshpay import wire
    from meshpay.transport import read_payload

    async def scenario(c: Cluster):
        auth = c.authorities[0]
        server = c.servers[0]
        request = wire.encode_frame(7, AccountInfoRequest(c.clients[0].me, 0, 0, 10))
        offsets = (wire.LENGTH.size + 6 + 32, wire.LENGTH.size + 6 + 40)  # sent_from, received_after
        for offset in offsets:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(request[:offset] + value.to_bytes(8, "big") + request[offset + 8:])
            _, reply = wire.decode_payload(await read_payload(reader))
            writer.close()
            assert isinstance(reply, ErrorReply) and reply.code == ErrorCode.MALFORMED, reply
        assert "INTERNAL" not in auth.metrics.render()

    run(tmp_path, scenario)


def test_order_to_a_non_point_recipient_is_refused_on_the_wire_with_invalid_key(tmp_path):
    from meshpay.transport import Peer

    async def scenario(c: Cluster):
        server = c.servers[0]
        order = sign_order(c.world.clients[0], b"\xff" * 32, 1, 0)
        peer = Peer("127.0.0.1", server.port)
        try:
            reply = await peer.request(order, 5)
        finally:
            await peer.close()
        assert isinstance(reply, ErrorReply) and reply.code == ErrorCode.INVALID_KEY, reply
        assert c.authorities[0].store.account(c.world.clients[0].public_key).pending is None

    run(tmp_path, scenario)


def test_an_order_no_authority_could_be_reached_for_yet_is_sent_again_not_rejected(tmp_path, short_deadlines):
    # Right after a mesh lab serves, the first paths across it may take longer than one round:
    # unreachable is not refused, so the client keeps the order and tries again within its deadline.
    async def scenario(c: Cluster):
        alice, bob = c.clients
        away = c.servers[:4]
        for server in away:
            await server.close()

        async def back_soon():
            await asyncio.sleep(0.7)
            for server in away:
                await server.start()

        returning = asyncio.create_task(back_soon())
        record = await alice.pay(bob.me, 10)
        await returning
        assert record["outcome"] == "confirmed" and record["attempts"] >= 2, record
        assert alice.own_account().balance == 90

    run(tmp_path, scenario, 3.0)


def test_an_order_no_authority_ever_got_is_dropped_after_the_deadline(tmp_path, short_deadlines):
    async def scenario(c: Cluster):
        alice, bob = c.clients
        for server in c.servers[:4]:
            await server.close()
        record = await alice.pay(bob.me, 10)
        assert record["outcome"] == "rejected" and record["attempts"] >= 2, record
        assert {entry["reason"] for entry in record["authorities"].values() if "reason" in entry} == {"connection refused"}
        assert alice.pending_order() is None  # no authority can hold a lock on it: the client is free

    run(tmp_path, scenario, SHORT)


def test_an_order_an_authority_voted_for_in_an_earlier_round_is_never_dropped(tmp_path, short_deadlines):
    # Round 1: auth1 and auth2 vote, the others are unreachable. Round 2: auth1 and auth2 are
    # unreachable and the others refuse. The order may not be dropped: auth1 and auth2 hold
    # their locks on it, and a different order at this sequence could never gather a quorum.
    async def scenario(c: Cluster):
        alice, bob = c.clients
        order = sign_order(alice.config.keypair, bob.me, 10, 0)
        alice.store.commit({}, meta={PENDING_KEY: alice.store.encode_order(order)})
        keys = [a.config.public_key for a in c.authorities]
        rounds = iter([
            ({"outcome": "pending", "authorities": {}}, {keys[0], keys[1]}),
            ({"outcome": "rejected", "authorities": {}}, set()),
        ])

        async def scripted(_order):
            record, got_it = next(rounds)
            return {"id": order.transfer_id, **record}, got_it

        alice._drive = scripted
        record = await alice._settle(order, asyncio.get_running_loop().time() + 1.2)
        assert record["outcome"] == "pending", record
        assert alice.pending_order() == order

    run(tmp_path, scenario, SHORT)

"""Group commit: an authority's changes share one SQLite commit per turn of the event loop, and
no reply leaves the wire server before the commit of what it reports."""

from __future__ import annotations

import asyncio

from meshpay.authority import Account
from meshpay.messages import AccountInfoRequest, ConfirmationAck
from meshpay.store import Store
from meshpay.transport import Peer, WireServer

from meshpay_helpers import World


def test_no_reply_leaves_before_a_commit_that_follows_its_handler():
    events: list[tuple[str, int]] = []
    handled = 0

    async def handler(msg):
        nonlocal handled
        handled += 1
        events.append(("handled", handled))
        return ConfirmationAck(msg.account, handled, True)

    def durable() -> None:
        events.append(("durable", handled))

    async def main() -> None:
        server = WireServer(handler, "127.0.0.1", 0, durable=durable)
        await server.start()
        peer = Peer("127.0.0.1", server.port)
        try:
            replies = await asyncio.gather(*(peer.request(AccountInfoRequest(bytes([i]) * 32), 5) for i in range(40)))
        finally:
            await peer.close()
            await server.close()
        assert len(replies) == 40
        # Every reply n arrived after a durable() call made once request n had been handled.
        commits = [count for kind, count in events if kind == "durable"]
        for reply in replies:
            assert any(count >= reply.sequence for count in commits)
        assert len(commits) < 40  # pipelined requests shared commits

    asyncio.run(main())


def test_a_refused_change_in_a_group_leaves_the_others_and_flush_makes_them_durable(tmp_path):
    w = World()
    cert = w.certificate(w.order(sender=0, recipient=1))
    alice, bob = w.clients[0].public_key, w.clients[1].public_key

    async def main() -> None:
        store = Store(tmp_path / "a.db", group_commit=True)
        assert store.commit({alice: Account(90, 1)}, cert)
        assert not store.commit({alice: Account(0, 9)}, cert)  # the same certificate again: refused, rolled back alone
        assert store.commit({bob: Account(7)})
        assert store.account(alice) == Account(90, 1) and store.account(bob) == Account(7)
        store.flush()
        store.close()

    asyncio.run(main())
    again = Store(tmp_path / "a.db")
    assert again.account(alice) == Account(90, 1) and again.account(bob) == Account(7)
    assert again.certificate(alice, 0) == cert


def test_without_an_event_loop_a_group_commit_store_commits_at_once(tmp_path):
    w = World()
    store = Store(tmp_path / "b.db", group_commit=True)
    assert store.commit({w.clients[0].public_key: Account(5)})
    assert not store._open  # nothing left waiting for a flush nobody would schedule
    store._db.close()  # not Store.close: that would flush
    assert Store(tmp_path / "b.db").account(w.clients[0].public_key) == Account(5)


def test_a_change_waits_at_most_one_loop_turn(tmp_path):
    w = World()

    async def main() -> None:
        store = Store(tmp_path / "c.db", group_commit=True)
        store.commit({w.clients[0].public_key: Account(5)})
        assert store._open
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert not store._open  # the scheduled flush committed it
        store.close()

    asyncio.run(main())

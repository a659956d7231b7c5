"""FastPay shards with real node processes on loopback: 4 authorities of 2 shards each (8
authority processes) and 3 clients whose accounts lie in both shards."""

from __future__ import annotations

import asyncio
import time

import pytest

from meshpay import shards
from meshpay.localnet import LocalNet
from meshpay.messages import AccountInfoRequest, ConfirmationAck, ErrorCode, ErrorReply, ShardCredit
from meshpay.transport import Peer

pytestmark = pytest.mark.integration


def _net(directory) -> LocalNet:
    # Keys are random: draw until the clients' accounts span both shards.
    for attempt in range(64):
        net = LocalNet(directory / f"try{attempt}", authorities=4, clients=3, balance=1000, shards=2,
                       transfer_deadline_s=5.0)
        if len({shards.shard_of(c.keypair.public_key, 2) for c in net.clients}) == 2:
            return net
    raise AssertionError("64 draws of 3 client keys all fell in one shard")


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    net = _net(tmp_path_factory.mktemp("shards"))
    try:
        net.start_all(timeout=180)
        yield net
    finally:
        net.stop_all()


def _shard(net: LocalNet, client: str) -> int:
    return shards.shard_of(net.nodes[client].keypair.public_key, 2)


def _views(net: LocalNet, authority: str) -> dict[str, dict]:
    """Every account the authority holds, read from each of its shards' API: id -> account."""
    accounts: dict[str, dict] = {}
    for node in net.shards_of(authority):
        status, body = net.request(node.name, "GET", "/accounts")
        assert status == 200, body
        for account in body:
            assert account["id"] not in accounts, f"{account['id']} held by two shards of {authority}"
            assert shards.shard_of(bytes.fromhex(account["id"]), 2) == node.shard
            accounts[account["id"]] = account
    return accounts


def _transfer(net: LocalNet, sender: str, to: str, amount: int) -> dict:
    status, body = net.request(sender, "POST", "/transfers", {"to": to, "amount": amount})
    assert status == 200 and body["outcome"] == "confirmed", body
    return body


def _wait_supply(net: LocalNet, authority: str, timeout: float = 15.0) -> dict[str, dict]:
    supply = sum(net.genesis.values())
    deadline = time.monotonic() + timeout
    while True:
        view = _views(net, authority)
        if sum(a["balance"] for a in view.values()) == supply or time.monotonic() > deadline:
            return view
        time.sleep(0.2)


def test_transfers_across_shards_confirm_and_every_authority_adds_up(sharded):
    net = sharded
    names = [c.name for c in net.clients]
    cross = [(a, b) for a in names for b in names if a != b and _shard(net, a) != _shard(net, b)]
    assert cross
    before = {n: net.request(n, "GET", f"/accounts/{n}")[1]["balance"] for n in names}
    expected = dict(before)
    # Every cross-shard pair both ways, then the recipient spends what it got from another shard.
    for sender, recipient in cross:
        _transfer(net, sender, recipient, 7)
        expected[sender] -= 7
        expected[recipient] += 7
    sender, recipient = cross[0]
    _transfer(net, recipient, sender, expected[recipient])  # its whole balance, credits included
    expected[sender] += expected[recipient]
    expected[recipient] = 0
    for n in names:
        # A recipient hears of a payment from the sender's node, which waits at most 1 s for it
        # before answering: under load the credit can reach the recipient's own view later.
        deadline = time.monotonic() + 10
        while net.request(n, "GET", f"/accounts/{n}")[1]["balance"] != expected[n] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert net.request(n, "GET", f"/accounts/{n}")[1]["balance"] == expected[n]
    for authority in net.authorities:
        view = _wait_supply(net, authority.name)
        assert sum(a["balance"] for a in view.values()) == sum(net.genesis.values())
        for n in names:
            key = net.nodes[n].keypair.public_key.hex()
            assert view[key]["balance"] == expected[n], (authority.name, n)


def test_requests_reach_only_their_shard(sharded):
    net = sharded
    client = net.clients[0]
    key = client.keypair.public_key
    auth = net.authorities[0]

    async def ask() -> tuple[object, object, object]:
        right = Peer(auth.host, auth.wire_port + shards.shard_of(key, 2))
        wrong = Peer(auth.host, auth.wire_port + 1 - shards.shard_of(key, 2))
        try:
            payer = next(c for c in net.clients if net.request(c.name, "GET", f"/accounts/{c.name}")[1]["balance"] > 0)
            other = payer.keypair.public_key
            _transfer(net, payer.name, next(c.name for c in net.clients if c is not payer), 1)
            sent = await Peer(auth.host, auth.wire_port + shards.shard_of(other, 2)).request(AccountInfoRequest(other, 0, 0, 8), 5)
            forged = ShardCredit(sent.sent[-1], b"\0" * 32)
            return (await right.request(AccountInfoRequest(key), 5), await wrong.request(AccountInfoRequest(key), 5),
                    await wrong.request(forged, 5))
        finally:
            await right.close()
            await wrong.close()

    before = _views(net, auth.name)
    right, wrong, forged = asyncio.run(ask())
    assert right.account == key
    assert isinstance(wrong, ErrorReply) and wrong.code == ErrorCode.WRONG_SHARD, wrong
    # A credit without the siblings' MAC is refused and changes nothing.
    assert isinstance(forged, ErrorReply) and forged.code == ErrorCode.REFUSED, forged
    after = _views(net, auth.name)
    assert sum(a["balance"] for a in after.values()) == sum(a["balance"] for a in before.values())


def test_a_credit_owed_to_a_stopped_shard_is_delivered_when_it_is_back(sharded):
    net = sharded
    names = [c.name for c in net.clients]
    sender, recipient = next((a, b) for a in names for b in names if a != b and _shard(net, a) != _shard(net, b))
    victim = next(n for n in net.shards_of("auth1") if n.shard == _shard(net, recipient))
    net.kill(victim.name)
    try:
        _transfer(net, sender, recipient, 3)  # three other authorities make the quorum
    finally:
        net.start(victim.name)
        net.wait_ready([victim.name], timeout=60)
    # auth1's sender shard debited and owes the credit (its outbox); it resends it every second.
    view = _wait_supply(net, "auth1")
    assert sum(a["balance"] for a in view.values()) == sum(net.genesis.values())
    assert view[net.nodes[recipient].keypair.public_key.hex()]["balance"] == \
        net.request(recipient, "GET", f"/accounts/{recipient}")[1]["balance"]


def test_a_restarted_shard_pulls_what_it_missed_from_every_shard_of_its_peers(sharded):
    net = sharded
    names = [c.name for c in net.clients]
    sender = next(n for n in names if net.request(n, "GET", f"/accounts/{n}")[1]["balance"] >= 4)
    recipient = next(n for n in names if n != sender)
    key = net.nodes[sender].keypair.public_key.hex()
    victim = next(n for n in net.shards_of("auth2") if n.shard == _shard(net, sender))
    net.kill(victim.name)
    try:
        for _ in range(2):  # the sender's debits happen while auth2's shard for it is down
            _transfer(net, sender, recipient, 2)
    finally:
        net.start(victim.name)
        net.wait_ready([victim.name], timeout=60)
    want = _views(net, "auth1")[key]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        mine = net.request(victim.name, "GET", f"/accounts/{key}")[1]
        if (mine["next_sequence"], mine["balance"]) == (want["next_sequence"], want["balance"]):
            break
        time.sleep(0.2)
    assert (mine["next_sequence"], mine["balance"]) == (want["next_sequence"], want["balance"])
    view = _wait_supply(net, "auth2")
    assert sum(a["balance"] for a in view.values()) == sum(net.genesis.values())

"""Real node processes on loopback: 4 authorities (f=1) and 3 clients."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from meshpay.localnet import LocalNet
from meshpay.messages import (
    AccountInfoRequest,
    ConfirmationOrder,
    ErrorCode,
    ErrorReply,
    Vote,
    sign_order,
)
from meshpay.client import VoteCollector
from meshpay.config import load_config
from meshpay.transport import Peer, TransportError

pytestmark = pytest.mark.integration


def transfer(net: LocalNet, sender: str, to: str, amount: int) -> dict:
    status, body = net.request(sender, "POST", "/transfers", {"to": to, "amount": amount})
    assert status == 200, body
    assert body["outcome"] == "confirmed"
    return body


def balance(net: LocalNet, name: str) -> int:
    status, body = net.request(name, "GET", f"/accounts/{name}")
    assert status == 200, body
    return body["balance"]


def authority_view(net: LocalNet, auth: str) -> dict[str, int]:
    status, body = net.request(auth, "GET", "/accounts")
    assert status == 200
    return {a["id"]: a["balance"] for a in body}


def total_supply(net: LocalNet) -> int:
    return sum(net.genesis.values())


async def ask_all(net: LocalNet, msg, names=None, timeout=5.0) -> dict[str, object]:
    names = names or [a.name for a in net.authorities]
    peers = {n: Peer(net.nodes[n].host, net.nodes[n].wire_port) for n in names}

    async def one(peer):
        try:
            return await peer.request(msg, timeout)
        except TransportError as exc:
            return exc

    try:
        replies = await asyncio.gather(*(one(p) for p in peers.values()))
    finally:
        await asyncio.gather(*(p.close() for p in peers.values()))
    return dict(zip(peers, replies))


def committee(net: LocalNet):
    return load_config(net.nodes["auth1"].config_path).committee


def test_transfer_chain(net):
    before = {c.name: balance(net, c.name) for c in net.clients}
    transfer(net, "client1", "client2", 100)
    transfer(net, "client2", "client3", 150)
    record = transfer(net, "client3", "client1", 25)
    assert len(record["certificate"]["signatures"]) >= 3
    assert record["latency_ms"]["total"] > 0
    after = {c.name: balance(net, c.name) for c in net.clients}
    assert after["client1"] == before["client1"] - 100 + 25
    assert after["client2"] == before["client2"] + 100 - 150
    assert after["client3"] == before["client3"] + 150 - 25
    # The record is kept on the client and the certificate on the authorities.
    status, kept = net.request("client3", "GET", f"/transfers/{record['id']}")
    assert status == 200 and kept["outcome"] == "confirmed"
    status, cert = net.request("auth2", "GET", f"/transfers/{record['id']}")
    assert status == 200 and cert["certificate"]["amount"] == 25
    status, q = net.request("client2", "GET", "/accounts/client2?quorum=true")
    assert status == 200 and q["balance"] == after["client2"]
    for auth in net.authorities:
        assert sum(authority_view(net, auth.name).values()) == total_supply(net)


def test_concurrent_transfers_from_several_clients(net):
    names = [c.name for c in net.clients]
    before = {n: balance(net, n) for n in names}
    jobs = [(names[i], names[(i + 1) % 3], 1 + i) for i in range(3) for _ in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda j: net.request(j[0], "POST", "/transfers", {"to": j[1], "amount": j[2]}), jobs))
    assert all(status == 200 and body["outcome"] == "confirmed" for status, body in results), results
    delta = {n: 0 for n in names}
    for sender, recipient, amount in jobs:
        delta[sender] -= amount
        delta[recipient] += amount
    assert {n: balance(net, n) for n in names} == {n: before[n] + delta[n] for n in names}
    # A transfer returns at a quorum of acknowledgements; the last authority may still be applying.
    deadline = time.monotonic() + 10
    while True:
        views = [authority_view(net, a.name) for a in net.authorities]
        if all(v == views[0] for v in views) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert all(v == views[0] for v in views)
    assert sum(views[0].values()) == total_supply(net)


def test_double_spend_yields_at_most_one_certificate(net):
    mallory = net.extra["mallory"]
    info = asyncio.run(ask_all(net, AccountInfoRequest(mallory.public_key), ["auth1"]))["auth1"]
    seq = info.next_sequence
    to_a = net.nodes["client1"].keypair.public_key
    to_b = net.nodes["client2"].keypair.public_key
    a = sign_order(mallory, to_a, 60, seq)
    b = sign_order(mallory, to_b, 60, seq)

    async def race():
        return await asyncio.gather(ask_all(net, a), ask_all(net, b))

    votes_a, votes_b = asyncio.run(race())
    com = committee(net)
    certs = []
    for order, votes in ((a, votes_a), (b, votes_b)):
        collector = VoteCollector(com, order)
        for name, reply in votes.items():
            if isinstance(reply, Vote):
                collector.add_vote(net.nodes[name].keypair.public_key, reply)
            else:
                assert isinstance(reply, ErrorReply) and reply.code == ErrorCode.CONFLICTING_ORDER, reply
        if collector.has_quorum:
            certs.append(collector.certificate())
    assert len(certs) <= 1
    # Each authority locked on exactly one of the two.
    for name in votes_a:
        assert isinstance(votes_a[name], Vote) != isinstance(votes_b[name], Vote)
    if certs:
        asyncio.run(ask_all(net, ConfirmationOrder(certs[0])))
    for auth in net.authorities:
        view = authority_view(net, auth.name)
        assert sum(view.values()) == total_supply(net)
        assert view[mallory.public_key.hex()] in (100, 40)


def test_missed_confirmation_is_caught_up_by_sync(net):
    before = balance(net, "client3")
    net.kill("client3")
    transfer(net, "client1", "client3", 7)  # the recipient is down: it misses the notification
    # The sender keeps retrying the notification in the background for a while (and its
    # connection attempts would reach client3 once restarted): stop it, so the miss is real.
    net.kill("client1")
    net.start("client1")
    net.start("client3")
    net.wait_ready(["client1", "client3"])
    assert balance(net, "client3") == before
    status, body = net.request("client3", "POST", "/sync")
    assert status == 200, body
    assert body["new_certificates"] >= 1
    assert balance(net, "client3") == before + 7


def test_transfers_complete_with_one_authority_killed(net):
    net.kill("auth4")
    try:
        before = balance(net, "client2")
        for _ in range(3):
            record = transfer(net, "client1", "client2", 5)
            # Refused connection, or still unanswered when the other three made the quorum.
            assert record["authorities"]["auth4"]["vote"] != "ok"
        assert balance(net, "client2") == before + 15
    finally:
        net.start("auth4")
        net.wait_ready(["auth4"])
    # auth4 missed three certificates; the next transfer brings it up to date on the way
    # (in the background: the transfer itself needs only the other three).
    transfer(net, "client1", "client2", 1)
    client1 = net.nodes["client1"].keypair.public_key.hex()
    deadline = time.monotonic() + 10
    while authority_view(net, "auth4")[client1] != authority_view(net, "auth1")[client1]:
        assert time.monotonic() < deadline, "auth4 was not brought up to date"
        time.sleep(0.1)


def test_authority_restarted_after_sigkill_keeps_confirmed_state_and_locks(net):
    before = authority_view(net, "auth1")
    mallory = net.extra["mallory"]
    info = asyncio.run(ask_all(net, AccountInfoRequest(mallory.public_key), ["auth1"]))["auth1"]
    order = sign_order(mallory, net.nodes["client3"].keypair.public_key, 1, info.next_sequence)
    other = sign_order(mallory, net.nodes["client2"].keypair.public_key, 1, info.next_sequence)
    vote = asyncio.run(ask_all(net, order, ["auth1"]))["auth1"]
    assert isinstance(vote, Vote)
    net.kill("auth1")
    net.start("auth1")
    net.wait_ready(["auth1"])
    assert authority_view(net, "auth1") == before
    replies = asyncio.run(ask_all(net, other, ["auth1"]))
    assert isinstance(replies["auth1"], ErrorReply) and replies["auth1"].code == ErrorCode.CONFLICTING_ORDER
    assert asyncio.run(ask_all(net, order, ["auth1"]))["auth1"] == vote


def test_client_killed_with_a_pending_order_finishes_it_after_restart(net):
    # With two of four authorities down no quorum exists: the order stays pending (locked at two).
    for c in ("client1", "client3"):  # collect any payment made behind their backs earlier
        assert net.request(c, "POST", "/sync")[0] == 200
    before = {c: balance(net, c) for c in ("client1", "client3")}
    net.kill("auth3")
    net.kill("auth4")
    try:
        status, body = net.request("client1", "POST", "/transfers", {"to": "client3", "amount": 9})
        assert status == 502 and body["outcome"] == "pending", body
        assert net.request("client1", "GET", "/accounts/client1")[1]["pending"]["amount"] == 9
        net.kill("client1")
        net.start("client1")
        net.wait_ready(["client1"])
        account = net.request("client1", "GET", "/accounts/client1")[1]
        assert account["pending"]["amount"] == 9 and account["balance"] == before["client1"]
    finally:
        net.start("auth3")
        net.start("auth4")
        net.wait_ready(["auth3", "auth4"])
    status, body = net.request("client1", "POST", "/sync")
    assert status == 200 and body["pending_completed"]["outcome"] == "confirmed", body
    assert balance(net, "client1") == before["client1"] - 9
    assert balance(net, "client3") == before["client3"] + 9
    assert net.request("client1", "GET", "/accounts/client1")[1]["pending"] is None


@pytest.mark.parametrize("mode", ["refuse", "garbage", "delay", "conflict"])
def test_one_byzantine_authority(net, mode):
    net.stop("auth2")
    net.start("auth2", env={"MESHPAY_BYZANTINE": mode, "MESHPAY_BYZANTINE_DELAY": "2"})
    net.wait_ready(["auth2"])
    try:
        status, info = net.request("auth2", "GET", "/info")
        assert info["byzantine"] == mode
        before = {c: balance(net, c) for c in ("client1", "client2")}
        transfer(net, "client1", "client2", 3)
        transfer(net, "client2", "client1", 2)
        assert balance(net, "client1") == before["client1"] - 1
        assert balance(net, "client2") == before["client2"] + 1
        if mode == "conflict":
            # The Byzantine authority signs both conflicting orders; honest locks still allow one certificate at most.
            mallory = net.extra["mallory"]
            seq = asyncio.run(ask_all(net, AccountInfoRequest(mallory.public_key), ["auth1"]))["auth1"].next_sequence
            a = sign_order(mallory, net.nodes["client1"].keypair.public_key, 1, seq)
            b = sign_order(mallory, net.nodes["client2"].keypair.public_key, 1, seq)
            com = committee(net)
            results = asyncio.run(ask_all(net, a)), asyncio.run(ask_all(net, b))
            quorums = 0
            for order, votes in zip((a, b), results):
                c = VoteCollector(com, order)
                for name, reply in votes.items():
                    if isinstance(reply, Vote):
                        c.add_vote(net.nodes[name].keypair.public_key, reply)
                quorums += c.has_quorum
            assert isinstance(results[1]["auth2"], Vote)
            assert quorums <= 1
        for auth in ("auth1", "auth3", "auth4"):
            assert sum(authority_view(net, auth).values()) == total_supply(net)
    finally:
        net.stop("auth2")
        net.start("auth2")
        net.wait_ready(["auth2"])


def _raw(net: LocalNet, method: str, path: str, data: bytes | None, headers: dict[str, str]) -> tuple[int, dict]:
    req = urllib.request.Request(net.nodes["client1"].url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_api_rejects_bad_input_and_changes_nothing(net):
    auth = {"Authorization": "Bearer integration-secret", "Content-Type": "application/json"}
    before = net.request("client1", "GET", "/accounts/client1")[1]
    cases = [
        (b"{not json", 422),
        (json.dumps({"to": "client2", "amount": 0}).encode(), 422),
        (json.dumps({"to": "client2", "amount": -5}).encode(), 422),
        (json.dumps({"to": "client2", "amount": "5"}).encode(), 422),
        (json.dumps({"to": "client2", "amount": 1.5}).encode(), 422),
        (json.dumps({"to": 7, "amount": 5}).encode(), 422),
        (json.dumps({"to": "nobody", "amount": 5}).encode(), 404),
        (json.dumps({"to": "client1", "amount": 5}).encode(), 400),
        (json.dumps({"to": "client2", "amount": 10**9}).encode(), 409),
        (json.dumps({"to": "client2", "amount": 5, "x": "y" * 20000}).encode(), 413),
    ]
    for body, expected in cases:
        status, reply = _raw(net, "POST", "/transfers", body, auth)
        assert status == expected, (body[:60], status, reply)
        assert reply["detail"]
    status, _ = _raw(net, "POST", "/transfers", json.dumps({"to": "client2", "amount": 1}).encode(), {"Content-Type": "application/json"})
    assert status == 401
    status, _ = _raw(net, "POST", "/sync", b"", {"Authorization": "Bearer wrong"})
    assert status == 401
    assert net.request("client1", "GET", "/accounts/client1")[1] == before
    assert net.request("client1", "GET", "/accounts/nobody")[0] == 404
    assert net.request("auth1", "POST", "/transfers", {"to": "client2", "amount": 1})[0] == 409


def test_read_endpoints(net):
    status, info = net.request("auth3", "GET", "/info")
    assert status == 200 and info["role"] == "authority" and len(info["committee"]) == 4
    assert info["quorum_threshold"] == 3
    status, text = net.request("auth3", "GET", "/metrics")
    assert status == 200 and "meshpay_confirmations_applied_total" in text
    status, spec = net.request("client1", "GET", "/openapi.json")
    assert status == 200 and "/transfers" in spec["paths"]


def test_sigterm_closes_the_node_cleanly_and_it_restarts_with_its_state(net):
    before = authority_view(net, "auth2")
    wal = net.nodes["auth2"].directory / "state.db-wal"
    assert wal.exists()  # open in WAL mode while it serves
    net.stop("auth2")  # SIGTERM: uvicorn re-raises it, so the node must close the store before that
    assert net.nodes["auth2"].process.returncode == -signal.SIGTERM
    # SQLite checkpoints and removes the WAL only when the last connection closes cleanly
    assert not wal.exists(), "the database was not closed on SIGTERM"
    net.start("auth2")
    net.wait_ready(["auth2"])
    assert authority_view(net, "auth2") == before

"""FastPay shards: the account partition, routing, and the cross-shard credit, without sockets."""

from __future__ import annotations

import pytest

from meshpay import shards, wire
from meshpay.authority import Account, Authority
from meshpay.config import ConfigError, parse_config
from meshpay.crypto import KeyPair
from meshpay.messages import (
    AccountInfoRequest,
    CertificateLogRequest,
    ConfirmationOrder,
    ErrorCode,
    ProtocolError,
    ShardCredit,
)
from meshpay.store import Store

from meshpay_helpers import World, keypair
from test_config import node_json


def test_every_account_is_in_exactly_one_shard_and_they_share_the_load():
    keys = [KeyPair.generate().public_key for _ in range(4000)]
    for n in (1, 2, 3, 8):
        counts = [0] * n
        for key in keys:
            k = shards.shard_of(key, n)
            assert 0 <= k < n and shards.shard_of(key, n) == k  # one shard, the same every time
            counts[k] += 1
        # Uniform keys: each shard within 20 % of its share of 4000 (far outside chance).
        assert all(abs(c - 4000 / n) < 0.2 * 4000 / n for c in counts), counts
    assert {shards.shard_of(key, 1) for key in keys} == {0}


def _split_world() -> tuple[World, int, int]:
    """A world and two clients whose accounts lie in different shards of two."""
    w = World(n_clients=8)
    by_shard: dict[int, int] = {}
    for i, c in enumerate(w.clients):
        by_shard.setdefault(shards.shard_of(c.public_key, 2), i)
    assert len(by_shard) == 2, "8 fixed client keys all fell in one shard"
    return w, by_shard[0], by_shard[1]


def test_requests_are_routed_by_the_account_they_name():
    w, a, b = _split_world()
    order = w.order(sender=a, recipient=b)
    cert = w.certificate(order)
    assert shards.routing_key(order) == w.clients[a].public_key
    assert shards.routing_key(ConfirmationOrder(cert)) == w.clients[a].public_key  # the sender's shard applies it
    assert shards.routing_key(AccountInfoRequest(w.clients[b].public_key)) == w.clients[b].public_key
    assert shards.routing_key(CertificateLogRequest(0, 10)) is None


def test_a_shard_refuses_what_belongs_to_another_with_wrong_shard():
    w, a, b = _split_world()
    key = w.auth_keys[0]
    shard_of_a = shards.shard_of(w.clients[a].public_key, 2)
    other = Authority(key, w.committee, 1 - shard_of_a, 2)
    order = w.order(sender=a, recipient=b)
    for attempt in (lambda: other.handle_order(Account(100), order),
                    lambda: other.handle_confirmation(Account(100), None, w.certificate(order)),
                    lambda: other.account_info(w.clients[a].public_key, Account(100))):
        with pytest.raises(ProtocolError) as info:
            attempt()
        assert info.value.code == ErrorCode.WRONG_SHARD
    with pytest.raises(ValueError):
        Authority(key, w.committee, 2, 2)


def test_cross_shard_confirmation_debits_here_and_the_sibling_credits_once():
    w, a, b = _split_world()
    key = w.auth_keys[0]
    sender_shard = Authority(key, w.committee, shards.shard_of(w.clients[a].public_key, 2), 2)
    recipient_shard = Authority(key, w.committee, shards.shard_of(w.clients[b].public_key, 2), 2)
    order = w.order(sender=a, recipient=b, amount=30)
    cert = w.certificate(order)
    sender, _ = sender_shard.handle_order(Account(100), order)
    done = sender_shard.handle_confirmation(sender, None, cert)
    assert done.applied and done.recipient is None  # the credit is the sibling's
    assert (done.sender.balance, done.sender.next_sequence) == (70, 1)
    credited = recipient_shard.apply_credit(Account(5), cert)
    assert credited.balance == 35
    assert done.sender.balance + credited.balance == 100 + 5  # nothing made or lost across shards
    # A replayed confirmation at the sender's shard changes nothing and owes no new credit.
    again = sender_shard.handle_confirmation(done.sender, None, cert)
    assert not again.applied and again.sender == done.sender
    # The sender's shard never credits an account it does not hold.
    with pytest.raises(ProtocolError) as info:
        sender_shard.apply_credit(Account(0), cert)
    assert info.value.code == ErrorCode.WRONG_SHARD


def test_same_shard_confirmation_needs_no_forwarding():
    w = World(n_clients=8)
    by_shard: dict[int, list[int]] = {}
    for i, c in enumerate(w.clients):
        by_shard.setdefault(shards.shard_of(c.public_key, 2), []).append(i)
    a, b = next(ids for ids in by_shard.values() if len(ids) >= 2)[:2]
    auth = Authority(w.auth_keys[0], w.committee, shards.shard_of(w.clients[a].public_key, 2), 2)
    cert = w.certificate(w.order(sender=a, recipient=b, amount=10))
    done = auth.handle_confirmation(Account(100), Account(0), cert)
    assert done.recipient == Account(10)


def test_a_credit_needs_the_siblings_mac():
    w, a, b = _split_world()
    cert = w.certificate(w.order(sender=a, recipient=b))
    key = shards.link_key(w.auth_keys[0])
    tag = shards.credit_tag(key, cert)
    assert shards.tag_is_valid(key, cert, tag)
    assert not shards.tag_is_valid(shards.link_key(w.auth_keys[1]), cert, tag)  # another authority
    forged = w.certificate(w.order(sender=a, recipient=b, amount=11))
    assert not shards.tag_is_valid(key, forged, tag)  # another certificate
    assert shards.link_key(keypair(100)) == shards.link_key(KeyPair(bytes([100]) * 32))  # same seed, same key


def test_shard_messages_cross_the_wire_and_bad_shard_fields_are_malformed():
    w, a, b = _split_world()
    cert = w.certificate(w.order(sender=a, recipient=b))
    credit = ShardCredit(cert, b"\x07" * 32)
    assert wire.decode_frame(wire.encode_frame(3, credit)) == (3, credit)
    request = CertificateLogRequest(5, 10, 1, 2)
    assert wire.decode_frame(wire.encode_frame(4, request)) == (4, request)
    for bad in (CertificateLogRequest(5, 10, 2, 2), CertificateLogRequest(5, 10, 0, 0), CertificateLogRequest(5, 10, 0, 65)):
        with pytest.raises(wire.WireError):
            wire.decode_frame(wire.encode_frame(1, bad))


def test_the_outbox_keeps_a_credit_owed_until_it_is_acknowledged(tmp_path):
    w, a, b = _split_world()
    cert = w.certificate(w.order(sender=a, recipient=b))
    store = Store(tmp_path / "s.db")
    assert store.commit({w.clients[a].public_key: Account(90, 1)}, cert, forward_to=1)
    assert store.outbox(10) == [(1, cert)]
    assert not store.commit({w.clients[a].public_key: Account(80, 2)}, cert, forward_to=1)  # replay: nothing owed twice
    store.close()
    store = Store(tmp_path / "s.db")  # survives a restart
    assert store.outbox(10) == [(1, cert)]
    store.forwarded(cert)
    assert store.outbox(10) == []


def _member(**fields):
    return [{"name": "auth1", "public_key": keypair(100).public_key.hex(), "weight": 1, "host": "10.77.0.1", "port": 7100, **fields}]


def test_node_json_chooses_shards_per_authority_and_this_process_shard():
    config = parse_config(node_json(committee=_member(shards=2), shard=1))
    assert (config.shard, config.shards, config.shard_wire_port) == (1, 2, 7101)
    default = parse_config(node_json())
    assert (default.shard, default.shards, default.shard_wire_port) == (0, 1, 7100)


@pytest.mark.parametrize("committee_fields, top, fragment", [
    ({"shards": 0}, {}, "field 'shards' must be an integer in 1..64"),
    ({"shards": 65}, {}, "field 'shards' must be an integer in 1..64"),
    ({"shards": "2"}, {}, "field 'shards'"),
    ({"shards": True}, {}, "field 'shards'"),
    ({"shards": 2}, {"shard": 2}, "field 'shard' must be an integer in 0..1"),
    ({}, {"shard": 1}, "field 'shard' must be an integer in 0..0"),
    ({"shards": 2, "port": 65535}, {}, "field 'shards': shard ports 65535..65536"),
])
def test_bad_shard_fields_name_the_field(committee_fields, top, fragment):
    with pytest.raises(ConfigError) as info:
        parse_config(node_json(committee=_member(**committee_fields), **top), "node.json")
    assert fragment in str(info.value) and "node.json" in str(info.value)

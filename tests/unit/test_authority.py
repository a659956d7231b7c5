import dataclasses

import pytest

from meshpay.authority import Account, Authority
from meshpay.messages import BALANCE_LIMIT, MAX_AMOUNT
from meshpay.messages import Certificate, ErrorCode, ProtocolError, sign_order

from meshpay_helpers import World, funded, keypair


def refused(fn, *args) -> ErrorCode:
    with pytest.raises(ProtocolError) as info:
        fn(*args)
    return info.value.code


def test_valid_order_gets_a_signed_vote_and_locks():
    w = World()
    auth = w.authorities[0]
    order = w.order(amount=10)
    account, vote = auth.handle_order(funded(100), order)
    assert vote.has_valid_signature() and vote.authority == auth.name and vote.order == order
    assert account.pending == vote
    assert account.balance == 100 and account.next_sequence == 0


def test_same_order_again_returns_the_same_vote():
    w = World()
    auth = w.authorities[0]
    order = w.order()
    account, vote = auth.handle_order(funded(), order)
    again, vote2 = auth.handle_order(account, order)
    assert vote2 == vote and again == account


def test_conflicting_order_for_locked_sequence_is_refused():
    w = World()
    auth = w.authorities[0]
    account, _ = auth.handle_order(funded(), w.order(recipient=1, amount=10))
    assert refused(auth.handle_order, account, w.order(recipient=2, amount=10)) == ErrorCode.CONFLICTING_ORDER
    assert refused(auth.handle_order, account, w.order(recipient=1, amount=11)) == ErrorCode.CONFLICTING_ORDER


def test_bad_signature_is_refused():
    w = World()
    order = w.order()
    forged = dataclasses.replace(order, amount=11)
    assert refused(w.authorities[0].handle_order, funded(), forged) == ErrorCode.BAD_SIGNATURE
    signed_by_other = sign_order(keypair(77), w.clients[1].public_key, 10, 0)
    assert refused(w.authorities[0].handle_order, funded(), dataclasses.replace(signed_by_other, sender=w.clients[0].public_key)) == ErrorCode.BAD_SIGNATURE


def test_wrong_sequence_is_refused():
    w = World()
    auth = w.authorities[0]
    assert refused(auth.handle_order, funded(), w.order(sequence=1)) == ErrorCode.UNEXPECTED_SEQUENCE
    assert refused(auth.handle_order, Account(100, 2), w.order(sequence=1)) == ErrorCode.UNEXPECTED_SEQUENCE


def test_overdraft_is_refused():
    w = World()
    assert refused(w.authorities[0].handle_order, funded(9), w.order(amount=10)) == ErrorCode.INSUFFICIENT_BALANCE


def test_unknown_sender_is_refused():
    w = World()
    assert refused(w.authorities[0].handle_order, None, w.order()) == ErrorCode.UNKNOWN_ACCOUNT


def test_zero_self_and_huge_amounts_are_refused():
    w = World()
    auth = w.authorities[0]
    assert refused(auth.handle_order, funded(), w.order(amount=0)) == ErrorCode.INVALID_AMOUNT
    assert refused(auth.handle_order, funded(), w.order(recipient=0)) == ErrorCode.INVALID_AMOUNT
    assert refused(auth.handle_order, funded(), w.order(amount=MAX_AMOUNT + 1)) == ErrorCode.INVALID_AMOUNT


def test_confirmation_moves_money_once():
    w = World()
    auth = w.authorities[0]
    order = w.order(amount=30)
    sender, _ = auth.handle_order(funded(100), order)
    cert = w.certificate(order)
    done = auth.handle_confirmation(sender, funded(5), cert)
    assert done.applied
    assert done.sender == Account(70, 1, None)
    assert done.recipient == Account(35, 0, None)
    again = auth.handle_confirmation(done.sender, done.recipient, cert)
    assert not again.applied
    assert again.sender == done.sender and again.recipient == done.recipient


def test_confirmation_creates_unknown_recipient_and_sender():
    w = World()
    done = w.authorities[0].handle_confirmation(None, None, w.certificate(w.order(amount=5)))
    assert done.sender == Account(-5, 1, None)
    assert done.recipient == Account(5, 0, None)


def test_confirmation_supersedes_a_different_lock():
    # The lock only stops this authority voting twice; a quorum certificate for another order wins.
    w = World()
    auth = w.authorities[0]
    sender, _ = auth.handle_order(funded(), w.order(recipient=1))
    done = auth.handle_confirmation(sender, funded(0), w.certificate(w.order(recipient=2)))
    assert done.applied and done.sender.pending is None and done.sender.next_sequence == 1


def test_future_certificate_is_refused_until_the_gap_is_synced():
    w = World()
    auth = w.authorities[0]
    cert1 = w.certificate(w.order(sequence=1))
    assert refused(auth.handle_confirmation, funded(), funded(0), cert1) == ErrorCode.SEQUENCE_GAP
    done0 = auth.handle_confirmation(funded(), funded(0), w.certificate(w.order(sequence=0)))
    done1 = auth.handle_confirmation(done0.sender, done0.recipient, cert1)
    assert done1.applied and done1.sender.next_sequence == 2


def test_invalid_certificates_are_refused_without_effect():
    w = World()
    auth = w.authorities[0]
    order = w.order()
    cert = w.certificate(order)
    bad = [
        Certificate(order, cert.signatures[:2]),
        Certificate(order, (cert.signatures[0],) * 3),
        dataclasses.replace(cert, order=dataclasses.replace(order, amount=99)),
    ]
    for c in bad:
        assert refused(auth.handle_confirmation, funded(), funded(0), c) in (ErrorCode.INVALID_CERTIFICATE, ErrorCode.BAD_SIGNATURE)


def test_a_lagging_view_past_the_supply_is_applied_not_refused():
    # An authority behind on debits can see a balance above the whole supply (or, behind on
    # credits, below zero): a valid certificate is applied all the same.
    w = World()
    auth = w.authorities[0]
    done = auth.handle_confirmation(funded(-(2**63)), funded(MAX_AMOUNT * 4), w.certificate(w.order(amount=MAX_AMOUNT)))
    assert done.applied and done.recipient.balance == MAX_AMOUNT * 5 and done.sender.balance == -(2**63) - MAX_AMOUNT


def test_balance_past_128_bits_is_refused_with_a_protocol_error():
    w = World()
    auth = w.authorities[0]
    assert refused(auth.handle_confirmation, funded(), funded(BALANCE_LIMIT - 5), w.certificate(w.order(amount=5))) == ErrorCode.INVALID_AMOUNT
    assert refused(auth.handle_confirmation, funded(-BALANCE_LIMIT + 5), funded(0), w.certificate(w.order(amount=5))) == ErrorCode.INVALID_AMOUNT


def test_account_info():
    w = World()
    auth = w.authorities[0]
    acct, vote = auth.handle_order(funded(), w.order())
    info = auth.account_info(w.clients[0].public_key, acct)
    assert info.balance == 100 and info.next_sequence == 0 and info.pending == vote
    assert refused(auth.account_info, w.clients[2].public_key, None) == ErrorCode.UNKNOWN_ACCOUNT


def test_authority_key_must_be_in_committee():
    w = World()
    with pytest.raises(ValueError):
        Authority(keypair(250), w.committee)


def test_at_most_one_certificate_per_sequence_across_honest_authorities():
    # Two conflicting orders raced to all authorities in opposite orders: each honest authority
    # locks on whichever arrives first, so at most one order reaches a quorum.
    w = World()
    a, b = w.order(recipient=1), w.order(recipient=2)
    votes = {a: 0, b: 0}
    for i, auth in enumerate(w.authorities):
        first, second = (a, b) if i % 2 == 0 else (b, a)
        acct, _ = auth.handle_order(funded(), first)
        votes[first] += 1
        assert refused(auth.handle_order, acct, second) == ErrorCode.CONFLICTING_ORDER
    assert sum(v >= w.committee.quorum_threshold for v in votes.values()) <= 1


def test_replayed_certificate_is_recognized_before_any_signature_check(monkeypatch):
    from meshpay import crypto

    w = World()
    auth = w.authorities[0]
    cert = w.certificate(w.order(amount=5))
    done = auth.handle_confirmation(funded(), funded(0), cert)
    assert done.applied
    calls = []
    real_verify = crypto.verify
    monkeypatch.setattr(crypto, "verify", lambda *a: calls.append(a) or real_verify(*a))
    again = auth.handle_confirmation(done.sender, done.recipient, cert)
    assert not again.applied and (again.sender, again.recipient) == (done.sender, done.recipient)
    assert calls == []  # no ed25519 verification ran for the replay
    # A new certificate still pays for every check: the counter does see verifications.
    auth.handle_confirmation(done.sender, done.recipient, w.certificate(w.order(amount=5, sequence=1)))
    assert len(calls) == 1 + auth.committee.quorum_threshold


def test_recipient_that_is_not_a_public_key_is_refused_before_voting():
    w = World()
    auth = w.authorities[0]
    for recipient in (b"\xff" * 32, b"\x02" + b"\x00" * 31, b"\x01" + b"\x00" * 31):
        order = sign_order(w.clients[0], recipient, 1, 0)
        assert refused(auth.handle_order, funded(), order) == ErrorCode.INVALID_KEY
        assert refused(auth.handle_confirmation, funded(), None, w.certificate(order)) == ErrorCode.INVALID_KEY

import dataclasses

import pytest

from meshpay.client import VoteCollector, quorum_view
from meshpay.messages import AccountInfoResponse, ErrorCode, ProtocolError, sign_vote

from meshpay_helpers import World, funded, keypair


def test_collector_reaches_quorum_and_builds_a_valid_certificate():
    w = World()
    order = w.order()
    c = VoteCollector(w.committee, order)
    for auth in w.authorities[:2]:
        _, vote = auth.handle_order(funded(), order)
        c.add_vote(auth.name, vote)
        assert not c.has_quorum
    _, vote = w.authorities[2].handle_order(funded(), order)
    c.add_vote(w.authorities[2].name, vote)
    assert c.has_quorum
    cert = c.certificate()
    w.committee.check_certificate(cert)
    assert len(cert.signatures) == 3


def test_collector_counts_each_authority_once():
    w = World()
    order = w.order()
    c = VoteCollector(w.committee, order)
    _, vote = w.authorities[0].handle_order(funded(), order)
    for _ in range(3):
        c.add_vote(w.authorities[0].name, vote)
    assert c.weight == 1 and not c.has_quorum
    with pytest.raises(ProtocolError):
        c.certificate()


def test_collector_rejects_bad_votes():
    w = World()
    order = w.order()
    c = VoteCollector(w.committee, order)
    good = sign_vote(w.auth_keys[0], order)
    with pytest.raises(ProtocolError):  # answered by auth2 but signed by auth1
        c.add_vote(w.auth_keys[1].public_key, good)
    with pytest.raises(ProtocolError):  # vote for another order
        c.add_vote(w.auth_keys[0].public_key, sign_vote(w.auth_keys[0], w.order(amount=11)))
    with pytest.raises(ProtocolError):  # garbage signature
        c.add_vote(w.auth_keys[0].public_key, dataclasses.replace(good, signature=b"\x01" * 64))
    outsider = keypair(222)
    with pytest.raises(ProtocolError):  # not a committee member
        c.add_vote(outsider.public_key, sign_vote(outsider, order))
    assert c.weight == 0


def test_quorum_impossible_after_f_plus_1_refusals():
    w = World()
    c = VoteCollector(w.committee, w.order())
    c.add_refusal(w.auth_keys[0].public_key, "no")
    assert not c.quorum_impossible
    c.add_refusal(w.auth_keys[1].public_key, "no")
    assert c.quorum_impossible


def _info(w: World, balance: int, seq: int) -> AccountInfoResponse:
    return AccountInfoResponse(w.clients[0].public_key, balance, seq, None, (), (), 0)


def test_quorum_view_needs_f_plus_1_agreement():
    w = World()
    keys = [k.public_key for k in w.auth_keys]
    view = quorum_view(w.committee, {keys[0]: _info(w, 90, 1), keys[1]: _info(w, 90, 1), keys[2]: _info(w, 100, 0), keys[3]: _info(w, 10**9, 7)})
    assert view is not None and (view.balance, view.next_sequence) == (90, 1)
    # A single Byzantine authority cannot invent a balance.
    assert quorum_view(w.committee, {keys[3]: _info(w, 10**9, 7)}) is None


def test_quorum_view_prefers_the_state_with_more_credits_at_equal_sequence():
    # Two authorities missed a credit: a 2-2 split between real states picks the fresher one.
    w = World()
    keys = [k.public_key for k in w.auth_keys]
    view = quorum_view(w.committee, {keys[0]: _info(w, 950, 1), keys[1]: _info(w, 850, 1), keys[2]: _info(w, 950, 1), keys[3]: _info(w, 850, 1)})
    assert view is not None and view.balance == 950


def test_lagging_codes_are_recoverable_ones():
    from meshpay.client import LAGGING_CODES

    assert ErrorCode.CONFLICTING_ORDER not in LAGGING_CODES
    assert ErrorCode.BAD_SIGNATURE not in LAGGING_CODES

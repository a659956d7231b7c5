import dataclasses

import pytest

from meshpay.committee import AuthorityInfo, Committee
from meshpay.messages import Certificate, ErrorCode, ProtocolError, sign_vote

from meshpay_helpers import World, keypair


def test_thresholds_for_3f_plus_1():
    for f in range(0, 4):
        n = 3 * f + 1
        c = Committee([AuthorityInfo(f"a{i}", keypair(50 + i).public_key, 1, "h", 1) for i in range(n)])
        assert c.quorum_threshold == 2 * f + 1
        assert c.validity_threshold == f + 1


def test_weighted_quorum_is_more_than_two_thirds():
    c = Committee([AuthorityInfo("a", keypair(50).public_key, 3, "h", 1), AuthorityInfo("b", keypair(51).public_key, 1, "h", 1)])
    assert c.total_weight == 4 and c.quorum_threshold == 3


def test_committee_rejects_duplicate_keys_and_bad_weights():
    k = keypair(50).public_key
    with pytest.raises(ValueError):
        Committee([AuthorityInfo("a", k, 1, "h", 1), AuthorityInfo("b", k, 1, "h", 1)])
    with pytest.raises(ValueError):
        Committee([AuthorityInfo("a", k, 0, "h", 1)])
    with pytest.raises(ValueError):
        Committee([])


def test_valid_certificate_passes():
    w = World()
    w.committee.check_certificate(w.certificate(w.order()))


def _refused(w: World, cert: Certificate) -> ErrorCode:
    with pytest.raises(ProtocolError) as info:
        w.committee.check_certificate(cert)
    return info.value.code


def test_certificate_with_duplicate_signer_is_refused():
    w = World()
    order = w.order()
    sig = sign_vote(w.auth_keys[0], order).signature
    cert = Certificate(order, ((w.auth_keys[0].public_key, sig),) * 3)
    assert _refused(w, cert) == ErrorCode.INVALID_CERTIFICATE


def test_certificate_from_wrong_committee_is_refused():
    w = World()
    other = World()
    other.auth_keys = [keypair(200 + i) for i in range(4)]
    cert = other.certificate(w.order())
    assert _refused(w, cert) == ErrorCode.INVALID_CERTIFICATE


def test_certificate_with_too_little_weight_is_refused():
    w = World()
    assert _refused(w, w.certificate(w.order(), signers=[0, 1])) == ErrorCode.INVALID_CERTIFICATE


def test_certificate_with_tampered_amount_is_refused():
    w = World()
    cert = w.certificate(w.order(amount=10))
    tampered = dataclasses.replace(cert, order=dataclasses.replace(cert.order, amount=1000))
    assert _refused(w, tampered) == ErrorCode.BAD_SIGNATURE


def test_certificate_with_forged_authority_signature_is_refused():
    w = World()
    order = w.order()
    cert = w.certificate(order)
    forged = Certificate(order, cert.signatures[:2] + ((w.auth_keys[3].public_key, b"\x00" * 64),))
    assert _refused(w, forged) == ErrorCode.BAD_SIGNATURE


def test_certificate_signed_over_different_order_is_refused():
    w = World()
    real = w.certificate(w.order(amount=10))
    # Votes for amount 10 pasted onto a freshly signed order for 99: the votes do not cover it.
    other_order = w.order(amount=99)
    assert _refused(w, Certificate(other_order, real.signatures)) == ErrorCode.BAD_SIGNATURE

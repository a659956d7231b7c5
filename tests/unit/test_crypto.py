import pytest

from meshpay import crypto
from meshpay.messages import sign_order, sign_vote

from meshpay_helpers import keypair


def test_sign_and_verify():
    kp = keypair(1)
    sig = kp.sign(b"hello")
    assert crypto.verify(kp.public_key, sig, b"hello")
    assert not crypto.verify(kp.public_key, sig, b"hellp")
    assert not crypto.verify(keypair(2).public_key, sig, b"hello")


def test_verify_rejects_malformed_inputs():
    kp = keypair(1)
    sig = kp.sign(b"x")
    assert not crypto.verify(kp.public_key[:31], sig, b"x")
    assert not crypto.verify(kp.public_key, sig[:63], b"x")
    assert not crypto.verify(b"\xff" * 32, sig, b"x")


def test_seed_is_deterministic_and_checked():
    assert crypto.KeyPair(b"\x07" * 32).public_key == crypto.KeyPair(b"\x07" * 32).public_key
    with pytest.raises(crypto.CryptoError):
        crypto.KeyPair(b"short")
    with pytest.raises(crypto.CryptoError):
        crypto.KeyPair.from_hex("zz")


def test_parse_public_key():
    kp = keypair(3)
    assert crypto.parse_public_key(kp.public_key.hex()) == kp.public_key
    with pytest.raises(crypto.CryptoError):
        crypto.parse_public_key("00" * 31)
    with pytest.raises(crypto.CryptoError):
        crypto.parse_public_key("not hex")


def test_order_signature_is_not_a_vote_signature():
    # Domain separation: a client's order signature must not verify as a vote on that order.
    client = keypair(1)
    order = sign_order(client, keypair(2).public_key, 5, 0)
    assert order.has_valid_signature()
    assert not crypto.verify(client.public_key, order.signature, order.vote_signing_bytes())
    vote = sign_vote(keypair(9), order)
    assert vote.has_valid_signature()
    assert not crypto.verify(vote.authority, vote.signature, order.order_signing_bytes())

import pytest

from meshpay import crypto
from meshpay.crypto import CryptoError, KeyPair
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


# Encodings of the points of small order (identity, order 2, 4 and 8): on the curve, nobody's key.
SMALL_ORDER = [
    "01" + "00" * 31,
    "ec" + "ff" * 30 + "7f",
    "00" * 32,
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
]


def test_real_keys_are_public_keys_and_non_points_are_not():
    from meshpay.crypto import is_public_key, parse_public_key

    for _ in range(50):
        key = KeyPair.generate().public_key
        assert is_public_key(key) and parse_public_key(key.hex()) == key
    assert not is_public_key(b"\xff" * 32)  # y >= p: not canonical
    assert not is_public_key(b"\x02" + b"\x00" * 31)  # y = 2: x^2 has no root, not on the curve
    assert not is_public_key(b"\x01" + b"\x00" * 30 + b"\x80")  # x = 0 with a sign bit
    for hexed in SMALL_ORDER:
        assert not is_public_key(bytes.fromhex(hexed)), hexed
    assert not is_public_key(b"\x00" * 31) and not is_public_key(b"")
    with pytest.raises(CryptoError):
        parse_public_key("ff" * 32)


def test_a_real_key_plus_a_small_order_point_is_not_a_key():
    from nacl.bindings import crypto_core_ed25519_add

    from meshpay.crypto import is_public_key

    key = KeyPair.generate().public_key
    mixed = crypto_core_ed25519_add(key, bytes.fromhex(SMALL_ORDER[3]))
    assert mixed != key and not is_public_key(mixed)


def test_most_random_strings_are_refused():
    import os

    from meshpay.crypto import is_public_key

    accepted = sum(is_public_key(os.urandom(32)) for _ in range(4000))
    # About half of random strings decode to a point, one in eight of those in the subgroup.
    assert accepted < 400

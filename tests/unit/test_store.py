import os
import signal
import subprocess
import sys

import pytest

from meshpay.authority import Account
from meshpay.store import Store, StoreError

from meshpay_helpers import World


def test_genesis_is_created_once_and_checked(tmp_path):
    w = World()
    genesis = {w.clients[0].public_key: 100}
    s = Store(tmp_path / "s.db")
    s.ensure_genesis(genesis)
    s.commit({w.clients[0].public_key: Account(40, 1)})
    s.ensure_genesis(genesis)
    assert s.account(w.clients[0].public_key) == Account(40, 1)
    with pytest.raises(StoreError, match="genesis"):
        s.ensure_genesis({w.clients[0].public_key: 101})
    s.close()


def test_pending_vote_and_certificates_round_trip(tmp_path):
    w = World()
    order = w.order()
    acct, vote = w.authorities[0].handle_order(Account(100), order)
    s = Store(tmp_path / "s.db")
    s.commit({order.sender: acct})
    assert s.account(order.sender).pending == vote
    cert = w.certificate(order)
    assert s.commit({order.sender: Account(90, 1), order.recipient: Account(10)}, cert)
    assert s.certificate(order.sender, 0) == cert
    assert s.sent_certificates(order.sender, 0, 10) == [cert]
    got, cursor = s.received_certificates(order.recipient, 0, 10)
    assert got == [cert] and cursor > 0
    assert s.received_certificates(order.recipient, cursor, 10) == ([], cursor)
    s.close()


def test_a_certificate_is_applied_at_most_once(tmp_path):
    w = World()
    cert = w.certificate(w.order())
    s = Store(tmp_path / "s.db")
    assert s.commit({b"k" * 32: Account(10)}, cert)
    assert not s.commit({b"k" * 32: Account(20)}, cert)
    assert s.account(b"k" * 32) == Account(10)
    s.close()


def test_wal_without_shm_and_one_owner(tmp_path):
    path = tmp_path / "s.db"
    s = Store(path)
    s.commit({b"a" * 32: Account(1)})
    assert not os.path.exists(str(path) + "-shm")
    with pytest.raises(StoreError):
        other = Store(path)
        other.commit({b"b" * 32: Account(1)})
    s.close()


def test_state_survives_sigkill(tmp_path):
    path = tmp_path / "s.db"
    code = (
        "import os, signal\n"
        "from meshpay.store import Store\n"
        "from meshpay.authority import Account\n"
        f"s = Store({str(path)!r})\n"
        "s.commit({b'a' * 32: Account(7, 3)}, meta={'x': b'y'})\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code])
    assert proc.returncode == -signal.SIGKILL
    s = Store(path)
    assert s.account(b"a" * 32) == Account(7, 3)
    assert s.meta("x") == b"y"
    s.close()


def test_transfer_records(tmp_path):
    s = Store(tmp_path / "s.db")
    s.put_transfer("t1", {"outcome": "confirmed"})
    assert s.transfer("t1") == {"outcome": "confirmed"}
    assert s.transfer("nope") is None
    s.close()

"""Durable node state in SQLite: accounts, the certificate log, client bookkeeping.

One process owns one database: `locking_mode=EXCLUSIVE` is set before WAL so SQLite keeps the
WAL index in process memory and needs no -shm mmap (which fails on some 9p/virtiofs shares).
`synchronous=NORMAL` in WAL mode makes every commit durable against a killed process (SIGKILL);
only a power loss of the host can drop the last commits.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

from meshpay import wire
from meshpay.authority import Account
from meshpay.messages import Certificate, ConfirmationOrder, TransferOrder, Vote

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    key BLOB PRIMARY KEY,
    balance BLOB NOT NULL,
    next_sequence INTEGER NOT NULL,
    pending BLOB
);
CREATE TABLE IF NOT EXISTS certificates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sender BLOB NOT NULL,
    sequence INTEGER NOT NULL,
    recipient BLOB NOT NULL,
    amount INTEGER NOT NULL,
    body BLOB NOT NULL,
    UNIQUE (sender, sequence)
);
CREATE INDEX IF NOT EXISTS certificates_by_recipient ON certificates (recipient, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS transfers (id TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    sender BLOB NOT NULL,
    sequence INTEGER NOT NULL,
    shard INTEGER NOT NULL,
    PRIMARY KEY (sender, sequence)
);
"""
# outbox: credits this shard owes a sibling shard (shards.py), written in the same transaction
# as the debit they come from and deleted once the sibling acknowledged them.
# PRAGMA user_version of a database this code made. 2: balances as 16-byte signed big-endian
# BLOBs (an authority's lagging view of a balance can leave 64 bits; see messages.py).
SCHEMA_VERSION = 2


def _balance_out(balance: int) -> bytes:
    return balance.to_bytes(16, "big", signed=True)


def _balance_in(blob: bytes) -> int:
    return int.from_bytes(blob, "big", signed=True)


class StoreError(RuntimeError):
    """The database cannot be used for this node (locked, corrupt, or from another genesis)."""


def _encode(msg: Vote | ConfirmationOrder | TransferOrder) -> bytes:
    return wire.encode_frame(0, msg)


def _decode(blob: bytes) -> Any:
    return wire.decode_frame(blob)[1]


def _decode_certificate(blob: bytes) -> Certificate:
    return _decode(blob).certificate


class Store:
    """A node's database. With `group_commit` (an authority's wire path) each state change runs
    in its own savepoint inside one open transaction, and `flush` commits them together: one WAL
    write for many orders instead of one each. Whatever depends on a change must wait for a
    flush before it leaves the process: the wire server releases replies only after calling
    `flush` (transport.py), and a flush is scheduled on the event loop as soon as a change is
    pending, so none waits longer than one turn of the loop."""

    def __init__(self, path: str | Path, group_commit: bool = False) -> None:
        self.group_commit = group_commit
        self._open = False  # the group transaction holds changes not yet committed
        self._flush_scheduled = False
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            # One owner, but the REST layer may call from a worker thread; access is never concurrent.
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            self._db.execute("PRAGMA synchronous=NORMAL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            tables = self._db.execute("SELECT COUNT(*) FROM sqlite_master WHERE type='table'").fetchone()[0]
            if tables and version != SCHEMA_VERSION:
                self._db.close()
                raise StoreError(f"{self.path} has schema version {version}, this node needs {SCHEMA_VERSION}: move it "
                                 "away and restart (an authority pulls every certificate back from its peers)")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from None
        if self.path != ":memory:" and mode.lower() != "wal":
            raise StoreError(f"{self.path}: SQLite refused WAL mode (got {mode})")

    def close(self) -> None:
        self.flush()
        self._db.close()

    def _transaction(self) -> sqlite3.Connection:
        self.flush()  # a transaction of its own never nests in the group: commit the group first
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def flush(self) -> None:
        """Make every change of the group durable (one COMMIT); nothing to do when none is pending."""
        if self._open:
            self._open = False
            self._db.execute("COMMIT")

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self.flush()

    def _join_group(self) -> None:
        """Open the group transaction if needed and have it flushed within one loop turn."""
        if not self._open:
            self._db.execute("BEGIN IMMEDIATE")
            self._open = True
        if not self._flush_scheduled:
            try:
                asyncio.get_running_loop().call_soon(self._scheduled_flush)
                self._flush_scheduled = True
            except RuntimeError:  # no running event loop: the caller commits at once
                pass

    # -- genesis -----------------------------------------------------------------------------

    def ensure_genesis(self, genesis: dict[bytes, int]) -> None:
        """Create the genesis accounts on first start; later starts must present the same genesis."""
        digest = hashlib.sha256(
            json.dumps(sorted((k.hex(), v) for k, v in genesis.items())).encode()
        ).digest()
        row = self._db.execute("SELECT value FROM meta WHERE key='genesis'").fetchone()
        if row is not None:
            if row[0] != digest:
                raise StoreError(f"{self.path} was created with a different genesis")
            return
        db = self._transaction()
        try:
            db.executemany(
                "INSERT INTO accounts (key, balance, next_sequence, pending) VALUES (?, ?, 0, NULL)",
                [(k, _balance_out(v)) for k, v in genesis.items()],
            )
            db.execute("INSERT INTO meta (key, value) VALUES ('genesis', ?)", (digest,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # -- accounts ----------------------------------------------------------------------------

    def account(self, key: bytes) -> Account | None:
        row = self._db.execute(
            "SELECT balance, next_sequence, pending FROM accounts WHERE key=?", (key,)
        ).fetchone()
        if row is None:
            return None
        return Account(_balance_in(row[0]), row[1], None if row[2] is None else _decode(row[2]))

    def accounts(self, limit: int = 1000, offset: int = 0) -> list[tuple[bytes, Account]]:
        rows = self._db.execute(
            "SELECT key, balance, next_sequence, pending FROM accounts ORDER BY key LIMIT ? OFFSET ?",
            (limit, offset),
        ).fetchall()
        return [(r[0], Account(_balance_in(r[1]), r[2], None if r[3] is None else _decode(r[3]))) for r in rows]

    def commit(
        self,
        accounts: dict[bytes, Account],
        certificate: Certificate | None = None,
        meta: dict[str, bytes | None] | None = None,
        forward_to: int | None = None,
    ) -> bool:
        """Write one state change atomically.

        With a certificate, the change happens only if that certificate is new to this store:
        the return value says whether it was written, so nothing is ever applied twice. With
        `forward_to` too, the certificate's credit is owed to that sibling shard (outbox).
        """
        if self.group_commit:
            self._join_group()
            written = self._grouped(accounts, certificate, meta, forward_to)
            if not self._flush_scheduled:  # no event loop to flush later: commit now
                self.flush()
            return written
        db = self._transaction()
        try:
            written = self._write(accounts, certificate, meta, forward_to)
            db.execute("COMMIT" if written else "ROLLBACK")
            return written
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _write(self, accounts: dict[bytes, Account], certificate: Certificate | None,
               meta: dict[str, bytes | None] | None, forward_to: int | None) -> bool:
        """The statements of one change, inside a transaction; False (nothing to keep) when the
        certificate is held already."""
        db = self._db
        if certificate is not None:
            order = certificate.order
            cur = db.execute(
                "INSERT OR IGNORE INTO certificates (sender, sequence, recipient, amount, body) "
                "VALUES (?, ?, ?, ?, ?)",
                (order.sender, order.sequence, order.recipient, order.amount, _encode(ConfirmationOrder(certificate))),
            )
            if cur.rowcount == 0:
                return False
            if forward_to is not None:
                db.execute("INSERT INTO outbox (sender, sequence, shard) VALUES (?, ?, ?)",
                           (order.sender, order.sequence, forward_to))
        db.executemany(
            "INSERT INTO accounts (key, balance, next_sequence, pending) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET balance=excluded.balance, "
            "next_sequence=excluded.next_sequence, pending=excluded.pending",
            [
                (k, _balance_out(a.balance), a.next_sequence, None if a.pending is None else _encode(a.pending))
                for k, a in accounts.items()
            ],
        )
        for key, value in (meta or {}).items():
            if value is None:
                db.execute("DELETE FROM meta WHERE key=?", (key,))
            else:
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
        return True

    def _grouped(self, accounts: dict[bytes, Account], certificate: Certificate | None,
                 meta: dict[str, bytes | None] | None, forward_to: int | None) -> bool:
        """`commit` inside the group transaction: a savepoint makes this change all or nothing."""
        db = self._db
        db.execute("SAVEPOINT change")
        try:
            written = self._write(accounts, certificate, meta, forward_to)
        except BaseException:
            db.execute("ROLLBACK TO change")
            db.execute("RELEASE change")
            raise
        if not written:
            db.execute("ROLLBACK TO change")
        db.execute("RELEASE change")
        return written

    # -- certificates ------------------------------------------------------------------------

    def certificate(self, sender: bytes, sequence: int) -> Certificate | None:
        row = self._db.execute(
            "SELECT body FROM certificates WHERE sender=? AND sequence=?", (sender, sequence)
        ).fetchone()
        return None if row is None else _decode_certificate(row[0])

    def sent_certificates(self, sender: bytes, from_sequence: int, limit: int) -> list[Certificate]:
        rows = self._db.execute(
            "SELECT body FROM certificates WHERE sender=? AND sequence>=? ORDER BY sequence LIMIT ?",
            (sender, from_sequence, limit),
        ).fetchall()
        return [_decode_certificate(r[0]) for r in rows]

    def received_certificates(self, recipient: bytes, after: int, limit: int) -> tuple[list[Certificate], int]:
        """Certificates crediting `recipient` after cursor `after`, and the cursor to continue from."""
        rows = self._db.execute(
            "SELECT id, body FROM certificates WHERE recipient=? AND id>? ORDER BY id LIMIT ?",
            (recipient, after, limit),
        ).fetchall()
        cursor = rows[-1][0] if rows else after
        return [_decode_certificate(r[1]) for r in rows], cursor

    def received_cursor(self, recipient: bytes, cert: Certificate) -> int:
        row = self._db.execute(
            "SELECT id FROM certificates WHERE sender=? AND sequence=? AND recipient=?",
            (cert.order.sender, cert.order.sequence, recipient),
        ).fetchone()
        return row[0]

    def certificate_log(self, after: int, limit: int) -> tuple[list[tuple[int, Certificate]], int]:
        """(position, certificate) pairs after position `after` in application order, and the
        log's last position (0 when empty)."""
        rows = self._db.execute(
            "SELECT id, body FROM certificates WHERE id>? ORDER BY id LIMIT ?", (after, limit)
        ).fetchall()
        head = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM certificates").fetchone()[0]
        return [(r[0], _decode_certificate(r[1])) for r in rows], head

    def outbox(self, limit: int) -> list[tuple[int, Certificate]]:
        """Credits owed to sibling shards, oldest first: (shard, certificate)."""
        rows = self._db.execute(
            "SELECT o.shard, c.body FROM outbox o JOIN certificates c ON c.sender=o.sender AND c.sequence=o.sequence "
            "ORDER BY c.id LIMIT ?", (limit,)).fetchall()
        return [(r[0], _decode_certificate(r[1])) for r in rows]

    def forwarded(self, certificate: Certificate) -> None:
        """The sibling shard acknowledged this certificate's credit: it is owed no more (in the
        group transaction when one is open: losing this delete only means sending it again)."""
        self._db.execute("DELETE FROM outbox WHERE sender=? AND sequence=?",
                         (certificate.order.sender, certificate.order.sequence))

    def certificate_count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM certificates").fetchone()[0]

    # -- client bookkeeping --------------------------------------------------------------------

    def meta(self, key: str) -> bytes | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    def decode_meta_order(self, key: str) -> TransferOrder | None:
        blob = self.meta(key)
        return None if blob is None else _decode(blob)

    @staticmethod
    def encode_order(order: TransferOrder) -> bytes:
        return _encode(order)

    def put_transfer(self, transfer_id: str, record: dict[str, Any]) -> None:
        db = self._transaction()
        try:
            db.execute("INSERT OR REPLACE INTO transfers (id, record) VALUES (?, ?)", (transfer_id, json.dumps(record)))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def transfer(self, transfer_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT record FROM transfers WHERE id=?", (transfer_id,)).fetchone()
        return None if row is None else json.loads(row[0])

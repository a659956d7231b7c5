"""Which authority is at which mesh address: the bookkeeping behind DNS-SD discovery, no sockets.

Discovery only ever supplies addresses. Which keys form the committee, and their weights, stay
pinned by NODE_JSON: an announcement is accepted only if the fingerprint it carries belongs to a
committee member and the node name it carries is that member's name. A forged announcement can
therefore at worst point a client at the wrong address for a member; the votes that come back
are still checked against the pinned key, so spoofing costs liveness, never safety.
(meshpay/mdns.py does the multicast DNS; this module decides what to believe.)
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections import deque
from dataclasses import dataclass
from typing import Any

from meshpay.committee import AuthorityInfo, Committee

SERVICE_TYPE = "_fastpay._tcp.local."
TXT_VERSION = "1"
# Enough recent refusals to see what is going on without letting a flood of bogus services
# grow the node's memory.
IGNORED_KEPT = 32


class BadAnnouncement(ValueError):
    """A `_fastpay._tcp` service whose records are not a usable FastPay announcement."""


def fingerprint(public_key: bytes) -> str:
    """The key's short name on the air: 128 bits of SHA-256, hex (a TXT value, not a secret)."""
    return hashlib.sha256(public_key).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Announcement:
    instance: str  # the DNS-SD instance name, e.g. "auth1._fastpay._tcp.local."
    node: str
    fingerprint: str
    host: str
    wire_port: int
    rest_port: int


def announcement_txt(name: str, public_key: bytes, wire_port: int, rest_port: int) -> dict[str, str]:
    """The TXT properties an authority announces (parse_announcement reads them back)."""
    return {"v": TXT_VERSION, "node": name, "fp": fingerprint(public_key), "wire": str(wire_port), "rest": str(rest_port)}


def _text(props: dict[bytes, bytes | None], key: str) -> str:
    value = props.get(key.encode())
    if value is None:
        raise BadAnnouncement(f"TXT property {key!r} is missing")
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise BadAnnouncement(f"TXT property {key!r} is not UTF-8") from None


def _port(props: dict[bytes, bytes | None], key: str) -> int:
    text = _text(props, key)
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise BadAnnouncement(f"TXT property {key!r} is not a TCP port: {text!r}")
    return int(text)


def parse_announcement(instance: str, addresses: list[str], props: dict[bytes, bytes | None]) -> Announcement:
    """An announcement from a resolved service's IPv4 addresses and TXT properties."""
    if _text(props, "v") != TXT_VERSION:
        raise BadAnnouncement(f"TXT version {props.get(b'v')!r}, this node reads {TXT_VERSION!r}")
    v4 = [a for a in addresses if isinstance(ipaddress.ip_address(a), ipaddress.IPv4Address)]
    if not v4:
        raise BadAnnouncement("no IPv4 address")
    fp = _text(props, "fp").lower()
    if len(fp) != 32 or any(c not in "0123456789abcdef" for c in fp):
        raise BadAnnouncement(f"TXT property 'fp' is not a 32-hex-digit fingerprint: {fp!r}")
    # A service bound to one interface announces one address; with more, any is as good.
    return Announcement(instance, _text(props, "node"), fp, sorted(v4)[0], _port(props, "wire"), _port(props, "rest"))


@dataclass
class Entry:
    announcement: Announcement
    member: AuthorityInfo
    first_seen: float
    last_heard: float


class DiscoveredSet:
    """The authorities heard on the mesh, pinned to the committee.

    Keyed by instance name, as the browser reports them. When two live instances claim one
    member (a move seen before the old one's goodbye, or a squatter), the one offered last wins:
    a squatter can make itself win this way, which is the liveness cost named above."""

    def __init__(self, committee: Committee) -> None:
        self.committee = committee
        self.members = {fingerprint(m.public_key): m for m in committee.members}
        self.entries: dict[str, Entry] = {}
        self.ignored: deque[dict[str, Any]] = deque(maxlen=IGNORED_KEPT)

    def offer(self, ann: Announcement, now: float) -> str | None:
        """Take an announcement in; returns why it was ignored, or None when accepted."""
        member = self.members.get(ann.fingerprint)
        if member is None:
            reason = "key fingerprint is not in the committee"
        elif member.name != ann.node:
            reason = f"announces node {ann.node!r} but the committee calls this key {member.name!r}"
        else:
            old = self.entries.get(ann.instance)
            first = old.first_seen if old is not None and old.member == member else now
            self.entries[ann.instance] = Entry(ann, member, first, now)
            return None
        self.entries.pop(ann.instance, None)  # an instance that turned bad is no longer believed
        self.ignored.append({"instance": ann.instance, "node": ann.node, "fingerprint": ann.fingerprint,
                             "address": f"{ann.host}:{ann.wire_port}", "reason": reason, "at": now})
        return reason

    def heard(self, instance: str, now: float) -> None:
        """Any record of the instance arrived (an announcement or an answer): it is alive."""
        entry = self.entries.get(instance)
        if entry is not None:
            entry.last_heard = now

    def forget(self, instance: str) -> Entry | None:
        return self.entries.pop(instance, None)

    def current(self, public_key: bytes) -> Entry | None:
        """The latest live entry for a member, or None if it has not been heard."""
        mine = [e for e in self.entries.values() if e.member.public_key == public_key]
        return max(mine, key=lambda e: e.last_heard, default=None)

    def address(self, public_key: bytes) -> tuple[str, int] | None:
        entry = self.current(public_key)
        return None if entry is None else (entry.announcement.host, entry.announcement.wire_port)

    @property
    def heard_weight(self) -> int:
        return sum(self.committee.weight(k) for k in {e.member.public_key for e in self.entries.values()})

    @property
    def has_quorum(self) -> bool:
        return self.heard_weight >= self.committee.quorum_threshold

    def snapshot(self, now: float) -> dict[str, Any]:
        """JSON for GET /discovery: every member (heard or not) and the recent refusals."""
        rows = []
        for m in self.committee.members:
            entry = self.current(m.public_key)
            row: dict[str, Any] = {"authority": m.name, "weight": m.weight, "fingerprint": fingerprint(m.public_key),
                                   "heard": entry is not None, "address": None, "rest_port": None,
                                   "instance": None, "age_s": None, "known_for_s": None}
            if entry is not None:
                a = entry.announcement
                row.update(address=f"{a.host}:{a.wire_port}", host=a.host, rest_port=a.rest_port, instance=a.instance,
                           age_s=round(now - entry.last_heard, 1), known_for_s=round(now - entry.first_seen, 1))
            rows.append(row)
        return {
            "authorities": rows,
            "heard_weight": self.heard_weight,
            "quorum_threshold": self.committee.quorum_threshold,
            "has_quorum": self.has_quorum,
            "ignored": [{**{k: v for k, v in i.items() if k != "at"}, "age_s": round(now - i["at"], 1)}
                        for i in self.ignored],
        }

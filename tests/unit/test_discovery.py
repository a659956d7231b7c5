"""Discovery bookkeeping without sockets: what an announcement must carry, which ones are pinned
to the committee, and how the set follows authorities that appear, move, restart or vanish."""

from __future__ import annotations

import pytest

from meshpay.committee import AuthorityInfo, Committee
from meshpay.discovery import (
    Announcement,
    BadAnnouncement,
    DiscoveredSet,
    announcement_txt,
    fingerprint,
    parse_announcement,
)
from meshpay_helpers import World, keypair


def txt(name: str, key: bytes, wire: int = 7100, rest: int = 8080) -> dict[bytes, bytes | None]:
    return {k.encode(): v.encode() for k, v in announcement_txt(name, key, wire, rest).items()}


def ann(world: World, i: int, host: str = "10.77.0.1", instance: str | None = None, name: str | None = None,
        key: bytes | None = None) -> Announcement:
    key = world.auth_keys[i].public_key if key is None else key
    name = f"auth{i + 1}" if name is None else name
    return parse_announcement(instance or f"{name}._fastpay._tcp.local.", [host], txt(name, key))


def test_txt_round_trips_into_an_announcement():
    key = keypair(100).public_key
    a = parse_announcement("auth1._fastpay._tcp.local.", ["10.77.0.3"], txt("auth1", key, 7100, 8081))
    assert (a.node, a.host, a.wire_port, a.rest_port) == ("auth1", "10.77.0.3", 7100, 8081)
    assert a.fingerprint == fingerprint(key) and len(a.fingerprint) == 32


@pytest.mark.parametrize("change, why", [
    ({b"wire": b"0"}, "not a TCP port"),
    ({b"wire": b"http"}, "not a TCP port"),
    ({b"fp": b"xyz"}, "fingerprint"),
    ({b"v": b"2"}, "version"),
    ({b"node": None}, "'node' is missing"),
    ({b"rest": b"\xff"}, "not UTF-8"),
])
def test_malformed_txt_is_refused_with_the_reason(change, why):
    props = {**txt("auth1", keypair(100).public_key), **change}
    with pytest.raises(BadAnnouncement, match=why):
        parse_announcement("x._fastpay._tcp.local.", ["10.77.0.3"], props)


def test_an_announcement_needs_an_ipv4_address():
    with pytest.raises(BadAnnouncement, match="IPv4"):
        parse_announcement("x._fastpay._tcp.local.", ["fe80::1"], txt("auth1", keypair(100).public_key))


def test_members_are_pinned_by_key_and_a_stranger_is_ignored_and_remembered():
    w = World()
    found = DiscoveredSet(w.committee)
    assert found.offer(ann(w, 0), now=1.0) is None
    stranger = keypair(99).public_key
    reason = found.offer(ann(w, 0, name="rogue", key=stranger), now=2.0)
    assert reason is not None and "not in the committee" in reason
    assert found.address(stranger) is None
    assert [e.member.name for e in found.entries.values()] == ["auth1"]
    assert found.snapshot(now=3.0)["ignored"][0] == {
        "instance": "rogue._fastpay._tcp.local.", "node": "rogue", "fingerprint": fingerprint(stranger),
        "address": "10.77.0.1:7100", "reason": reason, "age_s": 1.0}


def test_a_member_key_under_another_name_is_ignored():
    w = World()
    found = DiscoveredSet(w.committee)
    reason = found.offer(ann(w, 1, name="auth1"), now=1.0)  # auth2's key claiming to be auth1
    assert reason is not None and "'auth2'" in reason
    assert found.heard_weight == 0


def test_an_instance_that_turns_bad_is_dropped():
    w = World()
    found = DiscoveredSet(w.committee)
    found.offer(ann(w, 0), now=1.0)
    found.offer(ann(w, 0, key=keypair(99).public_key), now=2.0)  # same instance, foreign key now
    assert found.address(w.auth_keys[0].public_key) is None


def test_quorum_is_counted_by_weight_once_per_member():
    keys = [keypair(100 + i) for i in range(4)]
    committee = Committee([AuthorityInfo(f"auth{i + 1}", k.public_key, w) for i, (k, w) in enumerate(zip(keys, [3, 1, 1, 1]))])
    found = DiscoveredSet(committee)
    assert committee.quorum_threshold == 5
    w = World()
    w.auth_keys, w.committee = keys, committee
    found.offer(ann(w, 0), now=1.0)
    found.offer(ann(w, 0, instance="auth1 (2)._fastpay._tcp.local.", host="10.77.0.9"), now=2.0)
    assert found.heard_weight == 3 and not found.has_quorum
    found.offer(ann(w, 1), now=3.0)
    assert found.heard_weight == 4 and not found.has_quorum
    found.offer(ann(w, 2), now=4.0)
    assert found.has_quorum


def test_a_move_updates_the_address_and_keeps_first_seen():
    w = World()
    found = DiscoveredSet(w.committee)
    key = w.auth_keys[0].public_key
    found.offer(ann(w, 0, host="10.77.0.1"), now=1.0)
    found.offer(ann(w, 0, host="10.77.0.7"), now=5.0)
    assert found.address(key) == ("10.77.0.7", 7100)
    row = found.snapshot(now=6.0)["authorities"][0]
    assert (row["address"], row["age_s"], row["known_for_s"]) == ("10.77.0.7:7100", 1.0, 5.0)


def test_of_two_instances_for_one_member_the_last_heard_wins():
    w = World()
    found = DiscoveredSet(w.committee)
    key = w.auth_keys[0].public_key
    found.offer(ann(w, 0, host="10.77.0.1"), now=1.0)
    found.offer(ann(w, 0, host="10.77.0.2", instance="auth1 (2)._fastpay._tcp.local."), now=2.0)
    assert found.address(key) == ("10.77.0.2", 7100)
    found.heard("auth1._fastpay._tcp.local.", now=3.0)
    assert found.address(key) == ("10.77.0.1", 7100)


def test_vanish_and_restart():
    w = World()
    found = DiscoveredSet(w.committee)
    key = w.auth_keys[2].public_key
    found.offer(ann(w, 2), now=1.0)
    assert found.forget("auth3._fastpay._tcp.local.") is not None
    assert found.address(key) is None and found.heard_weight == 0
    assert found.forget("auth3._fastpay._tcp.local.") is None  # a second goodbye is harmless
    found.offer(ann(w, 2), now=9.0)
    row = {r["authority"]: r for r in found.snapshot(now=10.0)["authorities"]}["auth3"]
    assert row["heard"] and row["known_for_s"] == 1.0  # a fresh entry, not the old one's


def test_heard_refreshes_age_and_ignores_unknown_instances():
    w = World()
    found = DiscoveredSet(w.committee)
    found.offer(ann(w, 0), now=1.0)
    found.heard("auth1._fastpay._tcp.local.", now=4.0)
    found.heard("nobody._fastpay._tcp.local.", now=4.0)
    rows = {r["authority"]: r for r in found.snapshot(now=5.0)["authorities"]}
    assert rows["auth1"]["age_s"] == 1.0
    assert rows["auth2"] == {"authority": "auth2", "weight": 1, "fingerprint": fingerprint(w.auth_keys[1].public_key),
                             "heard": False, "address": None, "rest_port": None, "instance": None,
                             "age_s": None, "known_for_s": None}


def test_ignored_list_is_bounded():
    w = World()
    found = DiscoveredSet(w.committee)
    for i in range(100):
        found.offer(ann(w, 0, name=f"r{i}", key=keypair(200 - i % 50).public_key, instance=f"r{i}._fastpay._tcp.local."), now=i)
    assert len(found.snapshot(now=100.0)["ignored"]) == 32

"""radio.py and the hwsim message class, without a kernel."""

import os

import pytest

from orchestrator import errors
from orchestrator.kernel import radio
from orchestrator.kernel.netlink import HWSIM_CMD_NEW_RADIO, hwsim_socket, hwsimmsg


def encode(cmd: int, attrs: list) -> bytes:
    msg = hwsimmsg()
    msg["cmd"] = cmd
    msg["version"] = 1
    msg["attrs"] = attrs
    msg.encode()
    return bytes(msg.data)


def tlvs(data: bytes) -> dict[int, bytes]:
    """Top-level attributes of a genl message: type -> payload (nlmsghdr 16 + genlmsghdr 4)."""
    out, offset = {}, 20
    while offset + 4 <= len(data):
        length = int.from_bytes(data[offset:offset + 2], "little")
        kind = int.from_bytes(data[offset + 2:offset + 4], "little") & 0x3FFF
        out[kind] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return out


def test_mac_for_name_is_stable_unicast_and_local() -> None:
    mac = radio.mac_for_name("mpl-lab1-auth1")
    assert mac == radio.mac_for_name("mpl-lab1-auth1")
    assert mac != radio.mac_for_name("mpl-lab1-auth2")
    first = int(mac.split(":")[0], 16)
    assert first & 0x02 and not first & 0x01


def test_new_radio_uses_the_kernel_attribute_numbers() -> None:
    attrs = tlvs(encode(HWSIM_CMD_NEW_RADIO, radio.new_radio_attrs("mpl-x-n0", "02:11:22:33:44:55")))
    assert attrs[17].rstrip(b"\0") == b"mpl-x-n0"  # HWSIM_ATTR_RADIO_NAME
    assert attrs[22] == bytes.fromhex("021122334455")  # HWSIM_ATTR_PERM_ADDR
    assert attrs[18] == b""  # HWSIM_ATTR_NO_VIF, a flag
    assert int.from_bytes(attrs[9], "little") == 1  # HWSIM_ATTR_CHANNELS
    assert 16 not in attrs  # never DESTROY_RADIO_ON_CLOSE: radios outlive the controller


def test_get_radio_reply_name_without_nul_decodes() -> None:
    # the kernel puts the name with its length and no NUL: build that by hand
    name = b"mpl-lab-node7"
    nla = (4 + len(name)).to_bytes(2, "little") + (17).to_bytes(2, "little") + name
    nla += b"\0" * (-len(nla) % 4)
    rid = (8).to_bytes(2, "little") + (10).to_bytes(2, "little") + (7).to_bytes(4, "little")
    body = bytes([6, 1, 0, 0]) + rid + nla
    header = (16 + len(body)).to_bytes(4, "little") + (30).to_bytes(2, "little") + bytes(10)
    msg = hwsimmsg(header + body)
    msg.decode()
    assert msg.get_attr("HWSIM_ATTR_RADIO_NAME") == "mpl-lab-node7"
    assert msg.get_attr("HWSIM_ATTR_RADIO_ID") == 7


@pytest.mark.parametrize("name", ["", "a" * 64, "has/slash"])
def test_bad_radio_names_fail_before_the_kernel(name: str) -> None:
    with pytest.raises(ValueError):
        radio.create_radio(name)


@pytest.mark.skipif(os.path.exists("/sys/module/mac80211_hwsim"), reason="hwsim is loaded here")
def test_missing_hwsim_says_what_to_do() -> None:
    with pytest.raises(errors.MeshpayError, match=r"modprobe mac80211_hwsim radios=0.*meshpay-lab up --vm"):
        with hwsim_socket():
            pass


class _FakeHwsim:
    """hwsim's generic-netlink family as create_radio uses it: a dump before and after NEW_RADIO."""

    def __init__(self, name: str) -> None:
        self.dumps = [[], [(1, name)]]

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def request(self, cmd, attrs, dump=False):
        return []


def _fake_kernel(monkeypatch, name: str, phy_answers: list[int]) -> list[int]:
    fake = _FakeHwsim(name)
    asked: list[int] = []
    monkeypatch.setattr(radio, "hwsim_socket", lambda netns=None: fake)
    monkeypatch.setattr(radio, "_dump", lambda sock: fake.dumps.pop(0) if len(fake.dumps) > 1 else fake.dumps[0])
    monkeypatch.setattr(radio, "PHY_LOOKUP_PAUSES_S", (0, 0, 0))

    def find(n, netns=None):
        phy = phy_answers[min(len(asked), len(phy_answers) - 1)]
        asked.append(phy)
        return radio.HwsimRadio(1, n, phy, "", netns)

    monkeypatch.setattr(radio, "_find", find)
    return asked


def test_a_new_radio_missing_from_a_wiphy_dump_is_looked_up_again(monkeypatch) -> None:
    # a dump raced by other radios' creation left the phy out (phy -1): move_phy then failed
    # with "argument out of range" deep in pyroute2, and `up` of a 100-node lab with it
    asked = _fake_kernel(monkeypatch, "mpl0001-74", [-1, -1, 76])
    made = radio.create_radio("mpl0001-74")
    assert made.phy_index == 76
    assert asked == [-1, -1, 76]


def test_a_new_radio_whose_phy_never_shows_is_an_error_not_phy_minus_one(monkeypatch) -> None:
    _fake_kernel(monkeypatch, "mpl0001-74", [-1])
    with pytest.raises(errors.MeshpayError, match="does not list its phy"):
        radio.create_radio("mpl0001-74")

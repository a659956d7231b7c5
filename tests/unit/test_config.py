import json

import pytest

from meshpay.config import ConfigError, load_config, parse_config

from meshpay_helpers import keypair


def node_json(**overrides):
    auth = keypair(100)
    client = keypair(1)
    data = {
        "name": "auth1",
        "role": "authority",
        "seed": (bytes([100]) * 32).hex(),
        "db_path": "/tmp/x/state.db",
        "wire_host": "10.77.0.1",
        "wire_port": 7100,
        "api_host": "172.31.0.1",
        "api_port": 8080,
        "api_token": None,
        "committee": [{"name": "auth1", "public_key": auth.public_key.hex(), "weight": 1, "host": "10.77.0.1", "port": 7100}],
        "clients": [{"name": "client1", "public_key": client.public_key.hex(), "host": "10.77.0.6", "port": 7100}],
        "genesis": {client.public_key.hex(): 1000},
    }
    data.update(overrides)
    return data


def test_architecture_example_loads(tmp_path):
    path = tmp_path / "node.json"
    path.write_text(json.dumps(node_json()))
    config = load_config(path)
    assert config.role == "authority" and config.committee.quorum_threshold == 1
    assert config.genesis == {keypair(1).public_key: 1000}
    assert config.resolve_account("client1") == keypair(1).public_key
    assert config.resolve_account(keypair(1).public_key.hex()) == keypair(1).public_key
    assert config.resolve_account("nobody") is None
    assert config.account_name(keypair(100).public_key) == "auth1"


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"role": "miner"}, "role"),
        ({"seed": "abcd"}, "seed"),
        ({"wire_port": 70000}, "wire_port"),
        ({"api_port": True}, "api_port"),
        ({"api_token": ""}, "api_token"),
        ({"genesis": {"zz": 1}}, "genesis"),
        ({"genesis": {keypair(1).public_key.hex(): -1}}, "genesis"),
        ({"committee": []}, "committee"),
        ({"committee": [{"name": "a"}]}, "committee[0]"),
        ({"seed": (bytes([7]) * 32).hex()}, "does not match"),
    ],
)
def test_bad_configs_name_the_field(overrides, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        parse_config(node_json(**overrides), "node.json")


def test_missing_field_and_bad_json(tmp_path):
    data = node_json()
    del data["db_path"]
    with pytest.raises(ConfigError, match="db_path"):
        parse_config(data)
    path = tmp_path / "bad.json"
    path.write_text("{\n  oops")
    with pytest.raises(ConfigError, match="line 2"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.json")


def test_client_role_needs_not_be_in_committee():
    config = parse_config(node_json(role="client", name="client1", seed=(bytes([1]) * 32).hex()))
    assert config.public_key == keypair(1).public_key


def _member(**fields):
    return [{"name": "auth1", "public_key": keypair(100).public_key.hex(), "weight": 1, **fields}]


@pytest.mark.parametrize("address", [{}, {"host": None, "port": None}])
def test_a_member_without_address_is_left_to_mdns_discovery(address):
    config = parse_config(node_json(discovery="mdns", committee=_member(**address)))
    assert config.discovery == "mdns"
    member = config.committee.members[0]
    assert (member.host, member.port) == (None, None)


def test_without_discovery_every_member_needs_an_address():
    with pytest.raises(ConfigError, match=r"committee\[0\]: no 'host'/'port'.*discovery"):
        parse_config(node_json(committee=_member()))
    with pytest.raises(ConfigError, match="both 'host' and 'port'"):
        parse_config(node_json(discovery="mdns", committee=_member(host="10.77.0.1")))
    with pytest.raises(ConfigError, match="'discovery' must be one of"):
        parse_config(node_json(discovery="dns"))


def test_old_configs_mean_static_discovery():
    assert parse_config(node_json()).discovery == "static"
    assert parse_config(node_json(discovery=None)).discovery == "static"

"""NODE_JSON, the node's whole configuration, as written by the controller (docs/architecture.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from meshpay import crypto
from meshpay.committee import AuthorityInfo, Committee
from meshpay.messages import MAX_AMOUNT
from meshpay.shards import MAX_SHARDS

ROLES = ("authority", "client")
# "mdns": authorities announce themselves on the mesh and clients find committee members whose
# address NODE_JSON leaves out (meshpay/mdns.py). "static": every address is in NODE_JSON.
DISCOVERY_MODES = ("static", "mdns")


class ConfigError(ValueError):
    """NODE_JSON is missing a field or has a wrong one; the message names the file and field."""


@dataclass(frozen=True, slots=True)
class ClientInfo:
    name: str
    public_key: bytes
    host: str
    port: int


@dataclass(frozen=True)
class NodeConfig:
    name: str
    role: str
    keypair: crypto.KeyPair
    db_path: str
    wire_host: str
    wire_port: int
    api_host: str
    api_port: int
    api_token: str | None
    committee: Committee
    clients: tuple[ClientInfo, ...]
    genesis: dict[bytes, int]
    discovery: str = "static"
    # How long a client drives one order (seconds) before it answers with the order still
    # pending and finishes it in the background; see ClientService._settle.
    transfer_deadline_s: float = 25.0
    # Which shard of this authority the process is (shards.py); the committee entry says how many.
    shard: int = 0

    @property
    def public_key(self) -> bytes:
        return self.keypair.public_key

    @property
    def shards(self) -> int:
        """How many shards this authority runs (1 for a client)."""
        member = self.committee.by_key.get(self.public_key)
        return 1 if member is None or self.role != "authority" else member.shards

    @property
    def shard_wire_port(self) -> int:
        """The port this process serves the wire on: shard k of an authority on wire_port + k."""
        return self.wire_port + self.shard

    def resolve_account(self, text: str) -> bytes | None:
        """An account key from a client or authority name or a hex public key, or None."""
        for c in self.clients:
            if c.name == text:
                return c.public_key
        for m in self.committee.members:
            if m.name == text:
                return m.public_key
        try:
            return crypto.parse_public_key(text)
        except crypto.CryptoError:
            return None

    def account_name(self, key: bytes) -> str | None:
        for c in self.clients:
            if c.public_key == key:
                return c.name
        member = self.committee.by_key.get(key)
        return None if member is None else member.name

    def client(self, key: bytes) -> ClientInfo | None:
        return next((c for c in self.clients if c.public_key == key), None)


def _get(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise ConfigError(f"{where}: missing field {key!r}")
    value = obj[key]
    # bool is an int in Python; a port or weight of `true` is a mistake, not 1.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ConfigError(f"{where}: field {key!r} has the wrong type ({type(value).__name__})")
    return value


def _port(obj: dict[str, Any], key: str, where: str) -> int:
    port = _get(obj, key, int, where)
    if not 0 < port < 65536:
        raise ConfigError(f"{where}: field {key!r} is not a TCP port: {port}")
    return port


def _key(obj: dict[str, Any], where: str) -> bytes:
    try:
        return crypto.parse_public_key(_get(obj, "public_key", str, where))
    except crypto.CryptoError as exc:
        raise ConfigError(f"{where}: field 'public_key': {exc}") from None


def _address(obj: dict[str, Any], where: str) -> tuple[str | None, int | None]:
    """A committee member's wire address, or (None, None) when it is left to discovery."""
    if obj.get("host") is None and obj.get("port") is None:
        return None, None
    if obj.get("host") is None or obj.get("port") is None:
        raise ConfigError(f"{where}: give both 'host' and 'port', or neither (found by discovery)")
    return _get(obj, "host", str, where), _port(obj, "port", where)


def parse_config(data: Any, source: str = "NODE_JSON") -> NodeConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level must be an object")
    role = _get(data, "role", str, source)
    if role not in ROLES:
        raise ConfigError(f"{source}: field 'role' must be one of {ROLES}, got {role!r}")
    try:
        keypair = crypto.KeyPair.from_hex(_get(data, "seed", str, source))
    except crypto.CryptoError as exc:
        raise ConfigError(f"{source}: field 'seed': {exc}") from None
    discovery = data.get("discovery") or "static"
    if discovery not in DISCOVERY_MODES:
        raise ConfigError(f"{source}: field 'discovery' must be one of {DISCOVERY_MODES} or null, got {discovery!r}")
    members = []
    for i, m in enumerate(_get(data, "committee", list, source)):
        where = f"{source}: committee[{i}]"
        if not isinstance(m, dict):
            raise ConfigError(f"{where} must be an object")
        weight = _get(m, "weight", int, where)
        if weight <= 0:
            raise ConfigError(f"{where}: field 'weight' must be positive")
        host, port = _address(m, where)
        if host is None and discovery != "mdns":
            raise ConfigError(f"{where}: no 'host'/'port': give them, or set \"discovery\": \"mdns\" "
                              "so the node finds this authority on the mesh")
        shards = m.get("shards", 1)
        if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= MAX_SHARDS:
            raise ConfigError(f"{where}: field 'shards' must be an integer in 1..{MAX_SHARDS} (processes of this "
                              f"authority, one per core), got {shards!r}")
        if port is not None and port + shards - 1 > 65535:
            raise ConfigError(f"{where}: field 'shards': shard ports {port}..{port + shards - 1} pass 65535")
        members.append(AuthorityInfo(_get(m, "name", str, where), _key(m, where), weight, host, port, shards))
    try:
        committee = Committee(members)
    except ValueError as exc:
        raise ConfigError(f"{source}: field 'committee': {exc}") from None
    clients = []
    for i, c in enumerate(_get(data, "clients", list, source)):
        where = f"{source}: clients[{i}]"
        if not isinstance(c, dict):
            raise ConfigError(f"{where} must be an object")
        clients.append(ClientInfo(_get(c, "name", str, where), _key(c, where), _get(c, "host", str, where), _port(c, "port", where)))
    genesis: dict[bytes, int] = {}
    for key_hex, amount in _get(data, "genesis", dict, source).items():
        where = f"{source}: genesis[{key_hex!r}]"
        try:
            key = crypto.parse_public_key(key_hex)
        except crypto.CryptoError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if isinstance(amount, bool) or not isinstance(amount, int) or not 0 <= amount <= MAX_AMOUNT:
            raise ConfigError(f"{where}: balance must be an integer in [0, 2^62]")
        genesis[key] = amount
    if sum(genesis.values()) > MAX_AMOUNT:
        raise ConfigError(f"{source}: field 'genesis': total supply exceeds 2^62")
    deadline = data.get("transfer_deadline_s", 25.0)
    if isinstance(deadline, bool) or not isinstance(deadline, int | float) or not 0 < deadline <= 3600:
        raise ConfigError(f"{source}: field 'transfer_deadline_s' must be a number of seconds in (0, 3600]")
    token = data.get("api_token")
    if token is not None and (not isinstance(token, str) or not token):
        raise ConfigError(f"{source}: field 'api_token' must be a non-empty string or null")
    config = NodeConfig(
        name=_get(data, "name", str, source),
        role=role,
        keypair=keypair,
        db_path=_get(data, "db_path", str, source),
        wire_host=_get(data, "wire_host", str, source),
        wire_port=_port(data, "wire_port", source),
        api_host=_get(data, "api_host", str, source),
        api_port=_port(data, "api_port", source),
        api_token=token,
        committee=committee,
        clients=tuple(clients),
        genesis=genesis,
        discovery=discovery,
        transfer_deadline_s=float(deadline),
    )
    if role == "authority" and config.public_key not in committee.weights:
        raise ConfigError(f"{source}: this authority's seed does not match any committee public key")
    shard = data.get("shard", 0)
    if isinstance(shard, bool) or not isinstance(shard, int) or not 0 <= shard < config.shards:
        raise ConfigError(f"{source}: field 'shard' must be an integer in 0..{config.shards - 1} (this "
                          f"{role}'s committee entry has shards={config.shards}), got {shard!r}")
    if config.wire_port + config.shards - 1 > 65535:
        raise ConfigError(f"{source}: field 'wire_port': shard ports {config.wire_port}..{config.wire_port + config.shards - 1} pass 65535")
    return replace(config, shard=shard)


def load_config(path: str | Path) -> NodeConfig:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: line {exc.lineno}: invalid JSON: {exc.msg}") from None
    return parse_config(data, str(path))

"""Who hears whom: the lab's radios, where they are, and what happens to one transmitted frame.

Pure (the random source is passed in): the medium process owns the sockets, this module owns the
decisions, so unit tests drive it with fakes. The medium's configuration is a JSON file in the lab
directory (`medium.json`): `up` writes it, `move` and `fault isolate|heal` rewrite it, and the
medium re-reads it when it changes. A moving radio's position there is where its trajectory
starts; `Movers` says where it is at a given time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from orchestrator import atomic, labfiles
from orchestrator.air import rates
from orchestrator.air.mobility import Motion, Trajectory
from orchestrator.air.propagation import Model, RATE_MIN_SNR_DB, loss_by_rate, signal_dbm
from orchestrator.errors import NotFound, UsageError

CONFIG_FILE = labfiles.MEDIUM_CONFIG
NO_LOSS = (0.0,) * len(RATE_MIN_SNR_DB)


@dataclass(frozen=True)
class Radio:
    name: str
    mac: str
    position: tuple[float, float]
    range: float
    motion: Motion | None = None  # moving from `position` since the config's mobility epoch


@dataclass(frozen=True)
class Impairment:
    """What one direction of a link suffers on top of the radio model, as netem does for a wire:
    each attempt is lost with `loss_pct` % more; a delivery arrives `delay_ms` later, give or take
    up to `jitter_ms` (uniform); at most `rate_mbps` of frames pass (0: no cap), the rest wait in
    line, and a frame that would wait over RATE_BACKLOG_S is dropped."""

    loss_pct: float = 0.0
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    rate_mbps: float = 0.0

    def to_json(self) -> dict:
        return {k: v for k, v in (("loss_pct", self.loss_pct), ("delay_ms", self.delay_ms),
                                  ("jitter_ms", self.jitter_ms), ("rate_mbps", self.rate_mbps)) if v}

    @property
    def none(self) -> bool:
        return not (self.loss_pct or self.delay_ms or self.jitter_ms or self.rate_mbps)

    def describe(self) -> str:
        parts = []
        if self.loss_pct:
            parts.append(f"loss {self.loss_pct:g}%")
        if self.delay_ms or self.jitter_ms:
            parts.append(f"delay {self.delay_ms:g}±{self.jitter_ms:g} ms")
        if self.rate_mbps:
            parts.append(f"rate ≤{self.rate_mbps:g} Mb/s")
        return ", ".join(parts) or "none"


# A rate-capped link holds at most this much airtime in line; frames past it are dropped (as a
# netem/tbf queue limit would), so a cap cannot build seconds of delay.
RATE_BACKLOG_S = 0.5


@dataclass(frozen=True)
class MediumConfig:
    freq: int
    model: Model
    radios: tuple[Radio, ...]
    loss: bool = True
    isolated: frozenset[str] = frozenset()
    version: int = 0  # bumped by every rewrite, so a verb can see the medium has applied it
    # Wall-clock time (time.time()) at which moving radios set off; None: not yet (`up` sets it
    # once the lab serves, so the first peering happens at the topology's positions).
    mobility_epoch: float | None = None
    # Per direction (transmitter, receiver) by node name: set by topology `links:` and `impair`.
    impairments: dict[tuple[str, str], Impairment] = field(default_factory=dict)
    airtime: bool = False  # frames take channel time, radios defer, overlaps collide (airtime.py)

    def radio(self, name: str) -> Radio:
        for r in self.radios:
            if r.name == name:
                return r
        raise NotFound(f"no node {name!r} in the medium; nodes: {', '.join(r.name for r in self.radios)}")

    def to_json(self) -> dict:
        m = self.model
        return {
            "version": self.version, "freq": self.freq, "loss": self.loss,
            "model": {"kind": m.kind, "tx_power_dbm": m.tx_power_dbm, "noise_dbm": m.noise_dbm,
                      "exponent": m.exponent, "ref_distance_m": m.ref_distance_m},
            "radios": [{"name": r.name, "mac": r.mac, "position": list(r.position), "range": r.range,
                        **({"motion": r.motion.to_json()} if r.motion else {})}
                       for r in self.radios],
            "isolated": sorted(self.isolated),
            "mobility_epoch": self.mobility_epoch,
            "impairments": [{"from": a, "to": b, **imp.to_json()} for (a, b), imp in sorted(self.impairments.items())],
            "airtime": self.airtime,
        }

    @classmethod
    def from_json(cls, data: dict) -> MediumConfig:
        return cls(
            freq=int(data["freq"]), model=Model(**data["model"]), loss=bool(data["loss"]),
            radios=tuple(Radio(r["name"], r["mac"].lower(), (float(r["position"][0]), float(r["position"][1])),
                               float(r["range"]), Motion.from_json(r["motion"]) if r.get("motion") else None)
                         for r in data["radios"]),
            isolated=frozenset(data.get("isolated", ())), version=int(data.get("version", 0)),
            mobility_epoch=None if data.get("mobility_epoch") is None else float(data["mobility_epoch"]),
            impairments={(str(i["from"]), str(i["to"])): Impairment(
                float(i.get("loss_pct", 0)), float(i.get("delay_ms", 0)), float(i.get("jitter_ms", 0)),
                float(i.get("rate_mbps", 0))) for i in data.get("impairments", ())},
            airtime=bool(data.get("airtime", False)),
        )

    @property
    def moving(self) -> bool:
        """True when some radio follows a trajectory now."""
        return self.mobility_epoch is not None and any(r.motion for r in self.radios)


def impairments_in_force(cfg: MediumConfig) -> list[dict]:
    """Every impairment in force, one row per direction ({"from", "to", values, "summary"}): what
    `status`, `peers` and `impair` show."""
    return [{"from": tx, "to": rx, **imp.to_json(), "summary": imp.describe()}
            for (tx, rx), imp in sorted(cfg.impairments.items())]


class NoMedium(UsageError, LookupError):
    """A lab without a medium asked for the medium's config: a usage error (exit 2), like asking
    a lab for a node it does not have. Also a LookupError: `draw`, `peers` and the medium's
    control catch it as "nothing impaired, nobody moved"."""


def config_path(lab_dir: Path) -> Path:
    return Path(lab_dir) / CONFIG_FILE


def read_config(lab_dir: Path) -> MediumConfig:
    """The lab's medium.json; NoMedium when the lab has none."""
    path = config_path(lab_dir)
    try:
        return MediumConfig.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        raise NoMedium(f"{path} does not exist: this lab runs without a medium (its topology says "
                       "`medium: none`; take that out and `meshpay-lab up` again for one), or it is not "
                       "up (`meshpay-lab status`)") from None


def in_range(distance_m: float, range_a_m: float, range_b_m: float) -> bool:
    """Do two radios `distance_m` apart, with these ranges, hear each other? A link needs each end
    to hear the other, so the shorter range decides. The plan's blocked pairs and the medium's
    deliveries both follow this rule."""
    return distance_m <= min(range_a_m, range_b_m)


def write_config(lab_dir: Path, cfg: MediumConfig) -> None:
    # write then rename: the medium never reads half a file
    atomic.write_text(config_path(lab_dir), json.dumps(cfg.to_json(), indent=1) + "\n")


class Movers:
    """Where the moving radios of a configuration are at a wall-clock time. Keeps each motion's
    trajectory across calls and reloads (drawn once, sampled often); the same motion and time give
    the same position whoever asks."""

    def __init__(self) -> None:
        self._paths: dict[Motion, Trajectory] = {}

    def at(self, cfg: MediumConfig, now: float) -> MediumConfig:
        """`cfg` with every moving radio where its trajectory has it at `now`."""
        if not cfg.moving:
            return cfg
        assert cfg.mobility_epoch is not None
        t = now - cfg.mobility_epoch
        live = {r.motion for r in cfg.radios if r.motion}
        self._paths = {m: p for m, p in self._paths.items() if m in live}  # pinned ones are forgotten
        return replace(cfg, radios=tuple(replace(r, position=self._path(r.motion).position(t)) if r.motion else r
                                         for r in cfg.radios))

    def _path(self, motion: Motion) -> Trajectory:
        path = self._paths.get(motion)
        if path is None:
            path = self._paths[motion] = Trajectory(motion)
        return path


def moving_positions(cfg: MediumConfig) -> dict[str, list[float]]:
    """The positions of the radios that move, as `Movers.at` left them: what the medium reports."""
    return {r.name: [round(r.position[0], 3), round(r.position[1], 3)] for r in cfg.radios if r.motion}


@dataclass(frozen=True)
class Link:
    """What `rx` hears of one transmitter: the signal, and the loss at each rate."""

    rx: str
    mac: bytes
    signal_dbm: int
    loss: tuple[float, ...]
    # impairments (Impairment): seconds of delay and of jitter, and the rate cap in bits/s (0: none)
    delay_s: float = 0.0
    jitter_s: float = 0.0
    rate_bps: float = 0.0


@dataclass(frozen=True)
class Outcome:
    delivered: tuple[tuple[Link, int], ...]  # (receiver, rate index it was received at)
    acked: bool
    tries: tuple[tuple[int, int], ...]  # the retry chain as used: (rate index, attempts)
    ack_signal_dbm: int


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


@dataclass
class Airspace:
    """Every transmitter's receivers, computed once per configuration."""

    config: MediumConfig
    links: dict[bytes, tuple[Link, ...]] = field(init=False)
    by_dest: dict[bytes, dict[bytes, Link]] = field(init=False)
    # True when some link delays or rate-caps its frames: the medium's per-frame path only then
    # looks at each delivery's delay
    shaped: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        cfg = self.config
        self.links, self.by_dest = {}, {}
        self.shaped = False
        for tx in cfg.radios:
            heard = []
            if tx.name not in cfg.isolated:
                for rx in cfg.radios:
                    if rx is tx or rx.name in cfg.isolated:
                        continue
                    d = math.dist(tx.position, rx.position)
                    if not in_range(d, tx.range, rx.range):
                        continue
                    sig = signal_dbm(cfg.model, d, cfg.freq)
                    loss = loss_by_rate(sig - cfg.model.noise_dbm) if cfg.loss else NO_LOSS
                    imp = cfg.impairments.get((tx.name, rx.name))
                    if imp is None:
                        heard.append(Link(rx.name, mac_bytes(rx.mac), round(sig), loss))
                        continue
                    keep = 1.0 - imp.loss_pct / 100.0  # the impairment's loss on top of the model's
                    loss = tuple(1.0 - (1.0 - p) * keep for p in loss)
                    heard.append(Link(rx.name, mac_bytes(rx.mac), round(sig), loss, imp.delay_ms / 1000.0,
                                      imp.jitter_ms / 1000.0, imp.rate_mbps * 1e6))
                    self.shaped = self.shaped or bool(imp.delay_ms or imp.jitter_ms or imp.rate_mbps)
            self.links[mac_bytes(tx.mac)] = tuple(heard)
            self.by_dest[mac_bytes(tx.mac)] = {link.mac: link for link in heard}

    @property
    def rate_offset(self) -> int:
        # hwsim's 5 GHz band has no DSSS/CCK rates: its index 0 is 6 Mb/s, RATE_MIN_SNR_DB's 4
        return rates.offset(self.config.freq)

    def knows(self, tx: bytes) -> bool:
        return tx in self.links

    def transmit(self, tx: bytes, dest: bytes, chain: list[tuple[int, int]],
                 rand: Callable[[], float]) -> Outcome:
        """One frame from radio `tx` to `dest` (its 802.11 addr1) with the kernel's retry chain
        [(rate index, attempts), ...]. Group frames go once to everyone in range, each receiver
        losing it on its own; a unicast frame is retried along the chain until its receiver gets
        it (then it is acknowledged) or the chain runs out."""
        first = chain[0][0] if chain else 0
        off = self.rate_offset
        if dest[0] & 1 or dest not in self.links:
            # group addressed, or a unicast address that is no lab radio: no one acknowledges
            got = tuple((link, first) for link in self.links.get(tx, ())
                        if rand() >= link.loss[first + off])
            return Outcome(got, False, ((first, 1),), 0)
        link = self.by_dest.get(tx, {}).get(dest)
        tries: list[tuple[int, int]] = []
        for rate, count in chain:
            for attempt in range(1, count + 1):
                if link is not None and rand() >= link.loss[rate + off]:
                    tries.append((rate, attempt))
                    return Outcome(((link, rate),), True, tuple(tries), link.signal_dbm)
            tries.append((rate, count))
        return Outcome((), False, tuple(tries), 0)

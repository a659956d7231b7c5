"""The lab topology: a YAML file validated once, at the edge, into a pydantic model.

Every later step trusts a `Topology`; every error here names the file, the line and the field,
and nothing on the host has been touched when it is raised.
"""

from __future__ import annotations

import math
import re
from contextvars import ContextVar
from pathlib import Path
from typing import Literal, get_args

from pydantic import (BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, ValidationInfo, field_validator,
                      model_validator)
from pydantic_core import InitErrorDetails, PydanticCustomError

from meshpay.shards import MAX_SHARDS
from orchestrator.air import mobility, rates
from orchestrator.air.trace import read_movements
from orchestrator.errors import BadInputFile
from orchestrator.kernel import meshconf
from orchestrator.lab.yamldoc import DocumentError, parse_document, read_document

# Names become parts of netns, radio and file names: keep them short, plain and traversal-proof.
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,14}$")
# A lab's netns are `mpl-<lab>-<node>`: a lab name without '-' keeps one lab's prefix from
# matching another lab's namespaces (lab `a` would otherwise own lab `a-b`'s nodes).
LAB_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,14}$")
MAX_NODES = 250
MAX_LINKS = 10_000
MAX_COORD = 100_000.0
# Faster than any vehicle a mesh client is carried in; a typo (500 for 5) fails here, not mid-run.
MAX_SPEED = 100.0
MAX_MOTION_S = 3600.0
# SAE takes any byte string; keeping passwords to printable ASCII keeps them typeable and makes
# sure nothing in them can end a line of a wpa_supplicant config.
PASSWORD_RE = re.compile(r"^[\x20-\x7e]{8,63}$")
# The 802.11 mesh ID is at most 32 bytes; printable ASCII keeps bytes == characters.
MESH_ID_RE = re.compile(r"^[\x21-\x7e]{1,32}$")

# Where a node lives (orchestrator/runtime/): the names a topology, `up --runtime` and
# runtime.runtime_for accept.
RuntimeName = Literal["netns", "docker"]
RUNTIMES: tuple[str, ...] = get_args(RuntimeName)


class TopologyError(BadInputFile):
    """A topology file that cannot be used; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _password(value: str | None) -> str | None:
    if value is not None and not PASSWORD_RE.match(value):
        raise ValueError("a mesh password is 8 to 63 printable ASCII characters")
    return value


class MeshSettings(_Strict):
    id: str = "meshpay"
    freq: int = Field(default=2412, ge=2412, le=5885, description="channel centre frequency, MHz")
    # Kernel mesh parameters, passed to the mesh interface as they are (`iw dev mesh0 set mesh_param`).
    params: dict[str, int] = Field(default_factory=dict)
    # Mesh parameters authorities take on top of `params`: the authorities are known in advance,
    # so they can be HWMP roots (`mesh_hwmp_rootmode`), keeping every node's path to them fresh
    # proactively instead of one PREQ flood per client-authority pair.
    authority_params: dict[str, int] = Field(default_factory=dict)
    # `static`: every node's neighbour table is given every other node's mesh address and MAC at
    # `up` (the lab knows both), so no ARP request is ever flooded over the mesh; `arp`: the
    # kernel resolves addresses itself, each request re-broadcast by every mesh point.
    address_resolution: Literal["static", "arp"] = "static"
    # `sae`: wpa_supplicant authenticates every peer link (SAE) and protects frames (MFP, CCMP).
    security: Literal["none", "sae"] = "none"
    # The SAE password of the whole mesh; without one `up` makes a random per-lab secret.
    password: str | None = Field(default=None, repr=False)
    # Given at mesh join (nl80211, or wpa_supplicant's network block under SAE); unset keeps the
    # joiner's default: 1000 TU and DTIM 2 for the kernel's join, 100 TU for wpa_supplicant's.
    # Each beacon is a frame through the medium to every neighbour.
    beacon_interval: int | None = Field(default=None, ge=meshconf.BEACON_INTERVAL_TU[0], le=meshconf.BEACON_INTERVAL_TU[1],
                                        description="beacon interval, TU (1.024 ms)")
    dtim_period: int | None = Field(default=None, ge=meshconf.DTIM_PERIOD[0], le=meshconf.DTIM_PERIOD[1],
                                    description="beacons per DTIM")
    # Every radio sends every frame at this one legacy rate (Mb/s) instead of the rate mac80211's
    # minstrel picks (54 Mb/s on short links): `up` gives each mesh interface a tx bitrate mask of
    # that rate before it joins (kernel/mesh.py set_tx_rate says why before). A slow rate makes
    # frames long, which is what airtime needs to show hidden terminals under TCG (docs/medium.md).
    rate_mbps: float | None = Field(default=None, description="fixed legacy tx rate, Mb/s (unset: minstrel)")

    @field_validator("id")
    @classmethod
    def _mesh_id(cls, mesh_id: str) -> str:
        if not MESH_ID_RE.match(mesh_id):
            raise ValueError("a mesh id is 1 to 32 printable ASCII characters without spaces")
        return mesh_id

    def param_problems(self) -> list[tuple[tuple, str]]:
        """(loc under `mesh`, message) for each unknown or out-of-range kernel parameter: checked
        as nl80211 checks them (kernel/meshconf.py), so a bad value fails before `up` makes anything."""
        problems: list[tuple[tuple, str]] = []
        for field_name, params in (("params", self.params), ("authority_params", self.authority_params)):
            for name, value in params.items():
                if name not in meshconf.TOPOLOGY_PARAMS:
                    known = ", ".join(sorted(meshconf.TOPOLOGY_PARAMS))
                    problems.append(((field_name, name), f"unknown mesh parameter; known: {known}"))
                    continue
                try:
                    meshconf.check_param(name, value)
                except ValueError as exc:
                    problems.append(((field_name, name), f"{exc} (the kernel refuses anything else)"))
        return problems

    @field_validator("password")
    @classmethod
    def _sane_password(cls, password: str | None) -> str | None:
        return _password(password)

    @field_validator("rate_mbps")
    @classmethod
    def _rate_of_the_band(cls, rate: float | None, info: ValidationInfo) -> float | None:
        # a field validator, so the error names the rate_mbps line, not the mesh block's
        freq = info.data.get("freq")
        if rate is not None and freq is not None and rate not in rates.band_rates(freq):
            raise ValueError(f"{rate:g} Mb/s is not a legacy rate on {freq} MHz; "
                             f"use one of {', '.join(f'{r:g}' for r in rates.band_rates(freq))}")
        return rate

    @model_validator(mode="after")
    def _password_needs_sae(self) -> MeshSettings:
        if self.password is not None and self.security != "sae":
            raise ValueError("mesh.password is only used with `security: sae`")
        return self


class MediumSettings(_Strict):
    """The lab's wireless medium (orchestrator/medium/process.py): who hears whom, how loud, how lossy.

    A frame reaches only radios within range (the shorter of the two nodes' ranges, as in the
    plan); the path-loss model gives its signal there, and the SNR its chance of being lost.
    `model: none` (or `medium: none`) leaves the kernel's perfect medium, where every radio hears
    every other and range is enforced by blocking peer links instead.
    """

    model: Literal["free_space", "log_distance", "none"] = "free_space"
    tx_power_dbm: float = Field(default=20.0, ge=-10, le=40)
    noise_dbm: float = Field(default=-91.0, ge=-120, le=-40)
    # log-distance only: loss grows by 10*exponent dB per decade of distance past ref_distance_m
    exponent: float = Field(default=3.0, ge=1.5, le=6.0)
    ref_distance_m: float = Field(default=1.0, gt=0, le=1000)
    # False: no random loss at all (signal still follows the model); for deterministic tests
    loss: bool = True
    # The medium's random draws (loss) come from this seed: a lab's run repeats with it
    seed: int = Field(default=1, ge=0, lt=2**63)
    # Frames take channel time at their rate, radios defer, hidden terminals collide (docs/medium.md)
    airtime: bool = False

    @model_validator(mode="before")
    @classmethod
    def _none_shorthand(cls, data: object) -> object:
        return {"model": "none"} if data in ("none", None) else data

    @property
    def enabled(self) -> bool:
        return self.model != "none"


class Defaults(_Strict):
    range: float = Field(default=100.0, gt=0, le=MAX_COORD)
    balance: int = Field(default=1000, ge=0, le=10**15)


def _coords(pos: tuple[float, float]) -> tuple[float, float]:
    if not all(math.isfinite(c) and abs(c) <= MAX_COORD for c in pos):
        raise ValueError(f"each coordinate must be a finite number within ±{MAX_COORD:g} m")
    return pos


# Options each mobility model takes besides `model` and `seed`, its own first (error messages list them).
MODEL_OPTIONS: dict[str, tuple[str, ...]] = {
    "random_waypoint": ("pause", "area", "speed"),
    "random_walk": ("interval", "area", "speed"),
    "random_direction": ("pause", "area", "speed"),
    "gauss_markov": ("alpha", "interval", "area", "speed"),
    "group": ("follow", "radius", "interval", "area"),
    "trace": ("file", "trace_node"),
}
REQUIRED_OPTIONS = {"random_waypoint": ("area", "speed"), "random_walk": ("area", "speed"),
                    "random_direction": ("area", "speed"), "gauss_markov": ("area", "speed"),
                    "group": ("follow",), "trace": ("file",)}
# A trace's `file` is relative to the topology file's folder; parse_topology sets it while it validates.
_TOPOLOGY_DIR: ContextVar[Path] = ContextVar("topology_dir", default=Path("."))


class MobilitySpec(_Strict):
    """How a node moves during a run (orchestrator/air/mobility.py), from its `position` on, once the
    lab serves. Any role may move; clients are the usual movers. docs/medium.md lists the models."""

    model: Literal["random_waypoint", "random_walk", "random_direction", "gauss_markov", "group", "trace"]
    # [[x_min, y_min], [x_max, y_max]] in metres; the node never leaves it (group: default the leader's)
    area: tuple[tuple[float, float], tuple[float, float]] | None = None
    # [min, max] in m/s: each leg's speed is drawn uniformly from it (gauss_markov: its middle is the mean)
    speed: tuple[float, float] | None = None
    # random_waypoint, random_direction: seconds spent at each waypoint / border (default 0)
    pause: float | None = Field(default=None, ge=0, le=MAX_MOTION_S)
    # random_walk: seconds in one direction (default 5); gauss_markov: between updates (default 1);
    # group: per leg of the member's own wandering (default 5)
    interval: float | None = Field(default=None, gt=0, le=MAX_MOTION_S)
    # gauss_markov: memory, 0 (random walk) to 1 (straight line), default 0.75
    alpha: float | None = Field(default=None, ge=0, le=1)
    # group: the node whose motion is the group's reference point, and how far (m) the member
    # wanders from its place in the group (default 5)
    follow: str | None = None
    radius: float | None = Field(default=None, gt=0, le=MAX_COORD)
    # trace: a BonnMotion `.movements` file (orchestrator/air/trace.py), relative to the topology's
    # folder, and which of its nodes (its line, from 0) this node replays (default 0)
    file: str | None = None
    trace_node: int | None = Field(default=None, ge=0, le=100_000)
    # this node's own seed; default: derived from the lab's `mobility_seed` and the node's name
    seed: int | None = Field(default=None, ge=0, lt=2**63)
    # the trace's waypoints, read once while validating
    _points: tuple[mobility.Waypoint, ...] | None = PrivateAttr(default=None)

    @field_validator("area")
    @classmethod
    def _sane_area(cls, area: tuple[tuple[float, float], tuple[float, float]] | None) -> tuple | None:
        if area is None:
            return None
        lo, hi = _coords(area[0]), _coords(area[1])
        if not (lo[0] < hi[0] and lo[1] < hi[1]):
            raise ValueError("area is [[x_min, y_min], [x_max, y_max]] with each min below its max")
        return area

    @field_validator("speed")
    @classmethod
    def _sane_speed(cls, speed: tuple[float, float] | None) -> tuple[float, float] | None:
        if speed is None:
            return None
        lo, hi = speed
        if not (0 < lo <= hi <= MAX_SPEED):
            raise ValueError(f"speed is [min, max] m/s with 0 < min <= max <= {MAX_SPEED:g}")
        return speed

    @model_validator(mode="after")
    def _options_of_the_model(self) -> MobilitySpec:
        takes = MODEL_OPTIONS[self.model]
        for option in ("area", "speed", "pause", "interval", "alpha", "follow", "radius", "file", "trace_node"):
            if getattr(self, option) is not None and option not in takes:
                raise ValueError(f"{option} is not an option of {self.model}: it takes {', '.join(takes)}, seed")
        missing = [o for o in REQUIRED_OPTIONS[self.model] if getattr(self, o) is None]
        if missing:
            raise ValueError(f"{self.model} needs {' and '.join(missing)}")
        if self.model == "trace":
            assert self.file is not None
            nodes = read_movements(_TOPOLOGY_DIR.get() / self.file, max_coord=MAX_COORD, max_speed=MAX_SPEED)
            index = self.trace_node or 0
            if index >= len(nodes):
                raise ValueError(f"trace_node {index}: {self.file} has nodes 0 to {len(nodes) - 1}")
            self._points = nodes[index]
        return self

    def motion(self, seed: int, start: tuple[float, float], leader: mobility.Motion | None = None) -> mobility.Motion:
        """`leader`: for a group member, the motion of the node it follows."""
        own_seed = self.seed if self.seed is not None else seed
        model: mobility.Model
        if self.model == "trace":
            assert self._points is not None
            model = mobility.Trace(self._points)
        elif self.model == "group":
            assert leader is not None, "a group member's leader motion is needed"
            area = mobility.Area(*self.area) if self.area else leader.model.area
            model = mobility.Group(leader, area, self.radius or 5.0, self.interval or 5.0)
        else:
            assert self.area is not None and self.speed is not None
            area = mobility.Area(self.area[0], self.area[1])
            if self.model == "random_waypoint":
                model = mobility.RandomWaypoint(area, self.speed, self.pause or 0.0)
            elif self.model == "random_direction":
                model = mobility.RandomDirection(area, self.speed, self.pause or 0.0)
            elif self.model == "random_walk":
                model = mobility.RandomWalk(area, self.speed, self.interval if self.interval is not None else 5.0)
            else:
                model = mobility.GaussMarkov(area, self.speed, 0.75 if self.alpha is None else self.alpha,
                                             self.interval if self.interval is not None else 1.0)
        return mobility.Motion(model, own_seed, start)


class NodeSpec(_Strict):
    role: Literal["authority", "client"]
    position: tuple[float, float] = (0.0, 0.0)
    range: float | None = Field(default=None, gt=0, le=MAX_COORD)
    balance: int | None = Field(default=None, ge=0, le=10**15)
    weight: int = Field(default=1, ge=1, le=1000)
    # FastPay shards (meshpay/shards.py): an authority runs this many processes, one per core,
    # behind one key and one mesh address. Labs under QEMU TCG keep 1: two emulated vCPUs have
    # no core to spare for a second shard of every authority. Strict: `true` or "2" is a
    # mistake here, not a count.
    shards: int = Field(default=1, ge=1, le=MAX_SHARDS, strict=True,
                        description="FastPay shard processes of an authority")
    # This node's own SAE password, overriding mesh.password: a node given a wrong one must
    # never peer (that is what the security tests check).
    mesh_password: str | None = Field(default=None, repr=False)
    mobility: MobilitySpec | None = None

    @field_validator("mesh_password")
    @classmethod
    def _sane_password(cls, password: str | None) -> str | None:
        return _password(password)

    @field_validator("position")
    @classmethod
    def _sane_position(cls, pos: tuple[float, float]) -> tuple[float, float]:
        return _coords(pos)


class LinkSpec(_Strict):
    a: str
    b: str
    # `block` forbids peering between a and b (plink_action block), whatever their distance;
    # `allow` leaves it to range. Unsaid: block, unless the entry impairs the link.
    peering: Literal["block", "allow"] | None = None
    # Impairments the medium applies on top of its radio model (airspace.Impairment), in both
    # directions unless `direction` names one
    loss_pct: float = Field(default=0.0, ge=0, le=100)
    delay_ms: float = Field(default=0.0, ge=0, le=10_000)
    jitter_ms: float = Field(default=0.0, ge=0, le=10_000)
    rate_mbps: float = Field(default=0.0, ge=0, le=1_000)
    direction: Literal["both", "a_to_b", "b_to_a"] = "both"

    @property
    def impairs(self) -> bool:
        return bool(self.loss_pct or self.delay_ms or self.jitter_ms or self.rate_mbps)

    @property
    def blocks(self) -> bool:
        return self.peering == "block" or (self.peering is None and not self.impairs)


class Topology(_Strict):
    name: str
    mesh: MeshSettings = MeshSettings()
    medium: MediumSettings = MediumSettings()
    defaults: Defaults = Defaults()
    runtime: RuntimeName = "netns"
    # `mdns`: clients get no authority addresses and find them on the mesh (DNS-SD over mDNS).
    discovery: Literal["static", "mdns"] = "static"
    nodes: dict[str, NodeSpec]
    links: list[LinkSpec] = Field(default_factory=list, max_length=MAX_LINKS)
    # Seeds every mobile node's trajectory (with its name): the same seed, the same run.
    mobility_seed: int = Field(default=1, ge=0, lt=2**63)

    @field_validator("name")
    @classmethod
    def _lab_name(cls, name: str) -> str:
        if not LAB_NAME_RE.match(name):
            raise ValueError(f"lab name {name!r} must match {LAB_NAME_RE.pattern}")
        return name

    @field_validator("nodes")
    @classmethod
    def _node_names(cls, nodes: dict[str, NodeSpec]) -> dict[str, NodeSpec]:
        if not nodes:
            raise ValueError("a lab needs at least one node")
        if len(nodes) > MAX_NODES:
            raise ValueError(f"{len(nodes)} nodes is more than the {MAX_NODES} a lab may have")
        for name in nodes:
            if not NAME_RE.match(name):
                raise ValueError(f"node name {name!r} must match {NAME_RE.pattern}")
        return nodes

    @model_validator(mode="after")
    def _cross_checks(self) -> Topology:
        # Each problem is raised at its own path, so the message points at the line that holds it.
        problems: list[tuple[tuple, str]] = [(("mesh", *loc), msg) for loc, msg in self.mesh.param_problems()]
        if not any(n.role == "authority" for n in self.nodes.values()):
            problems.append((("nodes",), "a lab needs at least one authority"))
        for i, link in enumerate(self.links):
            for end in ("a", "b"):
                if getattr(link, end) not in self.nodes:
                    problems.append((("links", i, end), f"unknown node {getattr(link, end)!r}; nodes: "
                                     f"{', '.join(self.nodes)}"))
            if link.a == link.b:
                problems.append((("links", i, "b"), f"joins {link.a!r} to itself"))
            if link.impairs and not self.medium.enabled:
                problems.append((("links", i), f"impairs {link.a}-{link.b}, which needs the wireless medium: "
                                 "drop `medium: none`"))
        for where in ("params", "authority_params"):
            if self.discovery == "mdns" and getattr(self.mesh, where).get("mesh_fwding") == 0:
                problems.append((("mesh", where, "mesh_fwding"), "`discovery: mdns` needs a forwarding mesh "
                                 "(mDNS is multicast, relayed hop by hop): drop `mesh_fwding: 0` or use "
                                 "`discovery: static`"))
        for name, node in self.nodes.items():
            if node.mesh_password is not None and self.mesh.security != "sae":
                problems.append((("nodes", name, "mesh_password"), "only used with `mesh.security: sae`"))
            if node.role != "authority" and "shards" in node.model_fields_set:
                problems.append((("nodes", name, "shards"), "only an authority runs shards (a client is one "
                                 "process): drop `shards` from this client"))
        problems += self._mobility_problems()
        if problems:
            raise ValidationError.from_exception_data("Topology", [
                InitErrorDetails(type=PydanticCustomError("value_error", msg), loc=loc, input=None)
                for loc, msg in problems])
        return self

    def _mobility_problems(self) -> list[tuple[tuple, str]]:
        problems = []
        for name, node in self.nodes.items():
            spec = node.mobility
            if spec is None:
                continue
            if not self.medium.enabled:
                problems.append((("nodes", name, "mobility"), "a moving node needs the wireless medium, which "
                                 "computes who hears whom from positions: drop `medium: none`"))
            if spec.model == "group":
                leader = self.nodes.get(spec.follow or "")
                if leader is None or spec.follow == name:
                    problems.append((("nodes", name, "mobility", "follow"),
                                     f"{spec.follow!r} is not another node of this lab"))
                    continue
                if leader.mobility is None or leader.mobility.model == "group":
                    problems.append((("nodes", name, "mobility", "follow"),
                                     f"{spec.follow} must move by a model of its own (not group) to lead a group"))
                    continue
            if spec.model == "trace":
                motion = spec.motion(0, node.position)
                assert isinstance(motion.model, mobility.Trace)
                first = motion.model.start
                if math.dist(first, node.position) > 1e-6:
                    problems.append((("nodes", name, "position"),
                                     (f"{list(node.position)} is not where its trace starts, {list(first)}: "
                                      "a replayed node starts at its trace's first position")))
                continue
            area = self.motion_of(name).model.area  # type: ignore[union-attr]
            if not area.contains(node.position):
                problems.append((("nodes", name, "position"), f"{list(node.position)} is outside the node's "
                                 f"mobility area {[list(area.lo), list(area.hi)]}: it starts at its position"))
        return problems

    def motion_of(self, name: str) -> mobility.Motion | None:
        node = self.nodes[name]
        if node.mobility is None:
            return None
        leader = self.motion_of(node.mobility.follow) if node.mobility.model == "group" else None
        return node.mobility.motion(mobility.node_seed(self.mobility_seed, name), node.position, leader)

    def range_of(self, name: str) -> float:
        node = self.nodes[name]
        return node.range if node.range is not None else self.defaults.range

    def balance_of(self, name: str) -> int:
        node = self.nodes[name]
        if node.role != "client":
            return 0
        return node.balance if node.balance is not None else self.defaults.balance


def parse_topology(text: str, source: str = "<topology>") -> Topology:
    token = _TOPOLOGY_DIR.set(Path(source).parent if source != "<topology>" else Path("."))
    try:
        return parse_document(text, source, Topology, kind="topology", top_keys="`name` and `nodes`")
    except DocumentError as exc:
        raise TopologyError(str(exc)) from None
    finally:
        _TOPOLOGY_DIR.reset(token)


def load_topology(path: str | Path) -> Topology:
    return parse_topology(read_document(path, "topology", TopologyError), str(path))

"""A scenario: a timeline of steps played against a running lab, validated once, at the edge.

    name: relay-failure
    steps:
      - {at: 0, do: transfer, from: client1, to: client2, amount: 5}
      - {at: 5, do: fault, action: isolate, node: "@relay", from: client1, to: client2}
      - {at: 6, do: transfer, from: client1, to: client2, amount: 5, retry_until_s: 60}
      - {at: 40, do: fault, action: heal, node: "@relay"}

`@relay` is the node next to `from` on its HWMP path to `to` when the step plays; `heal @relay`
heals the relay the last `isolate @relay` took off the air. A transfer with `retry_until_s` is
tried again until it is confirmed (or that time is up).

`at` is seconds since the scenario started; a step whose predecessor overran starts late (the
player records by how much) rather than being skipped. Errors name the file, line and field, as
topology errors do, and are raised before any step has touched the lab.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrator.errors import BadInputFile
from orchestrator.lab.topology import MAX_COORD, NAME_RE
from orchestrator.lab.yamldoc import DocumentError, parse_document, read_document

MAX_STEPS = 1000
MAX_AT_S = 24 * 3600.0
RELAY = "@relay"  # in a fault step's `node`: the relay a path uses, resolved when the step plays


class ScenarioError(BadInputFile):
    """A scenario file that cannot be played; the message says where and why."""


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    at: float = Field(ge=0, le=MAX_AT_S)

    def verb(self) -> tuple[str, dict] | None:
        """The verb and its arguments this step dispatches; None for a step the player does itself."""
        raise NotImplementedError


class MoveStep(_Step):
    do: Literal["move"]
    node: str
    x: float = Field(ge=-MAX_COORD, le=MAX_COORD)
    y: float = Field(ge=-MAX_COORD, le=MAX_COORD)

    def verb(self) -> tuple[str, dict]:
        return "move", {"node": self.node, "x": self.x, "y": self.y}


class FaultStep(_Step):
    do: Literal["fault"]
    action: Literal["kill", "restart", "isolate", "heal"]  # verbs/fault.py ACTIONS; a unit test keeps them equal
    node: str
    # Only with node "@relay" and action isolate: the path (client `from` to node `to`) whose first
    # relay is isolated. Which relay HWMP picked is only known when the step plays.
    src: str | None = Field(default=None, alias="from")
    dst: str | None = Field(default=None, alias="to")

    @model_validator(mode="after")
    def _relay_fields(self) -> FaultStep:
        if self.node != RELAY:
            if self.src is not None or self.dst is not None:
                raise ValueError(f"`from` and `to` go only with node {RELAY!r} (the relay on that path)")
        elif self.action == "isolate":
            if self.src is None or self.dst is None:
                raise ValueError(f"node {RELAY!r} needs `from` and `to`: the path whose relay is isolated")
            if self.src == self.dst:
                raise ValueError(f"`from` and `to` are both {self.src}: a path needs two ends")
        elif self.action == "heal":
            if self.src is not None or self.dst is not None:
                raise ValueError(f"heal {RELAY!r} heals the relay the last `isolate {RELAY}` took off "
                                 "the air; it takes no `from` or `to`")
        else:
            raise ValueError(f"node {RELAY!r} goes with action isolate or heal, not {self.action}")
        return self

    def verb(self) -> tuple[str, dict]:
        """For node "@relay" the player puts the relay it resolved in place of the node."""
        return "fault", {"action": self.action, "node": self.node}


class TransferStep(_Step):
    do: Literal["transfer"]
    src: str = Field(alias="from")
    dst: str = Field(alias="to")
    amount: int = Field(gt=0, le=10**15)
    # Try again (a failure or an unconfirmed outcome) until confirmed, for at most this long:
    # how a scenario waits for the mesh to heal and measures how long it took.
    retry_until_s: float | None = Field(default=None, gt=0, le=MAX_AT_S)

    @model_validator(mode="after")
    def _two_clients(self) -> TransferStep:
        if self.src == self.dst:
            raise ValueError(f"a transfer from {self.src} to itself: `from` and `to` must be two clients")
        return self

    def verb(self) -> tuple[str, dict]:
        return "transfer", {"src": self.src, "dst": self.dst, "amount": self.amount}


class ImpairStep(_Step):
    """`impair` while the scenario plays (verbs/impair.py): zeros (or `clear`) lift the impairment."""

    do: Literal["impair"]
    a: str
    b: str
    loss_pct: float = Field(default=0.0, ge=0, le=100)
    delay_ms: float = Field(default=0.0, ge=0, le=10_000)
    jitter_ms: float = Field(default=0.0, ge=0, le=10_000)
    rate_mbps: float = Field(default=0.0, ge=0, le=1_000)
    direction: Literal["both", "a_to_b", "b_to_a"] = "both"
    clear: bool = False

    def verb(self) -> tuple[str, dict]:
        return "impair", {"a": self.a, "b": self.b, "loss_pct": self.loss_pct, "delay_ms": self.delay_ms,
                          "jitter_ms": self.jitter_ms, "rate_mbps": self.rate_mbps, "direction": self.direction,
                          "clear": self.clear}


class WaitStep(_Step):
    do: Literal["wait"]
    seconds: float = Field(gt=0, le=MAX_AT_S)

    def verb(self) -> None:
        return None  # the player sleeps; nothing reaches the lab


Step = Annotated[Union[MoveStep, FaultStep, TransferStep, ImpairStep, WaitStep], Field(discriminator="do")]


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    # `stop`: a failed step ends the scenario (later steps assume it worked); `continue` records it and plays on.
    on_error: Literal["continue", "stop"] = "continue"
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)

    @model_validator(mode="after")
    def _checks(self) -> Scenario:
        if not NAME_RE.match(self.name):
            raise ValueError(f"scenario name {self.name!r} must match {NAME_RE.pattern}")
        for i in range(1, len(self.steps)):
            if self.steps[i].at < self.steps[i - 1].at:
                raise ValueError(f"steps[{i}] is at {self.steps[i].at:g} s, before steps[{i - 1}] "
                                 f"({self.steps[i - 1].at:g} s): steps play in order, keep `at` non-decreasing")
        isolated = False
        for i, step in enumerate(self.steps):
            if isinstance(step, FaultStep) and step.node == RELAY:
                if step.action == "heal" and not isolated:
                    raise ValueError(f"steps[{i}] heals {RELAY!r} but no earlier step isolates {RELAY!r}")
                isolated = isolated or step.action == "isolate"
        return self


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    try:
        return parse_document(text, source, Scenario, kind="scenario", top_keys="`name` and `steps`",
                              yaml_loc=_yaml_loc)
    except DocumentError as exc:
        raise ScenarioError(str(exc)) from None


def _yaml_loc(loc: tuple) -> tuple:
    # a discriminated union puts the step kind in the path (steps.2.fault.node): the YAML has no such key
    return tuple(p for i, p in enumerate(loc)
                 if not (i == 2 and loc[0] == "steps" and p in ("move", "fault", "transfer", "impair", "wait")))


def load_scenario(path: str | Path) -> Scenario:
    return parse_scenario(read_document(path, "scenario", ScenarioError), str(path))

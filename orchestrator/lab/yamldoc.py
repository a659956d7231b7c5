"""A YAML document validated into a pydantic model, with errors that name the file, line and field.

Topologies and scenarios are read the same way: no anchors or aliases (a few lines could expand
to billions of nodes), no duplicate keys (PyYAML silently keeps the last), a size cap, and every
validation error pointed at the line that holds it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from orchestrator.errors import BadInputFile

MAX_FILE_BYTES = 1 << 20

M = TypeVar("M", bound=BaseModel)


class DocumentError(BadInputFile):
    """A document that cannot be used; the message says where and why. topology.py and
    scenario.py re-raise it as their own kind (TopologyError, ScenarioError)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[object, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise DocumentError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r} "
                                f"(first at line {seen[key] + 1})")
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _lines(node: yaml.Node, path: tuple = ()) -> dict[tuple, int]:
    """Map every path in the document (as pydantic spells `loc`) to its 1-based line."""
    out = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            out.update(_lines(value_node, path + (key_node.value,)))
            out[path + (key_node.value,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out.update(_lines(item, path + (i,)))
    return out


def _line_for(lines: dict[tuple, int], loc: tuple) -> int:
    # pydantic may point below what the YAML spelled (a default, a tuple item): walk up to a known path.
    loc = tuple(str(p) if not isinstance(p, int) else p for p in loc)
    while loc and loc not in lines:
        loc = loc[:-1]
    return lines.get(loc, 1)


def _refuse_aliases(text: str, kind: str) -> None:
    for token in yaml.scan(text, Loader=yaml.SafeLoader):
        if isinstance(token, (yaml.AliasToken, yaml.AnchorToken)):
            raise DocumentError(f"line {token.start_mark.line + 1}: YAML anchors and aliases are not "
                                f"allowed in a {kind}; write the values out")


def read_document(path: str | Path, kind: str, error: type[BadInputFile]) -> str:
    """The text of the `kind` file (topology, scenario) at `path`; `error` names the file and why
    it cannot be read."""
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise error(f"{path}: cannot read the {kind}: {exc.strerror}") from None


def parse_document(text: str, source: str, model: type[M], *, kind: str, top_keys: str,
                   yaml_loc: Callable[[tuple], tuple] = lambda loc: loc) -> M:
    """Validate `text` as `model`. `yaml_loc` maps a pydantic error location back to the YAML's
    path where the model adds levels the document does not spell (a discriminated union's tag)."""
    if len(text) > MAX_FILE_BYTES:
        raise DocumentError(f"{source}: {len(text)} characters is more than a {kind} may have "
                            f"({MAX_FILE_BYTES})")
    try:
        _refuse_aliases(text, kind)
        root = yaml.compose(text, Loader=_UniqueKeyLoader)
        if root is not None:
            _refuse_boolean_keys(root, source)
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except DocumentError as exc:
        raise DocumentError(exc.args[0] if str(exc).startswith(source) else f"{source}: {exc}") from None
    except yaml.YAMLError as exc:
        raise DocumentError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or root is None:
        raise DocumentError(f"{source}: line 1: expected a mapping with {top_keys}")
    lines = _lines(root)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = yaml_loc(tuple(err["loc"]))
            # pydantic prefixes a validator's own message with "Value error, ": ours say it all
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(problem(source, _line_for(lines, loc), loc, msg))
        raise DocumentError("\n".join(problems)) from None


def problem(source: str, line: int, loc: tuple, msg: str) -> str:
    """One problem, as every document error spells it: `file: line N: field.path: what`."""
    field = ".".join(str(p) for p in loc) or "(top level)"
    return f"{source}: line {line}: {field}: {msg}"


def line_of(text: str, loc: tuple) -> int:
    """The 1-based line of `loc` (pydantic's path spelling) in an already valid document."""
    root = yaml.compose(text, Loader=_UniqueKeyLoader)
    return _line_for(_lines(root), loc) if root is not None else 1


BOOL_TAG = "tag:yaml.org,2002:bool"


def _refuse_boolean_keys(node: yaml.Node, source: str, path: tuple = ()) -> None:
    """YAML 1.1 reads an unquoted key `on`, `no`, `yes`, `off` (any case) as a boolean, so a node
    named `no` would be the key False: say so at its line, with the fix."""
    problems = []

    def walk(n: yaml.Node, at: tuple) -> None:
        if isinstance(n, yaml.MappingNode):
            for key, value in n.value:
                if isinstance(key, yaml.ScalarNode) and key.tag == BOOL_TAG and key.style is None:
                    problems.append(problem(
                        source, key.start_mark.line + 1, at + (key.value,),
                        f"the key {key.value} reads as a YAML 1.1 boolean, not a name: quote it (\"{key.value}\")"))
                walk(value, at + (getattr(key, "value", "?"),))
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                walk(item, at + (i,))

    walk(node, path)
    if problems:
        raise DocumentError("\n".join(problems))

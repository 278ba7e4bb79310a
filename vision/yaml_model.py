"""YAML files validated by pydantic, with every error located as ``FILE:LINE: key.path``.

Shared by the store config (``appliance.config``) and the simulator's scenario files
(``lab.sim.scenario``): ruamel's round-trip loader keeps each node's line, and a
pydantic error's location is walked through that tree to the deepest key that exists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError

M = TypeVar("M", bound=BaseModel)
Loc = tuple[int | str, ...]


@dataclass(frozen=True, slots=True)
class YamlIssue:
    """One problem in a YAML file."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.path}: {self.message}"


class YamlModelError(ValueError):
    """A YAML file is unreadable or invalid; ``issues`` has every problem."""

    def __init__(self, issues: Sequence[YamlIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


class LocatedError(ValueError):
    """A validation error that knows which key below the validated model it is about."""

    def __init__(self, loc: Loc, message: str) -> None:
        super().__init__(message)
        self.loc = loc


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def _line_of(root: Any, loc: Sequence[int | str]) -> int:
    """1-based line of the deepest node of ``loc`` present in the YAML tree."""
    node, line = root, 1
    for part in loc:
        lc = getattr(node, "lc", None)
        if isinstance(node, dict) and part in node and lc is not None:
            line = lc.key(part)[0] + 1
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            if lc is not None:
                line = lc.item(part)[0] + 1
            node = node[part]
        # else: a pydantic-only loc part (a union tag) or a missing key: stay here
    return line


def _issues(
    file: str, root: Any, error: ValidationError, clean_loc: Callable[[Loc], Loc]
) -> Iterator[YamlIssue]:
    for err in error.errors(include_url=False):
        loc: Loc = tuple(err["loc"])
        message = err["msg"]
        cause = err.get("ctx", {}).get("error")
        if isinstance(cause, LocatedError):
            loc, message = loc + cause.loc, str(cause)
        loc = clean_loc(loc)
        if err["type"] == "extra_forbidden":
            message = f"unknown key {loc[-1]!r} (typo?)"
        elif err["type"] == "missing":
            message = "required key is missing"
        yield YamlIssue(file, _line_of(root, loc), ".".join(map(str, loc)) or "(top)", message)


def parse_model(
    model: type[M],
    text: str,
    file: str,
    error: type[YamlModelError],
    clean_loc: Callable[[Loc], Loc] = lambda loc: loc,
) -> M:
    """Parse YAML text and validate it as ``model``.

    Args:
        model: the pydantic model of the whole file.
        text: the YAML.
        file: the name used in messages.
        error: the error class to raise (a :class:`YamlModelError`).
        clean_loc: drops pydantic-only parts (discriminated-union tags) from a location.

    Raises:
        YamlModelError: YAML syntax or validation errors, each with its line.
    """
    try:
        root = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        # "while parsing a flow sequence" (context) points at the opening bracket;
        # the problem mark is where the parser gave up, often the next line.
        flow = str(exc.context or "").startswith("while parsing a flow")
        mark = (exc.context_mark if flow else None) or exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        message = "; ".join(str(m) for m in (exc.context, exc.problem) if m)
        raise error([YamlIssue(file, line, "(yaml)", message)]) from exc
    if not isinstance(root, dict):
        raise error([YamlIssue(file, 1, "(top)", "the file must be a YAML mapping")])
    try:
        return model.model_validate(_plain(root))
    except ValidationError as exc:
        raise error(list(_issues(file, root, exc, clean_loc))) from exc


def read_yaml_text(path: str | Path, error: type[YamlModelError]) -> str:
    """A YAML file's text; an unreadable file is an ``error`` naming it."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except OSError as exc:
        raise error([YamlIssue(str(p), 1, "(file)", exc.strerror or str(exc))]) from exc

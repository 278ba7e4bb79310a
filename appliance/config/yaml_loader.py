"""YAML files validated by pydantic, with every error located as ``FILE:LINE: key.path``.

Shared by the store config (``appliance.config``) and the simulator's scenario files
(``lab.sim.scenario``): ruamel's round-trip loader keeps each node's line, and a
pydantic error's location is walked through that tree to the deepest key that exists.

Before anything is built, the text is held to a budget (:func:`check_budget`): at most
:data:`MAX_YAML_BYTES`, nested at most :data:`MAX_YAML_DEPTH` deep, and at most
:data:`MAX_YAML_NODES` values once every alias is expanded, so an alias bomb, a file
nested 100k deep or a huge file is a located error, not a ``MemoryError`` or a
``RecursionError``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    ScalarEvent,
)
from ruamel.yaml.reader import ReaderError

M = TypeVar("M", bound=BaseModel)
Loc = tuple[int | str, ...]

#: the largest YAML file read (the biggest shipped store config is under 5 KB)
MAX_YAML_BYTES = 256 * 1024
#: the deepest nesting of mappings and sequences (a store config needs 5)
MAX_YAML_DEPTH = 50
#: the most values (scalars, mappings, sequences) once every alias is expanded
MAX_YAML_NODES = 100_000


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


def _too_large(file: str, size: int) -> YamlIssue:
    message = f"{size} bytes or more; a YAML file may have at most {MAX_YAML_BYTES}"
    return YamlIssue(file, 1, "(file)", message)


def _budget_issue(file: str, text: str) -> YamlIssue | None:
    """The first place the text goes over the depth or node budget, if it does."""
    nodes = 0
    anchored: dict[str, int] = {}  # anchor → values under it, aliases expanded
    opened: list[tuple[str | None, int]] = []  # (anchor, nodes before it) per open collection
    try:
        for event in YAML(typ="rt").parse(text):
            if isinstance(event, AliasEvent):
                nodes += anchored.get(str(event.anchor), 1)
            elif isinstance(event, ScalarEvent):
                nodes += 1
                if event.anchor is not None:
                    anchored[event.anchor] = 1
            elif isinstance(event, CollectionStartEvent):
                opened.append((event.anchor, nodes))
                nodes += 1
            elif isinstance(event, CollectionEndEvent):
                anchor, before = opened.pop()
                if anchor is not None:
                    anchored[anchor] = nodes - before
            if len(opened) > MAX_YAML_DEPTH:
                message = f"nested more than {MAX_YAML_DEPTH} levels deep"
            elif nodes > MAX_YAML_NODES:
                message = f"more than {MAX_YAML_NODES} values once aliases are expanded"
            else:
                continue
            return YamlIssue(file, event.start_mark.line + 1, "(yaml)", message)
    except YAMLError:
        return None  # a syntax error: the parse proper reports it, with its line
    return None


def check_budget(text: str, file: str, error: type[YamlModelError]) -> None:
    """Refuse YAML text that is too large, too deeply nested, or an alias bomb.

    The check walks the parser's events (no tree is built, nothing recurses) and stops
    at the first event over the budget, so its cost is bounded by the budget itself.

    Args:
        text: the YAML.
        file: the name used in messages.
        error: the error class to raise.

    Raises:
        YamlModelError: over :data:`MAX_YAML_BYTES`, :data:`MAX_YAML_DEPTH` or
            :data:`MAX_YAML_NODES`; the issue names the line where it went over.
    """
    size = len(text) if len(text) > MAX_YAML_BYTES else len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_YAML_BYTES:
        raise error([_too_large(file, size)])
    issue = _budget_issue(file, text)
    if issue is not None:
        raise error([issue])


def _yaml_issue(file: str, text: str, exc: YAMLError) -> YamlIssue:
    """A YAML error as an issue on its line."""
    if isinstance(exc, MarkedYAMLError):
        # "while parsing a flow sequence" (context) points at the opening bracket;
        # the problem mark is where the parser gave up, often the next line.
        flow = str(exc.context or "").startswith("while parsing a flow")
        mark = (exc.context_mark if flow else None) or exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        message = "; ".join(str(m) for m in (exc.context, exc.problem) if m)
        return YamlIssue(file, line, "(yaml)", message)
    if isinstance(exc, ReaderError):  # a character YAML does not allow (a control code)
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        return YamlIssue(file, line, "(yaml)", f"character #x{exc.character:04x} is not allowed")
    return YamlIssue(file, 1, "(yaml)", str(exc))


def parse_model(
    model: type[M],
    text: str,
    file: str,
    error: type[YamlModelError],
    clean_loc: Callable[[Loc], Loc] = lambda loc: loc,
    context: dict[str, Any] | None = None,
) -> M:
    """Parse YAML text and validate it as ``model``.

    Args:
        model: the pydantic model of the whole file.
        text: the YAML.
        file: the name used in messages.
        error: the error class to raise (a :class:`YamlModelError`).
        clean_loc: drops pydantic-only parts (discriminated-union tags) from a location.
        context: passed to the model's validators (pydantic's validation context).

    Raises:
        YamlModelError: YAML syntax or validation errors, each with its line; text over
            the budget of :func:`check_budget`.
    """
    check_budget(text, file, error)
    try:
        root = YAML(typ="rt").load(text)
    except YAMLError as exc:
        raise error([_yaml_issue(file, text, exc)]) from exc
    if not isinstance(root, dict):
        raise error([YamlIssue(file, 1, "(top)", "the file must be a YAML mapping")])
    try:
        return model.model_validate(_plain(root), context=context)
    except ValidationError as exc:
        raise error(list(_issues(file, root, exc, clean_loc))) from exc


def read_yaml_text(path: str | Path, error: type[YamlModelError]) -> str:
    """A YAML file's text (UTF-8, line ends read as in text mode), at most :data:`MAX_YAML_BYTES`.

    Raises:
        YamlModelError: (``error``) the file is unreadable, too large, or not UTF-8
            (the issue names the line of the first bad byte).
    """
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = f.read(MAX_YAML_BYTES + 1)
    except OSError as exc:
        raise error([YamlIssue(str(p), 1, "(file)", exc.strerror or str(exc))]) from exc
    if len(data) > MAX_YAML_BYTES:
        raise error([_too_large(str(p), len(data))])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - data.rfind(b"\n", 0, exc.start)
        message = f"byte 0x{data[exc.start]:02x} at column {column} is not UTF-8 (save as UTF-8)"
        raise error([YamlIssue(str(p), line, "(file)", message)]) from exc
    return text.replace("\r\n", "\n").replace("\r", "\n")  # as text mode reads it

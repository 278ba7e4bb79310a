"""The README stays true: its commands exist and every command and setting is documented."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from appliance.cli import build_parser
from appliance.config import BoxConfig

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


def test_readme_opens_with_the_two_commands() -> None:
    first_block = re.search(r"```(?:sh|bash)?\n(.*?)```", README, re.S)
    assert first_block is not None
    assert first_block.group(1).split("\n")[:2] == ["make demo", "make test"]


def test_makefile_has_the_readme_targets_and_ci_runs_them() -> None:
    makefile = (REPO / "Makefile").read_text()
    for target in ("demo", "test", "check", "bench", "lint", "assets"):
        assert re.search(rf"^{target}:", makefile, re.M), target
        assert f"make {target}" in README, target
    steps = [
        line.strip()
        for line in (REPO / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "echo"))
    ]
    # the newcomer's path first, in the venv only `make demo` has set up; then the rest
    order = [next(i for i, s in enumerate(steps) if s.startswith(cmd)) for cmd in
             ("scripts/check_demo.sh", "make lint", "make test")]  # fmt: skip
    assert order == sorted(order), steps
    assert "make demo DEMO_ARGS=" in (REPO / "scripts" / "check_demo.sh").read_text()


def _cli_commands() -> dict[str, set[str]]:
    """Every ``footfall`` command (``footfall db backup``) with its long options."""
    commands: dict[str, set[str]] = {}

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            commands[name] = {
                o for a in parser._actions for o in a.option_strings if o.startswith("--")
            } - {"--help"}
        for sub in subs:
            for child, sub_parser in sub.choices.items():
                walk(sub_parser, f"{name} {child}")

    walk(build_parser(), "footfall")
    return commands


def _readme_command_rows() -> dict[str, str]:
    """The README's command table: each row's command (``footfall db backup``) and its text."""
    rows: dict[str, str] = {}
    for line in README.splitlines():
        match = re.match(r"\| `(footfall [^`]*)` \|(.*)\|$", line)
        if match:
            words = re.match(r"footfall(?: [a-z][a-z-]*)*", match.group(1))
            assert words is not None
            rows[words.group(0)] = match.group(1) + match.group(2)
    return rows


def test_every_cli_command_and_option_is_in_the_readme_table() -> None:
    commands, rows = _cli_commands(), _readme_command_rows()
    assert len(commands) >= 5
    missing = sorted(set(commands) - set(rows))
    assert missing == [], f"commands missing from the README's command table: {missing}"
    undocumented = {
        name: sorted(o for o in options if not re.search(rf"{o}\b(?!-)", rows[name]))
        for name, options in commands.items()
    }
    undocumented = {name: opts for name, opts in undocumented.items() if opts}
    assert undocumented == {}, f"options missing from their README row: {undocumented}"


def test_the_readme_table_names_only_commands_and_options_that_exist() -> None:
    commands, rows = _cli_commands(), _readme_command_rows()
    unknown = sorted(set(rows) - set(commands))
    assert unknown == [], f"the README names commands that do not exist: {unknown}"
    stale = {
        name: sorted(set(re.findall(r"--[a-z][a-z0-9-]*", text)) - commands[name])
        for name, text in rows.items()
    }
    stale = {name: opts for name, opts in stale.items() if opts}
    assert stale == {}, f"the README names options that do not exist: {stale}"


def test_every_config_section_is_documented() -> None:
    missing = [key for key in BoxConfig.model_fields if f"`{key}`" not in README]
    assert missing == [], f"undocumented config sections: {missing}"


ARCHITECTURE = (REPO / "docs" / "architecture.md").read_text()


def test_the_architecture_map_names_every_box_room_and_every_contract() -> None:
    import tomllib

    rooms = {f"{p.parent.relative_to(REPO)}/" for p in (REPO / "appliance").glob("*/__init__.py")}
    rooms |= {"vision/", "local_db/", "webui/", "lab/"}
    missing = sorted(r for r in rooms if f"`{r}`" not in ARCHITECTURE)
    assert missing == [], f"rooms missing from docs/architecture.md: {missing}"
    named = re.findall(r"^\| `([a-z_/]+/)`", ARCHITECTURE, re.M)
    gone = sorted(n for n in named if not (REPO / n).is_dir())
    assert gone == [], f"docs/architecture.md names folders that do not exist: {gone}"
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    contracts = [c["name"] for c in config["tool"]["importlinter"]["contracts"]]
    assert len(contracts) >= 5
    unlisted = [c for c in contracts if f"- {c}\n" not in ARCHITECTURE]
    assert unlisted == [], f"contracts missing from docs/architecture.md: {unlisted}"
    assert "docs/architecture.md" in README

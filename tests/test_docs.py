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
    for target in ("demo", "test", "bench", "lint", "assets"):
        assert re.search(rf"^{target}:", makefile, re.M), target
        assert f"make {target}" in README, target
    ci = (REPO / ".ci" / "run").read_text()
    assert "make lint" in ci and "make test" in ci


def test_every_cli_command_is_documented() -> None:
    parser = build_parser()
    commands: list[str] = []
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name, sub in subparsers[0].choices.items():
        nested = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            commands += [f"footfall {name} {n}" for n in nested[0].choices]
        else:
            commands.append(f"footfall {name}")
    assert len(commands) >= 5
    missing = [c for c in commands if c not in README]
    assert missing == [], f"undocumented commands: {missing}"


def test_every_config_section_is_documented() -> None:
    missing = [key for key in BoxConfig.model_fields if f"`{key}`" not in README]
    assert missing == [], f"undocumented config sections: {missing}"

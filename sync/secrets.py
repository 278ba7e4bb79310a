"""The store's signing secrets on the box: from an environment variable or a file.

A secret is the ``whsec_…`` string ``footfall hub store add`` (or ``rotate-secret``)
printed. While a secret is rotated the box may hold both: a file has one per line
(``#`` comments and blank lines skipped), an environment variable several separated
by spaces; every request is signed with each. No message here quotes a secret.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from wire.errors import WireError
from wire.signing import secret_key


class SecretError(ValueError):
    """The secrets cannot be read or are malformed; the message names the source, not the value."""


def _checked(values: list[str], source: str) -> list[str]:
    if not values:
        raise SecretError(f"{source} holds no secret")
    for i, value in enumerate(values, 1):
        try:
            secret_key(value)
        except WireError as exc:
            raise SecretError(f"{source}: secret {i} is malformed ({exc.reason})") from None
    return values


def load_secrets(
    secret_file: Path | None = None,
    secret_env: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """The store's secrets, newest first as given.

    Args:
        secret_file: A file with one secret a line.
        secret_env: An environment variable with the secrets (space-separated).
        environ: The environment (default: the process's).

    Returns:
        The secrets.

    Raises:
        SecretError: Neither or both sources given, the variable unset, the file
            unreadable, or a secret that is not ``whsec_`` + base64.
    """
    if secret_env is not None and secret_file is None:
        text = (os.environ if environ is None else environ).get(secret_env, "")
        if not text.strip():
            raise SecretError(f"${secret_env} is not set")
        return _checked(text.split(), f"${secret_env}")
    if secret_file is None or secret_env is not None:
        raise SecretError("exactly one of secret_file and secret_env is needed")
    try:
        text = secret_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretError(f"{secret_file}: cannot read it: {type(exc).__name__}") from None
    lines = [line.strip() for line in text.splitlines()]
    return _checked([line for line in lines if line and not line.startswith("#")], str(secret_file))

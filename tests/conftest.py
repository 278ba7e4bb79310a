"""Shared fixtures: the demo video, the example config, the bundled model."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.config import BoxConfig, load_config
from vision.assets import AssetError, demo_video

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_CONFIG = REPO / "examples" / "vtest.yaml"
# the hub's fixtures: a PostgreSQL server, hub databases and processes
pytest_plugins = ["tests.hub_support"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests mark themselves by the fixtures they use (out of ``make check``).

    ``vtest`` (the real video) makes a test ``slow``; ``sim`` (a store simulated by
    JuPedSim, ``tests/test_webui_pages.py``) makes it ``sim``.
    """
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "vtest" in names:
            item.add_marker(pytest.mark.slow)
        if "sim" in names:
            item.add_marker(pytest.mark.sim)


@pytest.fixture(scope="session")
def vtest() -> Path:
    """vtest.avi from the asset cache (``make assets`` fetches it)."""
    try:
        return demo_video()
    except AssetError as exc:
        pytest.fail(f"{exc}; `make test` fetches it, a bare pytest run must too")


@pytest.fixture(scope="session")
def example_config() -> BoxConfig:
    """The shipped demo config."""
    return load_config(EXAMPLE_CONFIG)


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``predicate`` until it is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    """A dashboard on a copy of the simulated supermarket's YAML (a module may override it)."""
    from tests.webui_support import make_app, store_copy

    return make_app(tmp_path, store_copy(tmp_path))


@pytest.fixture
def installer(app: Flask) -> FlaskClient:
    """A test client signed in as the installer on ``app``."""
    from tests.webui_support import sign_in

    client = app.test_client()
    assert sign_in(client, "installer") == 302
    return client

"""The store dashboard (Flask + htmx). Reads aggregates only; never sees a frame."""

from webui.app import create_app

__all__ = ["create_app"]

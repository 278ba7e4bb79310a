"""The store dashboard (Flask + htmx). Reads aggregates only; never sees a frame."""

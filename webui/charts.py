"""Chart data for ``static/charts.js``: JSON in ``<script type="application/json">`` blocks.

A chart is x (UTC seconds of each period's start), one or more series (None is a
gap, never a zero) and each x's coverage status, which ``charts.js`` draws as a
grey (partial) or hatched (missing) band behind the series. The page renders it
with ``{{ chart | tojson }}``, which escapes ``<`` so the block cannot be closed early.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

PALETTE = ("#1f6feb", "#c2410c", "#2e7d32", "#7b1fa2", "#00838f", "#ad1457", "#5d4037", "#455a64")


def clean(values: Iterable[Any], digits: int = 2) -> list[float | None]:
    """Floats rounded to ``digits``; NaN and None become None (a gap)."""
    out: list[float | None] = []
    for v in values:
        f = None if v is None else float(v)
        out.append(None if f is None or math.isnan(f) else round(f, digits))
    return out


def series(label: str, values: Iterable[Any], index: int, *, dash: bool = False) -> dict[str, Any]:
    """One series, coloured by its position."""
    return {
        "label": label,
        "values": clean(values),
        "color": PALETTE[index % len(PALETTE)],
        "dash": dash,
    }


def chart(
    chart_id: str,
    title: str,
    x_ms: Sequence[int],
    lines: list[dict[str, Any]],
    status: Sequence[str],
    tz: str,
    y_label: str,
) -> dict[str, Any]:
    """A chart block's JSON object (see module docs)."""
    return {
        "id": chart_id,
        "title": title,
        "tz": tz,
        "x": [int(x) // 1000 for x in x_ms],
        "series": lines,
        "status": list(status),
        "y": y_label,
    }


def align(values: pd.Series, keys: pd.Index, status: pd.Series, fill: float | None) -> list[Any]:
    """``values`` on ``keys``: a key with data but no row gets ``fill``; a missing key None.

    Args:
        values: by key.
        keys: the x of the chart.
        status: each key's coverage status (see :mod:`appliance.analytics.coverage`).
        fill: the value of a seen key without a row (0 for counts, None for means).
    """
    v = values.reindex(keys).astype(float)
    seen = status.reindex(keys).isin(["complete", "partial"]).to_numpy()
    out: list[Any] = []
    for x, ok in zip(v.tolist(), seen.tolist(), strict=True):
        if not ok:
            out.append(None)
        elif math.isnan(x):
            out.append(fill)
        else:
            out.append(x)
    return out

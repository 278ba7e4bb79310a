"""`footfall bench hub --json` runs end to end with tiny sizes, on both back ends.

Three stores send a day of 5-minute buckets through a real hub process, two days are
loaded before it, and every page answers; the JSON says so with the keys the docs quote.
"""

from __future__ import annotations

import json

import pytest

from appliance.cli import main
from lab.bench.hub import PAGES, ROWS_PER_BUCKET


def test_a_tiny_hub_benchmark_ingests_every_row_and_times_every_page(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["bench", "hub", "--stores", "3", "--days", "1", "--history-days", "2",
                 "--repeat", "1", "--json"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    result = json.loads(out)
    sent = 3 * 288 * ROWS_PER_BUCKET
    for backend in ("postgresql", "sqlite"):
        ingest = result["ingest"][backend]
        assert ingest["rows"] == ingest["stored_rows"] == sent
        assert ingest["rows_per_s"] > 0 and ingest["batches"] == 3
        pages = result["pages"][backend]
        assert pages["load"]["rows"]["ledger_days"] == 3 * 2
        assert pages["load"]["rows"]["ledger_hours"] > 0
        timed = {(p["role"], p["page"]) for p in pages["pages"]}
        assert timed == {("admin", n) for n, _, _ in PAGES} | {
            ("manager", n) for n, _, admin in PAGES if not admin
        }
        assert all(p["max_ms"] >= p["mean_ms"] > 0 for p in pages["pages"])
    copied = result["ingest"]["postgresql"]["copy"]
    assert copied["rows"] == sent and result["ingest"]["postgresql"]["ratio_vs_copy"] > 0
    assert {"history", "goals", "load_1min", "cores"} <= result.keys()


def test_a_bad_size_is_refused_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "hub", "--stores", "0"]) == 2
    assert "'0' is not a whole number of at least 1" in capsys.readouterr().err

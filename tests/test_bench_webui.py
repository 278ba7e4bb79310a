"""`footfall bench webui` runs: every page it times answers 200 to a signed-in manager.

It broke once unnoticed (its account's password stopped passing the account rules), so a
single-request run of the real benchmark is part of `make test`.
"""

from __future__ import annotations

import pytest

from lab.bench.webui import PAGES, bench_webui


@pytest.mark.slow
def test_the_dashboard_benchmark_times_every_page() -> None:
    result = bench_webui(repeat=1)
    assert [p["page"] for p in result["pages"]] == [name for name, _url in PAGES]
    assert all(p["full_ms"] > 0 and p["fragment_kb"] > 0 for p in result["pages"])
    assert result["rows"]["agg_footfall"] > 0

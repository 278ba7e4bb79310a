"""Alert summaries per bucket (``agg_alerts``): raised counts and active seconds, exact."""

from __future__ import annotations

from appliance.analytics.alert_summary import alert_summaries
from local_db.alert_log import AlertRecord

B = 300_000
T0 = 1_717_405_200_000  # a bucket boundary


def _alert(
    n: int, raised: int, cleared: int | None, rule: str = "queue", target: str = "till"
) -> AlertRecord:
    return AlertRecord(n, "s", rule, "queue_length", target, "warning", raised, cleared, 4.0,
                       None, None, "queue at till is 4")  # fmt: skip


def _rows(
    alerts: list[AlertRecord], t0: int = T0, t1: int = T0 + 3 * B
) -> list[tuple[int, str, str, int, float]]:
    df = alert_summaries(alerts, "s", t0, t1, B)
    return sorted(
        (
            (int(r.bucket_ms) - T0) // B,
            str(r.rule_id),
            str(r.target),
            int(r.raised),
            round(float(r.active_s), 3),
        )
        for r in df.itertuples()
    )


def test_an_alert_over_a_bucket_boundary_is_split_and_raised_once() -> None:
    assert _rows([_alert(1, T0 + 60_000, T0 + 7 * 60_000)]) == [
        (0, "queue", "till", 1, 240.0),
        (1, "queue", "till", 0, 120.0),
    ]


def test_an_alert_still_active_counts_to_the_end_of_the_range() -> None:
    assert _rows([_alert(1, T0 + 2 * B + 30_000, None)]) == [(2, "queue", "till", 1, 270.0)]


def test_an_alert_raised_before_the_range_is_active_but_not_raised_in_it() -> None:
    rows = _rows([_alert(1, T0 - 90_000, T0 + 30_000)], t0=T0, t1=T0 + B)
    assert rows == [(0, "queue", "till", 0, 30.0)]


def test_two_alerts_of_a_rule_in_one_bucket_add_up_per_target() -> None:
    alerts = [
        _alert(1, T0 + 10_000, T0 + 20_000),
        _alert(2, T0 + 100_000, T0 + 130_000),
        _alert(3, T0 + 100_000, T0 + 101_500, target=""),
        _alert(4, T0 + 5_000, T0 + 6_000, rule="density", target="floor"),
    ]
    assert _rows(alerts) == [
        (0, "density", "floor", 1, 1.0),
        (0, "queue", "", 1, 1.5),
        (0, "queue", "till", 2, 40.0),
    ]


def test_no_alert_gives_no_row_with_the_table_columns() -> None:
    df = alert_summaries([], "s", T0, T0 + B, B)
    assert df.empty and list(df.columns) == [
        "store_id", "bucket_ms", "rule_id", "target", "kind", "severity", "raised", "active_s",
    ]  # fmt: skip

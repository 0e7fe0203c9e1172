"""The monitoring tables: what `propensity monitor` writes, on DuckDB or PostgreSQL.

Written through the scorer's sink (`serving.sink._Db`), in the SQL subset both speak.
Each monitored run's rows replace any earlier rows of the same run (re-monitoring a run
never duplicates); `run_performance` rows are keyed by the run they measure.

- monitoring_features: one row per run, model, segment and feature the model reads: PSI
  against the reference profile, missing shares, share of categorical levels never seen;
  segment "all" for every customer, or one level of a categorical input.
- monitoring_predictions: one row per run and model: score PSI, means, the score
  distribution of run and reference on the reference's bins (JSON, for charts), the
  attribution shift, and whether any alert of that model fired.
- monitoring_attributions: one row per run, model and feature: mean |contribution| of the
  run (accumulated by the scorer while it explained) against the reference, each as a
  share of the model's total, the rank of each, and the mean signed contributions.
- run_performance: one row per run, model, source and segment. source 'realised' (labels
  from the horizon after the run, once elapsed), 'estimated' (confidence-based, from
  the scores alone) or 'card' (the model card's out-of-time numbers of that version);
  segment 'all' or an RFMW segment of customer_segments.
- monitoring_checks: the run's alert lines as the command printed them, and its data
  checks (customers gained, lost and kept since the previous run; the rejected share of
  each table's latest import).
"""

from __future__ import annotations

import pandas as pd

from serving import sink

FEATURES = "monitoring_features"
PREDICTIONS = "monitoring_predictions"
ATTRIBUTIONS = "monitoring_attributions"
PERFORMANCE = "run_performance"
CHECKS = "monitoring_checks"
ALL_SEGMENTS = "all"  # run_performance.segment of the whole run

_RUN = [("run_id", "varchar not null"), ("attempt", "integer not null"), ("as_of", "date not null"),
        ("model", "varchar not null"), ("version", "varchar")]

COLUMNS: dict[str, list[tuple[str, str]]] = {
    FEATURES: [
        # segment: "all" (every customer of the run) or one level of a categorical input,
        # "needs_orientation=price"; rows: the run's customers there, reference_rows the reference's
        *_RUN, ("segment", "varchar not null"), ("feature", "varchar not null"), ("kind", "varchar"),
        ("psi", "double precision"), ("rows", "bigint"), ("reference_rows", "bigint"),
        ("missing_share", "double precision"), ("reference_missing_share", "double precision"),
        ("new_level_share", "double precision"), ("absent", "boolean"), ("alert", "boolean"),
        ("monitored_at", "timestamp"),
    ],
    PREDICTIONS: [
        *_RUN, ("rows", "bigint"), ("psi", "double precision"), ("mean_score", "double precision"),
        ("reference_mean_score", "double precision"),
        # {"labels": [...], "reference": [...], "current": [...]}: shares per reference score bin
        ("score_bins", "varchar"),
        # total variation distance between the run's and the reference's attribution shares
        ("attribution_shift", "double precision"),
        # sum of |mean signed contribution - the reference's| over the reference's total mean |SHAP|
        ("direction_shift", "double precision"),
        ("features_alerted", "integer"), ("alert", "boolean"), ("note", "varchar"), ("monitored_at", "timestamp"),
    ],
    ATTRIBUTIONS: [
        *_RUN, ("feature", "varchar not null"), ("mean_abs_contribution", "double precision"),
        ("reference_mean_abs_contribution", "double precision"), ("share", "double precision"),
        ("reference_share", "double precision"), ("rank", "integer"), ("reference_rank", "integer"),
        ("mean_contribution", "double precision"), ("reference_mean_contribution", "double precision"),
        ("scale", "varchar"), ("monitored_at", "timestamp"),
    ],
    PERFORMANCE: [
        *_RUN, ("source", "varchar not null"), ("segment", "varchar not null"), ("horizon_end", "date"),
        ("customers", "bigint"), ("positives", "double precision"), ("mean_score", "double precision"),
        ("mean_actual", "double precision"), ("auc", "double precision"), ("pr_auc", "double precision"),
        ("ece", "double precision"), ("gini", "double precision"), ("computed_at", "timestamp"),
    ],
    CHECKS: [
        ("run_id", "varchar not null"), ("attempt", "integer not null"), ("as_of", "date not null"),
        ("position", "integer"),  # the order the command printed them in
        # "alert" (one row per alert line of `propensity monitor`, in its words), "customers_gained",
        # "customers_lost", "customers_kept" (against the previous published run, its id in subject),
        # "rejected_share" (the latest import of the table in subject)
        ("check_name", "varchar not null"), ("model", "varchar"), ("subject", "varchar"), ("value", "double precision"),
        ("message", "varchar"), ("alert", "boolean"), ("monitored_at", "timestamp"),
    ],
}
TABLES = tuple(COLUMNS)


def columns(name: str) -> list[str]:
    """Column names of a monitoring table, in order."""
    return [c for c, _ in COLUMNS[name]]


def ensure(db: sink._Db) -> None:
    """Create the monitoring tables if missing (later columns are added to existing tables)."""
    sink.create_tables(db, COLUMNS)


def _plain(value: object) -> object:
    """A cell as the drivers take it: None for missing, Python scalars, dates and datetimes."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value.item() if hasattr(value, "item") else value


def replace_rows(db: sink._Db, name: str, run_id: str, frame: pd.DataFrame, batch: int = 200) -> None:
    """Inside a transaction: `run_id`'s rows of table `name` become `frame`'s (columns by name).

    Rows go in as parameterised statements, not bulk appends: a PostgreSQL transaction
    of the sink cannot mix the two, and monitoring writes hundreds of rows, not millions.
    """
    db.execute(f"delete from {name} where run_id = ?", [run_id])
    cols = columns(name)
    names = ", ".join(f'"{c}"' for c in cols)
    one = "(" + ", ".join("?" for _ in cols) + ")"
    rows = [[_plain(v) for v in r] for r in frame[cols].itertuples(index=False, name=None)]
    for start in range(0, len(rows), batch):
        part = rows[start:start + batch]
        db.execute(f"insert into {name} ({names}) values " + ", ".join(one for _ in part),
                   [v for r in part for v in r])

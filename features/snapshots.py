"""Assemble the feature frame as of a cutoff, and stack several cutoffs for training.

One row per customer with at least one transaction line before the as-of date. The SQL
steps come from `rfmw`, `needs`, `attributes`, `segments` and `labels`; this module only
puts them in order, supplies empty stand-ins for optional tables a warehouse lacks,
and runs them on DuckDB.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from features.attributes import attribute_columns, attributes_sql, feature_name
from features.labels import label_joins, label_select, labels_ctes
from features.load import Warehouse, WarehouseError
from features.needs import needs_count_columns, needs_ctes
from features.rfmw import rfmw_ctes
from features.segments import segments_sql
from features.windows import Cutoff, snapshot_cutoffs
from propensity.config import FeaturesConfig

# Stand-ins with the canonical columns, used when an optional table is absent.
_EMPTY = {
    "needs_evaluations": (
        "select null::varchar as customer_id, null::timestamp as evaluated_at, "
        "null::varchar as need_level, null::varchar as dimension, null::bigint as urgency, "
        "null::bigint as importance, null::bigint as solution_fit, null::varchar as orientation, "
        "null::varchar as style, null::boolean as complaint where false"
    ),
    "contacts": (
        "select null::varchar as campaign_id, null::varchar as customer_id, "
        "null::timestamp as contacted_at, null::varchar as \"group\", "
        "null::boolean as responded where false"
    ),
    "customers": "select null::varchar as customer_id where false",
}

SEGMENT_COLUMNS = (
    "r_score", "f_score", "m_score", "w_score",
    "rfmw_segment", "value_tier", "loyalty_tier", "activity", "risk_tier",
)
LABEL_COLUMNS = ("label_churn", "label_value", "label_purchases", "label_contacted", "label_response")


def data_span(warehouse: Warehouse) -> tuple[date, date]:
    """(date of the first transaction, the first date after the last one): the data's span, end exclusive."""
    if not warehouse.has("transactions"):
        raise WarehouseError("the warehouse has no transactions table; import data first")
    first, last = warehouse.duck().execute("select min(ts), max(ts) from transactions").fetchall()[0]
    if last is None:
        raise WarehouseError("the transactions table is empty")
    return first.date(), last.date() + timedelta(days=1)


def data_end(warehouse: Warehouse) -> date:
    """The first date after the last transaction (the exclusive end of the data)."""
    return data_span(warehouse)[1]


class CutoffError(ValueError):
    """The data's span cannot hold the configured training cutoffs; the message names the setting."""


def training_cutoffs(warehouse: Warehouse, cfg: FeaturesConfig, least: int = 2, purge: bool = True) -> list[date]:
    """The snapshot schedule cut to the data's span: only cutoffs with `min_history_days` of data.

    With `purge` (training), cutoffs whose labels overlap the latest one's are left out
    (`features.windows.snapshot_cutoffs`).

    Raises:
        CutoffError: fewer than `least` cutoffs fit (one to train on, one out of time); the
            message says which [features] settings would fit the data.
    """
    start, end = data_span(warehouse)
    cutoffs = snapshot_cutoffs(end, cfg.horizon_days, cfg.snapshot_step_days, cfg.snapshot_count,
                               data_start=start, min_history_days=cfg.min_history_days, purge=purge)
    if len(cutoffs) >= least:
        return cutoffs
    span = (end - start).days
    step = cfg.snapshot_step_days
    # the training cutoff nearest the latest is a whole number of steps before it, and (purged)
    # at least a horizon before it
    first_gap = -(-cfg.horizon_days // step) * step if purge else step
    needed = cfg.min_history_days + cfg.horizon_days + (first_gap + (least - 2) * step if least > 1 else 0)
    fits = (span - cfg.min_history_days) // least  # horizon = step = this would fit
    hint = (f"set [features] horizon_days and snapshot_step_days to {fits} or less (or lower min_history_days)"
            if fits >= 7 else "import a longer history")
    gap_text = (f" + {first_gap} days from the latest cutoff back to the one before it (snapshot_step_days {step}, "
                f"at least a horizon when shorter)" if first_gap != step else f" + snapshot_step_days {step}")
    raise CutoffError(
        f"the data spans {span} days ({start}..{end - timedelta(days=1)}) but {least} training cutoff{'s need' if least > 1 else ' needs'} "
        f"{needed} (min_history_days {cfg.min_history_days} + horizon_days {cfg.horizon_days}"
        + (gap_text if least > 1 else "")
        + (f" + {least - 2} x snapshot_step_days" if least > 2 else "") + f"); {hint}"
    )


def check_as_of(warehouse: Warehouse, as_of: date, horizon_days: int, option: str = "--as-of") -> None:
    """Refuse an as-of date the data cannot speak for: before its first day, or more than a horizon after its end.

    Features as of a date long after the last transaction describe customers as they
    were then, aged by the gap: every score would be extrapolation.

    Raises:
        CutoffError: one line naming the data's span and the flag that overrides the check.
    """
    start, end = data_span(warehouse)
    last = end - timedelta(days=1)
    if as_of <= start:
        raise CutoffError(f"{option} {as_of} is not after the first transaction ({start}): no customer has "
                          "history then; choose a later date (or --any-date to override)")
    if as_of > end + timedelta(days=horizon_days):
        raise CutoffError(f"{option} {as_of} is {(as_of - last).days} days after the last transaction ({last}), "
                          f"more than the {horizon_days}-day horizon: scores would be extrapolation; choose a "
                          f"date up to {end + timedelta(days=horizon_days)}, import newer data, "
                          "or pass --any-date to override")


def _standins(warehouse: Warehouse) -> list[tuple[str, str]]:
    have = set(warehouse.tables())
    if "transactions" not in have:
        raise WarehouseError("the warehouse has no transactions table; import data first")
    return [(name, sql) for name, sql in _EMPTY.items() if name not in have]


def features_sql(
    cfg: FeaturesConfig, customer_columns: list[str], with_labels: bool, standins: list[tuple[str, str]]
) -> str:
    """The whole as-of query, parameterised by $as_of and $horizon_end."""
    steps: list[tuple[str, str]] = list(standins)
    steps += rfmw_ctes(cfg)
    steps += needs_ctes(cfg)
    steps.append(("attrs", attributes_sql(customer_columns)))
    counts = needs_count_columns(cfg)
    attr_names = [feature_name(c) for c in attribute_columns(customer_columns)]
    base = (
        "select r.*, "
        + "".join(f"coalesce(n.{c}, 0) as {c}, " for c in counts)
        + "n.* exclude (customer_id, " + ", ".join(counts) + ")"
        + "".join(f", a.{c}" for c in attr_names)
        + " from rfmw r left join needs n using (customer_id) left join attrs a using (customer_id)"
    )
    steps.append(("base", base))
    steps.append((
        "segmented",
        f"select * exclude (r, f, m, w), r as r_score, f as f_score, m as m_score, w as w_score "
        f"from ({segments_sql(cfg.frequency_window_days)})",
    ))
    final = "select s.*"
    if with_labels:
        steps += labels_ctes()
        final += ", " + label_select() + " from segmented s" + label_joins("s")
    else:
        final += " from segmented s"
    final += " order by s.customer_id"
    return "with " + ",\n".join(f"{name} as ({sql})" for name, sql in steps) + "\n" + final


def _query(warehouse: Warehouse, as_of: date, cfg: FeaturesConfig, with_labels: bool) -> tuple[str, dict]:
    standins = _standins(warehouse)
    customer_columns = (
        list(warehouse.query("select * from customers limit 0").columns)
        if warehouse.has("customers")
        else ["customer_id"]
    )
    sql = features_sql(cfg, customer_columns, with_labels, standins)
    params = Cutoff(as_of, cfg.horizon_days).params()
    if not with_labels:
        params.pop("horizon_end")  # DuckDB refuses parameters the query does not use
    return sql, params


def build_features(
    warehouse: Warehouse, as_of: date, cfg: FeaturesConfig, with_labels: bool = True
) -> pd.DataFrame:
    """Features (and labels, when asked) as of a cutoff, one row per customer.

    Args:
        warehouse: holds the canonical tables.
        as_of: the cutoff; features see rows strictly before it.
        cfg: windows and horizon.
        with_labels: add label columns from [as_of, as_of + horizon).

    Returns:
        One row per customer with transaction history before `as_of`, sorted by id.
    """
    sql, params = _query(warehouse, as_of, cfg, with_labels)
    frame = warehouse.duck().execute(sql, params).df()
    frame.insert(1, "as_of", pd.Timestamp(as_of))
    return frame


# -- feature snapshots on disk: bounded memory and lineage for the batch scorer -------------

def write_features(warehouse: Warehouse, as_of: date, cfg: FeaturesConfig, path: Path) -> int:
    """Write the as-of features (no labels) to a Parquet file, sorted by customer id.

    DuckDB streams the result to the file, so the frame is never held in memory; the
    file is what a scoring run reads chunk by chunk and keeps as its lineage.

    Returns:
        The number of customers written.
    """
    sql, params = _query(warehouse, as_of, cfg, with_labels=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    written = warehouse.duck().execute(f"copy ({sql}) to '{partial}' (format parquet)", params).fetchall()[0][0]
    partial.replace(path)  # a crash never leaves a half-written snapshot under the final name
    return int(written)  # COPY reports the rows it wrote: no second pass over the file


def snapshot_fingerprint(path: Path, as_of: date) -> str:
    """A short hash of a snapshot's rows: the same features give the same value, whatever
    the file's chunking or row order (an order-free sum of DuckDB row hashes)."""
    import hashlib

    import duckdb

    with duckdb.connect() as con:
        cols = [r[0] for r in con.execute(f"describe select * from read_parquet('{Path(path)}')").fetchall()]
        row_hash = "hash(" + ", ".join(f'"{c}"' for c in cols) + ")"
        n, total = con.execute(f"select count(*), coalesce(sum({row_hash}::hugeint), 0) "
                               f"from read_parquet('{Path(path)}')").fetchall()[0]
    key = f"{as_of:%Y-%m-%d}|{','.join(cols)}|{n}|{total}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def iter_features(path: Path, as_of: date, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """A feature snapshot file in chunks, each exactly as `build_features` returns its rows.

    Chunks hold `chunk_rows` rows rounded up to a multiple of 2,048 (DuckDB's vector).
    """
    import duckdb

    vectors = max(1, -(-chunk_rows // 2048))
    with duckdb.connect() as con:
        result = con.execute(f"select * from read_parquet('{Path(path)}')")
        while True:
            part = result.fetch_df_chunk(vectors)
            if part.empty:
                return
            part.insert(1, "as_of", pd.Timestamp(as_of))
            yield part


def read_features(path: Path, as_of: date, customer_ids: list[str] | None = None) -> pd.DataFrame:
    """Rows of a feature snapshot file (all, or the given customers), as `build_features` returns them."""
    import duckdb

    sql = f"select * from read_parquet('{Path(path)}')"
    params: list = []
    if customer_ids is not None:
        sql += " where customer_id in (select unnest(?::varchar[]))"
        params = [list(customer_ids)]
    with duckdb.connect() as con:
        frame = con.execute(sql + " order by customer_id", params).df()
    frame.insert(1, "as_of", pd.Timestamp(as_of))
    return frame


def build_snapshots(
    warehouse: Warehouse,
    cfg: FeaturesConfig,
    cutoffs: list[date] | None = None,
    progress: Callable[[date], None] | None = None,
) -> pd.DataFrame:
    """Features and labels stacked over several cutoffs (default: the latest labelled ones).

    Args:
        warehouse: holds the canonical tables.
        cfg: windows, horizon and the snapshot schedule.
        cutoffs: as-of dates; None means `snapshot_count` cutoffs `snapshot_step_days`
            apart, the latest one with a complete label window.
        progress: called with each cutoff before it is built.

    Returns:
        The stacked frame, with an `as_of` column.
    """
    if cutoffs is None:
        cutoffs = training_cutoffs(warehouse, cfg)
    frames = []
    for cutoff in cutoffs:
        if progress is not None:
            progress(cutoff)
        frames.append(build_features(warehouse, cutoff, cfg, with_labels=True))
    return pd.concat(frames, ignore_index=True)

"""The as-of feature definitions of `features/` in Spark SQL, for data beyond one machine.

The same features as `features.snapshots.build_features` (RFMW, needs evaluations,
customer attributes, segments and, optionally, labels), read from the Parquet files
that `Warehouse.export_parquet` writes, one per canonical table. Each step below
mirrors the DuckDB step of the same name in `rfmw`, `needs`, `attributes`, `segments`
and `labels`; the segment rules, value tiers, ordering of evaluations and column names
are imported from those modules, so they are defined once. Two RFMW values are computed
the plain way here and by a cheaper plan in DuckDB (see `features.rfmw`), with the same
results: width by grouping customer x category (DuckDB ORs category bits per order), and
the gaps over distinct purchase days (DuckDB sorts purchase orders and drops gaps of 0).

Where the two dialects differ, the Spark SQL spells out what DuckDB does:

- Rounding: DuckDB's `round(x, d)` on a double is `std::round(x * 10^d) / 10^d` (half
  away from zero, on the scaled binary value). Spark's `round(x, d)` rounds the decimal
  text of `x` instead, which differs when the digit after the d-th is a 5 in text but
  not in binary: 0.5000005 is 0.500001 in Spark, 0.5 in DuckDB (0.5000005 * 1e6 =
  500000.49999999994). `_round` writes DuckDB's form: Spark's `round(y, 0)` on the
  scaled value equals `std::round(y)` (checked on 250,000 values, half cases included;
  only the sign of a rounded zero differs, -0.0 vs 0.0, which compare equal).
- Median: DuckDB's `list_median` interpolates the two middle values of an even count
  (their mean); Spark's `median` (the exact `percentile(x, 0.5)`) does the same.
- Nulls sort last in DuckDB in both directions; Spark puts them first when ascending.
  Every ordered expression here is null-free or descending, where both agree.
- Division by zero: DuckDB gives null, Spark in ANSI mode raises; denominators that can
  be zero are wrapped in `nullif(.., 0)` exactly where the DuckDB SQL does, plus the
  purchase counts under the averages (whose numerator is null then anyway).
- Integer types: DuckDB's `date_diff`, `rank` and `//` are BIGINT; Spark's are INT, so
  days and ranks are cast to BIGINT (no overflow in `5 * rank` either).
- Timestamps: DuckDB writes them without a time zone and Spark reads them as
  TIMESTAMP_NTZ; a Parquet file with zone-adjusted timestamps is read on the session's
  time zone wall clock.
- Sums of doubles are rounded to 6 decimals in both engines (as in DuckDB, for a
  result that does not depend on the order of summation); the standard deviation to 9.

Nothing here starts a Spark session: every function takes one. The result is not
sorted (DuckDB's is, by customer_id); sort when the order matters.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from features.attributes import attribute_columns, feature_name
from features.load import WarehouseError
from features.needs import LATEST_ORDER, needs_count_columns
from features.rfmw import LAST_YEAR_FEATURES, YEAR_DAYS, last_year_first_age, rfmw_tail_sql, window_days
from features.season import season_columns
from features.schema import TABLES
from features.segments import tier_columns_sql
from features.snapshots import LABEL_COLUMNS, SEGMENT_COLUMNS
from features.windows import Cutoff
from propensity.config import FeaturesConfig

if TYPE_CHECKING:  # pyspark is an optional extra
    from pyspark.sql import DataFrame, SparkSession

REQUIRED_TABLE = "transactions"

# Stand-ins with the canonical columns, used when an optional table is absent
# (the same columns and types as `features.snapshots._EMPTY`).
_EMPTY = {
    "needs_evaluations": (
        "select cast(null as string) as customer_id, cast(null as timestamp_ntz) as evaluated_at, "
        "cast(null as string) as need_level, cast(null as string) as dimension, "
        "cast(null as bigint) as urgency, cast(null as bigint) as importance, "
        "cast(null as bigint) as solution_fit, cast(null as string) as orientation, "
        "cast(null as string) as style, cast(null as boolean) as complaint where false"
    ),
    "contacts": (
        "select cast(null as string) as campaign_id, cast(null as string) as customer_id, "
        "cast(null as timestamp_ntz) as contacted_at, cast(null as string) as `group`, "
        "cast(null as boolean) as responded where false"
    ),
    "customers": "select cast(null as string) as customer_id where false",
}

# Columns the SQL below reads from each table that is present.
_READ_COLUMNS = {
    "transactions": ("customer_id", "order_id", "ts", "amount", "category"),
    "needs_evaluations": TABLES["needs_evaluations"].required,
    "contacts": ("customer_id", "contacted_at", "group", "responded"),
    "customers": ("customer_id",),
    "campaigns": (),
}

NEEDS_OTHER_COLUMNS = (
    "needs_days_since_evaluation", "needs_latest_level", "needs_latest_dimension", "needs_latest_urgency",
    "needs_latest_importance", "needs_latest_solution_fit", "needs_orientation", "needs_style",
    "needs_mean_solution_fit",
)


# -- input -------------------------------------------------------------------------------

def input_files(input_dir: Path) -> dict[str, Path]:
    """The canonical tables present in `input_dir` as `<table>.parquet` (file or folder).

    Raises:
        WarehouseError: the folder or its transactions.parquet is missing.
    """
    folder = Path(input_dir)
    if not folder.is_dir():
        raise WarehouseError(
            f"input folder {folder} does not exist; export the tables first "
            "(`propensity data export-parquet`) or pass the folder that holds transactions.parquet"
        )
    found = {name: folder / f"{name}.parquet" for name in TABLES if (folder / f"{name}.parquet").exists()}
    if REQUIRED_TABLE not in found:
        raise WarehouseError(
            f"{folder} has no {REQUIRED_TABLE}.parquet; the Spark engine needs at least the transactions table "
            "(`propensity data export-parquet` writes it)"
        )
    return found


def _as_wall_clock(frame: DataFrame) -> DataFrame:
    """Timestamps as TIMESTAMP_NTZ (DuckDB's TIMESTAMP), so days do not depend on a time zone."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import TimestampType

    cols = [
        F.col(f"`{f.name}`").cast("timestamp_ntz").alias(f.name) if isinstance(f.dataType, TimestampType)
        else F.col(f"`{f.name}`")
        for f in frame.schema.fields
    ]
    return frame.select(*cols)


def register_tables(spark: SparkSession, input_dir: Path) -> list[str]:
    """Register each canonical Parquet file of `input_dir` as a temp view of the same name.

    Absent optional tables get empty stand-ins, as in `features.snapshots`.

    Args:
        spark: the session the views are registered in.
        input_dir: folder of `<table>.parquet` files (from `Warehouse.export_parquet`).

    Returns:
        The columns of `customers` (["customer_id"] when the table is absent).

    Raises:
        WarehouseError: the folder or transactions.parquet is missing, or a table lacks
            a column the features read.
    """
    files = input_files(input_dir)
    for name, path in files.items():
        frame = _as_wall_clock(spark.read.parquet(str(path)))
        missing = [c for c in _READ_COLUMNS.get(name, ()) if c not in frame.columns]
        if missing:
            raise WarehouseError(f"{path} lacks column(s) {', '.join(missing)}; re-export the {name} table")
        frame.createOrReplaceTempView(name)
    for name, sql in _EMPTY.items():
        if name not in files:
            spark.sql(sql).createOrReplaceTempView(name)
    return list(spark.table("customers").columns)


# -- as-of boundaries (features.windows) -----------------------------------------------

def _timestamp(day: date) -> str:
    return f"timestamp_ntz'{day:%Y-%m-%d} 00:00:00'"


def _date(day: date) -> str:
    return f"date'{day:%Y-%m-%d}'"


def before_as_of(column: str, as_of: date) -> str:
    """SQL predicate: the row is visible to features (strictly before the as-of instant)."""
    return f"{column} < {_timestamp(as_of)}"


def in_horizon(column: str, cutoff: Cutoff) -> str:
    """SQL predicate: the row falls in the label window [as_of, horizon_end)."""
    return f"{column} >= {_timestamp(cutoff.as_of)} and {column} < {_timestamp(cutoff.horizon_end)}"


def days_before_as_of(day_column: str, as_of: date) -> str:
    """SQL expression: whole days from a date to the as-of date (1 = the day before), BIGINT."""
    return f"cast(datediff({_date(as_of)}, {day_column}) as bigint)"


def _round(expr: str, digits: int) -> str:
    """DuckDB's round(x, digits) on a double: std::round(x * 10^digits) / 10^digits."""
    scale = f"1e{digits}"  # a DOUBLE literal in Spark (not a DECIMAL)
    return f"(round(({expr}) * {scale}, 0) / {scale})"


def money(expr: str) -> str:
    """A sum of amounts rounded to 6 decimals, as `features.rfmw.money`."""
    return _round(expr, 6)


# -- RFMW (features.rfmw) ------------------------------------------------------------------

def lines_before_sql(as_of: date) -> str:
    """Transaction lines visible to features."""
    return f"select customer_id, order_id, ts, amount, category from transactions where {before_as_of('ts', as_of)}"


def orders_sql(as_of: date) -> str:
    """One row per order before the as-of: day, age, net, bought and returned amounts."""
    return f"""
        select customer_id, order_id,
               cast(min(ts) as date) as day,
               {days_before_as_of('cast(min(ts) as date)', as_of)} as age,
               {money('sum(amount)')} as net,
               {money('coalesce(sum(amount) filter (where amount > 0), 0)')} as bought,
               {money('coalesce(-sum(amount) filter (where amount < 0), 0)')} as returned
        from lines_before group by customer_id, order_id"""


def width_sql() -> str:
    """Distinct categories bought; aggregated customer x category first."""
    return """
        select customer_id, count(*) as width_categories
        from (select customer_id, category from lines_before where amount > 0
              group by customer_id, category) cc
        group by customer_id"""


def gaps_sql() -> str:
    """Gap statistics over consecutive distinct purchase days (median as DuckDB's list_median)."""
    return f"""
        select customer_id,
               avg(gap) as gap_mean_days,
               median(gap) as gap_median_days,
               {_round('stddev_samp(gap)', 9)} as gap_std_days,
               count(*) as repeat_purchase_days
        from (select customer_id,
                     cast(datediff(day, lag(day) over (partition by customer_id order by day)) as bigint) as gap
              from (select distinct customer_id, day from orders where net > 0) pd) g
        where gap is not null
        group by customer_id"""


def order_feature_columns(cfg: FeaturesConfig) -> list[tuple[str, str]]:
    """(name, SQL aggregate) per order feature, in the order of `features.rfmw`."""
    n = cfg.frequency_window_days
    t = cfg.trend_window_days
    windows = window_days(cfg)
    cols = [
        ("recency_days", "min(age) filter (where net > 0)"),
        ("tenure_days", "max(age) filter (where net > 0)"),
        ("purchases_total", "count(*) filter (where net > 0)"),
    ]
    for w in windows:
        bought = f"count(*) filter (where net > 0 and age <= {w})"
        cols += [
            (f"frequency_{w}d", bought),
            (f"monetary_avg_{w}d", f"{money(f'sum(net) filter (where net > 0 and age <= {w})')} / nullif({bought}, 0)"),
            (f"spend_{w}d", money(f"coalesce(sum(net) filter (where age <= {w}), 0)")),
        ]
    last_f = f"count(*) filter (where net > 0 and age <= {t})"
    prior_f = f"count(*) filter (where net > 0 and age > {t} and age <= {2 * t})"
    last_s = money(f"coalesce(sum(net) filter (where net > 0 and age <= {t}), 0)")
    prior_s = money(f"coalesce(sum(net) filter (where net > 0 and age > {t} and age <= {2 * t}), 0)")
    returned = money(f"sum(returned) filter (where age <= {n})")
    bought_amount = money(f"sum(bought) filter (where age <= {n})")
    cols += [
        ("frequency_trend", f"cast({last_f} - {prior_f} as double) / nullif({last_f} + {prior_f}, 0)"),
        ("spend_trend", f"({last_s} - {prior_s}) / nullif({last_s} + {prior_s}, 0)"),
        (f"returns_share_{n}d", f"{returned} / nullif({bought_amount}, 0)"),
    ]
    if cfg.horizon_features:
        lo = last_year_first_age(cfg.horizon_days)
        cols += [
            ("last_year_purchases", f"count(*) filter (where net > 0 and age between {lo} and {YEAR_DAYS})"),
            ("last_year_spend", money(f"coalesce(sum(net) filter (where age between {lo} and {YEAR_DAYS}), 0)")),
        ]
    return cols


def _tail_columns(cfg: FeaturesConfig) -> list[str]:
    """Columns after history_days in `rfmw`: last-year, then season (`features.rfmw.rfmw_tail_sql`)."""
    last_year = list(LAST_YEAR_FEATURES) if cfg.horizon_features else []
    return last_year + [name for name, _ in season_columns(cfg, "as_of", _spark_days)]


def _spark_days(start: str, end: str) -> str:
    return f"cast(datediff({end}, {start}) as bigint)"


RFMW_TAIL_COLUMNS = (
    "width_categories", "gap_mean_days", "gap_median_days", "gap_std_days", "repeat_purchase_days", "overdue_ratio",
    "history_days",
)


def rfmw_columns(cfg: FeaturesConfig) -> list[str]:
    """Columns of the `rfmw` step after customer_id."""
    return [name for name, _ in order_feature_columns(cfg) if name not in LAST_YEAR_FEATURES] + \
        list(RFMW_TAIL_COLUMNS) + _tail_columns(cfg)


def order_features_sql(cfg: FeaturesConfig) -> str:
    """Recency, frequency, monetary, spend, trend, tenure and returns per customer."""
    parts = [f"{expr} as {name}" for name, expr in order_feature_columns(cfg)]
    return "select customer_id,\n  " + ",\n  ".join(parts) + "\nfrom orders group by customer_id"


def rfmw_ctes(cfg: FeaturesConfig, as_of: date) -> list[tuple[str, str]]:
    """Named SQL steps that end in `rfmw`: one row per customer with lines before as-of."""
    order_cols = ", ".join(f"o.{name}" for name, _ in order_feature_columns(cfg) if name not in LAST_YEAR_FEATURES)
    tail = rfmw_tail_sql(cfg, _date(as_of), _spark_days)
    return [
        ("lines_before", lines_before_sql(as_of)),
        ("orders", orders_sql(as_of)),
        ("order_features", order_features_sql(cfg)),
        ("width", width_sql()),
        ("gaps", gaps_sql()),
        (
            "rfmw",
            f"""
            select c.customer_id, {order_cols},
                   coalesce(w.width_categories, 0) as width_categories,
                   g.gap_mean_days, g.gap_median_days, g.gap_std_days,
                   coalesce(g.repeat_purchase_days, 0) as repeat_purchase_days,
                   o.recency_days / nullif(g.gap_median_days, 0) as overdue_ratio,
                   h.history_days{tail}
            from (select distinct customer_id from lines_before) c
            cross join (select {days_before_as_of('cast(min(ts) as date)', as_of)} as history_days
                        from lines_before) h
            join order_features o on o.customer_id = c.customer_id
            left join width w on w.customer_id = c.customer_id
            left join gaps g on g.customer_id = c.customer_id""",
        ),
    ]


# -- needs evaluations (features.needs) ----------------------------------------------------

def needs_ctes(cfg: FeaturesConfig, as_of: date) -> list[tuple[str, str]]:
    """Named SQL steps that end in `needs`: one row per evaluated customer."""
    n = cfg.frequency_window_days
    return [
        ("evals_before", f"select * from needs_evaluations where {before_as_of('evaluated_at', as_of)}"),
        (
            "evals_latest",
            f"""
            select * from (
                select *, row_number() over (partition by customer_id order by {LATEST_ORDER}) as rn
                from evals_before) e where rn = 1""",
        ),
        (
            "open_pains",
            f"""
            select customer_id, count(*) filter (where need_level = 'pain') as needs_open_pains
            from (select *, row_number() over (partition by customer_id, dimension order by {LATEST_ORDER}) as rn
                  from evals_before) e where rn = 1
            group by customer_id""",
        ),
        (
            "needs",
            f"""
            select a.customer_id,
                   a.needs_evaluations_total,
                   {days_before_as_of('cast(l.evaluated_at as date)', as_of)} as needs_days_since_evaluation,
                   l.need_level as needs_latest_level,
                   l.dimension as needs_latest_dimension,
                   l.urgency as needs_latest_urgency,
                   l.importance as needs_latest_importance,
                   l.solution_fit as needs_latest_solution_fit,
                   l.orientation as needs_orientation,
                   l.style as needs_style,
                   p.needs_open_pains,
                   a.needs_mean_solution_fit,
                   a.needs_complaints_{n}d,
                   a.needs_complaints_total
            from (select customer_id, count(*) as needs_evaluations_total,
                         avg(solution_fit) as needs_mean_solution_fit,
                         count(*) filter (where complaint
                                          and {days_before_as_of('cast(evaluated_at as date)', as_of)} <= {n})
                             as needs_complaints_{n}d,
                         count(*) filter (where complaint) as needs_complaints_total
                  from evals_before group by customer_id) a
            join evals_latest l on l.customer_id = a.customer_id
            join open_pains p on p.customer_id = a.customer_id""",
        ),
    ]


# -- attributes (features.attributes) ------------------------------------------------------

def _quote(column: str) -> str:
    return "`" + column.replace("`", "``") + "`"


def attributes_sql(customer_columns: list[str]) -> str:
    """One row per customer of `customers`, attributes cast to text."""
    cols = [f"cast({_quote(c)} as string) as {feature_name(c)}" for c in attribute_columns(customer_columns)]
    return "select customer_id" + "".join(", " + c for c in cols) + " from customers"


# -- segments (features.segments) ----------------------------------------------------------

def score_sql(better: str) -> str:
    """SQL for a 1-5 score of `better` (larger is better): 1 + 5 * (customers strictly worse) div n."""
    beaten = f"(cast(rank() over (order by {better}) as bigint) - 1)"
    return f"1 + (5 * {beaten}) div count(*) over ()"


def segments_sql(frequency_window_days: int, base_columns: list[str]) -> str:
    """Select over relation `base` adding segment names and tiers, then the 1-5 scores."""
    n = frequency_window_days
    keep = ", ".join(base_columns)
    return f"""
        select {keep},
            {tier_columns_sql(n)},
            r as r_score, f as f_score, m as m_score, w as w_score
        from (select *,
                {score_sql('-coalesce(recency_days, 1000000)')} as r,
                {score_sql(f'frequency_{n}d')} as f,
                {score_sql(f'coalesce(monetary_avg_{n}d, 0)')} as m,
                {score_sql('width_categories')} as w
              from base) scored"""


# -- labels (features.labels) --------------------------------------------------------------

def labels_ctes(cutoff: Cutoff) -> list[tuple[str, str]]:
    """Named SQL steps of the labels (customers with activity in the horizon)."""
    return [
        (
            "orders_after",
            f"""
            select customer_id, order_id, {money('sum(amount)')} as net
            from transactions where {in_horizon('ts', cutoff)}
            group by customer_id, order_id""",
        ),
        (
            "spend_after",
            f"""
            select customer_id, {money('sum(net)')} as label_value,
                   count(*) filter (where net > 0) as label_purchases
            from orders_after group by customer_id""",
        ),
        (
            "contacts_after",
            f"""
            select customer_id, 1 as label_contacted, max(cast(responded as int)) as label_response
            from contacts where {in_horizon('contacted_at', cutoff)} and `group` = 'treatment'
            group by customer_id""",
        ),
    ]


def label_select() -> str:
    """Label columns (after the joins in `features_sql`), named as LABEL_COLUMNS."""
    return """
        case when coalesce(sa.label_purchases, 0) = 0 then 1 else 0 end as label_churn,
        coalesce(sa.label_value, 0) as label_value,
        coalesce(sa.label_purchases, 0) as label_purchases,
        coalesce(ca.label_contacted, 0) as label_contacted,
        ca.label_response"""


# -- the whole query (features.snapshots) --------------------------------------------------

def feature_columns(cfg: FeaturesConfig, customer_columns: list[str], with_labels: bool = False) -> list[str]:
    """The columns of `build_features`, in the order of `features.snapshots.build_features`."""
    cols = ["customer_id", "as_of", *rfmw_columns(cfg), *needs_count_columns(cfg), *NEEDS_OTHER_COLUMNS]
    cols += [feature_name(c) for c in attribute_columns(customer_columns)]
    cols += list(SEGMENT_COLUMNS[4:]) + list(SEGMENT_COLUMNS[:4])  # names and tiers, then scores
    if with_labels:
        cols += list(LABEL_COLUMNS)
    return cols


def features_sql(cfg: FeaturesConfig, customer_columns: list[str], as_of: date, with_labels: bool = False) -> str:
    """The whole as-of query over the registered views, with the dates as literals."""
    steps: list[tuple[str, str]] = []
    steps += rfmw_ctes(cfg, as_of)
    steps += needs_ctes(cfg, as_of)
    steps.append(("attrs", attributes_sql(customer_columns)))
    counts = needs_count_columns(cfg)
    attr_names = [feature_name(c) for c in attribute_columns(customer_columns)]
    base_columns = ["customer_id", *rfmw_columns(cfg), *counts, *NEEDS_OTHER_COLUMNS, *attr_names]
    base = (
        "select r.customer_id"
        + "".join(f", r.{c}" for c in rfmw_columns(cfg))
        + "".join(f", coalesce(n.{c}, 0) as {c}" for c in counts)
        + "".join(f", n.{c}" for c in NEEDS_OTHER_COLUMNS)
        + "".join(f", a.{c}" for c in attr_names)
        + " from rfmw r left join needs n on n.customer_id = r.customer_id"
        + " left join attrs a on a.customer_id = r.customer_id"
    )
    steps.append(("base", base))
    steps.append(("segmented", segments_sql(cfg.frequency_window_days, base_columns)))
    rest = [c for c in feature_columns(cfg, customer_columns) if c not in ("customer_id", "as_of")]
    final = f"select s.customer_id, {_date(as_of)} as as_of" + "".join(f", s.{c}" for c in rest)
    if with_labels:
        steps += labels_ctes(Cutoff(as_of, cfg.horizon_days))
        final += ", " + label_select() + " from segmented s"
        final += " left join spend_after sa on sa.customer_id = s.customer_id"
        final += " left join contacts_after ca on ca.customer_id = s.customer_id"
    else:
        final += " from segmented s"
    return "with " + ",\n".join(f"{name} as ({sql})" for name, sql in steps) + "\n" + final


def build_features(
    spark: SparkSession, as_of: date, cfg: FeaturesConfig, customer_columns: list[str], with_labels: bool = False
) -> DataFrame:
    """Features (and labels, when asked) as of a cutoff over the views of `register_tables`.

    Args:
        spark: the session holding the canonical views.
        as_of: the cutoff; features see rows strictly before it.
        cfg: windows and horizon.
        customer_columns: the columns of `customers`, as `register_tables` returns them.
        with_labels: add label columns from [as_of, as_of + horizon).

    Returns:
        A lazy DataFrame, one row per customer with transaction history before `as_of`,
        with the columns and meaning of `features.snapshots.build_features` (unsorted).
    """
    return spark.sql(features_sql(cfg, customer_columns, as_of, with_labels))


def features_from_parquet(
    spark: SparkSession, input_dir: Path, as_of: date, cfg: FeaturesConfig, with_labels: bool = False
) -> DataFrame:
    """`register_tables` then `build_features`: the features of a folder of Parquet tables."""
    customer_columns = register_tables(spark, input_dir)
    return build_features(spark, as_of, cfg, customer_columns, with_labels)

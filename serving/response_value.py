"""What one response to a campaign brings in: the money side of expected profit.

A customer's predicted value (`predicted_value`, the value model) is everything the
customer is expected to spend over the label horizon (90 days), whether contacted or
not. It is not what a *response* brings: multiplying a response probability by it
counts a quarter's shopping as the gain of one contact (on the Complete Journey that
gave profits of tens of dollars per coupon mailing). What one response is worth here:

    value_per_response = average order value x k

- **average order value** (AOV): the customer's feature `monetary_avg_365d` (net amount
  of the purchases of the last 365 days / their number; the frequency window of
  `[features]`), or, when the customer bought nothing in that window, the median of that
  feature over the scored population (the *fallback*).
- **k**, one number per campaign kind: how many average orders one response is worth,
  measured on the kind's past responses (treatment responders contacted before the
  as-of date):
  - the response revenue the contacts table records (`contacts.revenue`; Hillstrom
    has it), else
  - the responder's net spend on the response day (all lines of the `responded_at`
    date: the Complete Journey's first coupon redemption day; revenue is null there),
  divided by those responders' own AOV as of the contact (purchases in the 365 days
  before `contacted_at`, the feature's definition):
  ``k = sum(observed response value) / sum(responder AOV)`` over the responders with
  both, a ratio of totals, so that AOV x k summed over the past responders gives back
  what they spent.
  Fewer than `MIN_RESPONDERS` such responders (or no campaigns, no kind, neither
  revenue nor responded_at) -> k = 1 (one average order), and the description says so.

Then `expected_profit = response_prob x value_per_response x margin - contact_cost`
(the batch scorer, its Spark mirror and target lists) and `incremental_profit =
uplift x value_per_response x margin - contact_cost` (target lists). The batch scorer
publishes value_per_response as `customer_scores.response_value` and records k and how it
was obtained in `scoring_runs.response_value_k` / `response_value_source`.

The SQL below is written once for both engines (DuckDB on the warehouse, Spark SQL on
the Parquet input of `--engine spark`); the totals are added in Python with
`math.fsum` (exactly rounded, so the order in which an engine returns the rows does not
matter).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from features.load import Warehouse

# Responders with an observed response value and an AOV needed to trust k; below, k = 1.
MIN_RESPONDERS = 20
DEFAULT_WINDOW_DAYS = 365


def aov_feature(window_days: int = DEFAULT_WINDOW_DAYS) -> str:
    """The feature holding a customer's average order value (`monetary_avg_<N>d`)."""
    return f"monetary_avg_{window_days}d"


@dataclass(frozen=True)
class ResponseValue:
    """k for one campaign kind, how it was obtained, and the population AOV fallback."""

    k: float
    source: str  # "contacts.revenue", "response-day spend", both joined by " + ", or "none"
    responders: int  # responders whose response value and AOV were observed
    kind: str | None
    as_of: date | None
    reason: str = ""  # why k = 1, when it is
    observed_mean: float | None = None  # mean observed response value of those responders
    aov_mean: float | None = None  # their mean AOV at the contact
    window_days: int = DEFAULT_WINDOW_DAYS
    fallback: float = float("nan")  # population median AOV, for customers without one
    recorded: str = ""  # the description a scoring run stored, when k is taken from its record

    @property
    def feature(self) -> str:
        return aov_feature(self.window_days)

    @property
    def observed(self) -> bool:
        return self.source != "none"

    def with_fallback(self, fallback: float | None) -> ResponseValue:
        return replace(self, fallback=float("nan") if fallback is None else float(fallback))

    def describe(self) -> str:
        """One line: k and where it comes from."""
        if self.recorded:
            return self.recorded
        if not self.observed:
            return f"k = 1 (one average order per response): {self.reason}"
        what = {"contacts.revenue": "contacts.revenue", "response-day spend": "response-day net spend"}.get(
            self.source, self.source.replace("response-day spend", "response-day net spend"))
        return (f"k = {self.k:.3f} from {what} of {self.responders:,} responders to {self.kind!r} campaigns "
                f"before {self.as_of}: {self.observed_mean:,.2f} per response / {self.aov_mean:,.2f} "
                f"their average order value")


def unobserved(kind: str | None, as_of: date | None, reason: str,
               window_days: int = DEFAULT_WINDOW_DAYS) -> ResponseValue:
    """k = 1, with the reason nothing better was observed."""
    return ResponseValue(1.0, "none", 0, kind, as_of, reason, window_days=window_days)


def recorded(k: float, text: str, kind: str | None, as_of: date | None, run_id: str,
             window_days: int = DEFAULT_WINDOW_DAYS) -> ResponseValue:
    """The k a scoring run recorded (`scoring_runs.response_value_k` / `response_value_source`)."""
    unmeasured = text.startswith("k = 1 (")
    return ResponseValue(float(k), "none" if unmeasured else "recorded by the scoring run", 0, kind, as_of,
                         reason=text.split(": ", 1)[-1] if unmeasured else "", window_days=window_days,
                         recorded=f"{text} (recorded by scoring run {run_id})")


def value_per_response(aov: object, value: ResponseValue) -> np.ndarray:
    """AOV (the fallback where it is null) x k, per customer."""
    a = pd.to_numeric(pd.Series(aov), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return np.where(np.isnan(a), value.fallback, a) * value.k


# -- the observed responses, one SQL for DuckDB and Spark ---------------------------------

def _responders_sql(dialect: str, as_of: date, contact_columns: set[str], window_days: int) -> str:
    if dialect == "duckdb":
        from features.rfmw import money

        q, kind, cut = '"', "?", f"timestamp '{as_of:%Y-%m-%d} 00:00:00'"
        ts_null = "timestamp"
    else:
        from features.spark_sql import money

        q, kind, cut = "`", ":kind", f"timestamp_ntz'{as_of:%Y-%m-%d} 00:00:00'"
        ts_null = "timestamp_ntz"
    responded_at = "c.responded_at" if "responded_at" in contact_columns else f"cast(null as {ts_null})"
    revenue = "cast(c.revenue as double)" if "revenue" in contact_columns else "cast(null as double)"
    return f"""
        with responders as (
            select c.campaign_id, c.customer_id, cast(c.contacted_at as date) as contacted_day,
                   {responded_at} as responded_at, {revenue} as revenue
            from contacts c join campaigns m on m.campaign_id = c.campaign_id
            where m.kind = {kind} and c.responded and c.{q}group{q} = 'treatment' and c.contacted_at < {cut}
        ),
        responder_orders as (
            select t.customer_id, t.order_id, cast(min(t.ts) as date) as order_day,
                   {money('sum(t.amount)')} as net
            from transactions t
            where t.ts < {cut} and t.customer_id in (select customer_id from responders)
            group by t.customer_id, t.order_id
        ),
        history as (
            select r.campaign_id, r.customer_id, sum(o.net) as bought, count(*) as purchases
            from responders r join responder_orders o on o.customer_id = r.customer_id
            where o.net > 0 and o.order_day < r.contacted_day and o.order_day >= r.contacted_day - {int(window_days)}
            group by r.campaign_id, r.customer_id
        ),
        response_day as (
            select r.campaign_id, r.customer_id, sum(t.amount) as spend
            from responders r join transactions t
              on t.customer_id = r.customer_id and cast(t.ts as date) = cast(r.responded_at as date)
            where r.responded_at < {cut}
            group by r.campaign_id, r.customer_id
        )
        select r.campaign_id, r.customer_id, r.revenue,
               case when r.responded_at < {cut} then coalesce(d.spend, 0) end as day_spend,
               h.bought, h.purchases
        from responders r
        left join history h on h.campaign_id = r.campaign_id and h.customer_id = r.customer_id
        left join response_day d on d.campaign_id = r.campaign_id and d.customer_id = r.customer_id"""


def from_responders(rows: pd.DataFrame, kind: str, as_of: date,
                    window_days: int = DEFAULT_WINDOW_DAYS) -> ResponseValue:
    """k from one row per responder: revenue, day_spend, bought, purchases (either engine's)."""
    revenue = pd.to_numeric(rows["revenue"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    day = pd.to_numeric(rows["day_spend"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bought = pd.to_numeric(rows["bought"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    purchases = pd.to_numeric(rows["purchases"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    from_revenue = ~np.isnan(revenue)
    value = np.where(from_revenue, revenue, day)
    with np.errstate(invalid="ignore", divide="ignore"):
        aov = np.where(purchases > 0, bought / purchases, np.nan)
    ok = ~np.isnan(value) & ~np.isnan(aov) & (aov > 0)
    n = int(ok.sum())
    if n < MIN_RESPONDERS:
        if len(rows) == 0:
            why = f"no responder to {kind!r} campaigns contacted before {as_of}"
        elif np.isnan(value).all():
            why = (f"the contacts of {kind!r} campaigns record neither revenue nor responded_at, "
                   "so no response revenue is observed")
        else:
            why = (f"only {n} responder(s) to {kind!r} campaigns before {as_of} have an observed response "
                   f"value and an earlier purchase (fewer than {MIN_RESPONDERS})")
        return unobserved(kind, as_of, why, window_days)
    sources = [name for name, used in (("contacts.revenue", (ok & from_revenue).any()),
                                       ("response-day spend", (ok & ~from_revenue).any())) if used]
    total_value, total_aov = math.fsum(value[ok]), math.fsum(aov[ok])
    return ResponseValue(total_value / total_aov, " + ".join(sources), n, kind, as_of,
                         observed_mean=total_value / n, aov_mean=total_aov / n, window_days=window_days)


def observed(warehouse: Warehouse, kind: str | None, as_of: date,
             window_days: int = DEFAULT_WINDOW_DAYS) -> ResponseValue:
    """k for campaigns of `kind` from the warehouse's contacts, campaigns and transactions before `as_of`."""
    if kind is None:
        return unobserved(None, as_of, "no campaign kind to measure responses for (no response model)",
                          window_days)
    if not (warehouse.has("campaigns") and warehouse.has("contacts")):
        return unobserved(kind, as_of, "the warehouse has no campaigns and contacts tables", window_days)
    columns = set(warehouse.query("select * from contacts limit 0").columns)
    rows = warehouse.query(_responders_sql("duckdb", as_of, columns, window_days), [kind])
    return from_responders(rows, kind, as_of, window_days)


def observed_spark(spark: SparkSession, kind: str | None, as_of: date,
                   window_days: int = DEFAULT_WINDOW_DAYS) -> ResponseValue:
    """`observed` on the temp views `features.spark_sql.register_tables` made from the Parquet input."""
    if kind is None:
        return unobserved(None, as_of, "no campaign kind to measure responses for (no response model)",
                          window_days)
    if not (spark.catalog.tableExists("campaigns") and spark.catalog.tableExists("contacts")):
        return unobserved(kind, as_of, "the input has no campaigns and contacts tables", window_days)
    columns = set(spark.table("contacts").columns)
    rows = spark.sql(_responders_sql("spark", as_of, columns, window_days), args={"kind": kind}).toPandas()
    return from_responders(rows, kind, as_of, window_days)


def snapshot_median(path: Path, window_days: int = DEFAULT_WINDOW_DAYS) -> float | None:
    """Median AOV over a feature snapshot file (DuckDB's `median`: the mean of the middle two)."""
    import duckdb

    with duckdb.connect() as con:
        value = con.execute(f"select median({aov_feature(window_days)})::double "
                            f"from read_parquet('{Path(path)}')").fetchone()[0]
    return None if value is None else float(value)

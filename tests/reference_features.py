"""A plain-pandas reference of the as-of features, used only by tests to check the SQL.

Written independently of the SQL, straight from the definitions in the feature
modules' docstrings, with loops and groupbys a reader can follow.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from features.segments import SEGMENT_RULES, VALUE_TIERS


def _score(values: pd.Series) -> pd.Series:
    """1 + floor(5 k / n), k = customers with a strictly smaller value (larger is better)."""
    n = len(values)
    beaten = values.rank(method="min").astype("int64") - 1
    return 1 + (5 * beaten) // n


def _segment(r: int, f: int, m: int, w: int) -> str:
    env = {"r": r, "f": f, "m": m, "w": w, "true": True}
    for name, cond in SEGMENT_RULES:
        expr = cond.replace(" = ", " == ")  # SQL equality to Python
        if eval(expr, {}, env):  # noqa: S307 - rules are constants of this repo
            return name
    raise AssertionError("the last rule always matches")


def reference_features(
    transactions: pd.DataFrame,
    as_of: date,
    *,
    needs: pd.DataFrame | None = None,
    customers: pd.DataFrame | None = None,
    contacts: pd.DataFrame | None = None,
    window: int = 365,
    short_windows: tuple[int, ...] = (30, 90),
    trend: int = 90,
    horizon: int = 90,
    horizon_features: bool = False,
    season: bool = False,
    holidays: tuple[str, ...] = (),
) -> pd.DataFrame:
    """Features and labels as of `as_of`, one row per customer, sorted by id."""
    cut = pd.Timestamp(as_of)
    end = cut + pd.Timedelta(days=horizon)
    tx = transactions[transactions["ts"] < cut]
    orders = (
        tx.groupby(["customer_id", "order_id"])
        .agg(first_ts=("ts", "min"), net=("amount", "sum"))
        .reset_index()
    )
    orders["bought"] = tx.assign(p=tx["amount"].clip(lower=0)).groupby(["customer_id", "order_id"])["p"].sum().round(6).values
    orders["returned"] = tx.assign(p=(-tx["amount"]).clip(lower=0)).groupby(["customer_id", "order_id"])["p"].sum().round(6).values
    orders["net"] = orders["net"].round(6)  # as the SQL: exact cancellations are 0, not +-1e-15
    orders["day"] = orders["first_ts"].dt.normalize()
    orders["age"] = (cut - orders["day"]).dt.days

    rows = []
    windows = sorted({*short_windows, window, 90, *([horizon] if horizon_features else [])})
    # the same horizon-long window one year (365 days) before the label window
    year_ago_start, year_ago_end = cut - pd.Timedelta(days=365), cut - pd.Timedelta(days=365 - horizon)
    for cid, o in orders.groupby("customer_id"):
        p = o[o["net"] > 0]
        row: dict[str, object] = {"customer_id": cid}
        row["recency_days"] = p["age"].min() if len(p) else np.nan
        row["tenure_days"] = p["age"].max() if len(p) else np.nan
        row["purchases_total"] = len(p)
        for w in windows:
            pw = p[p["age"] <= w]
            row[f"frequency_{w}d"] = len(pw)
            row[f"monetary_avg_{w}d"] = round(pw["net"].sum(), 6) / len(pw) if len(pw) else np.nan
            row[f"spend_{w}d"] = round(o.loc[o["age"] <= w, "net"].sum(), 6)
        last = p[p["age"] <= trend]
        prior = p[(p["age"] > trend) & (p["age"] <= 2 * trend)]
        fl, fp = len(last), len(prior)
        row["frequency_trend"] = (fl - fp) / (fl + fp) if fl + fp else np.nan
        sl, sp = round(last["net"].sum(), 6), round(prior["net"].sum(), 6)
        row["spend_trend"] = (sl - sp) / (sl + sp) if sl + sp else np.nan
        ow = o[o["age"] <= window]
        ret, bought = round(ow["returned"].sum(), 6), round(ow["bought"].sum(), 6)
        row[f"returns_share_{window}d"] = ret / bought if bought else np.nan
        days = np.sort(p["day"].unique())
        gaps = np.diff(days).astype("timedelta64[D]").astype(float)
        row["gap_mean_days"] = gaps.mean() if len(gaps) else np.nan
        row["gap_median_days"] = float(np.median(gaps)) if len(gaps) else np.nan
        row["gap_std_days"] = round(gaps.std(ddof=1), 9) if len(gaps) > 1 else np.nan
        row["repeat_purchase_days"] = len(gaps)
        row["overdue_ratio"] = row["recency_days"] / row["gap_median_days"] if len(gaps) else np.nan
        if horizon_features:
            in_year_ago = (o["day"] >= year_ago_start) & (o["day"] < min(year_ago_end, cut))
            row["last_year_purchases"] = int((in_year_ago & (o["net"] > 0)).sum())
            row["last_year_spend"] = round(o.loc[in_year_ago, "net"].sum(), 6)
        rows.append(row)
    out = pd.DataFrame(rows)
    width = tx[tx["amount"] > 0].groupby("customer_id")["category"].nunique()
    out["width_categories"] = out["customer_id"].map(width).fillna(0).astype("int64")
    out["history_days"] = (cut - tx["ts"].min().normalize()).days  # the same for every customer
    if horizon_features and out["history_days"].iloc[0] < 365:  # the year-ago window is not all in the data
        out["last_year_purchases"] = np.nan
        out["last_year_spend"] = np.nan
    if season:
        out["cutoff_month"] = as_of.month
        if holidays:
            ahead = []
            for h in holidays:
                parts = [int(x) for x in h.split("-")]
                if len(parts) == 3:
                    ahead.append(date(*parts))
                else:
                    for year in (as_of.year, as_of.year + 1):
                        ahead.append(date(year, *parts))
            ahead = [d for d in ahead if d >= as_of]
            out["days_to_holiday"] = (min(ahead) - as_of).days if ahead else np.nan

    # needs evaluations
    if needs is not None and len(needs):
        ev = needs[needs["evaluated_at"] < cut]
        order_cols = ["evaluated_at", "dimension", "need_level", "urgency", "importance", "solution_fit"]
        ev = ev.sort_values(["customer_id", *order_cols])
        latest = ev.groupby("customer_id").tail(1).set_index("customer_id")
        per_dim = ev.groupby(["customer_id", "dimension"]).tail(1)
        pains = per_dim.assign(p=per_dim["need_level"] == "pain").groupby("customer_id")["p"].sum()
        ev_age = (cut - ev["evaluated_at"].dt.normalize()).dt.days
        agg = ev.groupby("customer_id").agg(total=("solution_fit", "size"), fit=("solution_fit", "mean"))
        comp_w = ev[ev["complaint"] & (ev_age <= window)].groupby("customer_id").size()
        comp_t = ev[ev["complaint"]].groupby("customer_id").size()
        ids = out["customer_id"]
        out["needs_evaluations_total"] = ids.map(agg["total"]).fillna(0).astype("int64")
        out["needs_open_pains"] = ids.map(pains).fillna(0).astype("int64")
        out[f"needs_complaints_{window}d"] = ids.map(comp_w).fillna(0).astype("int64")
        out["needs_complaints_total"] = ids.map(comp_t).fillna(0).astype("int64")
        out["needs_days_since_evaluation"] = ids.map((cut - latest["evaluated_at"].dt.normalize()).dt.days)
        for src, dst in [
            ("need_level", "needs_latest_level"), ("dimension", "needs_latest_dimension"),
            ("urgency", "needs_latest_urgency"), ("importance", "needs_latest_importance"),
            ("solution_fit", "needs_latest_solution_fit"), ("orientation", "needs_orientation"),
            ("style", "needs_style"),
        ]:
            out[dst] = ids.map(latest[src])
        out["needs_mean_solution_fit"] = ids.map(agg["fit"])

    if customers is not None:
        attrs = customers.set_index("customer_id")
        for col in attrs.columns:
            if col == "first_seen":
                continue
            out["attr_" + col.lower()] = out["customer_id"].map(attrs[col].astype("string"))

    # segments
    r = _score(-out["recency_days"].fillna(1_000_000))
    f = _score(out[f"frequency_{window}d"])
    m = _score(out[f"monetary_avg_{window}d"].fillna(0))
    w = _score(out["width_categories"])
    out["r_score"], out["f_score"], out["m_score"], out["w_score"] = r, f, m, w
    out["rfmw_segment"] = [_segment(*x) for x in zip(r, f, m, w)]
    spend = out[f"spend_{window}d"]
    k = spend.rank(method="max")
    n = len(out)
    tier = pd.Series("low", index=out.index)
    for name, pct in reversed(VALUE_TIERS):
        tier[100 * k > pct * n] = name
    tier[spend <= 0] = "none"
    out["value_tier"] = tier
    fw = out[f"frequency_{window}d"]
    out["loyalty_tier"] = np.select(
        [(f >= 4) & (out["tenure_days"] >= 365), f >= 3, fw >= 1], ["core", "regular", "occasional"], "lapsed"
    )
    out["activity"] = np.select([out["frequency_90d"] > 0, fw > 0], ["active", "passive"], "potential")
    od, rec = out["overdue_ratio"], out["recency_days"]
    out["risk_tier"] = np.select(
        [rec.isna() | (od >= 3) | (od.isna() & (rec > 180)), (od >= 1.5) | (od.isna() & (rec > 90))],
        ["high", "medium"],
        "low",
    )

    # labels
    after = transactions[(transactions["ts"] >= cut) & (transactions["ts"] < end)]
    onet = after.groupby(["customer_id", "order_id"])["amount"].sum().round(6).reset_index()
    purchases = onet[onet["amount"] > 0].groupby("customer_id").size()
    value = onet.groupby("customer_id")["amount"].sum().round(6)
    ids = out["customer_id"]
    out["label_purchases"] = ids.map(purchases).fillna(0).astype("int64")
    out["label_churn"] = (out["label_purchases"] == 0).astype("int64")
    out["label_value"] = ids.map(value).fillna(0.0)
    if contacts is not None and len(contacts):
        c = contacts[(contacts["contacted_at"] >= cut) & (contacts["contacted_at"] < end) & (contacts["group"] == "treatment")]
        resp = c.groupby("customer_id")["responded"].max().astype("int64")
        out["label_contacted"] = ids.isin(c["customer_id"]).astype("int64")
        out["label_response"] = ids.map(resp)
    else:
        out["label_contacted"] = 0
        out["label_response"] = np.nan
    return out.sort_values("customer_id").reset_index(drop=True)

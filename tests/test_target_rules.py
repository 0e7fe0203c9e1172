"""Targeting rules without models: value per response (k), the control group on top, score rankings.

Fast: the scoring runs and customer_scores rows are written directly into a DuckDB
warehouse (the end-to-end path is tests/test_target.py and tests/test_target_public.py).
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.load import Warehouse
from propensity.config import project_in
from serving import response_value as rv
from serving import sink
from serving.target import TargetingError, build_target_list, gain_curve, save_target_list

AS_OF = date(2025, 6, 30)
N = 1000
MISSING = ("response: no response@champion in the registry; it needs campaigns and contacts tables; import "
           "them, then `propensity train response` and `propensity promote response`")


def _publish(wh: Warehouse, *, churn: bool = True, response: bool = False, value: bool = True,
             run_id: str = "20250630-norespons") -> pd.DataFrame:
    """A succeeded scoring run of N customers with the given scores (the others null), as the scorer publishes it."""
    db = sink.database(wh)
    sink.ensure_tables(db)
    rng = np.random.default_rng(7)
    ids = [f"C{i:05d}" for i in range(N)]
    scores = pd.DataFrame({
        "run_id": run_id, "customer_id": ids, "as_of": pd.Timestamp(AS_OF),
        "churn_risk": rng.uniform(0, 1, N) if churn else np.nan,
        "response_prob": rng.uniform(0, 0.2, N) if response else np.nan,
        "predicted_value": rng.gamma(2.0, 50.0, N) if value else np.nan,
        "expected_profit": np.nan,
    })
    missing = "; ".join(f"{m}: no {m}@champion in the registry" if m != "response" else MISSING
                        for m, ok in (("churn", churn), ("response", response), ("value", value)) if not ok)
    run = pd.DataFrame([{
        "run_id": run_id, "attempt": 1, "as_of": AS_OF, "started_at": datetime(2025, 7, 1, 8),
        "finished_at": datetime(2025, 7, 1, 8, 5), "status": "succeeded",
        "churn_version": "3" if churn else None, "response_version": "2" if response else None,
        "value_version": "4" if value else None, "campaign_kind": "email" if response else None,
        "margin": 0.3, "contact_cost": 1.0, "customers": N, "missing_models": missing or None,
    }])
    with db.transaction():
        db.append(sink.SCORES, scores)
        db.append(sink.RUNS, run)
    return scores


@pytest.fixture
def sales_only(tmp_path):
    """A warehouse with sales data only: no campaigns table, a run without response scores."""
    cfg = project_in(tmp_path)
    wh = Warehouse(cfg.warehouse.url)
    scores = _publish(wh)
    yield {"cfg": cfg, "wh": wh, "scores": scores, "folder": tmp_path}
    wh.close()


# -- value per response: k -------------------------------------------------------------------

def _responders(n: int, revenue=np.nan, day_spend=np.nan, bought=30.0, purchases=3) -> pd.DataFrame:
    return pd.DataFrame({"revenue": [revenue] * n, "day_spend": [day_spend] * n,
                         "bought": [bought] * n, "purchases": [purchases] * n})


def test_k_is_observed_response_value_over_responder_aov() -> None:
    # 30 responders with 20 of response-day spend and an AOV of 10 -> k = 2
    value = rv.from_responders(_responders(30, day_spend=20.0), "email", AS_OF)
    assert value.k == pytest.approx(2.0) and value.source == "response-day spend" and value.responders == 30
    assert value.observed_mean == pytest.approx(20.0) and value.aov_mean == pytest.approx(10.0)
    assert value.describe().startswith("k = 2.000 from response-day net spend of 30 responders to 'email'")
    # revenue wins over the response day where both exist; a ratio of totals, not a mean of ratios
    mixed = pd.concat([_responders(10, revenue=60.0, day_spend=1.0, bought=20.0, purchases=1),  # AOV 20
                       _responders(15, day_spend=10.0, bought=10.0, purchases=2)])  # AOV 5
    value = rv.from_responders(mixed, "email", AS_OF)
    assert value.k == pytest.approx((10 * 60 + 15 * 10) / (10 * 20 + 15 * 5))
    assert value.source == "contacts.revenue + response-day spend"
    # responders without an earlier purchase (no AOV) do not count
    no_history = pd.concat([_responders(25, day_spend=20.0), _responders(5, day_spend=500.0, bought=np.nan,
                                                                          purchases=np.nan)])
    assert rv.from_responders(no_history, "email", AS_OF).k == pytest.approx(2.0)


def test_k_is_one_when_nothing_is_observed() -> None:
    few = rv.from_responders(_responders(rv.MIN_RESPONDERS - 1, day_spend=20.0), "email", AS_OF)
    assert few.k == 1.0 and few.source == "none" and not few.observed
    assert f"only {rv.MIN_RESPONDERS - 1} responder(s)" in few.describe()
    assert few.describe().startswith("k = 1 (one average order per response): ")
    blind = rv.from_responders(_responders(50), "email", AS_OF)  # neither revenue nor responded_at
    assert blind.k == 1.0 and "neither revenue nor responded_at" in blind.describe()
    empty = rv.from_responders(_responders(0), "email", AS_OF)
    assert empty.k == 1.0 and "no responder to 'email' campaigns" in empty.describe()
    assert rv.unobserved(None, AS_OF, "no campaign kind").describe().endswith("no campaign kind")


def test_value_per_response_uses_the_median_where_aov_is_null() -> None:
    value = rv.from_responders(_responders(30, day_spend=25.0), "email", AS_OF).with_fallback(12.0)
    got = rv.value_per_response(pd.Series([10.0, None, 4.0]), value)
    np.testing.assert_allclose(got, [25.0, 30.0, 10.0])


def test_k_from_a_warehouse_by_hand(warehouse) -> None:
    """Responders' response-day spend (responded_at) over their AOV in the 365 days before the contact."""
    contact = datetime(2025, 3, 1)
    tx, contacts = [], []
    for i in range(24):
        c = f"R{i:02d}"
        # two purchases before the contact: AOV 10; one older than 365 days that must not count
        tx += [(c, f"{c}-a", contact - timedelta(days=30), 8.0), (c, f"{c}-b", contact - timedelta(days=10), 12.0),
               (c, f"{c}-old", contact - timedelta(days=400), 1000.0)]
        # the response day: two baskets (25 + 5) and a return (-2) -> net 28
        day = contact + timedelta(days=3)
        tx += [(c, f"{c}-r1", day + timedelta(hours=9), 25.0), (c, f"{c}-r2", day + timedelta(hours=17), 5.0),
               (c, f"{c}-r2", day + timedelta(hours=17, minutes=1), -2.0)]
        contacts.append(("m1", c, contact, "treatment", True, day + timedelta(hours=9), None))
    for i in range(30):  # non-responders and a control responder: not counted
        contacts.append(("m1", f"N{i:02d}", contact, "treatment", False, None, None))
    contacts.append(("m1", "R00", contact, "control", True, contact + timedelta(days=1), 9999.0))
    # a later campaign's responder, contacted after the as-of date: not counted either
    contacts.append(("m2", "R01", datetime(2025, 8, 1), "treatment", True, datetime(2025, 8, 2), 5000.0))
    con = warehouse.duck()
    con.execute("create table transactions (customer_id varchar, order_id varchar, ts timestamp, amount double, "
                "category varchar)")
    con.executemany("insert into transactions values (?, ?, ?, ?, 'food')", tx)
    con.execute("create table campaigns (campaign_id varchar, name varchar, kind varchar, start timestamp, "
                "\"end\" timestamp)")
    con.execute("insert into campaigns values ('m1', 'spring', 'email', '2025-03-01', '2025-03-31'), "
                "('m2', 'summer', 'email', '2025-08-01', '2025-08-31')")
    con.execute("create table contacts (campaign_id varchar, customer_id varchar, contacted_at timestamp, "
                "\"group\" varchar, responded boolean, responded_at timestamp, revenue double)")
    con.executemany("insert into contacts values (?, ?, ?, ?, ?, ?, ?)", contacts)
    value = rv.observed(warehouse, "email", AS_OF)
    assert value.responders == 24 and value.source == "response-day spend"
    assert value.k == pytest.approx(2.8) and value.aov_mean == pytest.approx(10.0)
    assert rv.observed(warehouse, "sms", AS_OF).k == 1.0
    assert rv.observed(warehouse, None, AS_OF).source == "none"
    # with recorded revenue it is used instead of the response day
    con.execute("update contacts set revenue = 40.0 where campaign_id = 'm1' and \"group\" = 'treatment' "
                "and responded")
    value = rv.observed(warehouse, "email", AS_OF)
    assert value.k == pytest.approx(4.0) and value.source == "contacts.revenue"


# -- the control group is on top of the contacts ----------------------------------------------

@pytest.mark.parametrize("ask", [{"top": 90}, {"budget": 180.0, "cost": 2.0}, {"budget": 181.9, "cost": 2.0}],
                         ids=["top", "budget", "budget-remainder"])
def test_control_group_is_held_out_on_top_of_the_contacts(sales_only, ask) -> None:
    wh, cfg = sales_only["wh"], sales_only["cfg"]
    t = build_target_list(wh, cfg, "winback", control=0.1, **ask)
    s = t.summary
    # 90 contacts paid for (top 90, or 180 // 2); 10 = 90 x 0.1 / 0.9 more held out: 10 % of 100
    assert s["contacted"] == 90 and s["control"] == 10 and s["selected"] == 100 and len(t.frame) == 100
    assert (t.frame["group"] == "treatment").sum() == 90 and (t.frame["group"] == "control").sum() == 10
    assert s["cost"] == pytest.approx(90 * (ask.get("cost") or cfg.serving.contact_cost))
    # a fifth held out: 25 more for 100 contacts
    t = build_target_list(wh, cfg, "winback", control=0.2, **{k: (v * 100 // 90 if k == "top" else v)
                                                              for k, v in ask.items()})
    if "top" in ask:
        assert (t.summary["contacted"], t.summary["control"], t.summary["selected"]) == (100, 25, 125)
    no_control = build_target_list(wh, cfg, "winback", control=0.0, **ask)
    assert (no_control.summary["contacted"], no_control.summary["control"]) == (90, 0)


# -- targeting without a response model or campaigns -----------------------------------------

def test_sales_only_ranks_by_value_at_risk(sales_only) -> None:
    wh, cfg, scores = sales_only["wh"], sales_only["cfg"], sales_only["scores"]
    t = build_target_list(wh, cfg, "winback", budget=200.0, cost=2.0, control=0.1)
    assert t.method == "value_at_risk" and not t.has_profit
    s = t.summary
    assert s["campaign_kind"] is None and s["contacted"] == 100 and s["control"] == 11
    at_risk = (scores["churn_risk"] * scores["predicted_value"]).to_numpy()
    best = scores.assign(v=at_risk).sort_values(["v", "customer_id"], ascending=[False, True]).head(111)
    assert t.frame["customer_id"].tolist() == best["customer_id"].tolist()
    np.testing.assert_allclose(t.frame["value_at_risk"], t.frame["churn_risk"] * t.frame["predicted_value"])
    assert (t.frame["score_used"] == t.frame["value_at_risk"]).all()
    for c in ("expected_profit", "incremental_profit", "response_value", "response_prob", "uplift"):
        assert t.frame[c].isna().all(), c
    for k in ("expected_profit", "incremental_profit", "expected_responders", "response_value_k"):
        assert s[k] is None, k
    treated = t.frame[t.frame["group"] == "treatment"]
    assert s["score_total"] == pytest.approx(treated["value_at_risk"].sum())
    assert "no campaigns table" in s["ranked_because"]
    text = t.report()
    assert "ranked by value at risk (churn risk x predicted value): the warehouse has no campaigns table" in text
    assert "kind none" in text and "no profit estimate" in text and "value at risk of the contacted" in text
    # the gain curve accumulates value at risk, and says so
    assert set(t.gain["measure"]) == {"value at risk"}
    assert t.gain["cumulative_profit"].iloc[-1] == pytest.approx(at_risk.sum())
    assert t.gain["cumulative_profit"].iloc[10] > t.gain["cumulative_profit_random"].iloc[10]
    # saved with null profit columns
    list_id = save_target_list(wh, t, csv_dir=sales_only["folder"] / "targets")
    stored = wh.query("select * from target_lists where list_id = ? order by rank", [list_id])
    assert len(stored) == 111 and stored["expected_profit"].isna().all() and stored["method"].eq("value_at_risk").all()
    assert stored["campaign_kind"].isna().all()


def test_score_rankings_and_one_line_refusals(sales_only, tmp_path) -> None:
    wh, cfg = sales_only["wh"], sales_only["cfg"]
    by_value = build_target_list(wh, cfg, "any name", top=50, control=0.0, rank_by="value")
    assert by_value.method == "value" and (np.diff(by_value.frame["predicted_value"]) <= 0).all()
    assert by_value.summary["score_total"] == pytest.approx(by_value.frame["predicted_value"].sum())
    assert set(by_value.gain["measure"]) == {"predicted value"}
    by_churn = build_target_list(wh, cfg, "any name", top=50, control=0.0, rank_by="churn")
    assert by_churn.method == "churn" and (np.diff(by_churn.frame["churn_risk"]) <= 0).all()
    for rank_by, message in (
        ("expected_profit", "--rank-by expected_profit needs a campaign kind, but the warehouse has no campaigns "
                            "table, so there is no campaign kind to estimate a response for; rank by "
                            "value_at_risk, value, churn"),
        ("uplift", "--rank-by uplift: the warehouse has no campaigns table"),
        ("nope", "--rank-by 'nope': use one of auto, uplift, expected_profit, value_at_risk, value, churn"),
    ):
        with pytest.raises(TargetingError, match="^" + message.replace("(", r"\(").replace(")", r"\)")) as e:
            build_target_list(wh, cfg, "winback", top=10, rank_by=rank_by)
        assert "\n" not in str(e.value)

    # a run with value scores only: value_at_risk is refused, auto ranks by value
    cfg2 = project_in(tmp_path / "value-only")
    with Warehouse(cfg2.warehouse.url) as only_value:
        _publish(only_value, churn=False, run_id="20250630-valueonly")
        t = build_target_list(only_value, cfg2, "winback", top=20)
        assert t.method == "value"
        with pytest.raises(TargetingError, match=r"^--rank-by value_at_risk needs churn and value scores, but "
                                                 r"scoring run 20250630-valueonly has no churn scores \(no churn@"):
            build_target_list(only_value, cfg2, "winback", top=20, rank_by="value_at_risk")
        # with a campaigns table: the name must be a campaign or kind; still no response -> value
        only_value.duck().execute("create table campaigns as select 'c1' as campaign_id, 'spring' as name, "
                                  "'email' as kind, timestamp '2025-03-01' as start, timestamp '2025-03-31' as \"end\"")
        with pytest.raises(TargetingError, match="unknown campaign 'winback'"):
            build_target_list(only_value, cfg2, "winback", top=20)
        t = build_target_list(only_value, cfg2, "c1", top=20)
        assert t.method == "value" and t.summary["campaign_kind"] == "email"
        assert "has no response scores (no response@champion in the registry; it needs campaigns" in \
            t.summary["ranked_because"]
        with pytest.raises(TargetingError, match=r"^--rank-by expected_profit needs response scores, but scoring "
                                                 r"run 20250630-valueonly has no response scores \(") as e:
            build_target_list(only_value, cfg2, "email", top=20, rank_by="expected_profit")
        assert e.value.args[0].endswith("; rank by value")


def test_cli_targets_without_campaigns(sales_only) -> None:
    from propensity.cli import app

    cfg, folder = sales_only["cfg"], sales_only["folder"]
    sales_only["wh"].close()
    toml = folder / "propensity.toml"
    toml.write_text(f'[warehouse]\nurl = "{cfg.warehouse.url}"\n[mlflow]\ntracking_uri = "{cfg.mlflow.tracking_uri}"\n'
                    f'artifact_location = "{cfg.mlflow.artifact_location}"\n[features]\noutput_dir = "{folder / "out"}"\n')
    res = CliRunner().invoke(app, ["target", "winback", "--budget", "100", "--cost", "2", "--config", str(toml)])
    assert res.exit_code == 0, res.output
    assert "ranked by value at risk (churn risk x predicted value)" in res.output
    assert "contact 50, hold out 6 as control" in res.output
    res = CliRunner().invoke(app, ["target", "winback", "--top", "5", "--rank-by", "expected_profit",
                                   "--config", str(toml)])
    assert res.exit_code == 1 and res.output.count("\n") == 1
    assert res.output.startswith("error: --rank-by expected_profit needs a campaign kind")


def test_gain_curve_names_its_measure() -> None:
    g = gain_curve(np.array([5.0, 3.0, -1.0, -3.0]), points=5)
    assert g["cumulative_profit"].tolist() == [0.0, 5.0, 8.0, 7.0, 4.0] and set(g["measure"]) == {"profit"}
    assert set(gain_curve(np.array([1.0]), measure="churn risk")["measure"]) == {"churn risk"}


@pytest.mark.parametrize("campaign, slug", [
    ("winback", "winback"),
    ("Spring Sale 2025!", "spring-sale-2025"),
    ("c_1 / email", "c_1-email"),
    ("@SUM(1+1)", "sum-1-1"),
    ("Ärger über Preise", "arger-uber-preise"),
    ("  ", "list"),
    ("???", "list"),
    ("x" * 50 + " y", "x" * 40),
    ("a" * 39 + " b", "a" * 39),
])
def test_list_ids_and_file_names_are_slugs(campaign: str, slug: str) -> None:
    from serving.target import list_slug

    assert list_slug(campaign) == slug


def test_saved_list_id_is_file_and_url_safe(sales_only) -> None:
    wh = sales_only["wh"]
    t = build_target_list(wh, sales_only["cfg"], "Spring Sale / VIP", top=5, control=0.0)
    list_id = save_target_list(wh, t, csv_dir=sales_only["folder"] / "slug-targets")
    assert re.fullmatch(r"spring-sale-vip-\d{14}-[0-9a-f]{6}", list_id)
    assert (sales_only["folder"] / "slug-targets" / f"{list_id}.csv").exists()
    stored = wh.query("select distinct campaign, list_id from target_lists where list_id = ?", [list_id])
    assert stored.values.tolist() == [["Spring Sale / VIP", list_id]]  # the name itself is kept

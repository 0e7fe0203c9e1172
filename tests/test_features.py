"""As-of features: hand-computed boundaries, invariants, and SQL == pandas reference."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.load import Warehouse
from features.snapshots import LABEL_COLUMNS, build_features, build_snapshots
from features.windows import Cutoff, snapshot_cutoffs
from propensity.config import FeaturesConfig
from tests.reference_features import reference_features

CFG = FeaturesConfig()
AS_OF = date(2024, 7, 1)


def load(wh: Warehouse, **tables: pd.DataFrame) -> None:
    with wh.transaction() as tx:
        for name, frame in tables.items():
            tx.replace(name, frame)


def tx_frame(rows: list[tuple[str, str, str, float, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "order_id": [r[1] for r in rows],
            "ts": pd.to_datetime([r[2] for r in rows], format="ISO8601").astype("datetime64[us]"),
            "amount": [float(r[3]) for r in rows],
            "category": [r[4] for r in rows],
        }
    )


def assert_same(sql: pd.DataFrame, ref: pd.DataFrame, columns: list[str] | None = None) -> None:
    """Every column equal: numbers within 1e-9 (nulls equal), text exactly."""
    assert list(sql["customer_id"]) == list(ref["customer_id"])
    for col in columns or [c for c in sql.columns if c not in ("as_of",)]:
        a, b = sql[col], ref[col]
        if pd.api.types.is_numeric_dtype(a) or pd.api.types.is_numeric_dtype(b):
            x = pd.to_numeric(a, errors="coerce").astype("float64").to_numpy()
            y = pd.to_numeric(b, errors="coerce").astype("float64").to_numpy()
            assert np.array_equal(np.isnan(x), np.isnan(y)), f"{col}: nulls differ"
            ok = ~np.isnan(x)
            assert np.allclose(x[ok], y[ok], rtol=0, atol=1e-9), f"{col}: max diff {np.max(np.abs(x[ok] - y[ok]))}"
        else:
            xa = a.astype("object").where(a.notna(), None).tolist()
            yb = b.astype("object").where(b.notna(), None).tolist()
            assert xa == yb, f"{col} differs"


# -- hand-computed -------------------------------------------------------------------
BOUNDARY = tx_frame([
    # customer a: purchases 366, 365, 31, 30 and 1 days before the as-of date
    ("a", "a1", "2023-07-01 09:00", 10, "x"),  # age 366: outside the 365-day window
    ("a", "a2", "2023-07-02 00:00", 20, "y"),  # age 365: inside
    ("a", "a3", "2024-05-31 23:59", 30, "x"),  # age 31
    ("a", "a4", "2024-06-01 12:00", 40, "z"),  # age 30: inside the 30-day window
    ("a", "a4", "2024-06-01 12:05", -15, "z"),  # a returned line of the same order: net 25
    ("a", "a5", "2024-06-30 23:59:59", 50, "w"),  # the last instant before the as-of
    ("a", "a6", "2024-07-01 00:00", 999, "v"),  # exactly at the as-of: a label, never a feature
    # customer b: a return only order and one purchase
    ("b", "b1", "2024-03-01 10:00", 60, "x"),
    ("b", "b2", "2024-04-01 10:00", -60, "x"),  # net < 0: not a purchase, a return
    ("b", "b3", "2024-09-29 00:00", 5, "x"),  # exactly at as-of + 90 days: outside the horizon
    ("b", "b4", "2024-09-28 23:59", 7, "x"),  # the last instant inside the horizon
    # customer c appears only after the as-of date: not in the frame
    ("c", "c1", "2024-07-02 00:00", 10, "x"),
])


def test_boundary_rows_hand_computed(warehouse: Warehouse) -> None:
    load(warehouse, transactions=BOUNDARY)
    f = build_features(warehouse, AS_OF, CFG).set_index("customer_id")
    assert list(f.index) == ["a", "b"]
    a, b = f.loc["a"], f.loc["b"]
    assert a["recency_days"] == 1
    assert a["tenure_days"] == 366
    assert a["purchases_total"] == 5
    assert a["frequency_365d"] == 4  # a2, a3, a4, a5
    assert a["monetary_avg_365d"] == pytest.approx((20 + 30 + 25 + 50) / 4)
    assert a["frequency_30d"] == 2  # a4 (age 30) and a5 (age 1)
    assert a["spend_30d"] == pytest.approx(75.0)
    assert a["frequency_90d"] == 3
    assert a["width_categories"] == 4  # x, y, z, w; v is after the as-of
    assert a["returns_share_365d"] == pytest.approx(15 / 140)
    # purchase days: ages 366, 365, 31, 30, 1 -> gaps 1, 334, 1, 29
    assert a["gap_mean_days"] == pytest.approx((1 + 334 + 1 + 29) / 4)
    assert a["gap_median_days"] == pytest.approx(15.0)
    assert a["overdue_ratio"] == pytest.approx(1 / 15)
    # trend: last 90 days a3, a4, a5; prior 90 days (ages 91-180) none
    assert a["frequency_trend"] == pytest.approx(1.0)
    assert a["label_churn"] == 0 and a["label_purchases"] == 1 and a["label_value"] == 999

    assert b["purchases_total"] == 1
    assert b["recency_days"] == (pd.Timestamp(AS_OF) - pd.Timestamp("2024-03-01")).days
    assert b["spend_365d"] == 0.0  # 60 bought, 60 returned
    assert b["returns_share_365d"] == pytest.approx(1.0)
    assert np.isnan(b["gap_median_days"]) and np.isnan(b["overdue_ratio"])
    # b4 is inside the horizon, b3 (exactly at as-of + 90 days) is not
    assert b["label_purchases"] == 1 and b["label_value"] == 7 and b["label_churn"] == 0


def test_horizon_and_season_features_hand_computed(warehouse: Warehouse) -> None:
    load(warehouse, transactions=BOUNDARY)
    assert "last_year_purchases" not in build_features(warehouse, AS_OF, CFG).columns  # off by default
    on = FeaturesConfig(horizon_features=True)
    f = build_features(warehouse, AS_OF, on).set_index("customer_id")
    # horizon 90: the year-ago window is ages 276..365 (2023-07-02 .. 2023-09-29): a2 only
    assert f.loc["a", "last_year_purchases"] == 1 and f.loc["a", "last_year_spend"] == 20.0
    assert f.loc["b", "last_year_purchases"] == 0 and f.loc["b", "last_year_spend"] == 0.0
    assert "cutoff_month" not in f.columns  # season features are off by default

    cfg = FeaturesConfig(horizon_days=60, horizon_features=True, season_features=True,
                         holidays=("12-25", "2024-07-04", "2023-01-01"))
    f = build_features(warehouse, AS_OF, cfg).set_index("customer_id")
    assert f.loc["a", "frequency_60d"] == 3 and f.loc["a", "spend_60d"] == 105.0  # a3 (31), a4 (30), a5 (1)
    assert f.loc["a", "monetary_avg_60d"] == 35.0
    assert f.loc["a", "last_year_purchases"] == 1  # ages 306..365: a2
    assert f["cutoff_month"].tolist() == [7, 7]
    assert f["days_to_holiday"].tolist() == [3, 3]  # 2024-07-04; 2023-01-01 is past, 12-25 is 177 days off
    assert build_features(warehouse, date(2024, 7, 5), cfg)["days_to_holiday"].iloc[0] == 173  # 2024-12-25
    none_ahead = FeaturesConfig(season_features=True, holidays=("2023-01-01",))
    assert build_features(warehouse, AS_OF, none_ahead)["days_to_holiday"].isna().all()

    # less than a year of data before the as-of: the year-ago window is not all there
    load(warehouse, transactions=BOUNDARY[BOUNDARY["customer_id"] == "b"])
    f = build_features(warehouse, AS_OF, on)
    assert f["history_days"].iloc[0] == 122
    assert f["last_year_purchases"].isna().all() and f["last_year_spend"].isna().all()


@pytest.mark.parametrize("holiday", ["13-01", "02-29", "2024-02-30", "Dec 25", "12/25"])
def test_holidays_config_refused(holiday: str) -> None:
    with pytest.raises(ValueError, match="holiday"):
        FeaturesConfig(holidays=(holiday,))


def test_label_window_excludes_horizon_end(warehouse: Warehouse) -> None:
    only_end = tx_frame([
        ("b", "b1", "2024-03-01 10:00", 60, "x"),
        ("b", "b3", "2024-09-29 00:00", 5, "x"),
    ])
    load(warehouse, transactions=only_end)
    f = build_features(warehouse, AS_OF, CFG)
    assert f["label_churn"].tolist() == [1]
    assert f["label_value"].tolist() == [0.0]


def test_needs_features_hand_computed(warehouse: Warehouse) -> None:
    needs = pd.DataFrame({
        "customer_id": ["a", "a", "a", "a"],
        "evaluated_at": pd.to_datetime(["2024-01-10", "2024-02-10", "2024-05-01", "2024-07-01"]).astype("datetime64[us]"),
        "need_level": ["pain", "pain", "want", "pain"],
        "dimension": ["price", "service", "price", "product"],
        "urgency": [4, 5, 2, 5],
        "importance": [3, 4, 2, 5],
        "solution_fit": [1, 2, 4, 1],
        "orientation": ["price", "price", "value", "value"],
        "style": ["dominant", "dominant", "social", "social"],
        "complaint": [True, False, True, True],
    })
    load(warehouse, transactions=BOUNDARY, needs_evaluations=needs)
    a = build_features(warehouse, AS_OF, CFG).set_index("customer_id").loc["a"]
    # the 2024-07-01 evaluation is at the as-of: not seen
    assert a["needs_evaluations_total"] == 3
    assert a["needs_open_pains"] == 1  # service still pain; price resolved by the 'want'
    assert a["needs_latest_level"] == "want" and a["needs_orientation"] == "value"
    assert a["needs_latest_solution_fit"] == 4
    assert a["needs_mean_solution_fit"] == pytest.approx(7 / 3)
    assert a["needs_complaints_total"] == 2
    assert a["needs_days_since_evaluation"] == 61


def test_segments_hand_computed(warehouse: Warehouse) -> None:
    # five customers with 1..5 purchases in the year, the most frequent also most recent
    rows = []
    for i in range(1, 6):
        for j in range(i):
            rows.append((f"c{i}", f"c{i}-{j}", f"2024-0{6 - j}-{10 + i} 10:00", 10.0 * i, f"k{j}"))
    load(warehouse, transactions=tx_frame(rows))
    f = build_features(warehouse, AS_OF, CFG).set_index("customer_id")
    assert f["f_score"].tolist() == [1, 2, 3, 4, 5]
    assert f["m_score"].tolist() == [1, 2, 3, 4, 5]
    assert f["w_score"].tolist() == [1, 2, 3, 4, 5]
    assert f["r_score"].tolist() == [1, 2, 3, 4, 5]  # c5 bought on 2024-06-15, c1 on 06-11
    assert f.loc["c5", "rfmw_segment"] == "champions"
    assert f.loc["c1", "rfmw_segment"] == "lost"
    assert f["value_tier"].tolist() == ["low", "low", "medium", "high", "top"]
    assert set(f["activity"]) == {"active"}


def test_ties_share_a_score(warehouse: Warehouse) -> None:
    rows = [(f"c{i}", f"o{i}", "2024-06-01 10:00", 10.0, "x") for i in range(4)]
    load(warehouse, transactions=tx_frame(rows))
    f = build_features(warehouse, AS_OF, CFG)
    # nobody beats anybody: everyone scores 1
    assert f[["r_score", "f_score", "m_score", "w_score"]].to_numpy().tolist() == [[1, 1, 1, 1]] * 4


def test_width_counts_categories_beyond_the_mask(warehouse: Warehouse) -> None:
    """Width is exact past the 63 categories that get a bit of their own (features.rfmw)."""
    rows = [("a", f"a{i}", "2024-06-01 10:00", 5.0, f"k{i:03d}") for i in range(70)]  # 70 categories
    rows += [
        ("a", "a-ret", "2024-06-02 10:00", -5.0, "returned-only"),  # a return: not bought
        ("a", "a-null", "2024-06-03 10:00", 5.0, None),  # a null category counts once, as in GROUP BY
        ("b", "b1", "2024-06-01 10:00", 5.0, "k000"),  # the most common category
        ("b", "b2", "2024-06-01 11:00", 5.0, "k069"),
        ("b", "b3", "2024-06-02 10:00", 5.0, "rare-b"),  # bought once by b only
    ]
    rows += [(f"c{i}", f"c{i}", "2024-06-01 10:00", 5.0, "k000") for i in range(5)]
    load(warehouse, transactions=tx_frame(rows))
    f = build_features(warehouse, AS_OF, CFG).set_index("customer_id")
    assert f.loc["a", "width_categories"] == 71
    assert f.loc["b", "width_categories"] == 3
    assert f.loc["c0", "width_categories"] == 1


def test_same_day_purchases_add_no_gap(warehouse: Warehouse) -> None:
    rows = [
        ("a", "a1", "2024-06-01 09:00", 10.0, "x"),
        ("a", "a2", "2024-06-01 17:00", 10.0, "x"),  # a second purchase the same day
        ("a", "a3", "2024-06-04 09:00", 10.0, "x"),
        ("a", "a4", "2024-06-04 10:00", -50.0, "x"),  # a return order between: not a purchase
        ("a", "a5", "2024-06-11 09:00", 10.0, "x"),
    ]
    load(warehouse, transactions=tx_frame(rows))
    a = build_features(warehouse, AS_OF, CFG).set_index("customer_id").loc["a"]
    # distinct purchase days 06-01, 06-04, 06-11: gaps 3 and 7
    assert a["repeat_purchase_days"] == 2
    assert a["gap_mean_days"] == pytest.approx(5.0) and a["gap_median_days"] == pytest.approx(5.0)
    assert a["gap_std_days"] == pytest.approx(np.std([3, 7], ddof=1))
    assert a["history_days"] == 30  # from the first line, 2024-06-01


# -- invariants ----------------------------------------------------------------------
def random_world(seed: int, customers: int = 60, lines: int = 1500) -> dict[str, pd.DataFrame]:
    """Small random tables covering returns, several lines per order, evaluations, contacts."""
    rng = np.random.default_rng(seed)
    cid = np.array([f"c{i:03d}" for i in range(customers)])
    who = rng.choice(cid, lines)
    start = pd.Timestamp("2022-06-01")
    ts = start + pd.to_timedelta(rng.integers(0, 800 * 86400, lines), unit="s")
    order = np.array([f"{w}-{t.strftime('%Y%m%d')}-{rng.integers(0, 2)}" for w, t in zip(who, ts)])
    amount = np.round(rng.gamma(2.0, 20.0, lines) * np.where(rng.random(lines) < 0.08, -1, 1), 2)
    tx = pd.DataFrame({
        "customer_id": who, "order_id": order, "ts": ts.astype("datetime64[us]"),
        "amount": amount, "category": rng.choice(list("abcdefgh"), lines),
    })
    n_ev = 300
    needs = pd.DataFrame({
        "customer_id": rng.choice(cid, n_ev),
        "evaluated_at": (start + pd.to_timedelta(rng.integers(0, 800, n_ev), unit="D")).astype("datetime64[us]"),
        "need_level": rng.choice(["requirement", "want", "pain"], n_ev),
        "dimension": rng.choice(["product", "price", "service", "experience"], n_ev),
        "urgency": rng.integers(1, 6, n_ev), "importance": rng.integers(1, 6, n_ev),
        "solution_fit": rng.integers(1, 6, n_ev),
        "orientation": rng.choice(["price", "value"], n_ev),
        "style": rng.choice(["dominant", "analytical", "social", "amiable"], n_ev),
        "complaint": rng.random(n_ev) < 0.2,
    })
    customers_t = pd.DataFrame({"customer_id": cid, "region": rng.choice(["north", "south"], customers)})
    n_c = 200
    contacts = pd.DataFrame({
        "campaign_id": "k1", "customer_id": rng.choice(cid, n_c),
        "contacted_at": (start + pd.to_timedelta(rng.integers(0, 800, n_c), unit="D")).astype("datetime64[us]"),
        "group": rng.choice(["treatment", "control"], n_c), "responded": rng.random(n_c) < 0.3,
    })
    return {"transactions": tx, "needs_evaluations": needs, "customers": customers_t, "contacts": contacts}


def _sql_and_reference(tmp_path, world: dict, as_of: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The product's SQL features of `world` as of `as_of`, and the pandas reference's."""
    with Warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}") as wh:
        load(wh, **world)
        sql = build_features(wh, as_of, CFG)
    ref = reference_features(
        world["transactions"], as_of, needs=world["needs_evaluations"],
        customers=world["customers"], contacts=world["contacts"],
    )
    return sql, ref


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("as_of", [date(2023, 3, 15), date(2024, 1, 1), date(2024, 6, 30)])
def test_sql_equals_pandas_reference(tmp_path, seed: int, as_of: date) -> None:
    sql, ref = _sql_and_reference(tmp_path, random_world(seed), as_of)
    assert set(sql.columns) - {"as_of"} == set(ref.columns)
    assert_same(sql, ref)


@pytest.mark.parametrize("horizon", [45, 400])
@pytest.mark.parametrize("as_of", [date(2023, 3, 15), date(2024, 6, 30)])
def test_sql_equals_pandas_reference_horizon_and_season(tmp_path, horizon: int, as_of: date) -> None:
    """Another horizon (its window and the year-ago window move with it) and the season features."""
    cfg = FeaturesConfig(horizon_days=horizon, horizon_features=True, season_features=True,
                         holidays=("12-25", "03-20", "2024-07-04"))
    world = random_world(4)
    with Warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}") as wh:
        load(wh, **world)
        sql = build_features(wh, as_of, cfg)
    ref = reference_features(world["transactions"], as_of, needs=world["needs_evaluations"],
                             customers=world["customers"], contacts=world["contacts"], horizon=horizon,
                             horizon_features=True, season=True, holidays=cfg.holidays)
    assert set(sql.columns) - {"as_of"} == set(ref.columns)
    assert_same(sql, ref)


def test_sql_equals_pandas_reference_with_many_categories(tmp_path) -> None:
    """150 categories, most customers buying common and rare ones: the width's two paths."""
    world = random_world(5)
    rng = np.random.default_rng(5)
    weights = 1.0 / np.arange(1, 151)
    draws = rng.choice(150, len(world["transactions"]), p=weights / weights.sum())
    world["transactions"]["category"] = [f"k{i:03d}" for i in draws]
    as_of = date(2024, 6, 30)
    sql, ref = _sql_and_reference(tmp_path, world, as_of)
    tx = world["transactions"]
    assert tx[(tx["ts"] < pd.Timestamp(as_of)) & (tx["amount"] > 0)]["category"].nunique() > 100  # well past 63
    assert_same(sql, ref)


FEATURE_WORLD = random_world(7)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 40),
    offsets=st.lists(st.integers(0, 400 * 86400), min_size=40, max_size=40),
    amounts=st.lists(st.floats(-500, 500, allow_nan=False).map(lambda x: round(x, 2)), min_size=40, max_size=40),
    who=st.lists(st.integers(0, 79), min_size=40, max_size=40),
)
def test_rows_on_or_after_as_of_never_change_features(tmp_path_factory, n, offsets, amounts, who) -> None:
    as_of = date(2023, 11, 1)
    base = FEATURE_WORLD
    extra_tx = pd.DataFrame({
        # customers c060..c079 do not exist before: they must not appear either
        "customer_id": [f"c{w:03d}" for w in who[:n]],
        "order_id": [f"new{i}" if i % 3 else "c000-20231101-0" for i in range(n)],
        "ts": (pd.Timestamp(as_of) + pd.to_timedelta(offsets[:n], unit="s")).astype("datetime64[us]"),
        "amount": amounts[:n],
        "category": ["zz"] * n,
    })
    extra_needs = base["needs_evaluations"].head(n).assign(
        evaluated_at=(pd.Timestamp(as_of) + pd.to_timedelta(offsets[:n], unit="s")).astype("datetime64[us]")
    )
    folder = tmp_path_factory.mktemp("prop")
    with Warehouse(f"duckdb:///{folder / 'a.duckdb'}") as wh:
        load(wh, **base)
        before = build_features(wh, as_of, CFG, with_labels=False)
    grown = dict(base)
    grown["transactions"] = pd.concat([base["transactions"], extra_tx], ignore_index=True)
    grown["needs_evaluations"] = pd.concat([base["needs_evaluations"], extra_needs], ignore_index=True)
    with Warehouse(f"duckdb:///{folder / 'b.duckdb'}") as wh:
        load(wh, **grown)
        after = build_features(wh, as_of, CFG, with_labels=False)
    pd.testing.assert_frame_equal(before, after)


def test_snapshot_cutoffs_step_shorter_than_horizon() -> None:
    end = date(2024, 12, 31)  # exclusive: the latest cutoff is 90 days before, 2024-10-02
    got = snapshot_cutoffs(end, 90, 30, 8)
    assert got == [date(2024, 3, 6), date(2024, 4, 5), date(2024, 5, 5), date(2024, 6, 4), date(2024, 7, 4),
                   date(2024, 10, 2)]  # 2024-08-03 and 2024-09-02 label into the latest one's window
    assert snapshot_cutoffs(end, 90, 91, 3) == [date(2024, 4, 3), date(2024, 7, 3), date(2024, 10, 2)]
    assert len(snapshot_cutoffs(end, 90, 30, 8, purge=False)) == 8  # `features snapshots`: all asked for


def test_snapshots_stack_labelled_cutoffs(warehouse: Warehouse) -> None:
    world = random_world(4)
    load(warehouse, **world)
    cfg = FeaturesConfig(snapshot_count=3, snapshot_step_days=91)
    snaps = build_snapshots(warehouse, cfg)
    cutoffs = sorted(snaps["as_of"].dt.date.unique())
    end = (world["transactions"]["ts"].max().normalize() + pd.Timedelta(days=1)).date()
    assert cutoffs == snapshot_cutoffs(end, 90, 91, 3) and len(cutoffs) == 3
    assert all(Cutoff(c, 90).labels_complete(end) for c in cutoffs)
    assert not Cutoff(cutoffs[-1] + pd.Timedelta(days=1).to_pytimedelta(), 90).labels_complete(end)
    for c in cutoffs:
        one = build_features(warehouse, c, cfg)
        part = snaps[snaps["as_of"].dt.date == c].reset_index(drop=True)
        pd.testing.assert_frame_equal(part, one)
    assert set(LABEL_COLUMNS) <= set(snaps.columns)


@pytest.fixture(scope="module")
def sample_world_warehouse(tmp_path_factory):
    """A 2,000-customer sample world loaded through the contract checks."""
    from features.synth import SynthConfig
    from features.synth_import import load_sample_world

    wh = Warehouse(f"duckdb:///{tmp_path_factory.mktemp('world') / 'w.duckdb'}")
    load_sample_world(wh, SynthConfig(customers=2000, seed=5))
    yield wh
    wh.close()


@pytest.mark.parametrize("as_of", [date(2024, 1, 1), date(2025, 4, 1)])
def test_sql_equals_pandas_reference_on_the_sample_world(sample_world_warehouse, as_of: date) -> None:
    wh = sample_world_warehouse
    sql = build_features(wh, as_of, CFG)
    ref = reference_features(
        wh.read("transactions"), as_of, needs=wh.read("needs_evaluations"),
        customers=wh.read("customers"), contacts=wh.read("contacts"),
    )
    assert len(sql) > 1000
    assert sql["needs_evaluations_total"].sum() > 0
    if as_of == date(2025, 4, 1):  # a campaign runs in the horizon after the truth date
        assert sql["label_contacted"].sum() > 100
    assert set(sql.columns) - {"as_of"} == set(ref.columns)
    assert_same(sql, ref)


def test_an_order_cancelled_to_the_cent_is_not_a_purchase(warehouse: Warehouse) -> None:
    # 0.1 + 0.2 - 0.3 is 5.6e-17 in floating point: without rounding it would be a purchase
    rows = [("a", "o1", "2024-06-01 10:00", 0.1, "x"), ("a", "o1", "2024-06-01 10:00", 0.2, "x"),
            ("a", "o1", "2024-06-01 10:05", -0.3, "x"), ("a", "o2", "2024-05-01 10:00", 5.0, "x")]
    load(warehouse, transactions=tx_frame(rows))
    f = build_features(warehouse, AS_OF, CFG)
    assert f["purchases_total"].tolist() == [1]
    assert f["recency_days"].tolist() == [61]


def test_history_days_and_windows_from_config(warehouse: Warehouse) -> None:
    """history_days counts the data before the as-of; the models read the windows the config built."""
    from training.feature_sets import feature_lists

    load(warehouse, transactions=BOUNDARY)
    f = build_features(warehouse, AS_OF, CFG).set_index("customer_id")
    # the first line before 2024-07-01 is a1 on 2023-07-01: 366 days of history, for every customer
    assert f["history_days"].tolist() == [366, 366]
    later = build_features(warehouse, date(2023, 7, 31), CFG)
    assert later["history_days"].tolist() == [30]
    cfg = FeaturesConfig(frequency_window_days=180, short_windows_days=(14,))
    numeric, _ = feature_lists("churn", build_features(warehouse, AS_OF, cfg))
    windows = [c for c in numeric if c.startswith(("frequency_", "spend_", "monetary_avg_", "returns_share_",
                                                   "needs_complaints_"))]
    assert windows == ["frequency_trend", "spend_trend", "needs_complaints_total", "frequency_14d", "frequency_90d", "frequency_180d",
                       "monetary_avg_14d", "monetary_avg_90d", "monetary_avg_180d", "spend_14d", "spend_90d",
                       "spend_180d", "returns_share_180d", "needs_complaints_180d"]
    assert "history_days" not in numeric  # the same for everyone at a cutoff: context, not a feature

"""Explanations: SHAP contributions add up, match shap, name the true churn drivers, read well."""

from __future__ import annotations

import warnings
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.load import Warehouse
from features.synth import SynthConfig
from features.synth_import import load_sample_world
from propensity.config import Config
from training import explain as ex
from training.dataset import training_data
from training.train import train_model

CUSTOMERS = 6000
NAMES = ("churn", "response", "value")

# Needs features that say *when* the sales team last came, not *what* it found. In the
# sample world evaluations happen every 120-180 days while a customer is alive, so
# `needs_days_since_evaluation` (missing for the ~40 % never followed) is a top-3 reason
# for nearly every customer, whatever drives their churn.
SCHEDULE_NEEDS = {"needs_days_since_evaluation", "needs_evaluations_total"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A 6,000-customer sample world and the three models trained on it (1 thread, no MLflow)."""
    folder = tmp_path_factory.mktemp("explain")
    cfg = Config(warehouse={"url": f"duckdb:///{folder / 'warehouse.duckdb'}"}, lightgbm={"num_threads": 1})
    wh = Warehouse(cfg.warehouse.url)
    load_sample_world(wh, SynthConfig(customers=CUSTOMERS, seed=1))
    results, snapshots = {}, None
    for name in NAMES:
        data = training_data(name, wh, cfg.features, cfg.training.tuning_share,
                             snapshots=snapshots if name == "value" else None)
        if name == "churn":
            snapshots = pd.concat([data.train, data.tune, data.test], ignore_index=True)
        results[name] = train_model(data, cfg)
    truth = wh.read("synth_truth")
    wh.close()
    contribs = {name: ex.contributions(r.model, r.data.test) for name, r in results.items()}
    return {"results": results, "truth": truth, "contribs": contribs}


# -- contributions -----------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_contributions_add_up_to_the_raw_score(world, name: str) -> None:
    model, test = world["results"][name].model, world["results"][name].data.test
    c = world["contribs"][name]
    dev = c.max_deviation()
    print(f"{name}: {len(test):,} OOT test rows, max |base + sum - raw| = {dev:.2e}")
    assert dev < 1e-6
    assert c.scale == {"churn": "log-odds", "response": "log-odds", "value": "log"}[name]
    assert list(c.values.columns) == model.features
    assert isinstance(c.values.index, pd.RangeIndex) and len(c.values) == len(test)
    np.testing.assert_array_equal(c.raw, model.predict_raw(test))


def test_chunks_and_index_do_not_change_the_values(world) -> None:
    model, test = world["results"]["churn"].model, world["results"]["churn"].data.test
    shuffled_index = test.head(1500).set_axis(np.arange(1500)[::-1] * 7)
    small = ex.contributions(model, shuffled_index, chunk_rows=400)
    assert isinstance(small.values.index, pd.RangeIndex)
    pd.testing.assert_frame_equal(small.values, world["contribs"]["churn"].values.head(1500))
    empty = ex.contributions(model, test.head(0))
    assert len(empty.values) == 0 and empty.base_value == pytest.approx(small.base_value, abs=1e-12)


def test_tampered_contributions_fail_loudly(world) -> None:
    c = world["contribs"]["churn"]
    values = c.values.copy()
    values.iloc[3, 0] += 1e-3
    tampered = ex.Contributions(c.base_value, values, c.raw, c.scale)
    with pytest.raises(ex.AdditivityError, match="max deviation 0.001"):
        tampered.check_additivity()
    with pytest.raises(ex.AdditivityError):
        ex.Contributions(c.base_value + 1e-5, c.values, c.raw, c.scale).check_additivity()
    tampered.check_additivity(tol=2e-3)  # within a looser tolerance it passes


@pytest.mark.parametrize("name", NAMES)
def test_values_equal_shap_tree_explainer(world, name: str) -> None:
    """What auditors run: shap's TreeExplainer on the booster, default settings.

    shap hands a LightGBM booster to the same `pred_contrib` routine, so the values are
    expected to be identical; the tolerance 1e-12 leaves room only for float noise.
    """
    shap = pytest.importorskip("shap")
    model, test = world["results"][name].model, world["results"][name].data.test
    rows = test.head(300)
    explainer = shap.TreeExplainer(model.booster_)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "binary classifier ... output has changed to a list"
        theirs = np.asarray(explainer.shap_values(model.encode(rows)))
    ours = world["contribs"][name].values.head(300).to_numpy()
    assert theirs.shape == ours.shape
    np.testing.assert_allclose(theirs, ours, rtol=0, atol=1e-12)
    assert float(np.ravel(explainer.expected_value)[0]) == pytest.approx(world["contribs"][name].base_value, abs=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_fast_contributions_equal_lightgbm_pred_contrib(world, name: str) -> None:
    """The fast exact TreeSHAP (the default) against LightGBM's own, on the sample world's models."""
    model, test = world["results"][name].model, world["results"][name].data.test
    fast = world["contribs"][name]
    assert fast.method.startswith("fast TreeSHAP")
    reference = ex.contributions(model, test, method="lightgbm")
    assert reference.method == "LightGBM pred_contrib"
    diff = np.abs(fast.values.to_numpy() - reference.values.to_numpy()).max()
    print(f"{name}: {len(test):,} rows, {fast.method}, max |fast - pred_contrib| = {diff:.2e}")
    assert diff <= 1e-9
    assert fast.base_value == pytest.approx(reference.base_value, abs=1e-12)
    np.testing.assert_array_equal(fast.raw, reference.raw)


# -- reason codes ------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["churn", "response"])
def test_effect_has_the_sign_of_the_contribution(world, name: str) -> None:
    model, test = world["results"][name].model, world["results"][name].data.test
    c = world["contribs"][name]
    rc = ex.reason_codes(model, test, name, k=5, contribs=c)
    nonzero = rc[rc["contribution"] != 0]
    assert (np.sign(nonzero["effect"]) == np.sign(nonzero["contribution"])).all()
    # the top reason of row 0, by hand: calibrated probability with and without it
    assert model.calibration_ is not None
    a, b = model.calibration_
    top = rc.iloc[0]
    raw = c.raw[0]

    def sigmoid(x: float) -> float:
        return 1 / (1 + np.exp(-x))

    assert top["effect"] == pytest.approx(sigmoid(a * raw + b) - sigmoid(a * (raw - top["contribution"]) + b), abs=1e-12)
    assert top["direction"] == ("raises" if top["contribution"] > 0 else "lowers")


def test_value_effect_is_in_currency(world) -> None:
    model, test = world["results"]["value"].model, world["results"]["value"].data.test
    c = world["contribs"]["value"]
    rc = ex.reason_codes(model, test.head(50), "value", k=3, contribs=ex.contributions(model, test.head(50)))
    first = rc.iloc[0]
    assert first["scale"] == "log"
    log_c = np.log(model.level_factor_)  # the level factor: the amount is exp(raw + log c)
    assert first["effect"] == pytest.approx(np.exp(c.raw[0] + log_c) - np.exp(c.raw[0] - first["contribution"] + log_c),
                                            rel=1e-12)


def test_reason_codes_shape_and_order(world) -> None:
    model, test = world["results"]["churn"].model, world["results"]["churn"].data.test
    rows = test.head(200)
    rc = ex.reason_codes(model, rows, "churn", k=4)
    assert list(rc.columns) == ["customer_id", "model", "rank", "feature", "feature_value", "contribution",
                                "scale", "effect", "direction", "text"]
    assert len(rc) == 4 * len(rows)
    assert rc.groupby("customer_id")["rank"].agg(list).map(lambda r: r == [1, 2, 3, 4]).all()
    assert rc["customer_id"].drop_duplicates().tolist() == rows["customer_id"].tolist()
    mags = rc["contribution"].abs().to_numpy().reshape(-1, 4)
    assert (np.diff(mags, axis=1) <= 0).all()
    # the ranks are the row's top 4 of all features
    values = ex.contributions(model, rows).values
    expected = values.iloc[7].abs().sort_values(ascending=False).index[:4].tolist()
    assert rc[rc["customer_id"] == rows["customer_id"].iloc[7]]["feature"].tolist() == expected
    assert set(rc["model"]) == {"churn"} and set(rc["scale"]) == {"log-odds"}
    assert rc["text"].str.endswith(("raises churn risk", "lowers churn risk")).all()


def test_ties_are_broken_by_feature_name(world) -> None:
    model, test = world["results"]["churn"].model, world["results"]["churn"].data.test
    rows = test.head(2)
    values = pd.DataFrame(0.0, index=range(2), columns=model.features)
    values.loc[0, ["tenure_days", "recency_days", "attr_region"]] = [0.5, -0.5, 0.5]
    values.loc[1, ["width_categories", "needs_open_pains"]] = [-0.2, 0.3]
    fake = ex.Contributions(0.0, values, values.sum(axis=1).to_numpy(), "log-odds")
    rc = ex.reason_codes(model, rows, "churn", k=3, contribs=fake)
    assert rc["feature"].tolist()[:3] == ["attr_region", "recency_days", "tenure_days"]
    assert rc["feature"].tolist()[3:5] == ["needs_open_pains", "width_categories"]
    assert rc["direction"].tolist()[:3] == ["raises", "lowers", "raises"]


def test_true_churn_drivers_show_in_the_reasons(world) -> None:
    """Customers whose churn is driven by unresolved pain get needs features among their reasons.

    Test half of the out-of-time cutoff (= truth_as_of), customers alive at that date;
    6,000-customer world, seed 1 (98 "unresolved_pain" customers, 1,473 others). Measured:

    | reasons looked at                                    | unresolved_pain | other drivers |
    |------------------------------------------------------|----------------:|--------------:|
    | any needs_* feature in the top 3                     | 1.000           | 0.995         |
    | a needs_* feature about findings (pains, fit, level, complaints; not the schedule) in the top 3 | 0.122 | 0.033 |
    | same, in the top 5                                   | 0.643           | 0.166         |
    | needs_open_pains in the top 5                        | 0.347           | 0.013         |

    The first line holds for nearly everyone: `needs_days_since_evaluation` is the
    churn model's second feature overall (see SCHEDULE_NEEDS), so it cannot tell the
    drivers apart. What the evaluations *found* does, from the top 5 on. Floors sit
    about 3 binomial standard errors (n = 98, ~0.05) below the measured shares.
    """
    result = world["results"]["churn"]
    truth = world["truth"]
    assert pd.Timestamp(truth["truth_as_of"].iloc[0]).date() == result.data.oot_cutoff
    rc = ex.reason_codes(result.model, result.data.test, "churn", k=5, contribs=world["contribs"]["churn"])
    finding = rc["feature"].str.startswith("needs_") & ~rc["feature"].isin(SCHEDULE_NEEDS)
    flags = rc.assign(
        any_top3=rc["feature"].str.startswith("needs_") & (rc["rank"] <= 3),
        finding_top3=finding & (rc["rank"] <= 3),
        finding_top5=finding,
        open_pains_top5=rc["feature"].eq("needs_open_pains"),
    ).groupby("customer_id")[["any_top3", "finding_top3", "finding_top5", "open_pains_top5"]].any()
    joined = flags.reset_index().merge(truth[["customer_id", "alive_at_truth", "churn_driver"]], on="customer_id")
    alive = joined[joined["alive_at_truth"]]
    pain = alive[alive["churn_driver"] == "unresolved_pain"]
    other = alive[alive["churn_driver"] != "unresolved_pain"]
    shares = pd.DataFrame({"unresolved_pain": pain.iloc[:, 1:5].mean(), "other": other.iloc[:, 1:5].mean()})
    print(f"\n{len(pain)} unresolved_pain / {len(other)} other alive test customers\n{shares.round(3)}")
    assert len(pain) >= 60
    # the brief's criterion: a majority (it is, but it does not separate the drivers)
    assert shares.loc["any_top3", "unresolved_pain"] > 0.9
    assert shares.loc["any_top3", "unresolved_pain"] >= shares.loc["any_top3", "other"]
    # the discriminating version
    assert shares.loc["finding_top5", "unresolved_pain"] > 0.5
    assert shares.loc["finding_top5", "unresolved_pain"] - shares.loc["finding_top5", "other"] > 0.3
    assert shares.loc["finding_top3", "unresolved_pain"] > 2 * shares.loc["finding_top3", "other"]
    assert shares.loc["open_pains_top5", "unresolved_pain"] > 0.2
    assert shares.loc["open_pains_top5", "other"] < 0.05


# -- sentences ---------------------------------------------------------------------------

ROW = pd.Series({
    "recency_days": 214, "gap_median_days": 30.0, "overdue_ratio": 214 / 30, "needs_open_pains": 2,
    "needs_latest_solution_fit": 1, "needs_latest_level": "pain", "needs_latest_dimension": "price",
    "attr_age_band": "55-64", "frequency_365d": 1, "monetary_avg_90d": np.nan, "loyalty_points": 120,
    "needs_days_since_evaluation": np.nan, "width_categories": 3,
})


@pytest.mark.parametrize(("feature", "contribution", "model", "expected"), [
    ("recency_days", 0.8, "churn", "No purchase for 214 days, usual gap 30 days: raises churn risk"),
    ("overdue_ratio", 0.4, "churn", "No purchase for 214 days, 7.1 times the usual gap of 30 days: raises churn risk"),
    ("needs_open_pains", 0.3, "churn", "2 open pains in needs evaluations: raises churn risk"),
    ("needs_latest_solution_fit", -0.1, "response", "Latest solution fit 1 of 5: lowers response probability"),
    ("needs_latest_level", 0.2, "churn", "Latest needs evaluation records a pain on price: raises churn risk"),
    ("needs_days_since_evaluation", 0.5, "churn", "No needs evaluation on record: raises churn risk"),
    ("attr_age_band", -0.2, "value", "Age band is 55-64: lowers predicted value"),
    ("loyalty_points", 0.1, "response", "Loyalty points is 120: raises response probability"),
    ("frequency_365d", -0.3, "value", "1 purchase in the last 365 days: lowers predicted value"),
    ("monetary_avg_90d", -0.3, "value", "No purchases in the last 90 days: lowers predicted value"),
    ("width_categories", -0.05, "churn", "Bought from 3 categories: lowers churn risk"),
])
def test_reason_text(feature: str, contribution: float, model: str, expected: str) -> None:
    assert ex.reason_text(feature, ROW, contribution, model) == expected


def test_reason_text_singular_and_missing_context() -> None:
    row = pd.Series({"recency_days": 40, "gap_median_days": np.nan, "needs_open_pains": 1})
    assert ex.reason_text("recency_days", row, 0.2, "churn") == \
        "No purchase for 40 days, only one purchase day so far: raises churn risk"
    assert ex.reason_text("needs_open_pains", row, 0.2, "churn") == "1 open pain in needs evaluations: raises churn risk"


# A saturated churn risk: 99.994% has odds 16,665.7; a reason of ln 54 = +3.989 log-odds
# leaves odds 16,665.7 / 54 = 308.62 without it, a churn risk of 308.62 / 309.62 = 99.677%.
# The effect, 99.994% - 99.677% = +0.00317, reads as tiny; the odds factor and the risk
# without the reason say how strong it is.
@pytest.mark.parametrize(("model", "contribution", "score", "effect", "expected"), [
    ("churn", 3.989, 0.99994, 0.99994 - 0.996770,
     "+3.989 log-odds: multiplies the odds by 54; without it the churn risk would be 99.7% instead of 99.994%"),
    ("churn", 4.595, 0.99, 0.49,  # odds 1 -> 99 (ln 99 = 4.595)
     "+4.595 log-odds: multiplies the odds by 99; without it the churn risk would be 50.0% instead of 99.0%"),
    ("response", -1.386, 0.2, -0.3,  # odds 1 -> 0.25 (ln 4 = 1.386)
     "-1.386 log-odds: divides the odds by 4.00; without it the response probability would be 50.0% instead of 20.0%"),
    ("value", 1.742, 70.2, 70.2 - 12.2966,  # exp(1.742) = 5.7089; 70.2 / 5.7089 = 12.2966
     "+1.742 log: multiplies the predicted value by 5.71; without it the predicted value would be 12.30 instead of 70.20"),
    ("churn", 0.0, 0.3, 0.0, "+0.000 log-odds: no change to the churn risk"),
])
def test_effect_words(model: str, contribution: float, score: float, effect: float, expected: str) -> None:
    assert ex.effect_words(model, contribution, score, effect) == expected


@pytest.mark.parametrize(("p", "expected"), [
    (0.25, "25.0%"), (0.9, "90.0%"), (0.995, "99.5%"), (0.99994, "99.994%"), (0.99999, "99.999%"),
    (0.0004, "0.04%"), (1.0, "100%"), (0.0, "0%"),
])
def test_share_text_keeps_the_digits_that_tell_it_from_certainty(p: float, expected: str) -> None:
    assert ex.share_text(p) == expected


def test_explain_customer_lines_say_the_odds_and_the_score_without_the_reason() -> None:
    from training.customer_reasons import CustomerExplanation

    reasons = pd.DataFrame({"rank": [1], "feature": ["recency_days"], "feature_value": ["214"],
                            "contribution": [3.989], "scale": ["log-odds"], "effect": [0.99994 - 0.996770],
                            "text": ["No purchase for 214 days, usual gap 30 days: raises churn risk"]})
    lines = CustomerExplanation("churn", "3", 0.99994, reasons).lines()
    assert lines == [
        "churn (version 3): churn risk 99.994%",
        "  1. No purchase for 214 days, usual gap 30 days: raises churn risk  [recency_days = 214; +3.989 log-odds: "
        "multiplies the odds by 54; without it the churn risk would be 99.7% instead of 99.994%]",
    ]


# -- global views and charts --------------------------------------------------------------

def test_global_importance_and_dependence_features(world) -> None:
    c = world["contribs"]["churn"]
    imp = ex.global_importance(c)
    assert list(imp.columns) == ["feature", "mean_abs", "share"]
    assert imp["share"].sum() == pytest.approx(1.0)
    assert (np.diff(imp["mean_abs"]) <= 0).all()
    assert imp.loc[imp["feature"] == "recency_days", "mean_abs"].item() == pytest.approx(
        c.values["recency_days"].abs().mean())
    deps = ex.dependence_features(imp, n_needs=2)
    needs_ranked = [f for f in imp["feature"] if f.startswith("needs_")]
    assert deps == ["recency_days", "frequency_365d", "monetary_avg_365d", "width_categories", *needs_ranked[:2]]


def test_plots_are_figures_without_pyplot_state(world) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    model, test = world["results"]["churn"].model, world["results"]["churn"].data.test
    c = world["contribs"]["churn"]
    imp = ex.global_importance(c)
    before = plt.get_fignums()
    fig = ex.plot_importance(imp, "churn", top=10)
    assert isinstance(fig, Figure) and len(fig.axes[0].patches) == 10
    bee = ex.plot_beeswarm(c, test, model, "churn", top=8)
    assert [t.get_text() for t in bee.axes[0].get_yticklabels()] == list(imp["feature"].head(8))[::-1]
    for feature in ("recency_days", "needs_latest_level"):
        dep = ex.plot_dependence(c, test, feature, feature)
        assert isinstance(dep, Figure) and dep.axes[0].get_xlabel() == feature
    # at most max_points drawn, said on the chart; the counts still cover every row
    few = ex.plot_dependence(c, test, "recency_days", "recency", max_points=500)
    points = few.axes[0].collections[0].get_offsets()
    n_known = int(test["recency_days"].notna().sum())
    assert 0 < len(points) <= 500
    assert few.axes[0].get_legend().get_texts()[0].get_text() == f"{n_known:,} rows (500 drawn)"
    text = ex.plot_dependence(c, test, "needs_latest_level", "level", max_points=300)
    assert len(text.axes[0].collections[0].get_offsets()) == 300
    assert text.axes[0].get_xlabel() == "needs_latest_level (300 drawn)"
    assert plt.get_fignums() == before


@pytest.mark.parametrize(("feature", "history", "expected"), [
    ("spend_365d", 92, "Spent 10.00 in the last 92 days of history: raises predicted value"),
    ("spend_365d", 365, "Spent 10.00 in the last 365 days: raises predicted value"),
    ("frequency_30d", 92, "2 purchases in the last 30 days: raises predicted value"),
    ("monetary_avg_365d", 1, "Average purchase 5.00 in the last 1 day of history: raises predicted value"),
    ("returns_share_365d", None, "Returned 0% of the amount bought in the last 365 days: raises predicted value"),
])
def test_reason_text_says_when_the_history_is_shorter_than_the_window(feature, history, expected) -> None:
    row = pd.Series({"spend_365d": 10.0, "frequency_30d": 2, "monetary_avg_365d": 5.0, "returns_share_365d": 0.0,
                     "history_days": history})
    assert ex.reason_text(feature, row, 0.5, "value") == expected


# -- sentences for many rows at once ------------------------------------------------------
#
# `reason_codes` builds its texts a feature at a time (issue 11); `reason_text` and
# `format_value` stay the readable reference. The vectorised output must be the same
# strings, in the same order, with the same dtypes, as one call per reason row.

def per_row_reason_codes(frame: pd.DataFrame, values: pd.DataFrame, model_name: str, k: int) -> pd.DataFrame:
    """`reason_codes` without the effects, as it was built before issue 11: a full sort of
    every row, then `format_value` and `reason_text` for each reason row over dict records."""
    features = list(values.columns)
    n = len(frame)
    vals = values.to_numpy(dtype=float)
    by_name = np.argsort(np.array(features, dtype=object), kind="stable")
    idx = by_name[np.argsort(-np.abs(vals[:, by_name]), axis=1, kind="stable")[:, :k]]
    rows = np.repeat(np.arange(n), k)
    cols = idx.ravel()
    contrib = vals[rows, cols]
    feat = np.array(features, dtype=object)[cols]
    ids = frame["customer_id"].to_numpy() if "customer_id" in frame.columns else np.arange(n)
    wanted = set(features) | ex._CONTEXT_COLUMNS
    records = frame[[f for f in frame.columns if f in wanted]].to_dict("records")
    return pd.DataFrame({
        "customer_id": ids[rows],
        "model": model_name,
        "rank": np.tile(np.arange(1, k + 1), n),
        "feature": feat,
        "feature_value": [ex.format_value(records[r].get(f)) for r, f in zip(rows, feat)],
        "contribution": contrib,
        "direction": np.where(contrib > 0, "raises", np.where(contrib < 0, "lowers", "does not change")),
        "text": [ex.reason_text(f, records[r], v, model_name) for r, f, v in zip(rows, feat, contrib)],
    })


def assert_same_as_per_row(model, frame: pd.DataFrame, values: pd.DataFrame, name: str, k: int) -> pd.DataFrame:
    fake = ex.Contributions(0.0, values, np.nan_to_num(values.to_numpy()).sum(axis=1), "log-odds")
    rc = ex.reason_codes(model, frame, name, k=k, contribs=fake)
    pd.testing.assert_frame_equal(rc.drop(columns=["scale", "effect"]), per_row_reason_codes(frame, values, name, k))
    return rc


# Numbers that exercise the formats: singular 1, thousands separators, halves and other
# decimal ties (0.05, 0.125: the float is just above or below, or exact), values at a
# rounding boundary, negative values and -0.0, the trend words' 0.1 edge, numbers too
# large for the vectorised rounding, infinities.
EDGE_NUMBERS = np.array([
    0.0, -0.0, 1.0, 1.02, 0.96, 2.0, 3.5, 12.25, 12.35, 0.125, 0.045, 0.005, 7.15, 1234.5, 999.995, 1e6 + 0.5,
    12_345_678.0, -1.0, -0.004, -0.04, -0.05, -1234.567, 0.1, -0.1, 0.0999, 0.1001, 0.095, 0.105, 2.675, 1.005,
    29.99, 91.5, 365.0, 1.5e12, -3e15, np.inf, -np.inf, 1 / 3, 2 / 3, 0.5, 0.25, 0.75,
])
NUMERIC_FEATURES = [
    "recency_days", "overdue_ratio", "gap_median_days", "gap_mean_days", "gap_std_days", "tenure_days",
    "purchases_total", "repeat_purchase_days", "frequency_30d", "frequency_365d", "monetary_avg_90d",
    "monetary_avg_365d", "spend_30d", "spend_365d", "frequency_trend", "spend_trend", "returns_share_365d",
    "width_categories", "last_year_purchases", "last_year_spend", "cutoff_month", "days_to_holiday",
    "needs_evaluations_total", "needs_open_pains", "needs_complaints_365d",
    "needs_complaints_total", "needs_days_since_evaluation", "needs_latest_urgency", "needs_latest_importance",
    "needs_latest_solution_fit", "needs_mean_solution_fit", "needs_other_score", "loyalty_points", "attr_score",
]
TEXT_FEATURES = {
    "needs_latest_level": ["pain", "want", "requirement", ""], "needs_latest_dimension": ["price", "service"],
    "needs_orientation": ["price", "value"], "needs_style": ["dominant", "social"],
    "campaign_kind": ["email", "sms", "direct mail"], "attr_region": ["north", "south-east", "Zürich"],
}


def random_numbers(rng: np.random.Generator, n: int) -> np.ndarray:
    """A mix of missing values, small and large counts, decimals, edge numbers and trends."""
    kind = rng.integers(0, 6, n)
    scale = 10.0 ** rng.integers(0, 5, n)  # 0 to 4 decimals
    return np.select(
        [kind == 0, kind == 1, kind == 2, kind == 3, kind == 4],
        [np.full(n, np.nan), rng.integers(0, 4, n).astype(float), rng.integers(0, 10 ** rng.integers(1, 8, n)),
         np.round(rng.uniform(-50, 5000, n) * scale) / scale, rng.choice(EDGE_NUMBERS, n)],
        rng.uniform(-1.2, 1.2, n),
    )


def random_feature_frame(seed: int, n: int) -> pd.DataFrame:
    """Every feature kind `_describe` knows, generic ones, and columns of every dtype a frame may hold."""
    rng = np.random.default_rng(seed)
    cols: dict[str, object] = {"customer_id": [f"c{i:05d}" for i in range(n)]}
    for i, f in enumerate(NUMERIC_FEATURES):
        x = random_numbers(rng, n)
        dtype = ["float64", "Int64", "int64", "Float64", "float32"][(i + seed) % 5]
        if dtype in ("Int64", "int64"):
            x = np.where(np.isfinite(x) & (np.abs(x) < 1e15), np.round(x), np.nan)
        if dtype == "int64":
            x = np.nan_to_num(x, nan=0.0)
        cols[f] = pd.array(x, dtype="Float64").astype(dtype) if dtype == "Int64" else pd.Series(x).astype(dtype)
    history = rng.choice([0, 1, 2, 29, 30, 31, 92, 364, 365, 400, -3, 0.5, 29.5, 91.99, np.nan], n)
    cols["history_days"] = history
    for f, levels in TEXT_FEATURES.items():
        cols[f] = pd.Series(rng.choice([*levels, None], n), dtype="str")
    cols["attr_band"] = pd.Categorical(rng.choice(["a", "b", None], n))
    cols["attr_code"] = pd.Series(rng.choice(["x1", "y2", None], n), dtype=object)  # strings in an object column
    cols["attr_flag"] = rng.random(n) < 0.5
    cols["attr_maybe"] = pd.array(rng.choice([True, False, None], n), dtype="boolean")
    cols["attr_since"] = pd.to_datetime("2024-01-01") + pd.to_timedelta(rng.integers(0, 400, n), unit="D")
    cols["attr_mixed"] = pd.Series(rng.choice(np.array([1, 2.5, "x", True, None], dtype=object), n), dtype=object)
    return pd.DataFrame(cols)


def random_contributions(rng: np.random.Generator, n: int, features: list[str]) -> pd.DataFrame:
    """Normal values with exact zeros and ties of equal size (both signs)."""
    values = rng.normal(size=(n, len(features)))
    values[rng.random(values.shape) < 0.1] = 0.0
    tied = rng.random(values.shape) < 0.1
    values[tied] = rng.choice([0.5, -0.5], tied.sum())
    return pd.DataFrame(values, columns=features)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("few", [0, ex._FEW], ids=["array formatting", "Python formatting of few values"])
def test_vectorised_reasons_equal_the_per_row_sentences(world, seed: int, few: int,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Every feature of every row explained (k = all features), so every branch meets every kind of value."""
    monkeypatch.setattr(ex, "_FEW", few)
    model = world["results"]["churn"].model
    frame = random_feature_frame(seed, 300)
    features = [c for c in frame.columns if c not in ("customer_id", "history_days")]
    values = random_contributions(np.random.default_rng(seed), len(frame), features)
    name = ["churn", "response", "value", "uplift"][seed % 4]  # "uplift": the generic target words
    rc = assert_same_as_per_row(model, frame, values, name, k=len(features))
    # the frame reaches every template, including the fallback for dates and mixed objects
    assert rc["text"].str.startswith("No purchase for 1 day, usual gap").any()
    assert rc["text"].str.contains(" of history: ").any()
    assert rc["feature_value"].str.contains(",").any() and rc["feature_value"].eq("yes").any()


def test_vectorised_reasons_with_nan_contributions_and_other_ids(world) -> None:
    model = world["results"]["churn"].model
    frame = random_feature_frame(7, 120)
    features = [c for c in frame.columns if c not in ("customer_id", "history_days")]
    values = random_contributions(np.random.default_rng(7), len(frame), features)
    values.iloc[3, [1, 4]] = np.nan  # ranked last, "does not change"
    assert_same_as_per_row(model, frame, values, "churn", k=6)
    assert_same_as_per_row(model, frame.assign(customer_id=np.arange(120) * 3), values, "value", k=3)
    assert_same_as_per_row(model, frame.assign(customer_id=frame["customer_id"].astype(object)), values, "churn", k=3)
    assert_same_as_per_row(model, frame.drop(columns=["customer_id", "history_days"]), values, "response", k=4)
    assert_same_as_per_row(model, frame.head(0), values.head(0), "churn", k=5)  # empty: same dtypes too
    # text where a number is read: the per-row reference reads it as a number, and so does reason_codes
    as_text = frame.assign(recency_days=frame["recency_days"].astype("str"), gap_median_days="12")
    assert_same_as_per_row(model, as_text, values, "churn", k=len(features))


@pytest.mark.parametrize("name", NAMES)
def test_vectorised_reasons_equal_the_per_row_sentences_on_the_sample_world(world, name: str) -> None:
    result = world["results"][name]
    c = world["contribs"][name]
    assert_same_as_per_row(result.model, result.data.test, c.values, name, k=5)
    assert_same_as_per_row(result.model, result.data.test.head(500), c.values.head(500), name, k=len(c.values.columns))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.floats(allow_nan=False, width=64),
    st.floats(min_value=-1e7, max_value=1e7, allow_nan=False),
    st.integers(-10 ** 9, 10 ** 9).map(float),
    # decimal ties and their neighbours: k + 0.05, k + 0.125, ... one float up or down
    st.builds(lambda k, tie, sign, step: np.nextafter(sign * (k + tie), step * np.inf),
              st.integers(0, 10 ** 6), st.sampled_from([0.05, 0.005, 0.125, 0.25, 0.5, 0.045, 0.015, 0.995]),
              st.sampled_from([1.0, -1.0]), st.sampled_from([1.0, -1.0, 0.0])),
), min_size=1, max_size=40))
def test_number_texts_equal_python_formatting(xs: list[float]) -> None:
    x = np.array(xs, dtype=float)
    with mock.patch.object(ex, "_FEW", 0):  # the array formatting, used beyond a few distinct values
        for decimals in (1, 2):
            assert ex._nums(x, decimals).strings().to_pylist() == [ex._num(v, decimals) for v in xs]
        assert ex._moneys(x).strings().to_pylist() == [ex._money(v) for v in xs]
        assert ex._plurals(x, "day").strings().to_pylist() == [ex._plural(v, "day") for v in xs]
        assert ex._plurals(x, "category", "categories").strings().to_pylist() == \
            [ex._plural(v, "category", "categories") for v in xs]
        assert ex._trends(x, "Spend").strings().to_pylist() == [ex._trend(v, "Spend") for v in xs]
        assert ex._shares(x).strings().to_pylist() == [f"{v:.0%}" for v in xs]


def test_top_k_equals_a_full_stable_sort() -> None:
    rng = np.random.default_rng(0)
    features = [f"f{i:02d}" for i in rng.permutation(30)]
    for values in (rng.normal(size=(2000, 30)), rng.integers(-2, 3, (2000, 30)).astype(float)):  # many ties
        by_name = np.argsort(np.array(features, dtype=object), kind="stable")
        for k in (1, 5, 30):
            full = by_name[np.argsort(-np.abs(values[:, by_name]), axis=1, kind="stable")[:, :k]]
            np.testing.assert_array_equal(ex._top_k(values, features, k), full)

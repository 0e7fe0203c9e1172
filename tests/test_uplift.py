"""Uplift: hand-computed Qini and uplift@k, their invariants, the models, and the Done-when check.

The Done-when check: on a sample world, contacting the top 20 % of the out-of-time test
customers by predicted uplift reaches more true incremental responders (the stored true
uplift of the customers picked) than contacting the top 20 % by the response model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.uplift_eval import (
    perfect_qini_curve,
    qini_coefficient,
    qini_curve,
    truth_captured,
    uplift_at_k,
    uplift_by_decile,
    uplift_metrics,
)

# Six rows, already in score order. Walking down the ranking (N_T, R_T, N_C, R_C) and
# Q = R_T - R_C * N_T / N_C (0 while there is no control row):
#   n=1 (1,1,0,0) Q=1;  n=2 (2,1,0,0) Q=1;  n=3 (2,1,1,1) Q=1-2=-1;  n=4 (2,1,2,1) Q=0;
#   n=5 (3,2,2,1) Q=2-1.5=0.5;  n=6 (3,2,3,1) Q=1.
# Area (unit trapezoids): 0.5+1+0-0.5+0.25+0.75 = 2.0; random line to (6, 1): 3.0.
# Perfect ranking (score y*(2t-1)): treated responders {0,4}, then the zeros {1,3,5},
# then the control responder {2}: points (0,0) (2,2) (5,2) (6,1), area 2+6+1.5 = 9.5.
# Qini coefficient = (2 - 3) / (9.5 - 3) = -1/6.5.
Y = [1, 0, 1, 0, 1, 0]
T = [1, 1, 0, 0, 1, 0]
S = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]


def test_qini_curve_hand_computed() -> None:
    curve = qini_curve(Y, S, T)
    assert curve["n_targeted"].tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert curve["qini"].tolist() == pytest.approx([0, 1, 1, -1, 0, 0.5, 1])
    # uplift curve U(n) = (R_T/N_T - R_C/N_C) * n: n=3 (1/2 - 1) * 3 = -1.5, n=5 (2/3 - 1/2) * 5
    assert curve["uplift_gain"].tolist() == pytest.approx([0, 1, 1, -1.5, 0, 5 / 6, 2])
    perfect = perfect_qini_curve(Y, T)
    assert perfect["n_targeted"].tolist() == [0, 2, 5, 6]  # tied rows enter as one block
    assert perfect["qini"].tolist() == pytest.approx([0, 2, 2, 1])
    assert qini_coefficient(Y, S, T) == pytest.approx(-1 / 6.5)


@pytest.mark.parametrize(
    ("k", "strategy", "expected"),
    [
        # top int(6 * 0.5) = 3 rows: treated y (1, 0) -> 0.5, control y (1) -> 1.0
        (0.5, "overall", -0.5),
        # top int(3 * 0.5) = 1 row of each group: treated row 0 (y 1), control row 2 (y 1)
        (0.5, "by_group", 0.0),
        # an int k is a row count: top 4 = treated (1, 0), control (1, 0)
        (4, "overall", 0.0),
        # top int(6 * 0.9) = 5 rows: treated (1, 0, 1) -> 2/3, control (1, 0) -> 1/2
        (0.9, "overall", 2 / 3 - 1 / 2),
        # top int(3 * 0.9) = 2 of each group: treated rows 0, 1 -> 1/2; control rows 2, 3 -> 1/2
        (0.9, "by_group", 0.0),
    ],
)
def test_uplift_at_k_hand_computed(k: float, strategy: str, expected: float) -> None:
    assert uplift_at_k(Y, S, T, k=k, strategy=strategy) == pytest.approx(expected)


def test_uplift_at_k_without_control_rows_in_the_selection_is_nan() -> None:
    # top int(6 * 0.34) = 2 rows are both treated: no control rate to subtract
    assert np.isnan(uplift_at_k(Y, S, T, k=0.34))


def test_a_tie_across_the_cut_counts_half_of_the_block() -> None:
    # top 2 of 4: row 0 (treated, y 0) and half of the tied block {row 1 (control, y 1),
    # row 2 (treated, y 0)}: treated 1.5 rows with 0 responders, control 0.5 rows with 0.5.
    y, s, t = [0, 1, 0, 1], [0.9, 0.5, 0.5, 0.1], [1, 0, 1, 0]
    assert uplift_at_k(y, s, t, k=0.5) == pytest.approx(0.0 - 1.0)
    assert uplift_at_k(y[::-1], s[::-1], t[::-1], k=0.5) == pytest.approx(-1.0)


def test_uplift_by_decile_hand_computed() -> None:
    table = uplift_by_decile(Y, S, T, bins=2)
    assert table["decile"].tolist() == [1, 2]
    assert table["n_treatment"].tolist() == [2, 1]
    assert table["n_control"].tolist() == [1, 2]
    # bin 1 (rows 0-2): treated (1, 0) vs control (1); bin 2 (rows 3-5): treated (1) vs control (0, 0)
    assert table["uplift"].tolist() == pytest.approx([0.5 - 1.0, 1.0 - 0.0])
    assert table["mean_score"].tolist() == pytest.approx([0.8, 0.5])


def test_truth_captured_and_metrics_bundle() -> None:
    effect = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    # top 0 / 3 / 6 rows of S (already in order): 0, 0.1+0.2+0.3, everything; 1.5 rows: 0.1 + 0.5 * 0.2
    assert truth_captured(effect, S, [0.0, 0.25, 0.5, 1.0]).tolist() == pytest.approx([0.0, 0.2, 0.6, 2.1])
    m = uplift_metrics(Y, S, T, shares=(0.5,))
    assert m == pytest.approx({"qini_coefficient": -1 / 6.5, "uplift_at_50": -0.5, "observed_uplift": 2 / 3 - 1 / 3})


@pytest.mark.parametrize(
    ("y", "t", "message"),
    [
        ([1, 0, 1], [1, 1, 1], "one group only"),
        ([1, 0, 2], [1, 0, 1], "only 0 and 1"),
        ([1, 0], [1, 0, 1], "aligned"),
    ],
)
def test_bad_inputs_are_refused_with_a_message(y: list, t: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        uplift_at_k(y, [0.3, 0.2, 0.1], t)


# -- invariants ----------------------------------------------------------------------------
@st.composite
def uplift_rows(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """y, score (few distinct values, so ties happen), treatment (both groups) and a permutation."""
    n = draw(st.integers(4, 40))
    y = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    t = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    t[0], t[1] = 1, 0
    s = np.array(draw(st.lists(st.integers(0, 6), min_size=n, max_size=n)), dtype=float)
    perm = np.array(draw(st.permutations(range(n))))
    return y, s, t, perm


def _same(a: float, b: float) -> bool:
    return (np.isnan(a) and np.isnan(b)) or a == pytest.approx(b, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(uplift_rows(), st.sampled_from([0.2, 0.3, 0.5, 0.75]), st.sampled_from(["overall", "by_group"]))
def test_uplift_at_k_ignores_row_order_and_flips_with_the_groups(rows, k: float, strategy: str) -> None:
    y, s, t, perm = rows
    base = uplift_at_k(y, s, t, k=k, strategy=strategy)
    assert _same(uplift_at_k(y[perm], s[perm], t[perm], k=k, strategy=strategy), base)
    # Calling the control group "treatment" and vice versa picks the same rows and swaps the rates.
    assert _same(uplift_at_k(y, s, 1 - t, k=k, strategy=strategy), -base)
    # Only the ranking matters: a strictly increasing transform of the score changes nothing.
    assert _same(uplift_at_k(y, np.exp(s) * 3 - 7, t, k=k, strategy=strategy), base)


@settings(max_examples=200, deadline=None)
@given(uplift_rows())
def test_qini_coefficient_ignores_row_order_and_the_perfect_ranking_scores_one(rows) -> None:
    y, s, t, perm = rows
    base = qini_coefficient(y, s, t)
    assert _same(qini_coefficient(y[perm], s[perm], t[perm]), base)
    assert _same(qini_coefficient(y, 2 * s + 1, t), base)
    perfect = qini_coefficient(y, y * (2 * t - 1), t)
    assert np.isnan(perfect) or perfect == pytest.approx(1.0)
    # every ranking ends at the same point: the whole population's incremental responders
    n_t, n_c = t.sum(), len(t) - t.sum()
    end = y[t == 1].sum() - y[t == 0].sum() * n_t / n_c
    assert qini_curve(y, s, t)["qini"].iloc[-1] == pytest.approx(end)


# -- the model -------------------------------------------------------------------------------
def _known_uplift_frame(n: int, seed: int) -> pd.DataFrame:
    """x = 1: treated respond with 0.5, control with 0.1 (uplift 0.4); x = 0: both 0.2 (uplift 0)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, n)
    treated = (rng.random(n) < 0.7).astype(int)
    p = np.where(x == 1, np.where(treated == 1, 0.5, 0.1), 0.2)
    return pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(n)], "x": x.astype(float), "noise": rng.random(n),
        "band": rng.choice(["a", "b", "c"], n), "treated": treated, "label_response": (rng.random(n) < p).astype(int),
    })


@pytest.mark.parametrize("learner", ["two_model", "x_learner"])
def test_uplift_model_recovers_a_known_uplift_and_survives_save_load(tmp_path: Path, learner: str) -> None:
    from training.models import LgbmParams
    from training.uplift import UpliftModel

    train, tune, test = _known_uplift_frame(6000, 1), _known_uplift_frame(3000, 2), _known_uplift_frame(2000, 3)
    model = UpliftModel(["x", "noise"], ["band"], learner, LgbmParams(num_leaves=4), num_threads=1).fit(
        train, train["label_response"].to_numpy(), train["treated"].to_numpy(),
        tune, tune["label_response"].to_numpy(), tune["treated"].to_numpy())
    assert model.learner_ == learner
    assert model.propensity_ == pytest.approx(train["treated"].mean())
    uplift = model.predict_uplift(test)
    x = test["x"].to_numpy() == 1
    assert uplift[x].mean() == pytest.approx(0.4, abs=0.05)
    assert uplift[~x].mean() == pytest.approx(0.0, abs=0.05)
    assert model.predict_treated(test)[x].mean() == pytest.approx(0.5, abs=0.05)
    model.save(tmp_path / "m")
    again = type(model).load(tmp_path / "m")
    assert np.array_equal(again.predict_uplift(test), uplift)
    assert again.learner_ == learner


def test_auto_keeps_the_learner_with_the_higher_tune_qini() -> None:
    from training.models import LgbmParams
    from training.uplift import UpliftModel

    train, tune = _known_uplift_frame(4000, 4), _known_uplift_frame(2000, 5)
    model = UpliftModel(["x", "noise"], [], "auto", LgbmParams(num_leaves=4), num_threads=1).fit(
        train, train["label_response"].to_numpy(), train["treated"].to_numpy(),
        tune, tune["label_response"].to_numpy(), tune["treated"].to_numpy())
    assert set(model.tune_qini_) == {"two_model", "x_learner"}
    best = max(model.tune_qini_.values())
    assert model.tune_qini_[model.learner_] == best
    if model.tune_qini_["two_model"] == best:
        assert model.learner_ == "two_model"  # ties go to the simpler learner


def test_has_control_groups(warehouse) -> None:
    from training.uplift import has_control_groups

    assert not has_control_groups(warehouse, "email")  # no campaign tables at all
    con = warehouse.duck()
    con.execute("create table campaigns as select * from (values ('c1', 'email'), ('c2', 'sms')) v(campaign_id, kind)")
    con.execute(
        """create table contacts as select * from (values ('c1', 'a', 'treatment'), ('c1', 'b', 'control'),
           ('c2', 'a', 'treatment'), ('c2', 'b', 'treatment')) v(campaign_id, customer_id, "group")"""
    )
    assert has_control_groups(warehouse, "email")
    assert not has_control_groups(warehouse, "sms")  # contacts, but everyone treated
    assert not has_control_groups(warehouse, "discount")


# -- Hillstrom -----------------------------------------------------------------------------
@pytest.mark.public_data
def test_hillstrom_two_model_beats_random_targeting_on_the_published_split(warehouse, public_data: Path) -> None:
    """Women's e-mail vs no e-mail, outcome visit, scikit-uplift's 50/50 split (random_state 42).

    Measured with this set-up: uplift@30 % 0.0656 and Qini coefficient 0.053 (scikit-uplift's
    tutorial: uplift@30 % 0.0661; bench/uplift.py gives medians over splits). Random
    targeting gives the average uplift, 0.047, and the binomial s.e. of uplift@30 % is
    about 0.008: the floors ask for more than one s.e. above random, and a Qini
    coefficient clearly above 0.
    """
    from sklearn.model_selection import train_test_split

    from features.sources import import_public
    from training.models import LgbmParams
    from training.uplift import UpliftModel, has_control_groups, uplift_contacts

    import_public(warehouse, "hillstrom", public_data / "hillstrom_email")
    assert has_control_groups(warehouse, "email")
    contacts = uplift_contacts(warehouse, "email", None)
    rows = contacts[contacts["campaign_id"] == "womens_email"]
    assert rows.groupby("group").size().to_dict() == {"control": 21_306, "treatment": 21_387}
    customers = warehouse.read("customers")
    numeric = ["recency", "history", "mens", "womens", "newbie"]
    customers[numeric] = customers[numeric].apply(pd.to_numeric)
    frame = rows.merge(customers, on="customer_id").sort_values("customer_id", ignore_index=True)
    frame["label_response"] = frame["responded"].astype(int)
    train_idx, test_idx = train_test_split(np.arange(len(frame)), test_size=0.5, random_state=42)
    tune_idx, train_idx = train_idx[: len(train_idx) * 3 // 10], train_idx[len(train_idx) * 3 // 10:]
    train, tune, test = (frame.iloc[i].reset_index(drop=True) for i in (train_idx, tune_idx, test_idx))
    model = UpliftModel(numeric, ["history_segment", "zip_code", "channel"], "two_model",
                        LgbmParams(num_leaves=4), num_threads=1).fit(
        train, train["label_response"].to_numpy(), train["treated"].to_numpy(),
        tune, tune["label_response"].to_numpy(), tune["treated"].to_numpy())
    y, t = test["label_response"].to_numpy(), test["treated"].to_numpy()
    uplift = model.predict_uplift(test)
    random = y[t == 1].mean() - y[t == 0].mean()
    assert random == pytest.approx(0.047, abs=0.001)
    assert uplift_at_k(y, uplift, t, k=0.3) > 0.055
    assert qini_coefficient(y, uplift, t) > 0.03


# -- Done when: the sample world ------------------------------------------------------------
CUSTOMERS = 20_000
WORLD_SEED = 1
BUDGET = 0.2
# Measured on this world (20,000 customers, seed 1, product defaults, 1 thread): in the top
# 20 % of the test customers, uplift ranking reaches 98.8 true incremental responders and
# the response model 87.6 (ratio 1.13; over seeds 1-8 the ratio was 1.09-1.35, random 43,
# the oracle 192). Asserting 5 % more keeps a margin for library versions.
MIN_GAIN_OVER_RESPONSE = 1.05
# Spearman of predicted with true uplift (test customers alive at the campaign start):
# measured 0.21 here (0.14-0.29 over seeds 1-8 at this size), the response model 0.13
# (0.07-0.17). The type that sets the true uplift is only partly visible (42 % of the
# customers have no needs evaluation, so no orientation or style): even the exact mean
# true uplift per (orientation, style, age band, income band) cell correlates about 0.43.
# Floor 0.15: clearly above the response model's typical value, below every seed measured
# except one (0.14).
MIN_TRUTH_SPEARMAN = 0.15


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A sample world with an uplift model trained, logged and registered, and the response model."""
    from features.load import Warehouse
    from features.synth import SynthConfig
    from features.synth_import import load_sample_world
    from propensity.config import project_in
    from training.uplift import fit_response_baseline, train_uplift

    cfg = project_in(tmp_path_factory.mktemp("uplift"))
    wh = Warehouse(cfg.warehouse.url)
    load_sample_world(wh, SynthConfig(customers=CUSTOMERS, seed=WORLD_SEED))
    outcome = train_uplift(wh, cfg, "email")
    response = fit_response_baseline(wh, cfg)
    yield {"cfg": cfg, "wh": wh, "outcome": outcome, "response": response, "truth": wh.read("synth_truth")}
    wh.close()


@pytest.mark.slow
def test_uplift_targeting_reaches_more_true_incremental_responders_than_response_targeting(world) -> None:
    from scipy.stats import spearmanr

    from features.btyd import BTYD_FEATURES, add_btyd_features
    from features.snapshots import build_features
    from training.feature_sets import with_campaign_kind
    from training.uplift import true_effect

    result = world["outcome"].result
    test = result.data.test
    assert result.data.oot_start == pd.Timestamp("2025-04-15").date()  # the latest email campaign
    effect = true_effect(world["truth"], test)
    by_uplift = result.model.predict_uplift(test)
    response = world["response"]
    # The response model also reads the BTYD columns, fitted on everyone with history at the campaign start.
    cfg = world["cfg"]
    population = build_features(world["wh"], result.data.oot_start, cfg.features, with_labels=False)
    population, _ = add_btyd_features(population, cfg.features.horizon_days,
                                      window_days=cfg.features.frequency_window_days)
    rows = test.merge(population[["customer_id", *BTYD_FEATURES]], on="customer_id", how="left",
                      validate="many_to_one")
    by_response = response.predict(with_campaign_kind(response, rows, "email"))
    shares = [0.1, BUDGET]
    uplift_reached = truth_captured(effect, by_uplift, shares)
    response_reached = truth_captured(effect, by_response, shares)
    random_reached = np.array(shares) * effect.sum()
    assert (uplift_reached > MIN_GAIN_OVER_RESPONSE * response_reached).all(), (uplift_reached, response_reached)
    assert (response_reached > random_reached).all()  # the comparison is against a real model
    alive = effect != 0.0
    rho_uplift = spearmanr(by_uplift[alive], effect[alive]).statistic
    rho_response = spearmanr(by_response[alive], effect[alive]).statistic
    assert rho_uplift > MIN_TRUTH_SPEARMAN, rho_uplift
    assert rho_uplift > rho_response, (rho_uplift, rho_response)
    # the logged metrics say the same
    logged = result.metrics[result.model.learner_]
    assert logged["true_incremental_20"] == pytest.approx(uplift_reached[1])


@pytest.mark.slow
def test_uplift_is_registered_as_code_and_loads_by_alias(world) -> None:
    import mlflow

    from training.feature_sets import model_input
    from training.track import RegistryError
    from training.uplift import load_uplift

    outcome = world["outcome"]
    test = outcome.result.data.test
    assert outcome.champion  # the first uplift model becomes champion as well as challenger
    client = mlflow.MlflowClient()
    for alias in ("champion", "challenger"):
        mv = client.get_model_version_by_alias("uplift", alias)
        assert str(mv.version) == outcome.version.version
        assert mv.tags["campaign_kind"] == "email"
        assert mv.tags["learner"] == outcome.result.model.learner_
    loaded = load_uplift(world["cfg"], kind="email")
    expected = outcome.result.model.predict_uplift(test)
    assert np.array_equal(loaded.model.predict_uplift(test), expected)
    pyfunc = mlflow.pyfunc.load_model("models:/uplift@champion")
    inputs = model_input(test, loaded.model.numeric, loaded.model.categorical)  # categories as text
    assert np.array_equal(np.asarray(pyfunc.predict(inputs)), expected)
    logged = {a.path for a in client.list_artifacts(outcome.version.run_id)}
    assert {"qini.png", "uplift_gain.png", "uplift_by_decile.csv", "features.json", "learner_selection.json"} <= logged
    with pytest.raises(RegistryError, match="not 'discount'"):
        load_uplift(world["cfg"], kind="discount")

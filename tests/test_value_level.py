"""The value model's level correction: a factor fitted on the tune half, applied everywhere.

c = sum(actual) / sum(predicted) on the tune half (guarded, shrunk by buyers), the output
exp(raw + log c); SHAP contributions stay on the booster's raw scale and still add up.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from features.load import Warehouse
from features.synth import SynthConfig
from features.synth_import import load_sample_world
from propensity.config import Config, ConfigError, load_config
from training import explain as ex
from training.dataset import training_data
from training.models import LgbmModel, LgbmParams, level_factor, transform_raw
from training.train import train_model

PARAMS = LgbmParams(learning_rate=0.1, num_leaves=7, min_child_samples=20, max_rounds=200, early_stopping_rounds=20)


# -- the factor, by hand -------------------------------------------------------------------

def test_factor_by_hand_on_a_tiny_frame() -> None:
    y = np.array([0.0, 10.0, 20.0, 30.0])
    pred = np.array([5.0, 5.0, 10.0, 10.0])
    # ratio 60 / 30 = 2; residuals y - 2 pred = (-10, 0, 0, 10): se of log(ratio) = sqrt(200) / 60
    factor, ratio, se = level_factor(y, pred, min_buyers=2)
    assert ratio == 2.0
    assert se == pytest.approx(math.sqrt(200) / 60, rel=1e-15)
    # shrunk on the log scale by 0.2^2 / (0.2^2 + 200 / 3600) = 18 / 43
    assert factor == pytest.approx(2.0 ** (18 / 43), rel=1e-14)
    assert factor == pytest.approx(1.3366341607620302, rel=1e-14)
    # no shrinkage: the mean prediction times c equals the mean actual
    factor, _, _ = level_factor(y, pred, min_buyers=1, prior_sd=math.inf)
    assert factor == 2.0 and np.mean(pred * factor) == np.mean(y)
    # too few buyers: skipped (the ratio is still reported)
    assert level_factor(y, pred, min_buyers=4)[:2] == (1.0, 2.0)
    assert level_factor(y, pred)[:2] == (1.0, 2.0)  # the default floor is 20 buyers


def test_factor_shrinks_less_as_the_half_grows() -> None:
    y = np.tile([0.0, 10.0, 20.0, 30.0], 100)
    pred = np.tile([5.0, 5.0, 10.0, 10.0], 100)
    factor, ratio, se = level_factor(y, pred)
    assert ratio == pytest.approx(2.0, rel=1e-15) and se == pytest.approx(math.sqrt(20000) / 6000, rel=1e-14)
    assert factor == pytest.approx(2.0 ** (72 / 73), rel=1e-14)  # weight 0.04 / (0.04 + 1 / 1800)
    assert factor == pytest.approx(1.9810995398000641, rel=1e-14)


def test_one_heavy_buyer_is_not_trusted() -> None:
    """The same ratio of sums from one huge order moves the level far less than from many buyers."""
    rng = np.random.default_rng(0)
    pred = np.full(1000, 10.0)
    even = rng.gamma(2.0, 7.5, 1000)  # mean 15: ratio about 1.5
    lumpy = np.where(np.arange(1000) < 500, 5.0, 0.0)
    lumpy[0] += even.sum() - lumpy.sum()  # one customer makes up the rest
    f_even, r_even, se_even = level_factor(even, pred)
    f_lumpy, r_lumpy, se_lumpy = level_factor(lumpy, pred)
    assert r_lumpy == pytest.approx(r_even, rel=1e-12)
    assert se_even < 0.05 < 0.5 < se_lumpy
    assert abs(math.log(f_even) / math.log(r_even) - 1) < 0.2
    assert abs(math.log(f_lumpy) / math.log(r_lumpy)) < 0.15


@pytest.mark.parametrize("y, pred", [
    ([0.0, 0.0], [1.0, 2.0]),  # no spend: ratio 0
    ([1.0, 2.0], [0.0, 0.0]),  # no prediction: ratio inf
    ([np.nan, 2.0], [1.0, 2.0]),
    ([1.0, 2.0], [np.inf, 2.0]),
    ([], []),
])
def test_factor_guarded_against_degenerate_halves(y, pred) -> None:
    factor, ratio, se = level_factor(np.array(y), np.array(pred), min_buyers=0, prior_sd=math.inf)
    assert factor == 1.0 and math.isnan(ratio) and math.isnan(se)


def test_factor_refuses_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="3 actual values for 2 predictions"):
        level_factor(np.ones(3), np.ones(2))


# -- a model trained on a richer period than the one it predicts ---------------------------

def _frame(n: int, level: float, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"customer_id": [f"c{seed}-{i}" for i in range(n)],
                      "a": rng.normal(size=n), "b": rng.uniform(size=n),
                      "region": rng.choice(["north", "south", "east"], size=n)})
    mean = level * np.exp(0.8 * x["a"] + 0.5 * (x["region"] == "north"))
    buys = rng.uniform(size=n) < 0.6
    y = np.where(buys, rng.gamma(2.0, mean / 2.0 / 0.6), 0.0)
    return x, y


@pytest.fixture(scope="module")
def shifted():
    """Trained where spend is twice what it is in the tune and test periods."""
    train, y = _frame(3000, 2.0, seed=1)
    tune, y_tune = _frame(1500, 1.0, seed=2)
    test, y_test = _frame(1500, 1.0, seed=3)
    fit = {}
    for on in (False, True):
        fit[on] = LgbmModel("tweedie", ["a", "b"], ["region"], PARAMS, num_threads=1, seed=3,
                            level_correction=on).fit(train, y, tune, y_tune)
    return {"fit": fit, "tune": tune, "y_tune": y_tune, "test": test, "y_test": y_test}


def test_factor_fitted_on_the_tune_half_corrects_the_level(shifted) -> None:
    off, on = shifted["fit"][False], shifted["fit"][True]
    tune, y_tune, test, y_test = shifted["tune"], shifted["y_tune"], shifted["test"], shifted["y_test"]
    assert off.level_factor_ == 1.0
    # the booster is the same: the factor is fitted after training
    np.testing.assert_array_equal(on.predict_raw(test), off.predict_raw(test))
    expected, ratio, se = level_factor(y_tune, np.exp(off.predict_raw(tune)))
    assert on.level_factor_ == expected and on.level_ratio_ == ratio == off.level_ratio_ and on.level_se_ == se
    weight = 0.04 / (0.04 + se ** 2)
    assert 0.9 < weight < 1
    assert on.level_factor_ == pytest.approx(ratio ** weight, rel=1e-12)
    assert 0.4 < on.level_factor_ < 0.65  # trained on twice the spend
    # predictions are the uncorrected ones times c (exactly exp(raw + log c))
    raw = on.predict_raw(test)
    np.testing.assert_array_equal(on.predict(test), np.exp(raw + math.log(on.level_factor_)))
    np.testing.assert_allclose(on.predict(test), off.predict(test) * on.level_factor_, rtol=1e-12)
    # the tune half's mean prediction equals its mean actual, up to the shrinkage
    assert on.predict(tune).mean() / y_tune.mean() == pytest.approx(ratio ** (weight - 1), rel=1e-9)
    # and the unseen test half's level is right after, far off before
    assert abs(on.predict(test).mean() / y_test.mean() - 1) < 0.10
    assert off.predict(test).mean() / y_test.mean() > 1.5
    rmse = {k: float(np.sqrt(np.mean((m.predict(test) - y_test) ** 2))) for k, m in shifted["fit"].items()}
    assert rmse[True] < rmse[False]


def test_classifiers_get_no_level_factor() -> None:
    train, y = _frame(2000, 1.0, seed=4)
    tune, y_tune = _frame(1000, 1.0, seed=5)
    model = LgbmModel("binary", ["a", "b"], ["region"], PARAMS, num_threads=1, level_correction=True)
    model.fit(train, (y > 0).astype(float), tune, (y_tune > 0).astype(float))
    assert model.level_factor_ == 1.0 and math.isnan(model.level_ratio_) and math.isnan(model.level_se_)
    with pytest.raises(ValueError, match="Tweedie models only"):
        transform_raw("binary", np.zeros(2), None, 2.0)


def test_meta_round_trips_the_factor(shifted, tmp_path) -> None:
    model, test = shifted["fit"][True], shifted["test"]
    model.save(str(tmp_path / "booster.txt"), str(tmp_path / "meta.json"))
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["level_factor"] == model.level_factor_
    loaded = LgbmModel.load(str(tmp_path / "booster.txt"), str(tmp_path / "meta.json"))
    assert loaded.level_factor_ == model.level_factor_
    np.testing.assert_array_equal(loaded.predict(test), model.predict(test))


def test_meta_without_a_factor_loads_as_one(shifted, tmp_path) -> None:
    model, test = shifted["fit"][True], shifted["test"]
    model.save(str(tmp_path / "booster.txt"), str(tmp_path / "meta.json"))
    meta = json.loads((tmp_path / "meta.json").read_text())
    del meta["level_factor"]  # as saved before the factor existed
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    old = LgbmModel.load(str(tmp_path / "booster.txt"), str(tmp_path / "meta.json"))
    assert old.level_factor_ == 1.0
    np.testing.assert_array_equal(old.predict(test), np.exp(model.predict_raw(test)))


@pytest.mark.parametrize("bad", [0.0, -1.0, "2", True, None])
def test_meta_with_a_broken_factor_is_refused(shifted, tmp_path, bad) -> None:
    shifted["fit"][True].save(str(tmp_path / "booster.txt"), str(tmp_path / "meta.json"))
    meta = json.loads((tmp_path / "meta.json").read_text())
    meta["level_factor"] = bad
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="level_factor must be a finite positive number"):
        LgbmModel.load(str(tmp_path / "booster.txt"), str(tmp_path / "meta.json"))


def test_pyfunc_predicts_the_corrected_value(shifted, tmp_path) -> None:
    from training.pyfunc_model import PropensityModel

    model, test = shifted["fit"][True], shifted["test"]
    model.save(str(tmp_path / "booster.txt"), str(tmp_path / "meta.json"))
    pyfunc = PropensityModel()
    pyfunc.load_context(SimpleNamespace(artifacts={"booster": str(tmp_path / "booster.txt"),
                                                   "meta": str(tmp_path / "meta.json")}))
    out = np.asarray(pyfunc.predict(None, test[["a", "b", "region"]]))
    np.testing.assert_array_equal(out, np.exp(model.predict_raw(test) + math.log(model.level_factor_)))


# -- explanations ----------------------------------------------------------------------------

def test_contributions_add_up_to_the_raw_score_and_the_output_to_the_prediction(shifted) -> None:
    model, test = shifted["fit"][True], shifted["test"]
    c = ex.contributions(model, test)
    assert c.scale == "log"
    recon = c.base_value + c.values.to_numpy().sum(axis=1)
    np.testing.assert_allclose(recon, model.predict_raw(test), rtol=0, atol=1e-9)  # raw: no factor in it
    np.testing.assert_allclose(np.exp(recon + math.log(model.level_factor_)), model.predict(test), rtol=1e-9)
    np.testing.assert_array_equal(model.output(c.raw), model.predict(test))  # what the scorer stores


def test_reason_effects_are_changes_of_the_corrected_amount(shifted) -> None:
    model, test = shifted["fit"][True], shifted["test"]
    c = ex.contributions(model, test)
    rc = ex.reason_codes(model, test, "value", k=2, contribs=c)
    log_c = math.log(model.level_factor_)
    for i in (0, 1, 5):
        row = rc.iloc[i]
        raw = c.raw[i // 2]
        assert row["effect"] == pytest.approx(math.exp(raw + log_c) - math.exp(raw - row["contribution"] + log_c),
                                              rel=1e-12)
    # the same reasons of the uncorrected model move the amount by 1 / c as much
    plain = shifted["fit"][False]
    rc_plain = ex.reason_codes(plain, test, "value", k=2, contribs=ex.contributions(plain, test))
    np.testing.assert_allclose(rc["effect"], rc_plain["effect"] * model.level_factor_, rtol=1e-9)


def test_api_waterfall_ends_at_the_score(shifted) -> None:
    from serving.api import _raw_of, waterfall

    model, test = shifted["fit"][True], shifted["test"].iloc[:20]
    c = ex.contributions(model, test)
    rc = ex.reason_codes(model, test, "value", k=2, contribs=c)
    scores = model.predict(test)
    for i in range(len(test)):
        score = float(scores[i])
        assert _raw_of(model, score) == pytest.approx(c.raw[i], abs=1e-12)
        reasons = rc.iloc[2 * i:2 * i + 2].to_dict("records")
        base, steps = waterfall(model, c.base_value, score, reasons)
        assert base == pytest.approx(math.exp(c.base_value + math.log(model.level_factor_)), rel=1e-12)
        assert steps[0].start == base
        assert steps[-1].end == score  # exactly
        other = c.values.iloc[i].sum() - sum(r["contribution"] for r in reasons)
        assert steps[-1].contribution == pytest.approx(other, abs=1e-9)
        for a, b in zip(steps, steps[1:]):
            assert a.end == b.start


# -- the setting -----------------------------------------------------------------------------

def test_setting_defaults_on_and_is_strict(tmp_path) -> None:
    assert Config().training.value_level_correction is True
    path = tmp_path / "propensity.toml"
    path.write_text("[training]\nvalue_level_correction = false\n")
    assert load_config(path).training.value_level_correction is False
    path.write_text('[training]\nvalue_level_correction = "yes"\n')
    with pytest.raises(ConfigError, match="training.value_level_correction"):
        load_config(path)


# -- the sample world: out-of-time level -----------------------------------------------------

@pytest.fixture(scope="module")
def sample_world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("level")
    results = {}
    for on in (True, False):
        cfg = Config(warehouse={"url": f"duckdb:///{folder / 'warehouse.duckdb'}"}, lightgbm={"num_threads": 1},
                     training={"value_level_correction": on})
        if not results:
            wh = Warehouse(cfg.warehouse.url)
            load_sample_world(wh, SynthConfig(customers=8000, seed=1))
            data = training_data("value", wh, cfg.features, cfg.training.tuning_share)
            wh.close()
        results[on] = train_model(data, cfg)
    return results


def test_sample_world_mean_prediction_within_ten_percent_out_of_time(sample_world) -> None:
    res = sample_world[True]
    y = res.data.test[res.data.target].to_numpy()
    mean_pred = res.test_predictions["model"].mean()
    assert abs(mean_pred / y.mean() - 1) < 0.10, (mean_pred, y.mean())
    m = res.metrics["model"]
    assert m["value_level_factor"] == res.model.level_factor_ == res.params["value_level_factor"]
    assert res.params["value_level_correction"] is True
    y_tune = res.data.tune[res.data.target].to_numpy()
    assert m["value_level_ratio_tune"] == pytest.approx(y_tune.sum() / np.exp(res.model.predict_raw(res.data.tune)).sum(),
                                                        rel=1e-12)
    assert m["value_level_se_tune"] == res.model.level_se_ > 0
    # the factor is a constant: the ranking metrics are those of the uncorrected model
    off = sample_world[False]
    assert off.model.level_factor_ == 1.0 and "value_level_factor" in off.metrics["model"]
    for k in ("spearman", "gini_norm", "top_decile_capture"):
        assert m[k] == pytest.approx(off.metrics["model"][k], abs=1e-12)

"""BTYD outputs as features (features/btyd.py): values, no label leak, chunked = whole frame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.btyd import BTYD_FEATURES, add_btyd_features, btyd_input_columns, fit_btyd
from tests.test_baselines import BG, GG, btyd_frame, simulate_bgnbd, simulate_gamma_gamma
from training.baselines import BtydBaseline

HORIZON = 90


def history_frame(n: int = 3000, seed: int = 3) -> pd.DataFrame:
    """Feature rows of BG/NBD + Gamma-Gamma histories (as `build_features` columns, in days)."""
    x, t_x, T = simulate_bgnbd(n, seed, **BG)
    _, spend = simulate_gamma_gamma(n, seed, **GG)
    frame = btyd_frame(x, t_x, T, spend)
    frame.insert(0, "customer_id", [f"C{i:05d}" for i in range(n)])
    return frame


def test_values_match_the_baseline_and_the_closed_forms() -> None:
    frame = history_frame()
    out, params = add_btyd_features(frame, HORIZON)
    assert list(out.columns[-4:]) == list(BTYD_FEATURES)
    assert list(frame.columns) == list(out.columns[:-4])  # the input frame is left as it was
    btyd = BtydBaseline(horizon_days=HORIZON).fit(frame)
    assert {k: params[k] for k in btyd.params_} == btyd.params_
    assert params["n_bgnbd"] == len(frame)
    np.testing.assert_array_equal(out["btyd_p_alive"], btyd.p_alive(frame))
    np.testing.assert_array_equal(out["btyd_expected_purchases"], btyd.predict_purchases(frame))
    np.testing.assert_array_equal(out["btyd_expected_spend"], btyd.predict_spend(frame))
    np.testing.assert_allclose(out["btyd_expected_value"], btyd.predict_value(frame), rtol=1e-15)

    one_off = (frame["repeat_purchase_days"] == 0).to_numpy()
    assert one_off.sum() > 50
    # No repeat purchase: alive for sure (BG/NBD deaths only follow a purchase), and the
    # population mean spend p v / (q - 1).
    assert (out.loc[one_off, "btyd_p_alive"] == 1.0).all()
    population = params["p"] * params["v"] / (params["q"] - 1)
    np.testing.assert_allclose(out.loc[one_off, "btyd_expected_spend"], population, rtol=1e-12)
    assert (out.loc[~one_off, "btyd_p_alive"] < 1).all() and (out["btyd_p_alive"] > 0).all()


def test_hand_computed_p_alive_and_spend() -> None:
    # P(alive) = 1 / (1 + a / (b + x - 1) * ((alpha + T) / (alpha + t_x))^(r + x)), and the
    # Gamma-Gamma spend is the weighted mean (1 - w) p v / (q - 1) + w m, w = p x / (p x + q - 1).
    params = {"r": 0.5, "alpha": 2.0, "a": 0.5, "b": 1.5, "p": 2.0, "q": 3.0, "v": 10.0}
    row = pd.DataFrame({"customer_id": ["A", "B"], "tenure_days": [15, 8], "recency_days": [8, 8],
                        "repeat_purchase_days": [1, 0], "frequency_365d": [2, 1],
                        "monetary_avg_365d": [40.0, 25.0]})
    out, back = add_btyd_features(row, 7, params)
    assert back is params
    # A (weeks): x = 1, t_x = (15 - 8) / 7 = 1, T = (15 - 1) / 7 = 2.
    odds = 0.5 / 1.5 * ((2 + 2) / (2 + 1)) ** 1.5
    assert out["btyd_p_alive"].tolist() == pytest.approx([1 / (1 + odds), 1.0], rel=1e-14)
    w = 2 * 2 / (2 * 2 + 3 - 1)  # A's mean of 2 purchases; B has no repeat purchase: the population mean
    assert out["btyd_expected_spend"].tolist() == pytest.approx([(1 - w) * 10 + w * 40, 10.0], rel=1e-14)


def test_chunks_with_the_population_params_equal_the_whole_frame() -> None:
    frame = history_frame(n=5000, seed=11)
    whole, params = add_btyd_features(frame, HORIZON)
    # The scorer: fit on the input columns only, then apply to each chunk.
    _, fitted = add_btyd_features(frame[btyd_input_columns()], HORIZON)
    assert fitted == params
    # The rows' order does not matter (a Parquet or Spark read need not keep it), bit for bit.
    assert add_btyd_features(frame.sample(frac=1.0, random_state=1), HORIZON)[1] == params
    chunks = [add_btyd_features(frame.iloc[i:i + 777], HORIZON, fitted)[0] for i in range(0, len(frame), 777)]
    pd.testing.assert_frame_equal(pd.concat(chunks), whole)
    # A chunk fitted on its own would give other numbers: the population fit is what matters.
    alone, _ = add_btyd_features(frame.iloc[:777], HORIZON)
    assert not np.allclose(alone["btyd_expected_purchases"], whole["btyd_expected_purchases"].iloc[:777])


def test_a_failed_fit_leaves_nan_and_a_note() -> None:
    frame = history_frame(n=50).assign(repeat_purchase_days=0, recency_days=lambda f: f["tenure_days"])
    out, params = add_btyd_features(frame, HORIZON)
    assert "r" not in params and "repeat purchases" in params["note"]
    assert out[list(BTYD_FEATURES)].isna().all().all()
    with pytest.raises(ValueError):
        fit_btyd(frame)


def test_customers_without_history_get_the_new_customer_prediction() -> None:
    frame = history_frame(n=2000)
    frame.loc[:4, ["tenure_days", "recency_days", "repeat_purchase_days", "monetary_avg_365d"]] = np.nan
    frame.loc[:4, "frequency_365d"] = 0
    out, params = add_btyd_features(frame, HORIZON)
    assert params["n_bgnbd"] == 1995
    new = out.iloc[:5]
    assert (new["btyd_p_alive"] == 1).all()
    assert new["btyd_expected_purchases"].nunique() == 1 and new["btyd_expected_purchases"].iloc[0] > 0


_frame = history_frame(n=1500, seed=5)
_base = add_btyd_features(_frame, HORIZON)[0][list(BTYD_FEATURES)]


@settings(max_examples=25, deadline=None)
@given(labels=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=len(_frame), max_size=len(_frame)),
       churn=st.lists(st.booleans(), min_size=len(_frame), max_size=len(_frame)))
def test_labels_never_change_the_btyd_features(labels: list[float], churn: list[bool]) -> None:
    labelled = _frame.assign(label_value=labels, label_churn=np.array(churn, dtype="int64"),
                             label_purchases=np.abs(np.array(labels)) // 1000)
    out, _ = add_btyd_features(labelled, HORIZON)
    pd.testing.assert_frame_equal(out[list(BTYD_FEATURES)], _base)


def test_later_rows_never_change_an_earlier_cutoff() -> None:
    """Per-cutoff fits in the training frames: another cutoff's rows (later histories,
    their labels) leave a cutoff's BTYD features as they are."""
    from propensity.config import FeaturesConfig
    from training.dataset import with_btyd_features

    early = _frame.assign(as_of=pd.Timestamp("2025-01-01"), label_churn=0)
    later = history_frame(n=1200, seed=9).assign(as_of=pd.Timestamp("2025-04-01"), label_churn=1)
    stacked = pd.concat([later, early], ignore_index=True)  # order must not matter either
    out, notes = with_btyd_features(stacked, FeaturesConfig(horizon_days=HORIZON))
    assert notes == [] and out.index.equals(stacked.index)
    got = out[out["as_of"] == pd.Timestamp("2025-01-01")][list(BTYD_FEATURES)].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, _base)
    # Flipped labels, and the early cutoff alone: the same numbers again.
    flipped = early.assign(label_churn=1)
    alone, _ = with_btyd_features(flipped, FeaturesConfig(horizon_days=HORIZON))
    pd.testing.assert_frame_equal(alone[list(BTYD_FEATURES)], _base)


def test_scorer_fits_once_on_the_snapshot_and_only_for_models_that_read_btyd(tmp_path) -> None:
    from types import SimpleNamespace

    from serving.batch import snapshot_btyd_params

    frame = history_frame(n=4000, seed=21)
    path = tmp_path / "snapshot.parquet"
    frame.assign(r_score=1, label_free="x").to_parquet(path)
    old = {"churn": SimpleNamespace(numeric=["recency_days", "frequency_365d"])}  # trained before BTYD
    assert snapshot_btyd_params(path, old, HORIZON, 365) is None
    new = {**old, "value": SimpleNamespace(numeric=["recency_days", "btyd_expected_value"])}
    params = snapshot_btyd_params(path, new, HORIZON, 365)
    _, whole = add_btyd_features(frame, HORIZON)
    assert params == {"horizon_days": HORIZON, **whole}

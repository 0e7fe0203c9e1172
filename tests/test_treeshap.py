"""Fast exact TreeSHAP (training/treeshap.py) equals LightGBM's pred_contrib, row by row.

The boosters are built to contain every kind of decision LightGBM makes: numeric
splits of all three missing types (None, Zero, NaN) with both default directions,
categorical splits both one-hot and many-vs-many, for the binary, tweedie and
regression objectives. The rows scored include what the training data never had:
NaN in every column, tiny values on both sides of LightGBM's zero threshold, values
exactly on split thresholds, infinities, negative and unseen category codes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import lightgbm as lgb

from training.treeshap import Engine

OBJECTIVES = ("binary", "tweedie", "regression")
TOL = 1e-9


def _frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({
        "with_nan": rng.normal(size=n),
        "with_zero": np.where(rng.random(n) < 0.3, 0.0, rng.normal(size=n)),
        "plain": rng.integers(0, 8, n).astype(float),
        "many_levels": pd.Categorical(rng.integers(0, 20, n)),
        "few_levels": pd.Categorical(rng.integers(0, 3, n)),
    })
    x.loc[rng.random(n) < 0.15, "with_nan"] = np.nan
    x.loc[rng.random(n) < 0.05, "many_levels"] = np.nan
    signal = (np.nan_to_num(x["with_nan"].to_numpy(), nan=1.5) + (x["many_levels"].cat.codes % 4 == 1)
              - 0.5 * (x["with_zero"] == 0) + 0.2 * x["plain"] + (x["few_levels"].cat.codes == 2))
    return x, signal.to_numpy(dtype=float) + rng.normal(scale=0.7, size=n)


def _booster(objective: str, zero_as_missing: bool) -> lgb.Booster:
    x, signal = _frame(4000, seed=1)
    y = {"binary": (signal > 0.8).astype(float), "tweedie": np.exp(signal / 2) * (signal > 0),
         "regression": signal}[objective]
    params = {"objective": objective, "num_leaves": 31, "min_data_in_leaf": 10, "max_cat_to_onehot": 4,
              "min_data_per_group": 5, "cat_smooth": 1.0, "zero_as_missing": zero_as_missing,
              "num_threads": 1, "seed": 3, "deterministic": True, "verbose": -1}
    return lgb.train(params, lgb.Dataset(x, y), num_boost_round=40)


def _codes(x: pd.DataFrame) -> np.ndarray:
    out = x.copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.CategoricalDtype):
            out[c] = out[c].cat.codes.replace(-1, np.nan).astype(float)
    return out.to_numpy(dtype=float)


def _hard_rows(booster: lgb.Booster) -> np.ndarray:
    """Rows at the edges of LightGBM's decisions."""
    x, _ = _frame(600, seed=7)
    m = _codes(x)
    dump = booster.dump_model()["tree_info"]
    thresholds = {j: [] for j in range(m.shape[1])}

    def walk(node: dict) -> None:
        if "split_feature" in node:
            if node["decision_type"] == "<=":
                thresholds[node["split_feature"]].append(float(node["threshold"]))
            walk(node["left_child"])
            walk(node["right_child"])

    for tree in dump:
        walk(tree["tree_structure"])
    rng = np.random.default_rng(11)
    blocks = [m]
    for j in (0, 1, 2):  # values exactly on the thresholds
        on = m[:100].copy()
        if thresholds[j]:
            on[:, j] = rng.choice(thresholds[j], 100)
        blocks.append(on)
    edge = m[:12].copy()
    edge[0, :] = np.nan
    edge[1, :3] = 0.0
    edge[2, :3] = 1e-40
    edge[3, :3] = -1e-40
    edge[4, :3] = np.inf
    edge[5, :3] = -np.inf
    edge[6, 3:] = -1.0          # negative category codes
    edge[7, 3:] = 57.0          # a level never seen
    edge[8, 3:] = 2.7           # a fractional code (LightGBM truncates)
    edge[9, 3:] = -0.5          # truncates to 0, not negative
    edge[10, :] = 0.0
    edge[11, 3:] = 1e6
    blocks.append(edge)
    return np.vstack(blocks)


@pytest.fixture(scope="module")
def boosters() -> dict[tuple[str, bool], lgb.Booster]:
    return {(obj, zero): _booster(obj, zero) for obj in OBJECTIVES for zero in (False, True)}


def test_the_boosters_hold_every_kind_of_decision(boosters) -> None:
    missing_types, defaults, categorical = set(), set(), 0
    for booster in boosters.values():
        def walk(node: dict) -> None:
            nonlocal categorical
            if "split_feature" in node:
                if node["decision_type"] == "==":
                    categorical += 1
                else:
                    missing_types.add(node["missing_type"])
                    defaults.add((node["missing_type"], node["default_left"]))
                walk(node["left_child"])
                walk(node["right_child"])

        for tree in booster.dump_model()["tree_info"]:
            walk(tree["tree_structure"])
    assert missing_types == {"None", "Zero", "NaN"}
    assert {("NaN", True), ("NaN", False)} <= defaults
    assert categorical > 50


@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("zero_as_missing", [False, True])
def test_fast_equals_pred_contrib_on_every_row(boosters, objective: str, zero_as_missing: bool) -> None:
    booster = boosters[(objective, zero_as_missing)]
    rows = _hard_rows(booster)
    engine = Engine(booster)
    assert engine.fast_trees == engine.num_trees == 40
    ours = engine.contributions(rows, threads=2)
    theirs = booster.predict(rows, pred_contrib=True)
    assert ours.shape == theirs.shape == (len(rows), 6)
    diff = np.abs(ours - theirs).max()
    print(f"{objective}, zero_as_missing={zero_as_missing}: {len(rows)} rows, max |fast - pred_contrib| = {diff:.2e}")
    assert diff <= TOL
    # additivity on LightGBM's own raw score
    assert np.abs(ours.sum(axis=1) - booster.predict(rows, raw_score=True)).max() <= TOL


def test_threads_and_blocks_do_not_change_a_row(boosters) -> None:
    booster = boosters[("binary", False)]
    rows = _hard_rows(booster)
    engine = Engine(booster)
    one = engine.contributions(rows, threads=1)
    np.testing.assert_array_equal(one, engine.contributions(rows, threads=3))
    np.testing.assert_array_equal(one[17:18], engine.contributions(rows[17:18]))
    assert engine.contributions(rows[:0]).shape == (0, 6)


def test_num_iteration_limits_the_trees(boosters) -> None:
    booster = boosters[("regression", True)]
    rows = _hard_rows(booster)
    engine = Engine(booster, num_iteration=15)
    assert engine.num_trees == 15
    theirs = booster.predict(rows, pred_contrib=True, num_iteration=15)
    assert np.abs(engine.contributions(rows) - theirs).max() <= TOL


def test_trees_with_long_paths_go_to_lightgbm_and_the_sum_is_still_exact(boosters) -> None:
    booster = boosters[("tweedie", False)]
    rows = _hard_rows(booster)
    widest = sorted(_widest_path(t["tree_structure"], ()) for t in booster.dump_model()["tree_info"])
    limit = widest[len(widest) // 2] - 1  # about half the trees have a wider path
    engine = Engine(booster, max_path_features=limit)
    slow = engine.num_trees - engine.fast_trees
    assert slow == sum(w > limit for w in widest)
    assert 0 < slow < engine.num_trees  # both paths are exercised
    assert engine.fallback_runs and sum(n for _, n in engine.fallback_runs) == slow
    assert f"LightGBM pred_contrib ({slow} trees: {slow} paths with more than {limit} features)" in engine.summary()
    theirs = booster.predict(rows, pred_contrib=True)
    assert np.abs(engine.contributions(rows, threads=2) - theirs).max() <= TOL
    everything_slow = Engine(booster, max_path_features=0)
    assert everything_slow.fast_trees == 0
    assert np.abs(everything_slow.contributions(rows) - theirs).max() <= TOL


def _widest_path(node: dict, features: tuple) -> int:
    """Most distinct features on one root-to-leaf path."""
    if "split_feature" not in node:
        return len(set(features))
    here = features + (node["split_feature"],)
    return max(_widest_path(node["left_child"], here), _widest_path(node["right_child"], here))


def test_linear_trees_are_refused_in_one_line() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 2))
    booster = lgb.train({"objective": "regression", "linear_tree": True, "verbose": -1, "num_leaves": 4},
                        lgb.Dataset(x, x[:, 0] * 2 + rng.normal(size=300)), num_boost_round=3)
    with pytest.raises(ValueError, match="not defined for linear trees"):
        Engine(booster)


def test_a_wrongly_shaped_matrix_is_refused(boosters) -> None:
    engine = Engine(boosters[("binary", True)])
    with pytest.raises(ValueError, match="5 columns"):
        engine.contributions(np.zeros((3, 4)))

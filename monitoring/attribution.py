"""Attribution drift: has a model started to lean on other features than it did on its reference?

Per feature, the mean |contribution| (SHAP, on the model's raw scale) over the run's
customers, accumulated by the scorer while it explained (`scoring_runs.attributions`),
against the same mean over the reference profile's rows (`reference_profile.json`).
Each is also taken as a share of the model's total, so a model whose scores all shrink
or grow together shows no shift; the shift of a run is the total variation distance
between the two share vectors, 1/2 * sum |share - reference share|: 0 when the model
spreads its attention as before, 1 when every feature it used is swapped for others.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

COLUMNS = ["feature", "mean_abs_contribution", "reference_mean_abs_contribution", "share", "reference_share",
           "rank", "reference_rank"]


def _shares(values: pd.Series) -> pd.Series:
    total = values.sum()
    return values / total if total > 0 else values * 0.0


def _ranks(values: pd.Series) -> pd.Series:
    """1 = the largest; ties share the better rank."""
    return values.rank(ascending=False, method="min").astype("int64")


def attribution_drift(run_mean_abs: dict[str, float], reference_mean_abs: dict[str, float]) -> tuple[pd.DataFrame, float]:
    """Per-feature attribution of a run against its reference, and the run's shift.

    Args:
        run_mean_abs: feature -> mean |contribution| over the run's customers.
        reference_mean_abs: feature -> mean |contribution| over the reference rows.

    Returns:
        (table, shift): one row per feature of either side (a feature missing on one
        side counts 0 there), largest run attribution first; shift in [0, 1].
    """
    names = sorted(set(run_mean_abs) | set(reference_mean_abs))
    run = pd.Series([float(run_mean_abs.get(n, 0.0)) for n in names], index=names, dtype="float64")
    ref = pd.Series([float(reference_mean_abs.get(n, 0.0)) for n in names], index=names, dtype="float64")
    run, ref = run.fillna(0.0), ref.fillna(0.0)
    table = pd.DataFrame({"feature": names, "mean_abs_contribution": run.to_numpy(),
                          "reference_mean_abs_contribution": ref.to_numpy(), "share": _shares(run).to_numpy(),
                          "reference_share": _shares(ref).to_numpy(), "rank": _ranks(run).to_numpy(),
                          "reference_rank": _ranks(ref).to_numpy()}, columns=COLUMNS)
    shift = float(0.5 * np.abs(table["share"] - table["reference_share"]).sum())
    table = table.sort_values(["rank", "feature"], kind="stable").reset_index(drop=True)
    return table, shift

"""Attribution drift: does a model explain this run's scores as it explained its reference's?

Per feature, from the SHAP contributions (on the model's raw scale) the scorer
accumulated while it explained the run (`scoring_runs.attributions`), against the same
over the reference profile's rows (`reference_profile.json`):

- importance: the mean |contribution|, also as a share of the model's total. The
  importance shift is the total variation distance between the two share vectors,
  1/2 * sum |share - reference share|: 0 when the model spreads its attention over the
  features as before, 1 when every feature it used is swapped for others (Vertex AI
  monitors this kind of attribution drift).
- direction: the mean signed contribution, where a feature pushes the scores on
  average. The direction shift is sum |mean - reference mean| over features, divided by
  the reference's total mean |contribution|. Importance alone is blind to a feature
  whose contributions flip sign: when recent purchases vanish from the data, recency
  pushes churn risk up as strongly as it pushed it down, and the importance shares
  barely move (0.04 in the zero-feed test) while the direction shift is large.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

COLUMNS = ["feature", "mean_abs_contribution", "reference_mean_abs_contribution", "share", "reference_share",
           "rank", "reference_rank", "mean_contribution", "reference_mean_contribution"]


def _shares(values: pd.Series) -> pd.Series:
    total = values.sum()
    return values / total if total > 0 else values * 0.0


def _ranks(values: pd.Series) -> pd.Series:
    """1 = the largest; ties share the better rank."""
    return values.rank(ascending=False, method="min").astype("int64")


def _aligned(names: list[str], values: dict[str, float] | None) -> pd.Series:
    values = values or {}
    return pd.Series([float(values.get(n, 0.0)) for n in names], index=names, dtype="float64").fillna(0.0)


def attribution_drift(run_mean_abs: dict[str, float], reference_mean_abs: dict[str, float],
                      run_mean: dict[str, float] | None = None,
                      reference_mean: dict[str, float] | None = None) -> tuple[pd.DataFrame, float, float | None]:
    """Per-feature attribution of a run against its reference, and the run's two shifts.

    Args:
        run_mean_abs, reference_mean_abs: feature -> mean |contribution|.
        run_mean, reference_mean: feature -> mean signed contribution (None: no direction
            shift, for runs or profiles from before these were kept).

    Returns:
        (table, importance shift in [0, 1], direction shift >= 0 or None): one row per
        feature of either side (a feature missing on one side counts 0 there), largest
        run importance first.
    """
    names = sorted(set(run_mean_abs) | set(reference_mean_abs))
    run, ref = _aligned(names, run_mean_abs), _aligned(names, reference_mean_abs)
    signed = run_mean is not None and reference_mean is not None
    table = pd.DataFrame({"feature": names, "mean_abs_contribution": run.to_numpy(),
                          "reference_mean_abs_contribution": ref.to_numpy(), "share": _shares(run).to_numpy(),
                          "reference_share": _shares(ref).to_numpy(), "rank": _ranks(run).to_numpy(),
                          "reference_rank": _ranks(ref).to_numpy(),
                          "mean_contribution": _aligned(names, run_mean).to_numpy() if signed else np.nan,
                          "reference_mean_contribution": _aligned(names, reference_mean).to_numpy() if signed else np.nan},
                         columns=COLUMNS)
    importance = float(0.5 * np.abs(table["share"] - table["reference_share"]).sum())
    direction = None
    if signed and ref.sum() > 0:
        direction = float(np.abs(table["mean_contribution"] - table["reference_mean_contribution"]).sum() / ref.sum())
    table = table.sort_values(["rank", "feature"], kind="stable").reset_index(drop=True)
    return table, importance, direction

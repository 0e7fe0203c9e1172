"""The reference profile a model is logged with: how its out-of-time test half looked.

Monitoring (`monitoring.drift`) measures every later scoring run against it, so the bins
are fixed here, from the reference only:

- numeric values: cut at the reference's deciles (`numeric_bins`; repeated quantiles
  merge, so a feature with few distinct values gets fewer bins), each edge halfway between
  two neighbouring values of the reference, a value equal to an edge going to the bin above; missing values (and
  +-inf, and text that is not a number) are a bin of their own, the last;
- categorical values: one bin per reference level (the `max_levels` most common; rarer
  ones share an "other levels" bin), one for levels the reference never saw, one for
  missing.

`reference_profile` stores, for one model: the bins and shares of every feature and of
the model's output, and the mean |contribution| (SHAP, on the model's raw scale) per
feature, all on the test half.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from training.explain import Contributions
    from training.models import LgbmModel

MISSING = "(missing)"
NEW = "(new level)"
OTHER = "(other levels)"
PROFILE_FILE = "reference_profile.json"


@dataclass(frozen=True)
class Bins:
    """The reference's bins of one column and its share in each (the last bin: missing)."""

    kind: Literal["numeric", "categorical"]
    edges: tuple[float, ...] = ()  # numeric: interior edges, ascending
    levels: tuple[str, ...] = ()  # categorical: the reference's levels with a bin of their own
    other_levels: tuple[str, ...] = ()  # categorical: the reference's rarer levels, sharing one bin
    reference: tuple[float, ...] = ()  # shares of the reference rows, one per bin

    @property
    def labels(self) -> list[str]:
        """A name per bin, in order (for reports)."""
        if self.kind == "numeric":
            bounds = [-np.inf, *self.edges, np.inf]
            return [f"[{_num(lo)}, {_num(hi)})" for lo, hi in zip(bounds[:-1], bounds[1:])] + [MISSING]
        return [*self.levels, *([OTHER] if self.other_levels else []), NEW, MISSING]

    def to_dict(self) -> dict:
        return {"kind": self.kind, "edges": list(self.edges), "levels": list(self.levels),
                "other_levels": list(self.other_levels), "reference": list(self.reference)}

    @classmethod
    def from_dict(cls, d: dict) -> Bins:
        return cls(d["kind"], tuple(float(x) for x in d["edges"]), tuple(d["levels"]), tuple(d["other_levels"]),
                   tuple(float(x) for x in d["reference"]))


def _num(x: float) -> str:
    return "-inf" if x == -np.inf else ("inf" if x == np.inf else f"{x:.6g}")


def _numbers(values: pd.Series | np.ndarray) -> np.ndarray:
    """Floats, with text that is not a number and +-inf as missing."""
    x = pd.to_numeric(pd.Series(values), errors="coerce").astype("float64").to_numpy()
    return np.where(np.isinf(x), np.nan, x)


def numeric_bins(values: pd.Series | np.ndarray, n_bins: int = 10) -> Bins:
    """Bins at the reference's quantiles 1/n .. (n-1)/n of its non-missing values."""
    x = _numbers(values)
    present = x[~np.isnan(x)]
    edges: tuple[float, ...] = ()
    if len(present):
        # "higher": every cut is at a value of the reference, so equal values never straddle it
        qs = np.unique(np.quantile(present, np.arange(1, n_bins) / n_bins, method="higher"))
        qs = qs[qs > present.min()]  # a cut at the minimum would leave the first bin empty
        # the edge sits halfway between that value and the reference's next smaller one (the
        # reference's bins are the same; integer counts get edges at x.5)
        distinct = np.unique(present)
        below = distinct[np.searchsorted(distinct, qs, side="left") - 1]
        edges = tuple(float(e) for e in (below + qs) / 2)
    return Bins("numeric", edges=edges, reference=tuple(shares(Bins("numeric", edges=edges), x)))


def categorical_bins(values: pd.Series | np.ndarray, max_levels: int = 50) -> Bins:
    """A bin per reference level (the `max_levels` most common), then other, new and missing."""
    s = pd.Series(values, dtype="object")
    counts = s[s.notna()].astype(str).value_counts(sort=False)
    order = sorted(counts.index, key=lambda lvl: (-counts[lvl], lvl))
    bins = Bins("categorical", levels=tuple(order[:max_levels]), other_levels=tuple(sorted(order[max_levels:])))
    return Bins("categorical", levels=bins.levels, other_levels=bins.other_levels, reference=tuple(shares(bins, s)))


def bin_counts(bins: Bins, values: pd.Series | np.ndarray) -> np.ndarray:
    """Rows of `values` in each of `bins`' bins."""
    if bins.kind == "numeric":
        x = _numbers(values)
        missing = np.isnan(x)
        idx = np.searchsorted(np.asarray(bins.edges, dtype=float), x[~missing], side="right")
        counts = np.bincount(idx, minlength=len(bins.edges) + 1).astype(float)
        return np.append(counts, float(missing.sum()))
    s = pd.Series(values, dtype="object")
    missing = s.isna()
    text = s[~missing].astype(str)
    position = {lvl: i for i, lvl in enumerate(bins.levels)}
    has_other = bool(bins.other_levels)
    if has_other:
        position.update({lvl: len(bins.levels) for lvl in bins.other_levels})
    new_i = len(bins.levels) + has_other
    idx = text.map(position).fillna(new_i).to_numpy(dtype=int)
    counts = np.bincount(idx, minlength=new_i + 1).astype(float)
    return np.append(counts, float(missing.sum()))


def shares(bins: Bins, values: pd.Series | np.ndarray) -> np.ndarray:
    """The share of `values` in each of `bins`' bins (sums to 1; all zeros for no rows)."""
    counts = bin_counts(bins, values)
    total = counts.sum()
    return counts / total if total else counts




# Segments: every categorical model input with at most this many levels splits the
# reference, and each level with at least SEGMENT_MIN_ROWS rows keeps its own shares on the
# population's bins, so monitoring can see a shift confined to one segment (a price rise
# that halves one segment's purchases moves the whole population's frequency by PSI 0.07,
# the segment's by 0.5).
SEGMENT_MAX_LEVELS = 12
SEGMENT_MIN_ROWS = 200


def segment_profiles(frame: pd.DataFrame, features: dict[str, dict], columns: list[str],
                     min_rows: int = SEGMENT_MIN_ROWS, max_levels: int = SEGMENT_MAX_LEVELS) -> dict[str, Any]:
    """column -> level -> {"rows", "shares": feature -> shares on the population's bins}."""
    out: dict[str, Any] = {}
    for column in columns:
        text = frame[column].astype("object").where(frame[column].notna())
        counts = text.dropna().astype(str).value_counts()
        if len(counts) == 0 or len(counts) > max_levels:
            continue
        levels = {}
        for level, n in counts.items():
            if n >= min_rows:
                part = frame[(text.astype(str) == level) & text.notna()]
                levels[str(level)] = {"rows": int(n), "shares": {
                    f: [float(x) for x in shares(Bins.from_dict(b), part[f])] for f, b in features.items()}}
        if levels:
            out[column] = levels
    return out


def reference_profile(model: LgbmModel, test: pd.DataFrame, predictions: np.ndarray,
                      contribs: Contributions, as_of: date | None = None) -> dict[str, Any]:
    """The reference profile of `model` on its out-of-time test half (JSON-ready).

    Args:
        model: the trained model (its feature lists say which columns are numeric).
        test: the test half's feature rows.
        predictions: the model's outputs on those rows (probability or value).
        contribs: the contributions of those rows (`training.explain.contributions`).
        as_of: the date the rows describe (monitoring ages tenure from it).
    """
    features = {c: numeric_bins(test[c]).to_dict() for c in model.numeric}
    features.update({c: categorical_bins(test[c]).to_dict() for c in model.categorical})
    values = contribs.values
    mean_abs = {c: float(np.nanmean(np.abs(values[c].to_numpy(dtype=float)))) for c in values.columns}
    mean = {c: float(np.nanmean(values[c].to_numpy(dtype=float))) for c in values.columns}
    return {
        "as_of": None if as_of is None else str(as_of),
        "rows": int(len(test)),
        "features": features,
        "score": numeric_bins(predictions).to_dict(),
        "score_mean": float(np.mean(predictions)),
        "contribution_scale": contribs.scale,
        "mean_abs_contribution": mean_abs,
        "mean_contribution": mean,
        "segments": segment_profiles(test, features, [c for c in model.categorical if c in test.columns]),
    }

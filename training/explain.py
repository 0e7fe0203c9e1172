"""Why a model scores a customer as it does: SHAP contributions, reason codes, charts.

Contributions are exact path-dependent TreeSHAP values, the numbers LightGBM's own
`Booster.predict(pred_contrib=True)` gives (and `shap.TreeExplainer` hands on for a
LightGBM booster), computed by `training.treeshap` from per-leaf tables at an order of
magnitude more rows per second; trees it cannot take (see there) and `method="lightgbm"`
go through `pred_contrib`, which stays the reference. shap's interventional mode is not
used (wrong with categorical splits, shap issue 5132).

Scales. Contributions are additive on the model's *raw* scale: log-odds for the
classifiers, log of the expected value for the Tweedie value model (LightGBM issue
5568). `base_value + sum(contributions) == raw score` for every row; `contributions`
checks that on every call. A reader rarely thinks in log-odds, so each reason code also
carries an `effect` on the output scale (probability after calibration, or amount):
output(raw) - output(raw - contribution), the change in the prediction if this one
feature's contribution were taken away with the others kept. The value model's level
factor c (`LgbmModel.level_factor_`) stays outside the raw score: contributions add up to
the booster's raw score and the amount is exp(raw + log c), so effects scale with c. Effects do not add up to
the prediction (the output map is not linear); contributions do.

Plots return a matplotlib `Figure` built without pyplot, so no global figure state is
created; the caller saves or logs it. Nothing here reads, writes or logs to MLflow.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from matplotlib.figure import Figure

from training.models import LgbmModel
from training.treeshap import Engine

log = logging.getLogger(__name__)

SCALES = {"binary": "log-odds", "tweedie": "log"}

# What a contribution moves, in the words of each model's reader.
TARGET_WORDS = {"churn": "churn risk", "response": "response probability", "value": "predicted value"}

# Features always offered for dependence plots (when the model has them).
CORE_DEPENDENCE = ("recency_days", "frequency_365d", "monetary_avg_365d", "width_categories")

# Columns a sentence reads besides its own feature (the usual gap next to recency, ...).
_CONTEXT_COLUMNS = frozenset({"recency_days", "gap_median_days", "needs_latest_dimension", "history_days"})


class AdditivityError(RuntimeError):
    """Contributions do not add up to the model's raw score: a bug, never a data problem."""


@dataclass
class Contributions:
    """Per-row feature contributions on the model's raw scale.

    Attributes:
        base_value: the expected raw score (LightGBM's bias column; constant over rows).
        values: rows x model features, raw scale, RangeIndex aligned to the input rows.
        raw: the model's raw score per row (`LgbmModel.predict_raw`).
        scale: "log-odds" (classifiers) or "log" (Tweedie value model).
        method: how they were computed (e.g. "fast TreeSHAP (144 trees)").
    """

    base_value: float
    values: pd.DataFrame
    raw: np.ndarray
    scale: str
    method: str = "LightGBM pred_contrib"

    def max_deviation(self) -> float:
        """Largest |base_value + row sum - raw score| over rows (0.0 for no rows)."""
        if len(self.raw) == 0:
            return 0.0
        recon = self.base_value + self.values.to_numpy(dtype=float).sum(axis=1)
        return float(np.max(np.abs(recon - np.asarray(self.raw, dtype=float))))

    def check_additivity(self, tol: float = 1e-6) -> None:
        """Raise `AdditivityError` unless base + contributions equal the raw score within `tol`."""
        if len(self.values) != len(self.raw):
            raise AdditivityError(f"{len(self.values)} contribution rows for {len(self.raw)} raw scores")
        dev = self.max_deviation()
        if not dev <= tol:  # also catches NaN
            raise AdditivityError(
                f"contributions do not add up to the raw score: max deviation {dev:.3g} > tolerance {tol:.3g}"
            )


def _threads(model: LgbmModel) -> int:
    return max(1, int(getattr(model, "num_threads", 1) or 1))


METHODS = ("auto", "lightgbm")


def contributions(model: LgbmModel, frame: pd.DataFrame, chunk_rows: int = 50_000,
                  method: str = "auto", threads: int | None = None) -> Contributions:
    """TreeSHAP contributions of every feature for every row, computed in chunks.

    Memory stays bounded by `chunk_rows` (the encoded chunk and its contribution
    matrix), apart from the result itself. Additivity is checked on every call against
    LightGBM's own raw scores.

    Args:
        model: a fitted `LgbmModel`; its `num_threads` sets the threads.
        frame: feature frame (any index; the result uses a RangeIndex in the same order).
        chunk_rows: rows per chunk.
        method: "auto" (fast exact TreeSHAP, LightGBM for the trees it cannot take) or
            "lightgbm" (`pred_contrib` for every tree: the reference).
        threads: threads to use (default: the model's `num_threads`).

    Returns:
        The contributions, base value, raw scores, scale and method.

    Raises:
        AdditivityError: base + contributions differ from `predict_raw` by more than 1e-6.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    booster, features = model.booster_, model.features
    threads = _threads(model) if threads is None else max(1, int(threads))
    engine = fast_engine(model) if method == "auto" else None
    label = engine.summary() if engine is not None else "LightGBM pred_contrib"
    if len(frame) == 0:
        if engine is not None:
            bias = engine.bias
        else:  # the bias column does not depend on the row: read it off an all-missing row
            empty_row = pd.DataFrame({f: [np.nan] for f in features})
            bias = booster.predict(model.encode(empty_row), pred_contrib=True,
                                   num_iteration=model.best_iteration_, num_threads=threads)[0, -1]
        return Contributions(float(bias), pd.DataFrame(columns=features, dtype=float), np.empty(0),
                             SCALES[model.kind], label)
    parts, raws = [], []
    for start in range(0, len(frame), chunk_rows):
        chunk = frame.iloc[start:start + chunk_rows]
        x = model.encode(chunk)
        if engine is not None:
            # LightGBM reads the same matrix for the raw scores: no second pandas conversion
            x = lightgbm_matrix(x, booster)
            phi = engine.contributions(x, threads=threads)
        else:
            phi = booster.predict(x, pred_contrib=True, num_iteration=model.best_iteration_, num_threads=threads)
        if phi.shape[1] != len(features) + 1:
            raise AdditivityError(f"contributions have {phi.shape[1]} columns for {len(features)} features + bias")
        parts.append(phi)
        # `predict_raw` on the chunk, without encoding it twice
        raws.append(booster.predict(x, raw_score=True, num_iteration=model.best_iteration_, num_threads=threads))
    phi = np.vstack(parts) if len(parts) > 1 else parts[0]
    bias = phi[:, -1]
    base = float(bias[0])
    if np.ptp(bias) > 1e-12:
        raise AdditivityError(f"the bias column of the contributions is not constant (range {np.ptp(bias):.3g})")
    out = Contributions(
        base_value=base,
        values=pd.DataFrame(phi[:, :-1], columns=features),
        raw=np.concatenate(raws),
        scale=SCALES[model.kind],
        method=label,
    )
    out.check_additivity()
    log.debug("contributions for %d rows by %s, max additivity deviation %.3g", len(frame), label,
              out.max_deviation())
    return out


_ENGINES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_ENGINES_LOCK = threading.Lock()


def fast_engine(model: LgbmModel) -> Engine:
    """The model's `training.treeshap.Engine`, built on first use and kept while the booster lives."""
    booster = model.booster_
    iteration = int(model.best_iteration_ or 0)
    with _ENGINES_LOCK:  # parallel scoring pieces: build once
        cached = _ENGINES.get(booster)
        if cached is None or cached[0] != iteration:
            engine = Engine(booster, num_iteration=iteration)
            _ENGINES[booster] = (iteration, engine)
            log.info("explaining with %s", engine.summary())
            return engine
        return cached[1]


def lightgbm_matrix(x: pd.DataFrame, booster: Any) -> np.ndarray:
    """The float64 matrix LightGBM builds from an encoded frame: categories as its integer codes.

    Categorical columns are re-based on the categories stored with the booster (as
    LightGBM's own pandas conversion does); a missing or unknown level is NaN.
    """
    names = booster.feature_name()
    if list(x.columns) != names:
        x = x[names]
    stored = list(getattr(booster, "pandas_categorical", None) or [])
    cols = []
    n_cat = 0
    for c in names:
        s = x[c]
        if isinstance(s.dtype, pd.CategoricalDtype):
            if n_cat < len(stored) and list(s.cat.categories) != list(stored[n_cat]):
                s = s.cat.set_categories(stored[n_cat])
            n_cat += 1
            codes = s.cat.codes.to_numpy(dtype=np.float64)
            codes[codes < 0] = np.nan
            cols.append(codes)
        else:
            cols.append(s.to_numpy(dtype=np.float64, na_value=np.nan))
    return np.column_stack(cols) if cols else np.empty((len(x), 0))


# -- reason text ---------------------------------------------------------------------

def _missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):  # not a scalar
        return False


def _num(v: Any, decimals: int = 1) -> str:
    """A number as a reader wants it: whole numbers without decimals, others rounded."""
    x = float(v)
    if x.is_integer():
        return f"{int(x):,}"
    return f"{x:,.{decimals}f}".rstrip("0").rstrip(".")


def _money(v: Any) -> str:
    return f"{float(v):,.2f}"


def _plural(n: Any, word: str, plural: str | None = None) -> str:
    x = float(n)
    return f"{_num(x)} {word if x == 1 else (plural or word + 's')}"


def _label(feature: str) -> str:
    name = feature.removeprefix("attr_")
    name = name.replace("_", " ").strip()
    return name[:1].upper() + name[1:] if name else feature


def format_value(v: Any) -> str:
    """A feature value as text for a reader ("missing" when there is none)."""
    if _missing(v):
        return "missing"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer, float, np.floating)):
        return _num(v, 2)
    return str(v)


def _window(feature: str) -> str:
    return feature.rsplit("_", 1)[1].removesuffix("d")


def _period(feature: str, row: Mapping[str, Any]) -> str:
    """'in the last 365 days', or 'in the last 92 days of history' when the data is shorter than the window."""
    days = int(_window(feature))
    history = row.get("history_days")
    if not _missing(history) and 0 < int(history) < days:
        return f"in the last {_plural(history, 'day')} of history"
    return f"in the last {days} days"


def _trend(v: Any, what: str) -> str:
    x = float(v)
    word = "steady" if abs(x) < 0.1 else ("rising" if x > 0 else "falling")
    return f"{what} {word} (trend {x:+.2f} on a scale of -1 to 1)"


# last_year_*: the horizon-long window a year before the prediction's (features.rfmw)
_YEAR_AGO = "in the same weeks a year earlier"
_NO_YEAR = "Less than a year of history, so no same weeks a year earlier"


def _describe(feature: str, row: Mapping[str, Any]) -> str | None:
    """The context part of a sentence, or None for the generic template."""
    v = row.get(feature)
    missing = _missing(v)
    gap = row.get("gap_median_days")
    if feature == "recency_days":
        if missing:
            return "No purchase on record"
        text = f"No purchase for {_plural(v, 'day')}"
        return text + (f", usual gap {_plural(gap, 'day')}" if not _missing(gap) else ", only one purchase day so far")
    if feature == "overdue_ratio":
        if missing:
            return "No usual gap between purchases yet (fewer than two purchase days)"
        r = row.get("recency_days")
        lead = f"No purchase for {_plural(r, 'day')}, " if not _missing(r) else ""
        usual = f" of {_plural(gap, 'day')}" if not _missing(gap) else ""
        return f"{lead}{_num(v, 1)} times the usual gap{usual}"
    if feature in ("gap_median_days", "gap_mean_days"):
        if missing:
            return "Fewer than two purchase days, so no usual gap yet"
        kind = "Usual" if feature == "gap_median_days" else "Average"
        return f"{kind} gap between purchases {_plural(v, 'day')}"
    if feature == "gap_std_days":
        return "Too few purchases to measure how regular they are" if missing else \
            f"Gaps between purchases vary by {_plural(v, 'day')} (standard deviation)"
    if feature == "tenure_days":
        return "No first purchase on record" if missing else f"Customer for {_plural(v, 'day')}"
    if feature == "purchases_total":
        return f"{_plural(0 if missing else v, 'purchase')} in total"
    if feature == "repeat_purchase_days":
        return f"{_plural(0 if missing else v, 'repeat purchase day')} after the first purchase"
    if feature.startswith("frequency_") and feature.endswith("d") and feature != "frequency_trend":
        return f"{_plural(0 if missing else v, 'purchase')} {_period(feature, row)}"
    if feature.startswith("monetary_avg_"):
        if missing:
            return f"No purchases {_period(feature, row)}"
        return f"Average purchase {_money(v)} {_period(feature, row)}"
    if feature.startswith("spend_") and feature != "spend_trend":
        return f"Spent {_money(0 if missing else v)} {_period(feature, row)}"
    if feature == "frequency_trend":
        return "No purchases in the two latest trend windows" if missing else _trend(v, "Purchase frequency")
    if feature == "spend_trend":
        return "No spend in the two latest trend windows" if missing else _trend(v, "Spend")
    if feature.startswith("returns_share_"):
        if missing:
            return f"Nothing bought {_period(feature, row)}"
        return f"Returned {float(v):.0%} of the amount bought {_period(feature, row)}"
    if feature == "width_categories":
        return f"Bought from {_plural(0 if missing else v, 'category', 'categories')}"
    if feature == "last_year_purchases":
        return _NO_YEAR if missing else f"{_plural(v, 'purchase')} {_YEAR_AGO}"
    if feature == "last_year_spend":
        return _NO_YEAR if missing else f"Spent {_money(v)} {_YEAR_AGO}"
    if feature.startswith("needs_"):
        return _describe_needs(feature, row, v, missing)
    if feature == "campaign_kind":
        return "Campaign kind unknown" if missing else f"Contacted in a {v} campaign"
    return None


def _describe_needs(feature: str, row: Mapping[str, Any], v: Any, missing: bool) -> str | None:
    never = "No needs evaluation on record"
    if feature == "needs_evaluations_total":
        return never if missing or float(v) == 0 else f"{_plural(v, 'needs evaluation')} on record"
    if feature == "needs_open_pains":
        if missing or float(v) == 0:
            return "No open pains in needs evaluations"
        return f"{_plural(v, 'open pain')} in needs evaluations"
    if feature.startswith("needs_complaints_"):
        n = 0 if missing else v
        period = "in total" if feature.endswith("_total") else f"in the last {_window(feature)} days"
        return f"{_plural(n, 'complaint')} in needs evaluations {period}"
    if missing and feature != "needs_latest_dimension":
        return never
    if feature == "needs_days_since_evaluation":
        return f"Last needs evaluation {_plural(v, 'day')} ago"
    scored = {"needs_latest_urgency": "Latest urgency", "needs_latest_importance": "Latest importance",
              "needs_latest_solution_fit": "Latest solution fit", "needs_mean_solution_fit": "Mean solution fit"}
    if feature in scored:
        return f"{scored[feature]} {_num(v, 1)} of 5"
    if feature == "needs_latest_level":
        dim = row.get("needs_latest_dimension")
        return f"Latest needs evaluation records a {v}" + ("" if _missing(dim) else f" on {dim}")
    if feature == "needs_latest_dimension":
        return never if missing else f"Latest needs evaluation is about {v}"
    if feature == "needs_orientation":
        return f"Buying orientation is {v}"
    if feature == "needs_style":
        return f"Buying style is {v}"
    return None


def _direction(contribution: float) -> str:
    return "raises" if contribution > 0 else ("lowers" if contribution < 0 else "does not change")


def _context(feature: str, row: Mapping[str, Any]) -> str:
    """A sentence without its direction: `_describe`'s, or the generic "<Label> is <value>"."""
    context = _describe(feature, row)
    if context is None:
        context = f"{_label(feature)} is {format_value(row.get(feature))}"
    return context


def _tail(contribution: float, model_name: str) -> str:
    return f": {_direction(contribution)} {TARGET_WORDS.get(model_name, 'the prediction')}"


def _sentence(feature: str, row: Mapping[str, Any], contribution: float, model_name: str) -> str:
    return _context(feature, row) + _tail(contribution, model_name)


def share_text(p: float) -> str:
    """A probability as a percentage with enough digits to tell it from 0% or 100% (99.994%, not 100.0%)."""
    if p != p:  # NaN
        return "n/a"
    distance = min(p, 1.0 - p) * 100
    if distance <= 0:
        return f"{p:.0%}"
    decimals = 1 if distance >= 1 else min(10, max(1, math.ceil(-math.log10(distance) - 1e-9)))
    return f"{p:.{decimals}%}"


def _factor_text(factor: float) -> str:
    if factor >= 1e7:
        return f"{factor:.3g}"
    return f"{factor:,.0f}" if factor >= 10 else f"{factor:.2f}"


def _log_odds(p: float) -> float | None:
    return math.log(p) - math.log1p(-p) if 0 < p < 1 else None


def effect_words(model_name: str, contribution: float, score: float, effect: float) -> str:
    """A contribution in words a reader can check: its raw-scale size, what it multiplies, the score without it.

    A saturated probability hides a strong reason: +3.985 log-odds moves 99.4% only to
    99.99%. So the words give both scales: the odds (or the amount) multiplied by a factor,
    and the score with this feature's contribution taken away (`score - effect`).

    Args:
        model_name: "churn", "response" or "value".
        contribution: the feature's contribution on the raw scale (log-odds, or log for value).
        score: the model's output for the customer (probability, or amount).
        effect: `reason_codes`' effect: score minus the score without this contribution.

    Returns:
        e.g. "+3.985 log-odds: multiplies the odds by 54; without it the churn risk would be
        99.4% instead of 99.994%".
    """
    target = TARGET_WORDS.get(model_name, "prediction")
    without = score - effect
    if model_name == "value":
        factor = math.exp(contribution)  # exact: the amount is exp(raw + log c)
        head = f"{contribution:+.3f} log"
        what, shown = "the predicted value", (lambda v: f"{v:,.2f}")
    else:
        # the odds of the shown (calibrated) probabilities; the raw odds where a probability is exactly 0 or 1
        a, b = _log_odds(score), _log_odds(without)
        factor = math.exp(a - b) if a is not None and b is not None else math.exp(contribution)
        head = f"{contribution:+.3f} log-odds"
        what, shown = "the odds", share_text
    if contribution == 0:
        return f"{head}: no change to the {target}"
    verb = "multiplies" if factor >= 1 else "divides"
    size = factor if factor >= 1 else 1 / factor
    return (f"{head}: {verb} {what} by {_factor_text(size)}; without it the {target} would be "
            f"{shown(without)} instead of {shown(score)}")


def reason_text(feature: str, row: Mapping[str, Any], contribution: float, model_name: str) -> str:
    """One plain-language sentence for one feature of one customer.

    The readable reference: `reason_codes` builds the same sentences for many rows at
    once (`_reason_strings`), and the tests hold the two equal.

    Args:
        feature: the feature name (e.g. "recency_days", "needs_open_pains", "attr_region").
        row: the customer's feature row, a Series or a dict (other columns give context,
            e.g. the usual gap).
        contribution: the feature's contribution (its sign gives "raises" / "lowers").
        model_name: "churn", "response" or "value" (names what is raised or lowered).

    Returns:
        e.g. "No purchase for 214 days, usual gap 30 days: raises churn risk".
    """
    return _sentence(feature, row, contribution, model_name)


# -- reason text for many rows at once ----------------------------------------------------
#
# The scorer writes 5 reasons x 3 models per customer; a `_sentence` call per reason row
# (~7-25 us) costs more than the SHAP values themselves. The functions below build the
# same strings one feature at a time, holding text as codes into its distinct strings
# (`_Texts`): numbers are formatted once per distinct value, pieces are joined once per
# distinct combination, and each row only carries integers until the one final take.
# `_describe_many` mirrors `_describe` branch by branch; the tests hold the two equal. A
# column of a type a template does not expect (text where a number is read, objects, ...)
# makes that feature fall back to `_context` row by row.

_STR = pd.StringDtype("pyarrow", na_value=np.nan)  # pandas' "str": what a list of Python strings becomes
_TEXT = pa.large_string()  # its Arrow storage


class _Fallback(Exception):
    """A column's type does not fit the vectorised templates: use the per-row reference."""


@dataclass(frozen=True)
class _Texts:
    """One text per row, held as a code per row into a list of strings."""

    codes: np.ndarray  # int64, one per row
    words: pa.Array  # large_string; may hold strings no row uses

    @classmethod
    def of(cls, part: str | _Texts, n: int) -> _Texts:
        return part if isinstance(part, _Texts) else cls(np.zeros(n, dtype=np.int64), pa.array([part], _TEXT))

    def strings(self) -> pa.Array:
        return self.words.take(pa.array(self.codes))


def _join(*parts: str | _Texts) -> _Texts:
    """Row by row concatenation of texts and constants, joined once per distinct combination."""
    varying = [p for p in parts if isinstance(p, _Texts)]
    codes = varying[0].codes
    pick: list[np.ndarray | None] = [None]  # per varying part: its word in each combination (None: all, in order)
    if len(varying) == 2 and len(varying[0].words) * len(varying[1].words) <= len(codes):
        # few enough words to join every pair, which spares hashing the rows
        a, b = varying
        codes = a.codes * len(b.words) + b.codes
        pick = [np.repeat(np.arange(len(a.words)), len(b.words)), np.tile(np.arange(len(b.words)), len(a.words))]
    elif len(varying) > 1:
        for p in varying[1:]:
            codes = pd.factorize(codes * len(p.words) + p.codes)[0]
        first = np.empty(int(codes.max()) + 1 if len(codes) else 0, dtype=np.int64)
        first[codes] = np.arange(len(codes))  # a row of each combination
        pick = [p.codes[first] for p in varying]
    words = iter(p.words if i is None else p.words.take(pa.array(i)) for p, i in zip(varying, pick))
    pieces = [next(words) if isinstance(p, _Texts) else pa.scalar(p, _TEXT) for p in parts]
    return _Texts(codes, pc.binary_join_element_wise(*pieces, pa.scalar("", _TEXT)))


def _if(mask: np.ndarray, yes: str | _Texts, no: str | _Texts) -> _Texts:
    """`yes` where mask holds, else `no`."""
    a, b = _Texts.of(yes, len(mask)), _Texts.of(no, len(mask))
    return _Texts(np.where(mask, a.codes, b.codes + len(a.words)), pa.concat_arrays([a.words, b.words]))


def _coded(x: np.ndarray, words: Callable[[np.ndarray], pa.Array]) -> _Texts:
    """Texts of numbers: `words` formats each distinct value of x once."""
    # by bit pattern: 0.0 and -0.0 are equal floats but print differently
    codes, distinct = pd.factorize(np.ascontiguousarray(x, dtype=np.float64).view(np.int64))
    return _Texts(codes, words(distinct.view(np.float64)))


def _clear(x: np.ndarray, decimals: int) -> tuple[np.ndarray, np.ndarray]:
    """x * 10**decimals rounded half-even, and where that is how Python's 'f' format rounds x.

    Python rounds x's exact binary value. The float product differs from the exact one by
    at most 2**-53 of itself, so rint agrees wherever the product is further than that
    from a tie; values not finite or too large for exact integers are not clear either.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        y = x * 10.0 ** decimals
        clear = np.isfinite(y) & (np.abs(y) < 2.0 ** 40) & (np.abs(y - np.floor(y) - 0.5) > 1e-15 * np.abs(y) + 1e-12)
    return np.rint(np.where(clear, y, 0.0)), clear


_FEW = 200  # distinct values Python formats faster one by one than the array steps can start up


@functools.cache
def _fractions(decimals: int, strip: bool) -> pa.Array:
    """The text after the integer part for each fraction 0 .. 10**decimals - 1 (in units of the last place)."""
    digits = [f"{f:0{decimals}d}" for f in range(10 ** decimals)]
    return pa.array([("." + d.rstrip("0")).rstrip(".") if strip else "." + d for d in digits], _TEXT)


def _fixed_words(x: np.ndarray, decimals: int, strip: bool, unit: tuple[str, str] | None) -> pa.Array:
    """f"{v:,.{decimals}f}" for each v of x; with strip, `_num(v, decimals)`; with unit, `_plural`.

    Built from parts: the sign, the integer part with thousands separators (one Python
    call per distinct integer part), the fraction (from a table) and the unit (singular
    for exactly 1). A few values, and values whose rounding is not clear, are formatted
    by Python itself.
    """
    if unit:
        fmt: Callable[[float], str] = lambda v: _plural(v, *unit)  # noqa: E731
    else:
        fmt = (lambda v: _num(v, decimals)) if strip else (lambda v: f"{v:,.{decimals}f}")
    if len(x) <= _FEW:
        return pa.array([fmt(v) for v in x.tolist()], _TEXT)
    q, clear = _clear(x, decimals)
    whole, frac = np.divmod(np.abs(q).astype(np.int64), 10 ** decimals)
    codes, wholes = pd.factorize(whole)
    # `_num` prints whole numbers as int(v): no sign for -0.0, which 'f' prints as "-0.0"
    negative = x < 0 if strip else np.signbit(x)
    parts = [pc.if_else(pa.array(negative), pa.scalar("-", _TEXT), pa.scalar("", _TEXT)),
             pa.array([f"{w:,}" for w in wholes.tolist()], _TEXT).take(pa.array(codes)),
             _fractions(decimals, strip).take(pa.array(frac))]
    if unit:
        parts.append(pc.if_else(pa.array(x == 1), pa.scalar(f" {unit[0]}", _TEXT), pa.scalar(f" {unit[1]}", _TEXT)))
    text = pc.binary_join_element_wise(*parts, pa.scalar("", _TEXT))
    if clear.all():
        return text
    return pc.replace_with_mask(text, pa.array(~clear), pa.array([fmt(v) for v in x[~clear].tolist()], _TEXT))


def _rounded_words(x: np.ndarray, decimals: int, fmt: Callable[[float], str], extra: np.ndarray) -> pa.Array:
    """fmt(v) for each v of x, calling fmt once per distinct text (for values in a small range).

    For formats whose text depends only on v rounded half-even to `decimals` places (what
    Python's 'f' and '%' formats print), on v's sign, and on `extra` (small integers 0-3
    the caller derives from v).
    """
    if len(x) <= _FEW:
        return pa.array([fmt(v) for v in x.tolist()], _TEXT)
    q, clear = _clear(x, decimals)
    codes, uniques = pd.factorize(np.where(clear, (q * 2 + np.signbit(x)) * 4 + extra, np.nan))
    unclear = np.flatnonzero(codes < 0)  # NaN: formatted one by one
    codes[unclear] = len(uniques) + np.arange(len(unclear))
    rep = np.empty(len(uniques) + len(unclear), dtype=np.intp)
    rep[codes] = np.arange(len(x))  # any member of a group: all print the same
    return pa.array([fmt(v) for v in x[rep].tolist()], _TEXT).take(pa.array(codes))


def _nums(x: np.ndarray, decimals: int = 1) -> _Texts:
    return _coded(x, lambda d: _fixed_words(d, decimals, strip=True, unit=None))


def _plurals(x: np.ndarray, word: str, plural: str | None = None) -> _Texts:
    # `_plural` prints `_num(v, 1)`
    return _coded(x, lambda d: _fixed_words(d, 1, strip=True, unit=(word, plural or word + "s")))


def _moneys(x: np.ndarray) -> _Texts:
    return _coded(x, lambda d: _fixed_words(d, 2, strip=False, unit=None))


def _trends(x: np.ndarray, what: str) -> _Texts:
    # steady / rising / falling: not decided by the rounding
    return _coded(x, lambda d: _rounded_words(d, 2, lambda v: _trend(v, what), (np.abs(d) < 0.1) + 2 * (d > 0)))


def _shares(x: np.ndarray) -> _Texts:
    # '.0%' prints v * 100 (that float product) with no decimals: v * 10**2 is the same product.
    return _coded(x, lambda d: _rounded_words(d, 2, lambda v: f"{v:.0%}", np.zeros(len(d))))


@dataclass(frozen=True)
class _Values:
    """One column on a set of reason rows: where it is missing, and its numbers or its text."""

    missing: np.ndarray  # bool
    numbers: np.ndarray | None  # float64, 0.0 where missing; None when the column is not numbers
    text: _Texts | None  # any word where missing; None when the column is not text
    yes_no: bool = False  # a bool column: shown as yes / no

    def as_numbers(self) -> np.ndarray:
        if self.numbers is None:
            raise _Fallback
        return self.numbers

    def as_text(self) -> _Texts:
        if self.text is None:
            raise _Fallback
        return self.text


class _Columns:
    """A frame's columns read at given rows: numbers converted once per column, text per read."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self._full: dict[str, _Values | pd.Series | None] = {}

    def _convert(self, name: str) -> _Values | pd.Series | None:
        """Numbers as a whole column, a text column as it is, or None for types left to the reference."""
        n = len(self.frame)
        if name not in self.frame.columns:  # the reference reads None: missing
            return _Values(np.ones(n, dtype=bool), np.zeros(n), _Texts.of("", n))
        s = self.frame[name]
        if not isinstance(s, pd.Series):  # duplicated column name
            return None
        dtype = s.dtype
        if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_integer_dtype(dtype) or \
                pd.api.types.is_float_dtype(dtype):  # numpy or nullable: NA and NaN are both missing
            values = s.to_numpy(dtype=float, na_value=np.nan)
            missing = np.isnan(values)
            return _Values(missing, np.where(missing, 0.0, values), None, yes_no=pd.api.types.is_bool_dtype(dtype))
        if isinstance(dtype, pd.StringDtype) or (
            isinstance(dtype, pd.CategoricalDtype) and pd.api.types.infer_dtype(dtype.categories) == "string"
        ) or (dtype == object and pd.api.types.infer_dtype(s, skipna=True) == "string"):
            return s
        return None  # dates, mixed objects, ...: the reference formats them

    def at(self, name: str, rows: np.ndarray) -> _Values:
        if name not in self._full:
            self._full[name] = self._convert(name)
        full = self._full[name]
        if full is None:
            raise _Fallback
        if isinstance(full, pd.Series):  # text: a feature's rows are often few, so only those
            part = full.iloc[rows]
            codes, words = pd.factorize(part)  # missing: -1, the extra empty word
            return _Values(part.isna().to_numpy(dtype=bool), None,
                           _Texts(np.where(codes < 0, len(words), codes), pa.array([*words.tolist(), ""], _TEXT)))
        return _Values(full.missing[rows], None if full.numbers is None else full.numbers[rows],
                       None if full.text is None else _Texts(full.text.codes[rows], full.text.words), full.yes_no)


def _format_values(v: _Values) -> _Texts:
    """`format_value` for many rows."""
    if v.yes_no:
        shown = _if(v.as_numbers() != 0, "yes", "no")
    elif v.numbers is not None:
        shown = _nums(v.numbers, 2)
    else:
        shown = v.as_text()
    return _if(v.missing, "missing", shown)


def _periods(feature: str, col: Callable[[str], _Values]) -> _Texts:
    """`_period` for many rows."""
    days = int(_window(feature))
    history = col("history_days")
    h = history.as_numbers()
    if not np.isfinite(h[~history.missing]).all():
        raise _Fallback  # `int(history)` raises: let the reference say so
    short = ~history.missing & (np.trunc(h) > 0) & (np.trunc(h) < days)
    return _if(short, _join("in the last ", _plurals(np.where(short, h, 0.0), "day"), " of history"),
               f"in the last {days} days")


def _describe_many(feature: str, col: Callable[[str], _Values], generic: Callable[[], _Texts]) -> _Texts:
    """`_context` for the rows of one feature: `_describe`'s branches, or `generic` where it has none.

    Args:
        feature: the feature all these rows explain.
        col: a column's values on these rows (raises `_Fallback` for types not handled here).
        generic: gives the generic template's text ("<Label> is <value>") on these rows.
    """
    v = col(feature)
    miss = v.missing
    if feature == "recency_days":
        gap = col("gap_median_days")
        usual = _if(gap.missing, ", only one purchase day so far",
                    _join(", usual gap ", _plurals(gap.as_numbers(), "day")))
        return _if(miss, "No purchase on record", _join("No purchase for ", _plurals(v.as_numbers(), "day"), usual))
    if feature == "overdue_ratio":
        recency, gap = col("recency_days"), col("gap_median_days")
        lead = _if(recency.missing, "", _join("No purchase for ", _plurals(recency.as_numbers(), "day"), ", "))
        usual = _if(gap.missing, "", _join(" of ", _plurals(gap.as_numbers(), "day")))
        return _if(miss, "No usual gap between purchases yet (fewer than two purchase days)",
                   _join(lead, _nums(v.as_numbers(), 1), " times the usual gap", usual))
    if feature in ("gap_median_days", "gap_mean_days"):
        kind = "Usual" if feature == "gap_median_days" else "Average"
        return _if(miss, "Fewer than two purchase days, so no usual gap yet",
                   _join(f"{kind} gap between purchases ", _plurals(v.as_numbers(), "day")))
    if feature == "gap_std_days":
        return _if(miss, "Too few purchases to measure how regular they are",
                   _join("Gaps between purchases vary by ", _plurals(v.as_numbers(), "day"), " (standard deviation)"))
    if feature == "tenure_days":
        return _if(miss, "No first purchase on record", _join("Customer for ", _plurals(v.as_numbers(), "day")))
    # numbers are 0.0 where missing: the "0 if missing else v" of `_describe`
    if feature == "purchases_total":
        return _join(_plurals(v.as_numbers(), "purchase"), " in total")
    if feature == "repeat_purchase_days":
        return _join(_plurals(v.as_numbers(), "repeat purchase day"), " after the first purchase")
    if feature.startswith("frequency_") and feature.endswith("d") and feature != "frequency_trend":
        return _join(_plurals(v.as_numbers(), "purchase"), " ", _periods(feature, col))
    if feature.startswith("monetary_avg_"):
        period = _periods(feature, col)
        return _if(miss, _join("No purchases ", period),
                   _join("Average purchase ", _moneys(v.as_numbers()), " ", period))
    if feature.startswith("spend_") and feature != "spend_trend":
        return _join("Spent ", _moneys(v.as_numbers()), " ", _periods(feature, col))
    if feature == "frequency_trend":
        return _if(miss, "No purchases in the two latest trend windows", _trends(v.as_numbers(), "Purchase frequency"))
    if feature == "spend_trend":
        return _if(miss, "No spend in the two latest trend windows", _trends(v.as_numbers(), "Spend"))
    if feature.startswith("returns_share_"):
        period = _periods(feature, col)
        return _if(miss, _join("Nothing bought ", period),
                   _join("Returned ", _shares(v.as_numbers()), " of the amount bought ", period))
    if feature == "width_categories":
        return _join("Bought from ", _plurals(v.as_numbers(), "category", "categories"))
    if feature == "last_year_purchases":
        return _if(miss, _NO_YEAR, _join(_plurals(v.as_numbers(), "purchase"), f" {_YEAR_AGO}"))
    if feature == "last_year_spend":
        return _if(miss, _NO_YEAR, _join("Spent ", _moneys(v.as_numbers()), f" {_YEAR_AGO}"))
    if feature.startswith("needs_"):
        return _describe_needs_many(feature, col, v, generic)
    if feature == "campaign_kind":
        return _if(miss, "Campaign kind unknown", _join("Contacted in a ", v.as_text(), " campaign"))
    return generic()


def _describe_needs_many(feature: str, col: Callable[[str], _Values], v: _Values,
                         generic: Callable[[], _Texts]) -> _Texts:
    """`_describe_needs` for many rows."""
    never = "No needs evaluation on record"
    miss = v.missing
    if feature == "needs_evaluations_total":
        x = v.as_numbers()
        return _if(miss | (x == 0), never, _join(_plurals(x, "needs evaluation"), " on record"))
    if feature == "needs_open_pains":
        x = v.as_numbers()
        return _if(miss | (x == 0), "No open pains in needs evaluations",
                   _join(_plurals(x, "open pain"), " in needs evaluations"))
    if feature.startswith("needs_complaints_"):
        period = "in total" if feature.endswith("_total") else f"in the last {_window(feature)} days"
        return _join(_plurals(v.as_numbers(), "complaint"), f" in needs evaluations {period}")
    scored = {"needs_latest_urgency": "Latest urgency", "needs_latest_importance": "Latest importance",
              "needs_latest_solution_fit": "Latest solution fit", "needs_mean_solution_fit": "Mean solution fit"}
    if feature == "needs_days_since_evaluation":
        known = _join("Last needs evaluation ", _plurals(v.as_numbers(), "day"), " ago")
    elif feature in scored:
        known = _join(f"{scored[feature]} ", _nums(v.as_numbers(), 1), " of 5")
    elif feature == "needs_latest_level":
        dim = col("needs_latest_dimension")
        known = _join("Latest needs evaluation records a ", v.as_text(),
                      _if(dim.missing, "", _join(" on ", dim.as_text())))
    elif feature == "needs_latest_dimension":
        known = _join("Latest needs evaluation is about ", v.as_text())
    elif feature == "needs_orientation":
        known = _join("Buying orientation is ", v.as_text())
    elif feature == "needs_style":
        known = _join("Buying style is ", v.as_text())
    else:
        known = generic()
    return _if(miss, never, known)


_DIRECTIONS = pa.array(["raises", "lowers", "does not change"], _TEXT)


def _direction_codes(contribution: np.ndarray) -> np.ndarray:
    """Index into `_DIRECTIONS`: what `_direction` says of each contribution."""
    return np.where(contribution > 0, 0, np.where(contribution < 0, 1, 2))


def _reason_strings(frame: pd.DataFrame, rows: np.ndarray, cols: np.ndarray, features: list[str],
                    contribution: np.ndarray, model_name: str) -> tuple[pa.Array, pa.Array]:
    """`format_value` and `_sentence` for every reason row, a feature at a time.

    Args:
        frame: the feature rows.
        rows: each reason row's position in `frame`.
        cols: each reason row's feature, as an index into `features`.
        features: the feature names.
        contribution: each reason row's contribution (its sign gives the direction).
        model_name: names what is raised or lowered.

    Returns:
        The feature values as text and the sentences, in the reason rows' order.
    """
    columns = _Columns(frame)
    order = np.argsort(cols, kind="stable")
    bounds = np.searchsorted(cols[order], np.arange(len(features) + 1))
    # every feature's texts go into one list of words each; rows get codes into them
    value_codes, context_codes = np.empty(len(rows), dtype=np.int64), np.empty(len(rows), dtype=np.int64)
    value_words: list[pa.Array] = []
    context_words: list[pa.Array] = []
    for j, feature in enumerate(features):
        where = order[bounds[j]:bounds[j + 1]]
        if len(where) == 0:
            continue
        at = rows[where]
        try:
            value_text = _format_values(columns.at(feature, at))
            context = _describe_many(feature, lambda name: columns.at(name, at),
                                     lambda: _join(f"{_label(feature)} is ", value_text))
        except _Fallback:
            wanted = [c for c in frame.columns if c == feature or c in _CONTEXT_COLUMNS]
            records = frame[wanted].iloc[at].to_dict("records")
            one_each = np.arange(len(at))
            value_text = _Texts(one_each, pa.array([format_value(r.get(feature)) for r in records], _TEXT))
            context = _Texts(one_each, pa.array([_context(feature, r) for r in records], _TEXT))
        value_codes[where] = value_text.codes + sum(map(len, value_words))
        context_codes[where] = context.codes + sum(map(len, context_words))
        value_words.append(value_text.words)
        context_words.append(context.words)
    shown = _Texts(value_codes, pa.concat_arrays(value_words))
    contexts = _Texts(context_codes, pa.concat_arrays(context_words))
    tails = _Texts(_direction_codes(contribution),
                   pa.array([_tail(c, model_name) for c in (1.0, -1.0, 0.0)], _TEXT))  # as _DIRECTIONS
    return shown.strings(), _join(contexts, tails).strings()


# -- reason codes ----------------------------------------------------------------------

def _top_k(values: np.ndarray, features: list[str], k: int) -> np.ndarray:
    """Column indices of the k largest |values| per row; ties go to the feature name first."""
    by_name = np.argsort(np.array(features, dtype=object), kind="stable")
    size = np.ascontiguousarray(np.abs(values[:, by_name]))  # rows contiguous for argmax
    if np.isnan(size).any():  # sort it all: NaN last, as -|v| sorts it
        return by_name[np.argsort(-size, axis=1, kind="stable")[:, :k]]
    # k passes of argmax (the first of equal sizes: name order) cost less than sorting every row
    picked = np.empty((len(size), k), dtype=np.intp)
    every = np.arange(len(size))
    for rank in range(k):
        picked[:, rank] = np.argmax(size, axis=1)
        size[every, picked[:, rank]] = -1.0  # sizes are >= 0: never picked again
    return by_name[picked]


def reason_codes(
    model: LgbmModel,
    frame: pd.DataFrame,
    model_name: str,
    k: int = 5,
    contribs: Contributions | None = None,
) -> pd.DataFrame:
    """The k strongest reasons behind each customer's score, one row per customer x rank.

    Args:
        model: the fitted model.
        frame: feature rows (with `customer_id`; without it, the row number is used).
        model_name: "churn", "response" or "value" (for the sentences).
        k: reasons per customer (at most the number of features).
        contribs: contributions already computed for exactly these rows.

    Returns:
        Columns customer_id, model, rank (1..k), feature, feature_value (text),
        contribution (raw scale), scale, effect (output scale), direction
        ("raises" / "lowers"; "does not change" for an exact zero), text. Ranked by
        |contribution| descending, ties by feature name.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    c = contributions(model, frame) if contribs is None else contribs
    if len(c.values) != len(frame):
        raise ValueError(f"contribs has {len(c.values)} rows but the frame has {len(frame)}")
    features = list(c.values.columns)
    k = min(k, len(features))
    n = len(frame)
    vals = c.values.to_numpy(dtype=float)
    idx = _top_k(vals, features, k) if n else np.empty((0, k), dtype=int)
    rows = np.repeat(np.arange(n), k)
    cols = idx.ravel()
    contrib = vals[rows, cols]
    raw = np.asarray(c.raw, dtype=float)[rows]
    effect = model.output(raw) - model.output(raw - contrib)
    ids = frame["customer_id"] if "customer_id" in frame.columns else pd.Series(np.arange(n))
    if n:
        shown, texts = _reason_strings(frame, rows, cols, features, contrib, model_name)
        strings = {"feature": pa.array(features, _TEXT).take(cols), "feature_value": shown,
                   "direction": _DIRECTIONS.take(pa.array(_direction_codes(contrib))), "text": texts}
        if ids.dtype == _STR:  # the dtype its values alone would get; Arrow repeats them faster
            strings["customer_id"] = pa.array(ids).take(rows)
        strings = {name: pd.Series(values, dtype=_STR) for name, values in strings.items()}
    else:  # as the per-row version built them, dtypes of empty columns included
        strings = {"feature": np.array(features, dtype=object)[cols], "feature_value": [],
                   "direction": np.where(contrib > 0, "raises", np.where(contrib < 0, "lowers", "does not change")),
                   "text": []}
    return pd.DataFrame({
        "customer_id": strings["customer_id"] if "customer_id" in strings else ids.to_numpy()[rows],
        "model": model_name,
        "rank": np.tile(np.arange(1, k + 1), n),
        "feature": strings["feature"],
        "feature_value": strings["feature_value"],
        "contribution": contrib,
        "scale": c.scale,
        "effect": effect,
        "direction": strings["direction"],
        "text": strings["text"],
    })


# -- global views ----------------------------------------------------------------------

def global_importance(contribs: Contributions) -> pd.DataFrame:
    """Mean |contribution| per feature and its share of the total, strongest first.

    Returns:
        Columns feature, mean_abs (raw scale), share (sums to 1); ties by feature name.
    """
    mean_abs = contribs.values.abs().mean(axis=0) if len(contribs.values) else contribs.values.sum(axis=0) * 0.0
    total = float(mean_abs.sum())
    out = pd.DataFrame({"feature": list(mean_abs.index), "mean_abs": mean_abs.to_numpy(dtype=float)})
    out["share"] = out["mean_abs"] / total if total > 0 else 0.0
    return out.sort_values(["mean_abs", "feature"], ascending=[False, True], kind="stable").reset_index(drop=True)


def dependence_features(importance: pd.DataFrame, n_needs: int = 2) -> list[str]:
    """Features worth a dependence plot: the core RFMW ones and the strongest needs features.

    Args:
        importance: from `global_importance`.
        n_needs: how many `needs_*` features to add, by mean |contribution|.

    Returns:
        recency_days, frequency_365d, monetary_avg_365d, width_categories (those the
        model has), then the top `n_needs` needs features.
    """
    present = list(importance["feature"])
    core = [f for f in CORE_DEPENDENCE if f in present]
    ranked = importance.sort_values(["mean_abs", "feature"], ascending=[False, True], kind="stable")
    needs = [f for f in ranked["feature"] if str(f).startswith("needs_")][:max(0, n_needs)]
    return core + needs


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def _axis_label(scale: str) -> str:
    return f"contribution ({scale} scale)"


def plot_importance(importance: pd.DataFrame, title: str, top: int = 15) -> Figure:
    """Horizontal bars of mean |contribution| for the `top` features (strongest on top).

    Returns:
        The figure (not shown, not saved).
    """
    shown = importance.head(top).iloc[::-1]
    fig = Figure(figsize=(7, 0.35 * len(shown) + 1.5))
    ax = fig.subplots()
    ax.barh(shown["feature"], shown["mean_abs"], color="#3b75af")
    for y, (v, s) in enumerate(zip(shown["mean_abs"], shown["share"])):
        ax.text(v, y, f" {s:.0%}", va="center", fontsize=8)
    ax.set(xlabel="mean |contribution| (raw scale)", title=title)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def _colour_values(s: pd.Series) -> np.ndarray:
    """Feature values mapped to [0, 1] by percentile rank (NaN for missing or text)."""
    if not _is_numeric(s):
        return np.full(len(s), np.nan)
    x = pd.to_numeric(s, errors="coerce").astype(float)
    return x.rank(pct=True).to_numpy(dtype=float)


def plot_beeswarm(
    contribs: Contributions, frame: pd.DataFrame, model: LgbmModel, title: str, top: int = 15,
    max_points: int = 5_000, seed: int = 0,
) -> Figure:
    """Each row's contribution per feature, coloured by the feature's value (shap's summary plot).

    Points are spread vertically in proportion to how many share an x position; at most
    `max_points` rows are drawn (a seeded sample). Text features are drawn grey.

    Args:
        contribs: contributions of `frame`'s rows.
        frame: the feature rows (for the colours).
        model: the model explained (its encoding gives the values the model saw).
        title: the chart title.
        top: features shown, by mean |contribution|.

    Returns:
        The figure (not shown, not saved).
    """
    if len(contribs.values) != len(frame):
        raise ValueError(f"contribs has {len(contribs.values)} rows but the frame has {len(frame)}")
    features = list(global_importance(contribs)["feature"].head(top))
    x_enc = model.encode(frame)
    n = len(frame)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(n, size=max_points, replace=False)) if n > max_points else np.arange(n)
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    cmap = colormaps["coolwarm"]
    fig = Figure(figsize=(8, 0.4 * len(features) + 1.8))
    ax = fig.subplots()
    for pos, f in enumerate(reversed(features)):
        cvals = contribs.values[f].to_numpy(dtype=float)[pick]
        colour = _colour_values(x_enc[f])[pick]
        y = _swarm_offsets(cvals, rng) + pos
        grey = np.isnan(colour)
        ax.scatter(cvals[grey], y[grey], s=6, color="#aaaaaa", alpha=0.6, linewidths=0)
        ax.scatter(cvals[~grey], y[~grey], s=6, c=colour[~grey], cmap=cmap, vmin=0, vmax=1, alpha=0.8,
                   linewidths=0)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(features)), list(reversed(features)))
    ax.set(xlabel=_axis_label(contribs.scale), title=title, ylim=(-0.7, len(features) - 0.3))
    bar = fig.colorbar(ScalarMappable(norm=Normalize(0, 1), cmap=cmap), ax=ax, ticks=[0, 1], aspect=40)
    bar.ax.set_yticklabels(["low", "high"])
    bar.set_label("feature value (percentile; grey: text or missing)")
    fig.tight_layout()
    return fig


def _swarm_offsets(x: np.ndarray, rng: np.random.Generator, bins: int = 60, width: float = 0.4) -> np.ndarray:
    """Vertical jitter whose spread follows the local density of x (a cheap beeswarm)."""
    if len(x) == 0:
        return np.empty(0)
    lo, hi = float(np.min(x)), float(np.max(x))
    if hi <= lo:
        return rng.uniform(-width, width, len(x))
    which = np.minimum(((x - lo) / (hi - lo) * bins).astype(int), bins - 1)
    counts = np.bincount(which, minlength=bins)
    spread = width * np.sqrt(counts[which] / counts.max())
    return rng.uniform(-1, 1, len(x)) * spread


def plot_dependence(contribs: Contributions, frame: pd.DataFrame, feature: str, title: str,
                    max_points: int = 5_000, seed: int = 0) -> Figure:
    """A feature's value against its contribution, one point per row.

    Numbers: a scatter (missing values noted in the legend with their mean
    contribution). Text: one column of points per level, levels ordered by mean
    contribution. Counts, means and the level order use every row; at most
    `max_points` rows are drawn (a seeded sample, said in the legend or the axis).

    Returns:
        The figure (not shown, not saved).
    """
    if feature not in contribs.values.columns:
        raise ValueError(f"{feature!r} is not a feature of these contributions")
    if len(contribs.values) != len(frame):
        raise ValueError(f"contribs has {len(contribs.values)} rows but the frame has {len(frame)}")
    y = contribs.values[feature].to_numpy(dtype=float)
    s = frame[feature].reset_index(drop=True)
    n = len(y)
    rng = np.random.default_rng(seed)
    drawn = np.zeros(n, dtype=bool)
    drawn[rng.choice(n, size=max_points, replace=False) if n > max_points else np.arange(n)] = True
    sampled = f" ({drawn.sum():,} drawn)" if n > max_points else ""
    fig = Figure(figsize=(6, 4.5))
    ax = fig.subplots()
    if _is_numeric(s):
        x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        ok = ~np.isnan(x)
        ax.scatter(x[ok & drawn], y[ok & drawn], s=6, alpha=0.4, color="#3b75af", linewidths=0,
                   label=f"{ok.sum():,} rows{sampled}")
        if (~ok).any():
            ax.axhline(float(np.mean(y[~ok])), color="#d1495b", linestyle="--", linewidth=1,
                       label=f"missing: {(~ok).sum():,} rows, mean contribution")
        ax.set_xlabel(feature)
        ax.legend(loc="best", fontsize=8)
    else:
        labels = s.astype(object).where(s.notna(), "(missing)").astype(str)
        order = pd.Series(y).groupby(labels.to_numpy()).mean().sort_values().index.tolist()
        pos = {lvl: i for i, lvl in enumerate(order)}
        xs = labels.map(pos).to_numpy(dtype=float) + rng.uniform(-0.25, 0.25, len(labels))
        ax.scatter(xs[drawn], y[drawn], s=6, alpha=0.4, color="#3b75af", linewidths=0)
        ax.set_xticks(range(len(order)), order, rotation=30, ha="right")
        ax.set_xlabel(f"{feature}{sampled}")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set(ylabel=_axis_label(contribs.scale), title=title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig



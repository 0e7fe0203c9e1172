"""Uplift metrics, curves and charts: Qini, uplift@k, uplift by decile, gain charts.

Pure functions on arrays (numpy, pandas Series or lists): nothing is read, written,
logged or shown here. Plots return a matplotlib `Figure` built without pyplot.

Inputs are always three aligned arrays: `y_true` (0/1 outcome: responded), `uplift`
(the score to rank by, highest first; a predicted uplift or any other score) and
`treatment` (1 = treatment group, 0 = control group). Both groups must be present.

Definitions (n rows; for the top rows by score, N_T / N_C are the treated / control rows
among them and R_T / R_C their responders):

- **Qini curve** (Radcliffe 2007): Q(n) = R_T(n) - R_C(n) * N_T(n) / N_C(n), the
  incremental responders among the treated top-n rows when the control responders are
  scaled to the treated count; the ratio counts as 0 while N_C(n) = 0. Points are taken
  at the end of every block of tied scores (rows with equal scores enter together) and
  joined by straight lines, starting at (0, 0). This is scikit-uplift's `qini_curve`.
- **Uplift curve** (the cumulative uplift gain chart): U(n) = (R_T/N_T - R_C/N_C) * n,
  each rate 0 while its group is empty; scikit-uplift's `uplift_curve`.
- **Qini coefficient**, normalised as scikit-uplift's `qini_auc_score` with its default
  `negative_effect=True`: (A_model - A_random) / (A_perfect - A_random), where A is the
  trapezoid area under a Qini curve over n = 0..N (rows, not shares), A_random the area
  under the straight line from (0, 0) to (N, Q(N)), and the perfect curve ranks treated
  responders first and control responders last (score y * (2t - 1)), so persuadables
  first and "do-not-disturbs" last. 1 = the perfect ranking, 0 = no better than random,
  negative = worse than random. It is not Radcliffe's unnormalised Qini (area between
  curve and diagonal divided by N), which depends on the response rate.
- **uplift@k**: scikit-uplift's `uplift_at_k` with strategy "overall", the strategy of
  its README and tutorials and the default of its per-percentile functions (in
  scikit-uplift >= 0.1 `uplift_at_k` itself has no default strategy; 0.0.x had
  `average="first"`, the same computation). Take the top m = int(n * k) rows by score
  (k a float in (0, 1); an int k is m itself) and return the response rate of the
  treated rows among them minus that of the control rows. "by_group" takes the top
  int(N_T * k) treated rows and the top int(N_C * k) control rows separately. NaN when
  one group has no rows in the selection.

Ties: when the cut falls inside a block of tied scores, the same fraction of every
count in the block (rows, treated, responders) is taken: the average over all orders
of the tied rows, so results do not depend on row order. scikit-uplift breaks ties by
reversed row order instead, so the two agree exactly whenever no tie straddles the cut
(the Qini curve and coefficient agree in every case, as both use block ends only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from training.evaluate import to_float

ArrayLike = np.ndarray | pd.Series | Sequence[float]
STRATEGIES = ("overall", "by_group")
DEFAULT_K = 0.3


def _triple(y_true: ArrayLike, uplift: ArrayLike, treatment: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated (y, score, t): aligned, y and t in {0, 1}, both groups present."""
    y, s, t = to_float(y_true, "y_true"), to_float(uplift, "uplift"), to_float(treatment, "treatment")
    if not (y.size == s.size == t.size):
        raise ValueError(f"y_true, uplift and treatment have {y.size}, {s.size} and {t.size} rows; pass aligned arrays")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y_true must hold only 0 and 1 (responded or not)")
    if not np.isin(t, (0.0, 1.0)).all():
        raise ValueError("treatment must hold only 0 (control) and 1 (treatment)")
    if t.min() == t.max():
        raise ValueError("treatment holds one group only; uplift needs treatment and control rows")
    return y, s, t


def _block_cumsums(score: np.ndarray, *columns: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Row counts at the end of each tie block (highest score first) and each column's sums there.

    Both start with 0 (nothing taken), so `np.interp` over them gives the tie-averaged sum
    of the top m rows for any (fractional) m.
    """
    order = np.argsort(-score, kind="stable")
    s_sorted = score[order]
    ends = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True]) + 1
    sums = [np.r_[0.0, np.cumsum(c[order])[ends - 1]] for c in columns]
    return np.r_[0, ends], sums


def _top_sums(score: np.ndarray, m: float, *columns: np.ndarray) -> list[float]:
    """Sum of each column over the top m rows by score, ties averaged."""
    ends, sums = _block_cumsums(score, *columns)
    return [float(np.interp(m, ends, c)) for c in sums]


def _rate(responders: float, rows: float) -> float:
    return responders / rows if rows > 0 else float("nan")


def _count(k: float | int, n: int, name: str = "k") -> float:
    """Rows taken for k: int(n * k) for a float k in (0, 1), k itself for an int k in [1, n)."""
    if isinstance(k, (bool, np.bool_)):
        raise ValueError(f"{name} must be a float share in (0, 1) or a row count, got {k!r}")
    if isinstance(k, (int, np.integer)):
        if not 1 <= k < n:
            raise ValueError(f"{name}={k} rows: use a count from 1 to {n - 1}, or a share in (0, 1)")
        return int(k)
    if not 0 < k < 1:
        raise ValueError(f"{name}={k}: use a share in (0, 1), e.g. 0.3 for the top 30 %")
    return int(n * k)


def uplift_at_k(
    y_true: ArrayLike,
    uplift: ArrayLike,
    treatment: ArrayLike,
    k: float | int = DEFAULT_K,
    strategy: str = "overall",
) -> float:
    """Treated minus control response rate among the top k by score (module docstring).

    Args:
        y_true: 0/1 outcomes.
        uplift: score, highest first (ties averaged).
        treatment: 1 = treatment, 0 = control.
        k: share of rows in (0, 1) (int(n * k) rows are taken, as scikit-uplift does) or
            a row count.
        strategy: "overall" (scikit-uplift's usual choice: the top rows of all rows) or
            "by_group" (the top share of each group separately).

    Returns:
        The uplift in the selection, as a difference of rates; NaN when a group is empty.
    """
    y, s, t = _triple(y_true, uplift, treatment)
    if strategy == "overall":
        m = _count(k, y.size)
        n_t, r_t, n_c, r_c = _top_sums(s, m, t, y * t, 1 - t, y * (1 - t))
        return _rate(r_t, n_t) - _rate(r_c, n_c)
    if strategy == "by_group":
        _count(k, y.size)  # the same k values as "overall" are valid
        rates = []
        for group in (1.0, 0.0):
            rows = t == group
            size = int(rows.sum())
            m = int(size * k) if isinstance(k, float) else int(k)
            if m > size:
                raise ValueError(f"k={k} rows is more than the {size} rows of the {'treatment' if group else 'control'} group")
            (r,) = _top_sums(s[rows], m, y[rows])
            rates.append(_rate(r, m))
        return rates[0] - rates[1]
    raise ValueError(f"strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")


def qini_curve(y_true: ArrayLike, uplift: ArrayLike, treatment: ArrayLike) -> pd.DataFrame:
    """Qini curve at the end of every tie block, from (0, 0) (module docstring).

    Returns:
        Columns n_targeted, share_targeted, treated, control, treated_responders,
        control_responders, qini (incremental responders) and uplift_gain (the uplift
        curve U(n) at the same points).
    """
    y, s, t = _triple(y_true, uplift, treatment)
    ends, (n_t, r_t, r_c) = _block_cumsums(s, t, y * t, y * (1 - t))
    n_c = ends - n_t
    ratio = np.divide(n_t, n_c, out=np.zeros_like(n_t), where=n_c > 0)
    rate_t = np.divide(r_t, n_t, out=np.zeros_like(r_t), where=n_t > 0)
    rate_c = np.divide(r_c, n_c, out=np.zeros_like(r_c), where=n_c > 0)
    return pd.DataFrame({
        "n_targeted": ends,
        "share_targeted": ends / y.size,
        "treated": n_t,
        "control": n_c.astype(float),
        "treated_responders": r_t,
        "control_responders": r_c,
        "qini": r_t - r_c * ratio,
        "uplift_gain": (rate_t - rate_c) * ends,
    })


def perfect_qini_curve(y_true: ArrayLike, treatment: ArrayLike) -> pd.DataFrame:
    """The Qini curve of the ideal ranking: treated responders first, control responders last."""
    y = to_float(y_true, "y_true")
    t = to_float(treatment, "treatment")
    return qini_curve(y, y * (2 * t - 1), t)


def _area(curve: pd.DataFrame, column: str = "qini") -> float:
    """Trapezoid area under a curve over rows targeted (0..N)."""
    return float(np.trapezoid(curve[column].to_numpy(), curve["n_targeted"].to_numpy(dtype=float)))


def qini_coefficient(y_true: ArrayLike, uplift: ArrayLike, treatment: ArrayLike) -> float:
    """Normalised area under the Qini curve: scikit-uplift's `qini_auc_score` (negative_effect=True).

    (A_model - A_random) / (A_perfect - A_random); see the module docstring. NaN when the
    perfect ranking is no better than random (e.g. no responders at all).
    """
    y, s, t = _triple(y_true, uplift, treatment)
    model = qini_curve(y, s, t)
    perfect = perfect_qini_curve(y, t)
    n = float(y.size)
    random = n * float(model["qini"].iloc[-1]) / 2.0
    best = _area(perfect) - random
    if best <= 0:
        return float("nan")
    return (_area(model) - random) / best


def uplift_by_decile(y_true: ArrayLike, uplift: ArrayLike, treatment: ArrayLike, bins: int = 10) -> pd.DataFrame:
    """Observed uplift per score bin, bin 1 holding the highest scores.

    A row with j rows scoring strictly higher (of n) goes to bin 1 + floor(bins * j / n),
    so tied rows stay together (a bin can then be larger and another one empty; empty
    bins are left out). scikit-uplift's `uplift_by_percentile` splits the sorted rows
    into equal parts instead, which can put tied rows in different bins.

    Returns:
        Columns decile, n_treatment, n_control, response_rate_treatment,
        response_rate_control, uplift (treated minus control rate, NaN for an empty
        group) and mean_score.
    """
    if bins < 1:
        raise ValueError("bins must be at least 1")
    y, s, t = _triple(y_true, uplift, treatment)
    above = y.size - np.searchsorted(np.sort(s), s, side="right")  # rows scoring strictly higher
    frame = pd.DataFrame({"decile": 1 + (bins * above) // y.size, "y": y, "t": t, "s": s})
    rows = []
    for decile, part in frame.groupby("decile", sort=True):
        treated, control = part[part["t"] == 1], part[part["t"] == 0]
        rate_t = float(treated["y"].mean()) if len(treated) else float("nan")
        rate_c = float(control["y"].mean()) if len(control) else float("nan")
        rows.append({
            "decile": int(decile), "n_treatment": len(treated), "n_control": len(control),
            "response_rate_treatment": rate_t, "response_rate_control": rate_c,
            "uplift": rate_t - rate_c, "mean_score": float(part["s"].mean()),
        })
    return pd.DataFrame(rows)


def uplift_metrics(
    y_true: ArrayLike, uplift: ArrayLike, treatment: ArrayLike, shares: Sequence[float] = (0.1, 0.2, 0.3)
) -> dict[str, float]:
    """Qini coefficient and uplift@k ("overall") at each share, as plain floats.

    Keys: qini_coefficient, uplift_at_10, uplift_at_20, uplift_at_30 (for the default
    shares), and observed_uplift (treated minus control rate over all rows).
    """
    y, s, t = _triple(y_true, uplift, treatment)
    out = {"qini_coefficient": qini_coefficient(y, s, t)}
    for share in shares:
        out[f"uplift_at_{round(share * 100)}"] = uplift_at_k(y, s, t, k=share)
    out["observed_uplift"] = float(y[t == 1].mean() - y[t == 0].mean())
    return out


def truth_captured(true_effect: ArrayLike, score: ArrayLike, shares: Sequence[float]) -> np.ndarray:
    """Sum of a known per-row effect over the top share of rows by score (ties averaged).

    With the sample world's true uplift as `true_effect`, this is the number of true
    incremental responders a campaign reaches by contacting the top share; random
    targeting reaches share * total on average.

    Args:
        true_effect: the known effect per row (e.g. P(resp | treated) - P(resp | control)).
        score: the ranking, highest first.
        shares: budgets as shares of the rows, each in [0, 1]; share * n rows are taken
            (fractional rows count in part).

    Returns:
        One sum per share.
    """
    effect = to_float(true_effect, "true_effect")
    s = to_float(score, "score")
    if effect.size != s.size:
        raise ValueError(f"true_effect has {effect.size} rows but score has {s.size}; pass aligned arrays")
    shares_arr = np.asarray(shares, dtype=float)
    if ((shares_arr < 0) | (shares_arr > 1)).any():
        raise ValueError("shares must lie in [0, 1]")
    ends, (cum,) = _block_cumsums(s, effect)
    return np.interp(shares_arr * s.size, ends, cum)


# -- charts --------------------------------------------------------------------------
def _plot_cumulative(curves: Mapping[str, pd.DataFrame], column: str, ylabel: str, title: str,
                     perfect: pd.DataFrame | None = None) -> Figure:
    """One line per scorer of a cumulative column of `qini_curve` frames, the random line to its end."""
    fig = Figure(figsize=(6, 5))
    ax = fig.subplots()
    end = 0.0
    for label, curve in curves.items():
        ax.plot(curve["share_targeted"], curve[column], label=label)
        end = float(curve[column].iloc[-1])
    if perfect is not None:
        ax.plot(perfect["share_targeted"], perfect[column], linestyle=":", color="black", label="perfect")
    ax.plot([0, 1], [0, end], linestyle="--", color="grey", label="random")
    ax.axhline(0.0, color="grey", linewidth=0.5)
    ax.set(xlim=(0, 1), xlabel="share targeted (highest score first)", ylabel=ylabel, title=title)
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    return fig


def plot_qini(curves: Mapping[str, pd.DataFrame], title: str, perfect: pd.DataFrame | None = None) -> Figure:
    """Qini chart: incremental responders against the share targeted, one line per scorer.

    Args:
        curves: label -> frame from `qini_curve` (all on the same rows).
        title: the chart title.
        perfect: the `perfect_qini_curve` of the same rows, drawn dotted when given.

    Returns:
        The figure (not shown, not saved); the random line joins (0, 0) to the end point.
    """
    return _plot_cumulative(curves, "qini", "incremental responders (Qini)", title, perfect)


def plot_uplift_gain(curves: Mapping[str, pd.DataFrame], title: str) -> Figure:
    """Cumulative uplift gain chart: (rate_T - rate_C) * n of the top rows, one line per scorer.

    Args:
        curves: label -> frame from `qini_curve` (its `uplift_gain` column).
        title: the chart title.

    Returns:
        The figure (not shown, not saved); the random line joins (0, 0) to the end point.
    """
    return _plot_cumulative(curves, "uplift_gain", "cumulative incremental responders", title)


def plot_uplift_by_decile(table: pd.DataFrame, title: str) -> Figure:
    """Observed uplift per decile of the score (from `uplift_by_decile`), 1 = highest.

    Args:
        table: frame with decile and uplift.
        title: the chart title.

    Returns:
        The figure (not shown, not saved).
    """
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.bar(table["decile"], table["uplift"], color="tab:blue")
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set(xlabel="decile of the score (1 = highest)", ylabel="treated - control response rate", title=title)
    ax.set_xticks(list(table["decile"]))
    ax.grid(alpha=0.3, axis="y")
    return fig

"""BTYD models as features: BG/NBD (purchases, P(alive)) and Gamma-Gamma (spend per purchase).

The pure model functions and maximum-likelihood fits live here, on the features side,
so that training (the `BtydBaseline` in training/baselines.py, the BTYD feature columns
of the training frames) and serving (the batch scorer, single-customer explanations)
use the same code without serving importing training's internals or features importing
either. `add_btyd_features` fits both models on one as-of population (the histories as
of the cutoff, never labels) and adds their predictions as feature columns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, digamma, gammaln, hyp2f1
from threadpoolctl import threadpool_limits

log = logging.getLogger(__name__)


def numeric_columns(frame: pd.DataFrame, columns: tuple[str, ...] | list[str]) -> pd.DataFrame:
    """Selected columns as float64 (nullable integers' missing values become NaN)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"the frame lacks {', '.join(missing)}; pass a frame from build_features "
            "(with the same frequency window)"
        )
    return pd.DataFrame(
        {c: frame[c].to_numpy(dtype="float64", na_value=np.nan) for c in columns}, index=frame.index
    )


PUBLISHED_CDNOW_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}  # Fader, Hardie & Lee (2005)

# The fits search log-parameters within +-30 (parameters 1e-13 .. 1e13). A maximum on
# that edge is no estimate: the likelihood keeps rising toward a degenerate model (for
# Gamma-Gamma, e.g., when every customer has the same mean spend).
_LOG_PARAM_BOUND = 30.0
# At a maximum the gradient vanishes. Below this in every coordinate (gradient of the
# mean log-likelihood per customer with respect to the log-parameters) counts as one.
# Fits end at 1e-9 .. 2e-7, so this flags only real failures (an iteration limit, a
# search drifting along a flat ridge toward a degenerate model).
_GRADIENT_TOL = 1e-5


def btyd_input_columns(window_days: int = 365) -> list[str]:
    """The feature columns `btyd_inputs` reads (all a BTYD fit needs from a feature frame)."""
    return ["tenure_days", "recency_days", "repeat_purchase_days",
            f"frequency_{window_days}d", f"monetary_avg_{window_days}d"]


def btyd_inputs(frame: pd.DataFrame, time_unit_days: float = 7.0, window_days: int = 365) -> pd.DataFrame:
    """BTYD summary per row from as-of features, in time units of `time_unit_days`.

    - frequency x = repeat_purchase_days (distinct purchase days after the first);
    - recency t_x = (tenure_days - recency_days) / unit: first to last purchase day;
    - T = (tenure_days - 1) / unit: first purchase day to the last day before the
      as-of date. This is the convention of Hardie's CDNOW summary and of
      `rfm_summary` / lifetimes with the observation end set to that last day: a
      purchase on it has t_x = T. With it the label horizon [as_of, as_of + h) is
      exactly (T, T + h / unit] in model time (the day after the last observed day is
      T + 1 / unit, and so on). Measuring T to the as-of date (tenure_days / unit)
      instead moves every T one day later and the CDNOW fit off the published
      parameters (a = 0.814, b = 2.474 instead of 0.793, 2.426).
    - has_purchase: False for customers with no purchase before the as-of date (their
      tenure is null); they are summarised as brand-new (x = t_x = T = 0), which gives
      the population-level prediction.
    - spend_count / spend_mean: frequency_<w>d and monetary_avg_<w>d, the number of
      purchases in the window and their mean net amount (Gamma-Gamma input).

    Returns:
        A frame aligned with `frame` (same index).
    """
    num = numeric_columns(frame, btyd_input_columns(window_days))
    has = num["tenure_days"].notna().to_numpy()
    tenure = num["tenure_days"].fillna(1.0).to_numpy()
    recency_days = num["recency_days"].fillna(1.0).to_numpy()
    return pd.DataFrame(
        {
            "frequency": np.where(has, num["repeat_purchase_days"].fillna(0.0), 0.0),
            "recency": np.where(has, (tenure - recency_days) / time_unit_days, 0.0),
            "T": np.where(has, (tenure - 1.0) / time_unit_days, 0.0),
            "has_purchase": has,
            "spend_count": num[f"frequency_{window_days}d"].fillna(0.0).to_numpy(),
            "spend_mean": num[f"monetary_avg_{window_days}d"].to_numpy(),
        },
        index=frame.index,
    )


def bgnbd_p_alive(x: np.ndarray, t_x: np.ndarray, T: np.ndarray, r: float, alpha: float,
                  a: float, b: float) -> np.ndarray:
    """P(alive at T | x, t_x, T) under BG/NBD; 1 when x = 0 (death only follows a purchase)."""
    x1 = np.maximum(x, 1)
    log_odds_dead = np.log(a) - np.log(b + x1 - 1) + (r + x) * np.log((alpha + T) / (alpha + t_x))
    return np.where(x > 0, 1.0 / (1.0 + np.exp(log_odds_dead)), 1.0)


def bgnbd_expected_purchases(t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, r: float,
                             alpha: float, a: float, b: float) -> np.ndarray:
    """E[X(T, T + t] | x, t_x, T]: Fader, Hardie & Lee (2005) equation (10)."""
    x1 = np.maximum(x, 1)
    head = (a + b + x - 1) / (a - 1)
    tail = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(
        r + x, b + x, a + b + x - 1, t / (alpha + T + t)
    )
    dead_term = np.where(x > 0, a / (b + x1 - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x), 0.0)
    return head * tail / (1 + dead_term)


def bgnbd_prob_no_purchase(t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, r: float,
                           alpha: float, a: float, b: float) -> np.ndarray:
    """P(X(T, T + t] = 0 | x, t_x, T) under BG/NBD.

    With the likelihood written as
    L = C * [B(a, b + x) (alpha + T)^-(r+x) + d B(a + 1, b + x - 1) (alpha + t_x)^-(r+x)],
    d = 1 if x > 0 else 0, the first term is "alive at T, no purchase in (t_x, T]" and
    the second "died right after purchase x". No purchase in (T, T + t] joint with the
    history is the same expression with T + t in the first term (alive, no purchase in
    (t_x, T + t]) plus the unchanged second term, so
    P = [B(a, b+x) (alpha+T+t)^-(r+x) + d B(a+1, b+x-1) (alpha+t_x)^-(r+x)] / (L / C).
    (Hardie's note 039, eq. 34 with y = 0.) Computed in logs. For x = 0 it reduces to
    ((alpha + T) / (alpha + T + t))^r. pymc-marketing 0.18's
    `expected_probability_no_purchase` leaves out d, so it differs for x = 0.
    """
    x1 = np.maximum(x, 1)
    alive_later = betaln(a, b + x) - (r + x) * np.log(alpha + T + t)
    alive_now = betaln(a, b + x) - (r + x) * np.log(alpha + T)
    dead = np.where(x > 0, betaln(a + 1, b + x1 - 1) - (r + x) * np.log(alpha + t_x), -np.inf)
    return np.exp(np.logaddexp(alive_later, dead) - np.logaddexp(alive_now, dead))


def gamma_gamma_expected_spend(count: np.ndarray, mean: np.ndarray, p: float, q: float,
                               v: float) -> np.ndarray:
    """E[spend per purchase | count purchases of mean `mean`] (Fader & Hardie 2013, eq. 5).

    A weighted average of the population mean p v / (q - 1) and the customer's own
    mean, with weight p x / (p x + q - 1) on the latter; count 0 (or no mean) gives the
    population mean.
    """
    population = p * v / (q - 1)
    known = (count > 0) & ~np.isnan(mean)
    x = np.where(known, count, 0.0)
    weight = p * x / (p * x + q - 1)
    return (1 - weight) * population + weight * np.where(known, mean, 0.0)


@dataclass(frozen=True)
class _Histories:
    """Distinct customer rows with their counts, and the distinct purchase counts among them.

    Both likelihoods split into terms of the purchase count alone (the gamma and
    digamma functions, the costly part) and elementary terms of the whole row; the
    former are evaluated once per distinct count, the latter once per distinct row.
    """

    rows: tuple[np.ndarray, ...]  # columns; the first is the purchase count
    weights: np.ndarray  # customers per row
    counts: np.ndarray  # distinct values of rows[0]
    count_index: np.ndarray  # rows[0] == counts[count_index]
    count_weights: np.ndarray  # customers per distinct count


def _histories(*columns: np.ndarray, compress: bool = True) -> _Histories:
    """Histories from per-customer columns (purchase count first), identical rows merged if `compress`."""
    if compress:
        distinct = pd.DataFrame(dict(enumerate(columns))).value_counts(sort=False)
        rows = tuple(distinct.index.get_level_values(j).to_numpy("float64") for j in range(len(columns)))
        weights = distinct.to_numpy("float64")
    else:
        rows = tuple(np.asarray(c, "float64") for c in columns)
        weights = np.ones(rows[0].size)
    counts, index = np.unique(rows[0], return_inverse=True)
    count_weights = np.bincount(index, weights=weights, minlength=counts.size)
    return _Histories(rows, weights, counts, index, count_weights)


def _bgnbd_loglik(h: _Histories, r: float, alpha: float, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """BG/NBD log-likelihood per row of (x, t_x, T), and the gradient of its weighted sum in (r, alpha, a, b).

    ln L = lnG(r + x) - lnG(r) + r ln alpha + lnG(a + b) + lnG(b + x) - lnG(b)
    - lnG(a + b + x) + ln[(alpha + T)^-(r+x) + d a / (b + x - 1) (alpha + t_x)^-(r+x)],
    d = 1 if x > 0 else 0. The bracket adds "alive at T" and "died right after
    purchase x"; the derivative of its log weights each branch's derivative by the
    branch's share of the bracket.
    """
    xs = h.counts
    x, t_x, T = h.rows
    # Terms of x alone, per distinct x.
    count_ll = (gammaln(r + xs) - gammaln(r) + r * np.log(alpha) + gammaln(a + b) + gammaln(b + xs)
                - gammaln(b) - gammaln(a + b + xs))
    psi_abx = digamma(a + b + xs)
    count_grad = np.column_stack([
        digamma(r + xs) - digamma(r) + np.log(alpha),
        np.full(xs.size, r / alpha),
        digamma(a + b) - psi_abx,
        digamma(a + b) + digamma(b + xs) - digamma(b) - psi_abx,
    ])
    # ln(a / (b + x - 1)) where the dropout branch exists (x > 0); -inf removes it for x = 0.
    dropout_odds = np.full(xs.size, -np.inf)
    dropout_odds[xs > 0] = np.log(a) - np.log(b + xs[xs > 0] - 1)
    # The bracket, per row.
    log_T, log_t = np.log(alpha + T), np.log(alpha + t_x)
    log_alive = -(r + x) * log_T
    log_dead = dropout_odds[h.count_index] - (r + x) * log_t
    log_mix = np.logaddexp(log_alive, log_dead)
    alive = h.weights * np.exp(log_alive - log_mix)  # customers x the branch's share
    dead = h.weights * np.exp(log_dead - log_mix)
    dead_per_count = np.bincount(h.count_index, weights=dead, minlength=xs.size)
    with np.errstate(divide="ignore"):  # x = 0 has no dropout branch: its weight is 0
        inv_b_x = np.where(xs > 0, 1 / (b + np.maximum(xs, 1) - 1), 0.0)
    grad = h.count_weights @ count_grad + np.array([
        -(alive @ log_T) - dead @ log_t,
        -((alive / (alpha + T) + dead / (alpha + t_x)) @ (r + x)),
        dead_per_count.sum() / a,
        -(dead_per_count @ inv_b_x),
    ])
    return count_ll[h.count_index] + log_mix, grad


def _gamma_gamma_loglik(h: _Histories, p: float, q: float, v: float) -> tuple[np.ndarray, np.ndarray]:
    """Gamma-Gamma log-likelihood per row of (x, m), and the gradient of its weighted sum in (p, q, v).

    For x purchases of mean spend m: ln L = lnG(p x + q) - lnG(p x) - lnG(q) + q ln v
    + (p x - 1) ln m + p x ln x - (p x + q) ln(v + m x).
    """
    xs = h.counts
    x, m = h.rows
    # Terms of x alone, per distinct x.
    pxs = p * xs
    psi_pxq = digamma(pxs + q)
    count_ll = gammaln(pxs + q) - gammaln(pxs) - gammaln(q) + q * np.log(v) + pxs * np.log(xs)
    count_grad = np.column_stack([
        xs * (psi_pxq - digamma(pxs) + np.log(xs)),
        psi_pxq - digamma(q) + np.log(v),
        np.full(xs.size, q / v),
    ])
    # The rest, per row.
    px = p * x
    log_m, log_pooled = np.log(m), np.log(v + m * x)
    w = h.weights
    grad = h.count_weights @ count_grad + np.array([
        (w * x) @ (log_m - log_pooled),
        -(w @ log_pooled),
        -((w * (px + q)) @ (1 / (v + m * x))),
    ])
    return count_ll[h.count_index] + (px - 1) * log_m - (px + q) * log_pooled, grad


def bgnbd_log_likelihood(x: np.ndarray, t_x: np.ndarray, T: np.ndarray, r: float, alpha: float,
                         a: float, b: float) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood of (x repeat purchases, recency t_x, age T).

    Fader, Hardie & Lee (2005), "Counting your customers the easy way".
    """
    return _bgnbd_loglik(_histories(x, t_x, T, compress=False), r, alpha, a, b)[0]


def gamma_gamma_log_likelihood(count: np.ndarray, mean: np.ndarray, p: float, q: float,
                               v: float) -> np.ndarray:
    """Per-customer Gamma-Gamma log-likelihood of a mean spend over `count` purchases.

    Fader, Hardie & Lee (2005), "RFM and CLV: using iso-value curves for customer base
    analysis" (the density of the mean, the customer's spend scale integrated out).
    """
    return _gamma_gamma_loglik(_histories(count, mean, compress=False), p, q, v)[0]


def _maximise_likelihood(
    loglik: Callable[..., tuple[np.ndarray, np.ndarray]],
    histories: _Histories,
    start: dict[str, float],
    model: str,
) -> dict[str, float]:
    """Maximum-likelihood parameters of `loglik` over `histories`.

    Minimises the mean negative log-likelihood per customer over the log-parameters
    (so every parameter stays positive, and rescaling time or money only shifts the
    log-parameters) with L-BFGS-B and the analytic gradient.

    Raises:
        ValueError: when the optimiser ends away from a maximum (gradient not ~0) or
            on the edge of the search box.
    """
    total = float(histories.weights.sum())

    def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        params = np.exp(log_params)
        ll, grad = loglik(histories, *params)
        return -float(histories.weights @ ll) / total, -grad * params / total

    bound = (-_LOG_PARAM_BOUND, _LOG_PARAM_BOUND)
    # One BLAS thread: L-BFGS-B (scipy >= 1.15) and the dot products over all rows make
    # many small BLAS calls, and OpenBLAS waking its threads for each one slowed a fit
    # of 131k customers from 0.2 s to 1.6 s with the two cores shared (scipy issue
    # 22438). A trial step may overflow; the line search then backs off.
    # Stopping: a step that lowers the mean negative log-likelihood by less than 1e-12
    # of itself ends the search. Estimates then agree with those of ftol = 1e-15 to 2e-6
    # in the log-parameters (CDNOW, the sample world, simulations; gradient <= 2e-7),
    # and the fit takes 18-23 evaluations instead of up to 62, which the tighter setting
    # spends on line searches at the limit of double precision.
    with threadpool_limits(limits=1, user_api="blas"), np.errstate(all="ignore"):
        result = minimize(objective, np.log(list(start.values())), jac=True, method="L-BFGS-B",
                          bounds=[bound] * len(start),
                          options={"maxiter": 2000, "ftol": 1e-12, "gtol": 1e-9})
    params = dict(zip(start, np.exp(result.x).tolist()))
    gradient = float(np.max(np.abs(result.jac))) if np.isfinite(result.jac).all() else np.inf
    log.debug("%s: %d iterations, %d evaluations, max |gradient| %.1e, %s", model, result.nit, result.nfev,
              gradient, result.message)
    on_edge = [k for k, lp in zip(start, result.x) if abs(lp) >= _LOG_PARAM_BOUND - 1e-3]
    if not np.isfinite(result.fun) or gradient > _GRADIENT_TOL or on_edge:
        detail = (f"{', '.join(on_edge)} ran off to {params[on_edge[0]]:.3g}" if on_edge
                  else f"gradient {gradient:.2g} after {result.nit} iterations")
        raise ValueError(
            f"{model} fit found no maximum of the likelihood ({detail}); the histories do not pin "
            "the parameters down: fit on more customers, or check for inputs that are all alike"
        )
    return params


def _finite_columns(**columns: np.ndarray) -> list[np.ndarray]:
    out = [np.asarray(c, "float64").ravel() for c in columns.values()]
    if len({c.size for c in out}) > 1:
        raise ValueError(f"{', '.join(columns)} must have the same length")
    if not all(np.isfinite(c).all() for c in out):
        raise ValueError(f"{', '.join(columns)} must be finite (no missing values)")
    return out


def fit_bgnbd(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> dict[str, float]:
    """BG/NBD maximum-likelihood parameters from per-customer histories.

    Customers with the same (x, t_x, T) share a likelihood term, so the fit runs over
    the distinct histories weighted by their counts.

    Args:
        x: repeat purchases per customer.
        t_x: time of the last purchase, from the first (0 when x = 0).
        T: time from the first purchase to the end of observation (>= t_x).

    Returns:
        {"r", "alpha", "a", "b"}.
    """
    x, t_x, T = _finite_columns(x=x, t_x=t_x, T=T)
    if (x < 0).any() or (t_x < 0).any() or (T < t_x).any():
        raise ValueError("BG/NBD histories need x >= 0 and 0 <= t_x <= T")
    if not (x > 0).any():
        raise ValueError("BG/NBD needs customers with repeat purchases; no history has one")
    histories = _histories(x, t_x, T)
    # Start at a = b = 1 and a purchase rate r / alpha equal to the pooled observed rate.
    alpha = float(T.sum() / x.sum())
    return _maximise_likelihood(_bgnbd_loglik, histories, {"r": 1.0, "alpha": alpha, "a": 1.0, "b": 1.0},
                                "BG/NBD")


def fit_gamma_gamma(count: np.ndarray, mean: np.ndarray) -> dict[str, float]:
    """Gamma-Gamma maximum-likelihood parameters from per-customer purchase counts and mean spends.

    Args:
        count: purchases per customer (> 0).
        mean: their mean spend (> 0).

    Returns:
        {"p", "q", "v"}.
    """
    count, mean = _finite_columns(count=count, mean=mean)
    if (count <= 0).any() or (mean <= 0).any():
        raise ValueError("Gamma-Gamma needs purchase counts and mean spends > 0")
    # Start at p = 1, q = 2, where the population mean spend p v / (q - 1) is v: the mean.
    return _maximise_likelihood(_gamma_gamma_loglik, _histories(count, mean),
                                {"p": 1.0, "q": 2.0, "v": float(mean.mean())}, "Gamma-Gamma")


# --- one fit per as-of population, and its predictions as feature columns -----------

BTYD_FEATURES: tuple[str, ...] = (
    "btyd_p_alive",  # BG/NBD P(alive) at the as-of date
    "btyd_expected_purchases",  # BG/NBD expected purchase days in the next horizon
    "btyd_expected_spend",  # Gamma-Gamma expected spend per purchase
    "btyd_expected_value",  # expected purchases x expected spend
)


def fit_btyd(frame: pd.DataFrame, time_unit_days: float = 7.0,
             window_days: int = 365) -> tuple[dict[str, float], dict[str, int]]:
    """BG/NBD and Gamma-Gamma parameters fitted on one as-of population (see `btyd_inputs`).

    BG/NBD is fitted on every customer with a purchase before the as-of date;
    Gamma-Gamma on those with a repeat purchase day and a positive mean spend. The
    result does not depend on the order of the rows.

    Returns:
        (params {r, alpha, a, b, p, q, v}, customers in each fit {bgnbd, gamma_gamma}).

    Raises:
        ValueError: too few customers, or a fit that finds no maximum (degenerate data).
    """
    data = btyd_inputs(frame, time_unit_days, window_days)
    # Sorted, so the fit depends on the histories only, not on the rows' order (float sums
    # in another order could move the estimates by ~1e-6: a snapshot read back from Parquet,
    # or by Spark, need not keep DuckDB's row order).
    data = data.sort_values(["frequency", "recency", "T", "spend_count", "spend_mean"], kind="mergesort")
    buyers = data[data["has_purchase"]]
    if len(buyers) == 0:
        raise ValueError("no customer has a purchase before the as-of date; nothing to fit")
    spenders = buyers[(buyers["frequency"] > 0) & (buyers["spend_count"] > 0) & (buyers["spend_mean"] > 0)]
    if len(spenders) < 2:
        raise ValueError("Gamma-Gamma needs at least two customers with repeat purchases")
    params = fit_bgnbd(buyers["frequency"].to_numpy(), buyers["recency"].to_numpy(), buyers["T"].to_numpy())
    params |= fit_gamma_gamma(spenders["spend_count"].to_numpy(), spenders["spend_mean"].to_numpy())
    if params["q"] <= 1:
        raise ValueError(
            f"Gamma-Gamma fit gave q = {params['q']:.3f} <= 1, so mean spend is undefined; "
            "check monetary_avg values (a few extreme spends?)"
        )
    return params, {"bgnbd": len(buyers), "gamma_gamma": len(spenders)}


def btyd_params(frame: pd.DataFrame, time_unit_days: float = 7.0, window_days: int = 365) -> dict:
    """`fit_btyd` that never raises: the parameters, or {"note": why there are none}.

    Also records the customers fitted and the time unit and window the inputs used.
    """
    try:
        params, n_fit = fit_btyd(frame, time_unit_days, window_days)
    except ValueError as e:
        log.warning("BTYD features left empty: %s", e)
        return {"note": f"BTYD fit failed, features left empty: {e}"}
    return {**params, "n_bgnbd": n_fit["bgnbd"], "n_gamma_gamma": n_fit["gamma_gamma"],
            "time_unit_days": float(time_unit_days), "window_days": int(window_days)}


def add_btyd_features(frame: pd.DataFrame, horizon_days: int, params: dict | None = None,
                      time_unit_days: float = 7.0, window_days: int = 365) -> tuple[pd.DataFrame, dict]:
    """The frame with the `BTYD_FEATURES` columns added, and the parameters they came from.

    Args:
        frame: one as-of population from `build_features` (one row per customer; labels,
            if any, are never read).
        horizon_days: horizon of btyd_expected_purchases / btyd_expected_value.
        params: parameters from an earlier call (or `btyd_params`) to apply as they are;
            None fits them on `frame` itself. Parameters that record a time unit and a
            window (as `btyd_params` does) are applied with those.
        time_unit_days / window_days: BTYD time unit and the frequency window of the
            frequency_/monetary_avg_ columns (used when fitting).

    Returns:
        (a copy of the frame with the columns, params). When the fit failed (too few
        customers, degenerate data) the columns are NaN and params holds a "note".
    """
    if params is None:
        params = btyd_params(frame, time_unit_days, window_days)
    time_unit_days = params.get("time_unit_days", time_unit_days)
    window_days = int(params.get("window_days", window_days))
    out = frame.copy()
    if "r" not in params:
        for c in BTYD_FEATURES:
            out[c] = np.nan
        return out, params
    d = btyd_inputs(frame, time_unit_days, window_days)
    x, t_x, T = (d[c].to_numpy() for c in ("frequency", "recency", "T"))
    bg = {k: params[k] for k in ("r", "alpha", "a", "b")}
    purchases = bgnbd_expected_purchases(horizon_days / time_unit_days, x, t_x, T, **bg)
    # As BtydBaseline.predict_spend: customers without a repeat purchase get the population mean.
    count = np.where(x > 0, d["spend_count"].to_numpy(), 0.0)
    spend = gamma_gamma_expected_spend(count, d["spend_mean"].to_numpy(), params["p"], params["q"], params["v"])
    out["btyd_p_alive"] = bgnbd_p_alive(x, t_x, T, **bg)
    out["btyd_expected_purchases"] = purchases
    out["btyd_expected_spend"] = spend
    out["btyd_expected_value"] = purchases * spend
    return out, params

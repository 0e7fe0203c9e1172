"""Campaign targeting: whom to contact under a budget, ranked by profit or, without a response model, by a score.

The audience is every customer of the current (latest successful) scoring run. Each
is scored for the campaign's kind from the run's own lineage (its feature snapshot and
response model version), so the list is consistent with the published scores.

What one response brings is **value_per_response = average order value x k**
(`serving.response_value`): the customer's `monetary_avg_365d` (the run's median where
the customer bought nothing in 365 days) times k, the number of average orders one
response to a campaign of that kind was worth in the data (`contacts.revenue` of past
responders, else their net spend on the response day, divided by their own average order
value; k = 1 when nothing is observed, and the list says so). It is *not* the
customer's 90-day predicted value, which counts a quarter's shopping as the gain of one
contact. For the run's own kind the run's recorded k is used, so the list's expected
profit equals the published `customer_scores.expected_profit` at the same margin and cost.

Rankings (`rank_by`):

- **expected_profit** = P(response) x value per response x margin - cost;
- **uplift**: incremental profit = uplift x value per response x margin - cost, where
  uplift = P(response | contacted) - P(response | not contacted) from the registered
  `uplift` model; chosen by `auto` when an uplift model for the campaign's kind is
  registered. Customers who would buy anyway, or who are put off by contact, rank low.
- without a response model or a campaigns table (a business with sales data only: the
  scoring run's response columns are null, or no campaign kind exists) there is no
  profit estimate; `auto` ranks by a score instead: **value_at_risk** = churn risk x
  predicted value when both exist (retention: the value that leaving would lose), else
  **value** (predicted value) or **churn** (churn risk). These can also be asked for.
  Profit columns are then null and the gain curve is the cumulative score.

The contacted set is the top of the ranking: `top` contacts, or budget // cost, and
for profit rankings never past the first customer whose profit is not positive. A
seeded random control group (`control`, default 10 % of the selected customers) is
held out **on top of** those contacts, for `top` and `budget` alike, so the campaign's
real incremental effect can be measured afterwards.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from features.btyd import add_btyd_features
from features.load import Warehouse
from features.snapshots import read_features
from propensity.config import Config
from serving import response_value as rv
from serving import sink

TARGETS = "target_lists"
_COLUMNS = [
    ("list_id", "varchar not null"), ("campaign", "varchar not null"), ("campaign_kind", "varchar"),
    ("run_id", "varchar not null"), ("created_at", "timestamp not null"), ("method", "varchar not null"),
    ("rank", "integer not null"), ("customer_id", "varchar not null"), ("group", "varchar not null"),
    ("score_used", "double precision"), ("response_prob", "double precision"),
    ("predicted_value", "double precision"), ("expected_profit", "double precision"),
    ("uplift", "double precision"), ("incremental_profit", "double precision"),
    ("churn_risk", "double precision"), ("value_at_risk", "double precision"),
    ("response_value", "double precision"),
]

# What `--rank-by` accepts; the score rankings need these models' scores in the run.
RANKINGS = ("auto", "uplift", "expected_profit", "value_at_risk", "value", "churn")
PROFIT_RANKINGS = ("uplift", "expected_profit")
SCORE_RANKINGS = {"value_at_risk": ("churn", "value"), "value": ("value",), "churn": ("churn",)}
# The models whose scores each ranking needs in the run.
RANKING_NEEDS = {"uplift": ("response",), "expected_profit": ("response",), **SCORE_RANKINGS}
LABELS = {
    "uplift": "incremental profit (uplift x value per response x margin - cost)",
    "expected_profit": "expected profit (P(response) x value per response x margin - cost)",
    "value_at_risk": "value at risk (churn risk x predicted value)",
    "value": "predicted value",
    "churn": "churn risk",
}
# What the gain curve accumulates, per ranking.
MEASURES = {"uplift": "incremental profit", "expected_profit": "expected profit",
            "value_at_risk": "value at risk", "value": "predicted value", "churn": "churn risk"}
_SCORE_COLUMN = {"churn": "churn_risk", "response": "response_prob", "value": "predicted_value"}


# At most this many contacts (`top`, or budget / cost): far above any customer base, and a
# bound that keeps a budget like 1e300 from becoming an integer no list can be cut at.
MAX_CONTACTS = 1_000_000_000
# A CSV cell starting with one of these is a formula to a spreadsheet (OWASP "CSV injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class TargetingError(ValueError):
    """A targeting request the user can fix; one-line message."""


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` whose text cells a spreadsheet will not run as formulas.

    OWASP's advice for CSV injection: a text cell that starts with `=`, `+`, `-`, `@`, a
    tab or a carriage return gets a leading single quote (`=HYPERLINK(...)` is written
    `'=HYPERLINK(...)`), so a customer id or list name from imported data shows as text
    when a marketer opens the list. Numeric, boolean and date columns are left as they
    are (a negative profit stays the number -1.5).
    """
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if not (values.dtype == object or isinstance(values.dtype, pd.StringDtype)):
            continue
        risky = values.map(lambda v: isinstance(v, str) and v.startswith(FORMULA_START)).astype(bool)
        if risky.any():
            out[column] = values.astype(object).where(~risky, "'" + values[risky].astype(str))
    return out


def csv_text(frame: pd.DataFrame) -> str:
    """`frame` as CSV for people to open (see `spreadsheet_safe`), without the index.

    Lines end in CRLF (RFC 4180), which also makes the writer quote any cell holding a
    carriage return or a line feed: a bare CR in an unquoted cell would start a new row
    in a spreadsheet.
    """
    return spreadsheet_safe(frame).to_csv(index=False, lineterminator="\r\n")


def check_request(*, budget: float | None, top: int | None, cost: float, margin: float, control: float,
                  rank_by: str = "auto") -> None:
    """Refuse, in one line (TargetingError), inputs no list can be built from.

    Every number must be finite (inf, nan and 1e400 are refused), exactly one of budget
    and top given and positive, at most MAX_CONTACTS contacts (top, or budget / cost),
    control a share in [0, 1), cost >= 0 (> 0 with a budget), margin in [0, 1].
    """
    for name, value in (("--budget", budget), ("--cost", cost), ("--margin", margin), ("--control", control)):
        if value is not None and not math.isfinite(value):
            raise TargetingError(f"{name} must be a finite number, got {value}")
    if (budget is None) == (top is None):
        raise TargetingError("give exactly one of --budget (money for contacts) or --top (number of customers)")
    if budget is not None and budget <= 0 or top is not None and top <= 0:
        raise TargetingError("--budget and --top must be positive")
    if top is not None and top > MAX_CONTACTS:
        raise TargetingError(f"--top {top:,} is more than {MAX_CONTACTS:,} contacts; give a smaller number")
    if not 0 <= control < 1:
        raise TargetingError(f"--control must be a share in [0, 1), got {control}")
    if cost < 0 or not 0 <= margin <= 1:
        raise TargetingError("--cost must be >= 0 and --margin in [0, 1]")
    if budget is not None and cost == 0:
        raise TargetingError("--budget needs a contact cost above 0 (or use --top)")
    if budget is not None and not budget / cost <= MAX_CONTACTS:
        raise TargetingError(f"--budget {budget:g} at --cost {cost:g} pays for more than {MAX_CONTACTS:,} contacts; "
                             "give a smaller budget or --top")
    if rank_by not in RANKINGS:
        raise TargetingError(f"--rank-by {rank_by!r}: use one of {', '.join(RANKINGS)}")


@dataclass
class TargetList:
    """A ranked, budgeted contact list with its control group and what it is expected to bring."""

    campaign: str
    method: str  # "uplift", "expected_profit", "value_at_risk", "value" or "churn"
    frame: pd.DataFrame  # the contacted customers and the control group, by rank
    summary: dict
    gain: pd.DataFrame  # share_contacted, customers, cumulative_profit (of `measure`), cumulative_profit_random, measure
    notes: list[str] = field(default_factory=list)

    @property
    def has_profit(self) -> bool:
        """False for score rankings (no response model / no campaigns): no profit estimate."""
        return self.method in PROFIT_RANKINGS

    def report(self) -> str:
        s = self.summary
        kind = (f"kind {s['campaign_kind']!r}" if s["campaign_kind"] is not None
                else "kind none: the warehouse has no campaigns table")
        ranked = (f"incremental profit (uplift model v{s['uplift_version']}: uplift x value per response x margin "
                  "- cost)" if self.method == "uplift" else LABELS[self.method])
        lines = [
            f"target list {s.get('list_id') or '(not saved)'} for {self.campaign} ({kind}) "
            f"from scoring run {s['run_id']}",
            f"  ranked by {ranked}" + (f": {s['ranked_because']}" if s.get("ranked_because") else ""),
            f"  audience {s['audience']:,}; selected {s['selected']:,}: contact {s['contacted']:,}, "
            f"hold out {s['control']:,} as control (on top of the contacts)",
        ]
        if self.has_profit:
            lines.append(f"  value per response = average order value x {s['response_value_source']}")
            inc = ("n/a (no uplift model for this kind)" if s["incremental_responders"] is None
                   else f"{s['incremental_responders']:,.1f}")
            responders = ("n/a (no response scores)" if s["expected_responders"] is None
                          else f"{s['expected_responders']:,.1f}")
            lines.append(f"  expected responders {responders}; incremental responders {inc}")
            if s.get("revenue_per_responder") is not None:
                lines.append(f"  expected revenue {s['expected_revenue']:,.2f}: "
                             f"{s['revenue_per_responder']:,.2f} per expected responder")
            profit = "n/a" if s["expected_profit"] is None else f"{s['expected_profit']:,.2f}"
            lines.append(f"  cost {s['cost']:,.2f}; expected profit {profit}"
                         + (f"; incremental profit {s['incremental_profit']:,.2f}"
                            if s["incremental_profit"] is not None else ""))
        else:
            if s["expected_responders"] is not None:
                lines.append(f"  expected responders {s['expected_responders']:,.1f}")
            lines.append(f"  cost {s['cost']:,.2f}; {MEASURES[self.method]} of the contacted "
                         f"{s['score_total']:,.2f} (a score ranking has no profit estimate: "
                         "the list stops at the budget / --top)")
        return "\n".join(lines + [f"  note: {n}" for n in self.notes])


def campaign_choices(warehouse: Warehouse) -> list[dict]:
    """Campaigns and kinds one can target: id, name, kind, whether its kind has control groups."""
    from training.uplift import has_control_groups

    out: list[dict] = []
    if warehouse.has("campaigns"):
        rows = warehouse.query("select campaign_id, name, kind from campaigns order by start desc, campaign_id")
        controls = {k: has_control_groups(warehouse, k) for k in rows["kind"].dropna().unique()}
        for r in rows.itertuples():
            out.append({"campaign": str(r.campaign_id), "name": str(r.name), "kind": str(r.kind),
                        "has_control": bool(controls.get(r.kind, False))})
    return out


def _campaign_kind(warehouse: Warehouse, campaign: str) -> str | None:
    """A campaign id from the campaigns table, or a campaign kind, gives the kind.

    Without a campaigns table any name is accepted (a list for a business with sales
    data only) and the kind is None.
    """
    if warehouse.has("campaigns"):
        found = warehouse.query("select kind from campaigns where campaign_id = ?", [campaign])
        if not found.empty:
            return str(found["kind"][0])
        kinds = warehouse.query("select distinct kind from campaigns where kind is not null order by 1")["kind"]
        if campaign in set(kinds):
            return campaign
        raise TargetingError(f"unknown campaign {campaign!r}: give a campaign id from the campaigns table "
                             f"or one of the kinds {', '.join(map(str, kinds))}")
    return None


def _current_run(warehouse: Warehouse) -> dict:
    if not warehouse.has(sink.RUNS):
        raise TargetingError("no scoring run yet; run `propensity score --as-of DATE` first")
    runs = warehouse.native_query(f"select * from {sink.RUNS} where status = 'succeeded' "
                                  "order by as_of desc, finished_at desc limit 1")
    if runs.empty:
        raise TargetingError("no successful scoring run yet; run `propensity score --as-of DATE` first")
    return runs.iloc[0].to_dict()


def _uplift_for(cfg: Config, kind: str):
    """The registered uplift champion when it was trained for `kind`, else None."""
    from training.track import RegistryError
    from training.uplift import load_uplift

    try:
        loaded = load_uplift(cfg)
    except RegistryError:
        return None
    return loaded if loaded.campaign_kind == kind else None


def build_target_list(
    warehouse: Warehouse,
    cfg: Config,
    campaign: str,
    *,
    budget: float | None = None,
    top: int | None = None,
    cost: float | None = None,
    margin: float | None = None,
    control: float = 0.1,
    seed: int = 0,
    rank_by: str = "auto",
) -> TargetList:
    """Rank the current run's customers for a campaign and cut the list by budget or count.

    Args:
        warehouse: holds the scoring runs and the canonical tables.
        cfg: the project config ([serving] margin and contact_cost are the defaults).
        campaign: a campaign id, or a campaign kind; any name when the warehouse has no
            campaigns table (the kind is then none).
        budget: money to spend on contacts (contacts = budget // cost); or
        top: the number of customers to contact (exactly one of budget and top).
        cost: cost of one contact; margin: share of the response value that is profit.
        control: share of the selected customers held out as a random control group,
            on top of the contacts (contacts x control / (1 - control) more customers).
        seed: the control group's random seed (the same list and seed give the same group).
        rank_by: "auto" (uplift, else expected profit, else a score: value_at_risk, value,
            churn, by what the run has), or one of those by name (refused when the scores
            it needs are missing).

    Raises:
        TargetingError: unknown campaign, bad budget/top/control, no scoring run, or a
            ranking whose scores are missing.
    """
    cost = cfg.serving.contact_cost if cost is None else cost
    margin = cfg.serving.margin if margin is None else margin
    check_request(budget=budget, top=top, cost=cost, margin=margin, control=control, rank_by=rank_by)
    kind = _campaign_kind(warehouse, campaign)
    run = _current_run(warehouse)
    available = {m for m in _SCORE_COLUMN if not sink.is_null(run.get(f"{m}_version"))}
    uplift = _uplift_for(cfg, kind) if kind is not None and rank_by in ("auto", "uplift", "expected_profit") else None
    method, because = _choose(rank_by, kind, run, available, uplift)
    notes: list[str] = []
    if method == "expected_profit" and uplift is not None:
        notes.append("ranked by expected profit as asked, although an uplift model for this kind exists")
        uplift = None

    if method in PROFIT_RANKINGS:
        frame, value, more = _score_audience(warehouse, cfg, run, kind, available, uplift)
        notes += more
        frame["expected_profit"] = frame["response_prob"] * frame["response_value"] * margin - cost
        if method == "uplift":
            frame["incremental_profit"] = frame["uplift"] * frame["response_value"] * margin - cost
            frame["score_used"] = frame["incremental_profit"]
        else:
            frame["incremental_profit"] = np.nan
            frame["score_used"] = frame["expected_profit"]
    else:
        frame, value = _published_scores(warehouse, run), None
        frame["uplift"] = frame["incremental_profit"] = frame["expected_profit"] = np.nan
        frame["response_value"] = np.nan
        frame["score_used"] = {"value_at_risk": frame["value_at_risk"], "value": frame["predicted_value"],
                               "churn": frame["churn_risk"]}[method]
    frame = frame.sort_values(["score_used", "customer_id"], ascending=[False, True], kind="stable",
                              na_position="last").reset_index(drop=True)
    frame["rank"] = np.arange(1, len(frame) + 1)

    # The contacts are paid for; the control group is held out on top of them (for --top and
    # --budget alike) so that it is `control` of the selected customers and costs nothing.
    contacts = int(budget // cost) if budget is not None else int(top)
    wanted_control = int(round(contacts * control / (1 - control)))
    wanted = contacts + wanted_control
    if method in PROFIT_RANKINGS:
        eligible = int((frame["score_used"] > 0).sum())
        short = f"only {eligible:,} customers have a positive {MEASURES[method]}"
    else:
        eligible = int(frame["score_used"].notna().sum())
        short = f"only {eligible:,} customers have a {MEASURES[method]} score"
    selected_n = min(wanted, eligible)
    if selected_n < wanted:
        notes.append(f"{short}; the list stops there instead of at {wanted:,}")
    n_control = wanted_control if selected_n == wanted else int(round(control * selected_n))
    selected = frame.iloc[:selected_n].copy()
    rng = np.random.default_rng(_seed(run["run_id"], campaign, seed))
    held = rng.choice(selected_n, size=n_control, replace=False) if n_control else np.array([], dtype=int)
    selected["group"] = "treatment"
    selected.loc[selected.index[held], "group"] = "control"

    treated = selected[selected["group"] == "treatment"]
    has_response = bool(frame["response_prob"].notna().any())
    responders = float(treated["response_prob"].sum()) if has_response else None
    revenue = (float((treated["response_prob"] * treated["response_value"]).sum())
               if has_response and method in PROFIT_RANKINGS else None)
    summary = {
        "campaign": campaign, "campaign_kind": kind, "run_id": run["run_id"], "method": method,
        "ranked_by": LABELS[method], "ranked_because": because,
        "uplift_version": uplift.version if method == "uplift" else None,
        "audience": len(frame), "selected": selected_n, "contacted": len(treated), "control": n_control,
        "expected_responders": responders,
        "incremental_responders": float(treated["uplift"].sum()) if method == "uplift" else None,
        "cost": float(len(treated) * cost),
        "expected_profit": (float(treated["expected_profit"].sum())
                            if method in PROFIT_RANKINGS and has_response else None),
        "incremental_profit": float(treated["incremental_profit"].sum()) if method == "uplift" else None,
        "expected_revenue": revenue,
        "revenue_per_responder": revenue / responders if revenue is not None and responders else None,
        "response_value_k": value.k if value is not None else None,
        "response_value_source": value.describe() if value is not None else None,
        "score_total": float(treated["score_used"].sum()),
        "margin": margin, "contact_cost": cost, "control_share": control, "list_id": None,
    }
    keep = ["customer_id", "rank", "group", "score_used", "churn_risk", "response_prob", "predicted_value",
            "value_at_risk", "response_value", "expected_profit", "uplift", "incremental_profit"]
    return TargetList(campaign, method, selected[keep].reset_index(drop=True), summary,
                      gain_curve(frame["score_used"].fillna(0.0).to_numpy(), measure=MEASURES[method]), notes)


def _missing_reason(run: dict, model: str) -> str:
    """Why the run has no `model` scores, from scoring_runs.missing_models ("model: why; model: why")."""
    why = sink.parse_missing(run.get("missing_models")).get(model)
    return f"scoring run {run['run_id']} has no {model} scores" + (f" ({why})" if why else "")


def _choose(rank_by: str, kind: str | None, run: dict, available: set[str], uplift) -> tuple[str, str]:
    """(ranking, why) for `rank_by` given the campaign kind, the run's scores and the uplift model."""
    alternatives = "rank by " + ", ".join(m for m, need in SCORE_RANKINGS.items() if set(need) <= available)
    no_kind = "the warehouse has no campaigns table, so there is no campaign kind to estimate a response for"
    if rank_by == "uplift":
        if uplift is None:
            raise TargetingError(
                f"--rank-by uplift: {no_kind}" if kind is None else
                f"no uplift model for campaigns of kind {kind!r} is registered; train one with "
                f"`propensity train uplift --kind {kind}` or rank by expected_profit")
        return "uplift", "as asked"
    if rank_by == "expected_profit":
        if kind is None:
            raise TargetingError(f"--rank-by expected_profit needs a campaign kind, but {no_kind}; {alternatives}")
        if "response" not in available:
            raise TargetingError(f"--rank-by expected_profit needs response scores, but "
                                 f"{_missing_reason(run, 'response')}; {alternatives}")
        return "expected_profit", "as asked"
    if rank_by in SCORE_RANKINGS:
        lacking = [m for m in SCORE_RANKINGS[rank_by] if m not in available]
        if lacking:
            raise TargetingError(f"--rank-by {rank_by} needs {' and '.join(SCORE_RANKINGS[rank_by])} scores, but "
                                 + "; ".join(_missing_reason(run, m) for m in lacking))
        return rank_by, "as asked; no profit estimate for a score ranking"
    # auto
    if uplift is not None:
        return "uplift", f"an uplift model for kind {kind!r} is registered"
    if kind is not None and "response" in available:
        return "expected_profit", f"no uplift model for kind {kind!r}"
    why = no_kind if kind is None else _missing_reason(run, "response")
    for method, need in SCORE_RANKINGS.items():
        if set(need) <= available:
            return method, f"{why}, so no profit estimate"
    raise TargetingError(f"nothing to rank by: {why}, and the run has neither churn nor value scores")


def _seed(run_id: str, campaign: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{run_id}|{campaign}|{seed}".encode()).digest()[:8], "little")


def _published_scores(warehouse: Warehouse, run: dict) -> pd.DataFrame:
    """The run's published churn, response and value scores and value at risk, one row per customer."""
    frame = warehouse.native_query(
        f"select customer_id, churn_risk, response_prob, predicted_value from {sink.SCORES} where run_id = ?",
        [run["run_id"]])
    for c in ("churn_risk", "response_prob", "predicted_value"):
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype(float)
    frame["value_at_risk"] = frame["churn_risk"] * frame["predicted_value"]
    return frame


def _response_value(warehouse: Warehouse, cfg: Config, run: dict, kind: str, snapshot: Path) -> rv.ResponseValue:
    """k for `kind` (the run's recorded one for the run's own kind) and the run's median AOV."""
    window = cfg.features.frequency_window_days
    as_of = pd.Timestamp(run["as_of"]).date()
    k = run.get("response_value_k")
    if kind == run.get("campaign_kind") and not sink.is_null(k):
        value = rv.recorded(k, str(run.get("response_value_source") or ""), kind, as_of, run["run_id"], window)
    else:
        value = rv.observed(warehouse, kind, as_of, window)
    return value.with_fallback(rv.snapshot_median(snapshot, window))


def _score_audience(warehouse: Warehouse, cfg: Config, run: dict, kind: str, available: set[str], uplift):
    """Every customer of the run with response probability for `kind`, uplift and value per response."""
    from training.customer_reasons import versioned_model
    from training.feature_sets import with_campaign_kind
    from training.track import configure

    notes: list[str] = []
    path = Path(str(run.get("snapshot_path") or ""))
    if not path.exists():
        raise TargetingError(f"the feature snapshot of run {run['run_id']} is missing ({path}); "
                             "re-run `propensity score` to target from a fresh run")
    configure(cfg.mlflow, cfg.training.experiment)
    as_of = pd.Timestamp(run["as_of"]).date()
    features = read_features(path, as_of)
    # BTYD columns as the run scored them (serving.batch); a run whose champions read none
    # recorded no parameters: fitted on its whole snapshot, as it would have been.
    params = None if sink.is_null(run.get("btyd_params")) else json.loads(run["btyd_params"])
    features, _ = add_btyd_features(features, params["horizon_days"] if params else cfg.features.horizon_days,
                                    params, window_days=cfg.features.frequency_window_days)
    scores = _published_scores(warehouse, run)
    frame = features[["customer_id"]].merge(scores, on="customer_id", how="left", validate="one_to_one")
    if "response" in available and kind != run["campaign_kind"]:
        response = versioned_model("response", str(run["response_version"]))
        if kind not in (response.categories_.get("campaign_kind") or []):
            notes.append(f"the response model never saw campaigns of kind {kind!r}; "
                         "its probabilities are those of an unknown kind")
        frame["response_prob"] = response.predict(with_campaign_kind(response, features, kind))
    value = _response_value(warehouse, cfg, run, kind, path)
    frame["response_value"] = rv.value_per_response(features[value.feature].to_numpy(), value)
    if not value.observed:
        notes.append(f"no response revenue observed: {value.reason}; one response is counted as one "
                     "average order (k = 1)")
    if uplift is not None:
        frame["uplift"] = uplift.model.predict_uplift(features)
    else:
        frame["uplift"] = np.nan
        from training.uplift import has_control_groups

        if has_control_groups(warehouse, kind):
            notes.append(f"contacts of kind {kind!r} have control groups but no uplift model for it is "
                         f"registered; train one with `propensity train uplift --kind {kind}`")
    return frame, value, notes


def gain_curve(score_in_rank_order: np.ndarray, points: int = 101, measure: str = "profit") -> pd.DataFrame:
    """Cumulative `measure` when contacting the top share of the ranking, against a random order.

    The columns keep the profit names (`cumulative_profit`, `cumulative_profit_random`)
    whatever is accumulated; the `measure` column says what it is (e.g. "value at risk"
    for a score ranking, which has no profit).
    """
    n = len(score_in_rank_order)
    cum = np.concatenate([[0.0], np.cumsum(score_in_rank_order)])
    shares = np.linspace(0, 1, points)
    k = np.round(shares * n).astype(int)
    return pd.DataFrame({"share_contacted": shares, "customers": k, "cumulative_profit": cum[k],
                         "cumulative_profit_random": shares * cum[-1], "measure": measure})


def list_slug(campaign: str, width: int = 40) -> str:
    """The campaign name as it starts a list id and CSV file name: lowercase a-z, 0-9, - and _ only.

    Accents are dropped and runs of anything else become one `-` ("Spring Sale 2025!" ->
    "spring-sale-2025", "Ärger" -> "arger"); a name with nothing usable is "list". Cut to
    `width` characters, so ids stay short in URLs and file names.
    """
    ascii_name = unicodedata.normalize("NFKD", campaign).encode("ascii", "ignore").decode()  # Ä -> A
    slug = re.sub(r"[^a-z0-9_]+", "-", ascii_name.lower()).strip("-_")
    return slug[:width].rstrip("-_") or "list"


def save_target_list(warehouse: Warehouse, target: TargetList, csv_dir: Path | None = None) -> str:
    """Append the list to `target_lists` (one transaction) and, when asked, write it as CSV; returns its id."""
    created = datetime.now(UTC).replace(tzinfo=None)
    list_id = f"{list_slug(target.campaign)}-{created:%Y%m%d%H%M%S}-{secrets.token_hex(3)}"  # unique per save
    rows = target.frame.assign(list_id=list_id, campaign=target.campaign,
                               campaign_kind=target.summary["campaign_kind"], run_id=target.summary["run_id"],
                               created_at=created, method=target.method)
    rows = rows[[c for c, _ in _COLUMNS]]
    db = sink.database(warehouse)
    body = ", ".join(f'"{c}" {t}' for c, t in _COLUMNS)
    db.execute(f"create table if not exists {TARGETS} ({body})")
    have = set(db.existing_columns(TARGETS))  # a table from an earlier version: add the new columns
    for c, t in _COLUMNS:
        if c not in have:
            db.execute(f'alter table {TARGETS} add column "{c}" {t.replace(" not null", "")}')
    with db.transaction():
        db.append(TARGETS, rows)
    target.summary["list_id"] = list_id
    if csv_dir is not None:
        csv_dir.mkdir(parents=True, exist_ok=True)
        (csv_dir / f"{list_id}.csv").write_text(csv_text(target.frame), newline="")
    return list_id

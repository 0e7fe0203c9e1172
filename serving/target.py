"""Campaign targeting: whom to contact under a budget, ranked by expected or incremental profit.

The audience is every customer of the current (latest successful) scoring run. Each
is scored for the campaign's kind from the run's own lineage (its feature snapshot and
response model version), so the list is consistent with the published scores.

- **expected profit** = P(response) x predicted value x margin - cost, the default;
- **incremental profit** = uplift x predicted value x margin - cost, where uplift =
  P(response | contacted) - P(response | not contacted) from the registered `uplift`
  model, used when contacts of the campaign's kind have control groups and an uplift
  model for that kind is registered. Customers who would buy anyway, or who are put
  off by contact, rank low.

The contacted set is the top of the ranking, stopped by the budget (or `top`) and at
the first customer whose profit is not positive. A seeded random share of it
(`control`, default 10 %) is held out as a control group, so the campaign's real
incremental effect can be measured afterwards.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from features.load import Warehouse
from features.snapshots import read_features
from propensity.config import Config
from serving import sink

TARGETS = "target_lists"
_COLUMNS = [
    ("list_id", "varchar not null"), ("campaign", "varchar not null"), ("campaign_kind", "varchar"),
    ("run_id", "varchar not null"), ("created_at", "timestamp not null"), ("method", "varchar not null"),
    ("rank", "integer not null"), ("customer_id", "varchar not null"), ("group", "varchar not null"),
    ("score_used", "double precision"), ("response_prob", "double precision"),
    ("predicted_value", "double precision"), ("expected_profit", "double precision"),
    ("uplift", "double precision"), ("incremental_profit", "double precision"),
]


class TargetingError(ValueError):
    """A targeting request the user can fix; one-line message."""


@dataclass
class TargetList:
    """A ranked, budgeted contact list with its control group and what it is expected to bring."""

    campaign: str
    method: str  # "uplift" or "expected_profit"
    frame: pd.DataFrame  # the contacted customers and the control group, by rank
    summary: dict
    gain: pd.DataFrame  # share_contacted, customers, cumulative_profit, cumulative_profit_random
    notes: list[str] = field(default_factory=list)

    def report(self) -> str:
        s = self.summary
        inc = ("n/a (no uplift model for this kind)" if s["incremental_responders"] is None
               else f"{s['incremental_responders']:,.1f}")
        lines = [
            f"target list {s.get('list_id') or '(not saved)'} for {self.campaign} (kind {s['campaign_kind']!r}) "
            f"from scoring run {s['run_id']}",
            f"  ranked by {'incremental profit (uplift model v' + str(s['uplift_version']) + ')' if self.method == 'uplift' else 'expected profit (P(response) x value x margin - cost)'}",
            f"  audience {s['audience']:,}; selected {s['selected']:,}: contact {s['contacted']:,}, "
            f"hold out {s['control']:,} as control",
            f"  expected responders {s['expected_responders']:,.1f}; incremental responders {inc}",
            f"  cost {s['cost']:,.2f}; expected profit {s['expected_profit']:,.2f}"
            + (f"; incremental profit {s['incremental_profit']:,.2f}" if s["incremental_profit"] is not None else ""),
        ]
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


def _campaign_kind(warehouse: Warehouse, campaign: str) -> str:
    """A campaign id from the campaigns table, or a campaign kind, gives the kind."""
    if warehouse.has("campaigns"):
        found = warehouse.query("select kind from campaigns where campaign_id = ?", [campaign])
        if not found.empty:
            return str(found["kind"][0])
        kinds = warehouse.query("select distinct kind from campaigns where kind is not null order by 1")["kind"]
        if campaign in set(kinds):
            return campaign
        raise TargetingError(f"unknown campaign {campaign!r}: give a campaign id from the campaigns table "
                             f"or one of the kinds {', '.join(map(str, kinds))}")
    raise TargetingError("the warehouse has no campaigns table; import campaigns and contacts first")


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
        campaign: a campaign id, or a campaign kind.
        budget: money to spend on contacts (contacts = budget // cost); or
        top: the number of customers to select (exactly one of budget and top).
        cost: cost of one contact; margin: share of value that is profit.
        control: share of the selected customers held out as a random control group.
        seed: the control group's random seed (the same list and seed give the same group).
        rank_by: "auto" (uplift when available), "uplift" (refuse when unavailable) or
            "expected_profit".

    Raises:
        TargetingError: unknown campaign, bad budget/top/control, or no scoring run.
    """
    cost = cfg.serving.contact_cost if cost is None else cost
    margin = cfg.serving.margin if margin is None else margin
    if (budget is None) == (top is None):
        raise TargetingError("give exactly one of --budget (money for contacts) or --top (number of customers)")
    if budget is not None and budget <= 0 or top is not None and top <= 0:
        raise TargetingError("--budget and --top must be positive")
    if not 0 <= control < 1:
        raise TargetingError(f"--control must be a share in [0, 1), got {control}")
    if cost < 0 or not 0 <= margin <= 1:
        raise TargetingError("--cost must be >= 0 and --margin in [0, 1]")
    if budget is not None and cost == 0:
        raise TargetingError("--budget needs a contact cost above 0 (or use --top)")
    if rank_by not in ("auto", "uplift", "expected_profit"):
        raise TargetingError(f"--rank-by {rank_by!r}: use auto, uplift or expected_profit")
    kind = _campaign_kind(warehouse, campaign)
    run = _current_run(warehouse)
    frame, uplift_info, notes = _score_audience(warehouse, cfg, run, kind)
    if rank_by == "uplift" and uplift_info is None:
        raise TargetingError(f"no uplift model for campaigns of kind {kind!r} is registered; "
                             f"train one with `propensity train uplift --kind {kind}` or rank by expected_profit")
    if rank_by == "expected_profit" and uplift_info is not None:
        notes.append("ranked by expected profit as asked, although an uplift model for this kind exists")
        frame["uplift"] = np.nan
        uplift_info = None

    frame["expected_profit"] = frame["response_prob"] * frame["predicted_value"] * margin - cost
    if uplift_info is not None:
        method = "uplift"
        frame["incremental_profit"] = frame["uplift"] * frame["predicted_value"] * margin - cost
        frame["score_used"] = frame["incremental_profit"]
    else:
        method = "expected_profit"
        frame["incremental_profit"] = np.nan
        frame["score_used"] = frame["expected_profit"]
    frame = frame.sort_values(["score_used", "customer_id"], ascending=[False, True], kind="stable")
    frame = frame.reset_index(drop=True)
    frame["rank"] = np.arange(1, len(frame) + 1)

    if budget is not None:  # the budget pays for the contacts; the control group is extra and costs nothing
        contacts = int(budget // cost)
        wanted = contacts + int(round(contacts * control / (1 - control)))
    else:
        wanted = int(top)
    positive = int((frame["score_used"] > 0).sum())
    selected_n = min(wanted, positive, len(frame))
    if selected_n < wanted:
        notes.append(f"only {positive:,} customers have a positive {method.replace('_', ' ')}; "
                     f"the list stops there instead of at {wanted:,}")
    n_control = (wanted - contacts if budget is not None and selected_n == wanted
                 else int(round(control * selected_n)))
    selected = frame.iloc[:selected_n].copy()
    rng = np.random.default_rng(_seed(run["run_id"], campaign, seed))
    held = rng.choice(selected_n, size=n_control, replace=False) if n_control else np.array([], dtype=int)
    selected["group"] = "treatment"
    selected.loc[selected.index[held], "group"] = "control"

    treated = selected[selected["group"] == "treatment"]
    summary = {
        "campaign": campaign, "campaign_kind": kind, "run_id": run["run_id"], "method": method,
        "uplift_version": uplift_info.version if uplift_info is not None else None,
        "audience": len(frame), "selected": selected_n, "contacted": len(treated), "control": n_control,
        "expected_responders": float(treated["response_prob"].sum()),
        "incremental_responders": float(treated["uplift"].sum()) if uplift_info is not None else None,
        "cost": float(len(treated) * cost),
        "expected_profit": float(treated["expected_profit"].sum()),
        "incremental_profit": float(treated["incremental_profit"].sum()) if uplift_info is not None else None,
        "margin": margin, "contact_cost": cost, "control_share": control, "list_id": None,
    }
    keep = ["customer_id", "rank", "group", "score_used", "response_prob", "predicted_value",
            "expected_profit", "uplift", "incremental_profit"]
    return TargetList(campaign, method, selected[keep].reset_index(drop=True), summary,
                      gain_curve(frame["score_used"].to_numpy()), notes)


def _seed(run_id: str, campaign: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{run_id}|{campaign}|{seed}".encode()).digest()[:8], "little")


def _score_audience(warehouse: Warehouse, cfg: Config, run: dict, kind: str):
    """Response probability for `kind` (and uplift when available) for every customer of the run."""
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
    scores = warehouse.native_query(
        f"select customer_id, response_prob, predicted_value from {sink.SCORES} where run_id = ?", [run["run_id"]])
    frame = features[["customer_id"]].merge(scores, on="customer_id", how="left", validate="one_to_one")
    if kind != run["campaign_kind"]:
        response = versioned_model("response", str(run["response_version"]))
        if kind not in (response.categories_.get("campaign_kind") or []):
            notes.append(f"the response model never saw campaigns of kind {kind!r}; "
                         "its probabilities are those of an unknown kind")
        frame["response_prob"] = response.predict(with_campaign_kind(response, features, kind))
    uplift = _uplift_for(cfg, kind)
    if uplift is not None:
        frame["uplift"] = uplift.model.predict_uplift(features)
    else:
        frame["uplift"] = np.nan
        from training.uplift import has_control_groups

        if has_control_groups(warehouse, kind):
            notes.append(f"contacts of kind {kind!r} have control groups but no uplift model for it is "
                         f"registered; train one with `propensity train uplift --kind {kind}`")
    return frame, uplift, notes


def gain_curve(profit_in_rank_order: np.ndarray, points: int = 101) -> pd.DataFrame:
    """Cumulative profit when contacting the top share of the ranking, against a random order."""
    n = len(profit_in_rank_order)
    cum = np.concatenate([[0.0], np.cumsum(profit_in_rank_order)])
    shares = np.linspace(0, 1, points)
    k = np.round(shares * n).astype(int)
    return pd.DataFrame({"share_contacted": shares, "customers": k, "cumulative_profit": cum[k],
                         "cumulative_profit_random": shares * cum[-1]})


def save_target_list(warehouse: Warehouse, target: TargetList, csv_dir: Path | None = None) -> str:
    """Append the list to `target_lists` (one transaction) and, when asked, write it as CSV; returns its id."""
    created = datetime.now(UTC).replace(tzinfo=None)
    list_id = f"{target.campaign}-{created:%Y%m%d%H%M%S}-{secrets.token_hex(3)}"  # unique per save
    rows = target.frame.assign(list_id=list_id, campaign=target.campaign,
                               campaign_kind=target.summary["campaign_kind"], run_id=target.summary["run_id"],
                               created_at=created, method=target.method)
    rows = rows[[c for c, _ in _COLUMNS]]
    db = sink.database(warehouse)
    body = ", ".join(f'"{c}" {t}' for c, t in _COLUMNS)
    db.execute(f"create table if not exists {TARGETS} ({body})")
    with db.transaction():
        db.append(TARGETS, rows)
    target.summary["list_id"] = list_id
    if csv_dir is not None:
        csv_dir.mkdir(parents=True, exist_ok=True)
        target.frame.to_csv(csv_dir / f"{list_id}.csv", index=False)
    return list_id

"""The promotion gate: `champion` moves only when the challenger has earned it on the same data.

Both versions are loaded from the registry as pyfunc models (exactly what serving will
load) and scored on the out-of-time test half rebuilt from the warehouse now. Three
checks, in order, each on the primary metric (AUC; normalised Gini for value):

1. **Enough evidence**: the test half has at least `min_test_rows` rows and
   `min_test_positives` positives (churners, responders, or buyers for value).
2. **Ahead of every baseline**: the challenger beats the best baseline (RFM score,
   logistic or two-part RFMW regression, BTYD) on that same test half. The baselines'
   numbers are those logged with the challenger's training run when the data is
   unchanged (same fingerprint), otherwise they are refitted here.
3. **Ahead of the champion** by more than the configured margin.

Before any of them, the challenger must be complete (`training.track.version_problem`:
tagged complete, its run FINISHED, its files, model card and model present); an
incomplete one is refused in one line (`IncompleteVersion`), whatever `force` says, and
the refusal is recorded on it. An incomplete champion (it cannot get there through this
gate) is not compared against: a complete challenger that passes checks 1 and 2
replaces it.

`force` skips checks 1 and 2 (never 3). The decision and its numbers are recorded on
the version either way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from training.dataset import TrainingData
from training.feature_sets import model_input
from training.track import (
    CHALLENGER, CHAMPION, IncompleteVersion, RegistryError, alias_version, load_pyfunc_version, record_refusal,
    run_tags_metrics, set_champion, version_problem,
)
from training.train import PRIMARY_METRIC


@dataclass(frozen=True)
class Decision:
    """What the gate decided and on which numbers."""

    name: str
    promoted: bool
    challenger: str
    champion_before: str | None
    metric: str
    challenger_score: float | None
    champion_score: float | None
    margin: float
    reason: str

    def line(self) -> str:
        return f"{self.name}: {'PROMOTED' if self.promoted else ('not promoted' if self.champion_before is None else 'kept champion')} - {self.reason}"


@dataclass(frozen=True)
class GateRules:
    """The evidence the gate asks for (from [training] in propensity.toml)."""

    margin: float = 0.0
    min_test_rows: int = 500
    min_test_positives: int = 50
    force: bool = False


def pyfunc_predict(name: str, version: str, data: TrainingData, alias: str | None = None) -> np.ndarray:
    """Predictions of version `version` of `name` (read from `alias`) on the test half, through pyfunc."""
    model = load_pyfunc_version(name, version, alias)
    inner = model.unwrap_python_model().model
    return np.asarray(model.predict(model_input(data.test, inner.numeric, inner.categorical)))


def primary_score(data: TrainingData, pred: np.ndarray) -> float:
    from training.evaluate import classification_metrics, value_metrics

    y = data.test[data.target].to_numpy()
    if data.model == "value":
        return float(value_metrics(y, pred)["gini_norm"])
    return float(classification_metrics(y, pred)["auc"])


def positives_in_test(data: TrainingData) -> int:
    """Positives of the test half: churners or responders, or customers who bought (value)."""
    return int((data.test[data.target].to_numpy(dtype=float) > 0).sum())


def logged_baselines(run_id: str, metric: str, fingerprint: str) -> dict[str, float] | None:
    """Baseline scores logged with the challenger's run, when it trained on exactly this data."""
    tags, metrics = run_tags_metrics(run_id)
    if tags.get("data_fingerprint") != fingerprint:
        return None
    found = {k[: -len(metric) - 1]: v for k, v in metrics.items()
             if k.endswith(f".{metric}") and not k.startswith("model.") and k.count(".") == 1}
    return found or None


def baseline_scores(data: TrainingData, refit: Callable[[TrainingData], dict[str, np.ndarray]],
                    run_id: str) -> tuple[dict[str, float], str]:
    """(baseline -> primary metric on the test half, where the numbers come from)."""
    metric = PRIMARY_METRIC[data.model]
    logged = logged_baselines(run_id, metric, data.fingerprint())
    if logged is not None:
        return logged, "logged with the challenger's run (same data)"
    return {k: primary_score(data, p) for k, p in refit(data).items()}, "refitted on the current data"


def refuse_incomplete(name: str) -> str | None:
    """One line refusing `name@challenger` when it is incomplete (recorded on the version), else None."""
    chal = alias_version(name, CHALLENGER)
    if chal is None:
        return None
    version = str(chal["version"])
    problem = version_problem(name, version)
    if problem is None:
        return None
    line = (f"{name} version {version} (@{CHALLENGER}) is incomplete: {problem}; the gate refuses it - "
            f"retrain with `propensity train {name}`")
    record_refusal(name, version, {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                   "challenger_version": version, "decision": "refused",
                                   "reason": f"incomplete: {problem}"})
    return line


def promote(
    name: str,
    data: TrainingData,
    rules: GateRules | float,
    refit_baselines: Callable[[TrainingData], dict[str, np.ndarray]] | None = None,
) -> Decision:
    """Run the gate for `name` on `data` and move `champion` if the challenger earned it.

    Args:
        name: churn, response or value.
        data: the out-of-time data rebuilt now (the test half is what counts).
        rules: the gate's rules (a bare number is a margin, with the default rules).
        refit_baselines: fits every baseline on `data` and predicts its test half; used
            when the challenger's run was trained on other data. None skips the
            baseline check (only for callers that have no baselines to offer).
    """
    if not isinstance(rules, GateRules):
        rules = GateRules(margin=float(rules))
    margin = rules.margin
    chal = alias_version(name, CHALLENGER)
    if chal is None:
        raise RegistryError(f"no {name}@{CHALLENGER} to promote; train one with `propensity train {name}`")
    refused = refuse_incomplete(name)
    if refused:
        raise IncompleteVersion(refused)
    champ = alias_version(name, CHAMPION)
    metric = PRIMARY_METRIC[name]
    chal_score = primary_score(data, pyfunc_predict(name, str(chal["version"]), data, CHALLENGER))
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    positives = positives_in_test(data)
    record = {"at": when, "metric": metric, "oot_cutoff": data.oot_cutoff, "test_rows": len(data.test),
              "test_positives": positives, "challenger_version": chal["version"],
              "challenger_score": round(chal_score, 6), "margin": margin, "forced": rules.force}

    def refuse(reason: str, champion_score: float | None = None) -> Decision:
        record["decision"] = "refused"
        record["reason"] = reason
        record_refusal(name, chal["version"], record)
        return Decision(name, False, chal["version"], champ["version"] if champ else None, metric, chal_score,
                        champion_score, margin, reason)

    if champ is not None and champ["version"] == chal["version"]:
        return Decision(name, False, chal["version"], champ["version"], metric, chal_score, chal_score, margin,
                        f"version {chal['version']} is already the champion")
    problems = []
    if len(data.test) < rules.min_test_rows or positives < rules.min_test_positives:
        problems.append(
            f"the out-of-time test half is too small to judge it ({len(data.test):,} rows, {positives:,} positives; "
            f"[training] min_test_rows {rules.min_test_rows}, min_test_positives {rules.min_test_positives})")
    if refit_baselines is not None:
        scores, source = baseline_scores(data, refit_baselines, chal["run_id"])
        if scores:
            best = max(scores, key=lambda k: scores[k])
            record.update(best_baseline=best, best_baseline_score=round(scores[best], 6), baselines_from=source)
            if not chal_score > scores[best]:
                problems.append(f"version {chal['version']} {metric} {chal_score:.4f} is not ahead of the "
                                f"{best} baseline {scores[best]:.4f} on the same test half")
    if problems and not rules.force:
        return refuse("; ".join(problems) + " (use --force to promote anyway)")
    if problems:
        record["overridden"] = "; ".join(problems)

    broken = version_problem(name, str(champ["version"])) if champ is not None else None
    if champ is None or broken:
        forced = " (forced past: " + "; ".join(problems) + ")" if problems else ""
        if broken:
            record["decision"] = "replaced an incomplete champion"
            record["replaced_incomplete_champion"] = f"version {champ['version']}: {broken}"
            set_champion(name, chal["version"], record)
            return Decision(name, True, chal["version"], champ["version"], metric, chal_score, None, margin,
                            f"version {chal['version']} ({metric} {chal_score:.4f} on {len(data.test):,} OOT rows) "
                            f"replaces champion version {champ['version']}, which is incomplete ({broken}){forced}")
        record["decision"] = "first champion"
        set_champion(name, chal["version"], record)
        return Decision(name, True, chal["version"], None, metric, chal_score, None, margin,
                        f"version {chal['version']} is the first champion ({metric} {chal_score:.4f} on "
                        f"{len(data.test):,} OOT rows){forced}")
    champ_score = primary_score(data, pyfunc_predict(name, str(champ["version"]), data, CHAMPION))
    record.update(champion_version=champ["version"], champion_score=round(champ_score, 6))
    gain = chal_score - champ_score
    if gain > margin:
        record["decision"] = "promoted"
        set_champion(name, chal["version"], record)
        return Decision(name, True, chal["version"], champ["version"], metric, chal_score, champ_score, margin,
                        f"version {chal['version']} {metric} {chal_score:.4f} beats version {champ['version']} "
                        f"{champ_score:.4f} by {gain:+.4f} (> margin {margin})")
    return refuse(f"version {chal['version']} {metric} {chal_score:.4f} does not beat champion version "
                  f"{champ['version']} {champ_score:.4f} by more than {margin} ({gain:+.4f})", champ_score)

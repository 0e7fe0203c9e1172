"""The promotion gate: `champion` moves only when the challenger beats it on the same data.

Both versions are loaded from the registry as pyfunc models (exactly what serving will
load) and scored on the out-of-time test half rebuilt from the warehouse now. The
challenger must beat the champion's primary metric (AUC; normalised Gini for value) by
more than the configured margin. The comparison is recorded on the version either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from training.dataset import TrainingData
from training.feature_sets import model_input
from training.track import CHALLENGER, CHAMPION, RegistryError, alias_version, load_pyfunc, record_refusal, set_champion
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
        return f"{self.name}: {'PROMOTED' if self.promoted else 'kept champion'} - {self.reason}"


def pyfunc_predict(name: str, alias: str, data: TrainingData) -> np.ndarray:
    """Predictions of `name@alias` on the test half, through the pyfunc interface."""
    model = load_pyfunc(name, alias)
    inner = model.unwrap_python_model().model
    return np.asarray(model.predict(model_input(data.test, inner.numeric, inner.categorical)))


def primary_score(data: TrainingData, pred: np.ndarray) -> float:
    from training.evaluate import classification_metrics, value_metrics

    y = data.test[data.target].to_numpy()
    if data.model == "value":
        return float(value_metrics(y, pred)["gini_norm"])
    return float(classification_metrics(y, pred)["auc"])


def promote(name: str, data: TrainingData, margin: float) -> Decision:
    """Compare challenger and champion of `name` on `data` and move `champion` if earned."""
    chal = alias_version(name, CHALLENGER)
    if chal is None:
        raise RegistryError(f"no {name}@{CHALLENGER} to promote; train one with `propensity train {name}`")
    champ = alias_version(name, CHAMPION)
    metric = PRIMARY_METRIC[name]
    chal_score = primary_score(data, pyfunc_predict(name, CHALLENGER, data))
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    record = {"at": when, "metric": metric, "oot_cutoff": data.oot_cutoff, "test_rows": len(data.test),
              "challenger_version": chal["version"], "challenger_score": round(chal_score, 6), "margin": margin}
    if champ is None:
        record["decision"] = "first champion"
        set_champion(name, chal["version"], record)
        return Decision(name, True, chal["version"], None, metric, chal_score, None, margin,
                        f"version {chal['version']} is the first champion ({metric} {chal_score:.4f} on {len(data.test):,} OOT rows)")
    if champ["version"] == chal["version"]:
        return Decision(name, False, chal["version"], champ["version"], metric, chal_score, chal_score, margin,
                        f"version {chal['version']} is already the champion")
    champ_score = primary_score(data, pyfunc_predict(name, CHAMPION, data))
    record.update(champion_version=champ["version"], champion_score=round(champ_score, 6))
    gain = chal_score - champ_score
    if gain > margin:
        record["decision"] = "promoted"
        set_champion(name, chal["version"], record)
        return Decision(name, True, chal["version"], champ["version"], metric, chal_score, champ_score, margin,
                        f"version {chal['version']} {metric} {chal_score:.4f} beats version {champ['version']} "
                        f"{champ_score:.4f} by {gain:+.4f} (> margin {margin})")
    record["decision"] = "refused"
    record_refusal(name, chal["version"], record)
    return Decision(name, False, chal["version"], champ["version"], metric, chal_score, champ_score, margin,
                    f"version {chal['version']} {metric} {chal_score:.4f} does not beat champion version "
                    f"{champ['version']} {champ_score:.4f} by more than {margin} ({gain:+.4f})")

"""Why one customer got each score: features as of a date, the registered models, reasons.

Used by `propensity explain customer`; the batch scorer explains everyone the same way
through `training.explain.reason_codes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd

from features.btyd import add_btyd_features
from features.load import Warehouse
from features.snapshots import build_features
from propensity.config import FeaturesConfig
from training.feature_sets import with_campaign_kind
from training.models import LgbmModel
from training.track import RegistryError, alias_version, load_pyfunc_version

OUTPUT_LABEL = {"churn": "churn risk", "response": "response probability", "value": "predicted value"}


class UnknownCustomer(ValueError):
    """The customer has no history before the as-of date; the message says so."""


@dataclass(frozen=True)
class CustomerExplanation:
    """One model's score for one customer and the reasons behind it."""

    model: str
    version: str
    score: float
    reasons: pd.DataFrame  # as from training.explain.reason_codes

    def lines(self) -> list[str]:
        """The score, then one line per reason: its sentence and its size in words (`effect_words`)."""
        from training.explain import effect_words, share_text

        shown = share_text(self.score) if self.model != "value" else f"{self.score:,.2f}"
        out = [f"{self.model} (version {self.version}): {OUTPUT_LABEL[self.model]} {shown}"]
        for r in self.reasons.itertuples():
            words = effect_words(self.model, float(r.contribution), self.score, float(r.effect))
            out.append(f"  {r.rank}. {r.text}  [{r.feature} = {r.feature_value}; {words}]")
        return out


def registered_model(name: str, alias: str) -> tuple[LgbmModel, str]:
    """The LightGBM model behind `name@alias` and its version number."""
    info = alias_version(name, alias)
    if info is None:
        raise RegistryError(f"no {name}@{alias} in the registry; train and promote it first")
    version = str(info["version"])  # loaded by number: the alias may move meanwhile
    return load_pyfunc_version(name, version, alias).unwrap_python_model().model, version


def versioned_model(name: str, version: str) -> LgbmModel:
    """The LightGBM model of one registered version (as a run's lineage records it)."""
    return load_pyfunc_version(name, version).unwrap_python_model().model


def customer_row(warehouse: Warehouse, fcfg: FeaturesConfig, customer_id: str, as_of: date) -> pd.DataFrame:
    """The customer's feature row as of `as_of` (one row), or UnknownCustomer.

    The BTYD columns are fitted on the whole population as of that date, as the batch
    scorer fits them on its snapshot, so the row equals the one a run at `as_of` scores.
    """
    frame = build_features(warehouse, as_of, fcfg, with_labels=False)
    frame, _ = add_btyd_features(frame, fcfg.horizon_days, window_days=fcfg.frequency_window_days)
    row = frame[frame["customer_id"] == customer_id].reset_index(drop=True)
    if row.empty:
        raise UnknownCustomer(
            f"customer {customer_id!r} has no transactions before {as_of}; check the id or choose a later --as-of"
        )
    return row


def explain_customer(
    row: pd.DataFrame,
    models: dict[str, tuple[LgbmModel, str]],
    k: int = 5,
    campaign_kind: str | None = None,
) -> list[CustomerExplanation]:
    """Score and explain one feature row with each model."""
    from training.explain import reason_codes

    out = []
    for name, (model, version) in models.items():
        frame = with_campaign_kind(model, row, campaign_kind)
        score = float(model.predict(frame)[0])
        out.append(CustomerExplanation(name, version, score, reason_codes(model, frame, name, k=k)))
    return out

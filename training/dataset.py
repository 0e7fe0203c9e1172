"""Training frames: snapshots stacked over cutoffs, split out of time, never at random.

Churn and value: features and labels at `snapshot_count` cutoffs `snapshot_step_days`
apart; the latest cutoff whose label window is complete is the out-of-time (OOT) set,
the earlier ones are the training set. No training label looks past the OOT cutoff:
with a step shorter than the horizon (more cutoffs from the same history), the cutoffs
whose label window would reach past it are left out (`features.windows.snapshot_cutoffs`).

Response: one row per treatment contact, with features as of the campaign's start;
the latest campaign whose window has ended is the OOT set.

The OOT customers are split in two by a stable hash of the customer id: the *tune*
half serves early stopping and calibration, the *test* half is untouched until every
metric, for the model and for each baseline, is computed on it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from features.btyd import add_btyd_features
from features.load import Warehouse
from features.snapshots import CutoffError, build_features, build_snapshots, data_end
from propensity.config import FeaturesConfig
from training.feature_sets import TARGETS, feature_lists

MODELS = ("churn", "response", "value")


class TrainingDataError(ValueError):
    """The warehouse cannot give this model a training set; the message says why."""


@dataclass
class TrainingData:
    """Rows for one model, split out of time, and the features it reads."""

    model: str
    train: pd.DataFrame
    tune: pd.DataFrame
    test: pd.DataFrame
    numeric: list[str]
    categorical: list[str]
    target: str
    train_cutoffs: list[date]
    oot_cutoff: date
    notes: list[str] = field(default_factory=list)
    constant: list[str] = field(default_factory=list)  # features left out: one value on every training row
    # Response only: every customer with history at the out-of-time campaign's start, as the
    # scorer sees them (the test half holds contacts only); the monitoring reference
    # (`training.profile`). None: the test half is that population's sample.
    population: pd.DataFrame | None = None

    @property
    def features(self) -> list[str]:
        return self.numeric + self.categorical

    def fingerprint(self) -> str:
        """A short hash of every row and column the model sees (train + OOT)."""
        return frames_fingerprint((self.train, self.tune, self.test),
                                  ["customer_id", "as_of", *self.features, self.target])

    def summary(self) -> str:
        span = (f"{self.train_cutoffs[0]}..{self.train_cutoffs[-1]}" if self.train_cutoffs else "none")
        return (
            f"{self.model}: train {len(self.train):,} rows ({len(self.train_cutoffs)} "
            f"cutoff{'s' if len(self.train_cutoffs) != 1 else ''} {span}), out-of-time {self.oot_cutoff}: "
            f"tune {len(self.tune):,} / test {len(self.test):,}, {len(self.features)} features"
        )


def frames_fingerprint(parts: tuple[pd.DataFrame, ...], columns: list[str]) -> str:
    """A short hash of the given columns of every row of the parts, in order."""
    h = hashlib.sha256()
    for part in parts:
        h.update(pd.util.hash_pandas_object(part[columns], index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


def tune_mask(customer_ids: pd.Series, share: float) -> np.ndarray:
    """Stable split of customers: True for the tune half (same id, same side, every run)."""
    buckets = customer_ids.astype(str).map(lambda s: int(hashlib.md5(s.encode()).hexdigest()[:8], 16) % 10_000)
    return (buckets < share * 10_000).to_numpy()


def split_out_of_time(frame: pd.DataFrame, oot: pd.Timestamp, share: float) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, tune, test): rows before `oot` train; rows at `oot` split by `tune_mask` (every model alike)."""
    is_oot = frame["as_of"] == oot
    train = frame[~is_oot & (frame["as_of"] < oot)].reset_index(drop=True)
    valid = frame[is_oot].reset_index(drop=True)
    mask = tune_mask(valid["customer_id"], share)
    return train, valid[mask].reset_index(drop=True), valid[~mask].reset_index(drop=True)


def churn_value_data(
    model: str,
    warehouse: Warehouse,
    fcfg: FeaturesConfig,
    tuning_share: float,
    progress: Callable[[date], None] | None = None,
    snapshots: pd.DataFrame | None = None,
) -> TrainingData:
    """Stacked snapshots for the churn or the value model.

    Args:
        model: "churn" or "value".
        warehouse: holds the canonical tables.
        fcfg: windows, horizon and snapshot schedule.
        tuning_share: share of OOT customers for early stopping and calibration.
        progress: called with each cutoff as it is built.
        snapshots: already built snapshots to reuse (both models share them).
    """
    if fcfg.snapshot_count < 2:
        raise TrainingDataError("[features] snapshot_count must be at least 2: one to train on, one out of time")
    if snapshots is None:
        try:
            snapshots = build_snapshots(warehouse, fcfg, progress=progress)
        except CutoffError as e:
            raise TrainingDataError(str(e)) from None
    cutoffs = sorted(snapshots["as_of"].unique())
    oot = pd.Timestamp(cutoffs[-1])
    reaching = [c for c in cutoffs[:-1] if pd.Timestamp(c) + pd.Timedelta(days=fcfg.horizon_days) > oot]
    if reaching:  # snapshots given by the caller: the schedule above never makes these
        raise TrainingDataError(
            f"the label windows of {len(reaching)} training cutoff(s) (from {pd.Timestamp(reaching[0]).date()}) "
            f"reach past the out-of-time cutoff {oot.date()}; leave them out or shorten horizon_days"
        )
    frame, btyd_notes = with_btyd_features(snapshots, fcfg)
    target = TARGETS[model]
    if model == "value":
        # Tweedie needs a non-negative target; a horizon of net returns is worth nothing.
        frame[target] = frame[target].clip(lower=0)
    train, tune, test = split_out_of_time(frame, oot, tuning_share)
    _check_rows(model, train, tune, test, target)
    numeric, categorical, notes, constant = usable_features(model, frame, train)
    return TrainingData(
        model, train, tune, test, numeric, categorical, target,
        [pd.Timestamp(c).date() for c in cutoffs[:-1]], oot.date(), btyd_notes + notes, constant,
    )


def with_btyd_features(snapshots: pd.DataFrame, fcfg: FeaturesConfig) -> tuple[pd.DataFrame, list[str]]:
    """The snapshots with the BTYD feature columns, fitted once per cutoff on that cutoff's rows.

    Each fit sees only the histories as of its cutoff (`features.btyd.btyd_inputs` reads
    no label column), so a label can never leak into these features. Returns the frame
    (same rows, same order) and a note per cutoff whose fit failed (columns left NaN).
    """
    parts, notes = [], []
    for stamp, group in snapshots.groupby("as_of", sort=True):
        part, params = add_btyd_features(group, fcfg.horizon_days, window_days=fcfg.frequency_window_days)
        parts.append(part)
        if "note" in params:
            notes.append(f"{pd.Timestamp(stamp).date()}: {params['note']}")
    return pd.concat(parts).loc[snapshots.index], notes


def usable_features(
    model: str, frame: pd.DataFrame, train: pd.DataFrame
) -> tuple[list[str], list[str], list[str], list[str]]:
    """(numeric, categorical, notes, constant): the model's feature lists less those constant in `train`.

    A feature with one value (or none) on every training row carries nothing; on a short
    history, for instance, the 365-day window equals the whole history. Dropped features
    are listed in the notes, which are logged with the run.
    """
    numeric, categorical = feature_lists(model, frame)
    # campaign_kind stays even when one kind is all there is: it records which kind the
    # response model was trained for (training.feature_sets.default_campaign_kind).
    constant = [c for c in numeric + categorical
                if c != "campaign_kind" and train[c].nunique(dropna=False) <= 1]
    notes = []
    if constant:
        notes.append(f"features constant in training, left out: {', '.join(constant)}")
    keep = set(constant)
    return [c for c in numeric if c not in keep], [c for c in categorical if c not in keep], notes, constant


def _check_rows(model: str, train: pd.DataFrame, tune: pd.DataFrame, test: pd.DataFrame, target: str) -> None:
    """Refuse, in one line, a split a model cannot be trained or judged on."""
    for part, rows in (("training", train), ("out-of-time tune", tune), ("out-of-time test", test)):
        if rows.empty:
            raise TrainingDataError(f"{model}: the {part} set is empty; check [features] snapshot settings "
                                    "against the data's span (`propensity data status`)")
    if model != "value":
        for part, rows in (("training", train), ("out-of-time tune", tune)):
            if rows[target].nunique() < 2:
                raise TrainingDataError(f"{model}: every {part} row has the same label "
                                        f"({rows[target].iloc[0]}); a model cannot learn from that")


def _campaign_starts(warehouse: Warehouse, end: date) -> pd.DataFrame:
    if not (warehouse.has("contacts") and warehouse.has("campaigns")):
        raise TrainingDataError("the response model needs `campaigns` and `contacts` tables; import them first")
    return warehouse.query(
        """
        select c.campaign_id, any_value(c.kind) as campaign_kind,
               least(min(c.start), min(k.contacted_at))::date as as_of,
               max(c."end")::date as ends
        from campaigns c join contacts k using (campaign_id)
        where k."group" = 'treatment'
        group by c.campaign_id
        having max(c."end")::date < $end
        order by as_of, c.campaign_id
        """,
        {"end": end},
    )


def response_data(
    warehouse: Warehouse,
    fcfg: FeaturesConfig,
    tuning_share: float,
    progress: Callable[[date], None] | None = None,
) -> TrainingData:
    """One row per treatment contact of every finished campaign, features as of its start."""
    campaigns = _campaign_starts(warehouse, data_end(warehouse))
    if len(campaigns["as_of"].unique()) < 2:
        raise TrainingDataError(
            "the response model needs finished campaigns on at least two start dates "
            f"(found {len(campaigns)}): one to train on, one out of time"
        )
    contacts = warehouse.query(
        """select campaign_id, customer_id, min(contacted_at) as contacted_at, bool_or(responded) as responded
           from contacts where "group" = 'treatment' group by campaign_id, customer_id"""
    )
    frames, dropped, btyd_notes = [], 0, []
    population = None
    for stamp, group in campaigns.groupby("as_of", sort=True):
        as_of = pd.Timestamp(stamp).date()
        if progress is not None:
            progress(as_of)
        feats = build_features(warehouse, as_of, fcfg, with_labels=False)
        # BTYD fitted on everyone with history at the campaign's start, not only the contacted.
        feats, params = add_btyd_features(feats, fcfg.horizon_days, window_days=fcfg.frequency_window_days)
        if "note" in params:
            btyd_notes.append(f"{as_of}: {params['note']}")
        rows = contacts.merge(group[["campaign_id", "campaign_kind"]], on="campaign_id")
        joined = rows.merge(feats, on="customer_id", how="inner")
        dropped += len(rows) - len(joined)
        if len(joined):  # the last such date is the out-of-time one: everyone the scorer would see then
            population = feats
        joined["as_of"] = pd.Timestamp(as_of)
        joined["label_response"] = joined["responded"].astype("int64")
        frames.append(joined)
    frame = pd.concat(frames, ignore_index=True)
    oot = frame["as_of"].max()
    train, tune, test = split_out_of_time(frame, oot, tuning_share)
    _check_rows("response", train, tune, test, "label_response")
    numeric, categorical, notes, constant = usable_features("response", frame, train)
    notes = btyd_notes + notes
    if dropped:
        notes.append(f"{dropped:,} contacts of customers with no purchase history before the campaign were left out")
    kinds = frame.loc[frame["as_of"] == oot, "campaign_kind"]
    population = population.assign(as_of=oot, campaign_kind=kinds.iloc[0] if len(kinds) else None)
    return TrainingData(
        "response", train, tune, test, numeric, categorical, "label_response",
        sorted({d.date() for d in train["as_of"]}), oot.date(), notes, constant, population,
    )


def training_data(
    model: str,
    warehouse: Warehouse,
    fcfg: FeaturesConfig,
    tuning_share: float,
    progress: Callable[[date], None] | None = None,
    snapshots: pd.DataFrame | None = None,
) -> TrainingData:
    """The training data of `model` (churn, response or value)."""
    if model == "response":
        return response_data(warehouse, fcfg, tuning_share, progress)
    if model in ("churn", "value"):
        return churn_value_data(model, warehouse, fcfg, tuning_share, progress, snapshots)
    raise TrainingDataError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")


def default_cutoffs(warehouse: Warehouse, fcfg: FeaturesConfig) -> list[date]:
    """The snapshot cutoffs the churn and value models would use now."""
    from features.snapshots import training_cutoffs

    try:
        return training_cutoffs(warehouse, fcfg)
    except CutoffError as e:
        raise TrainingDataError(str(e)) from None

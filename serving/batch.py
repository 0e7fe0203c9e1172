"""The batch scorer: as-of features -> champion models -> scores, reasons, segments -> tables.

One run = one as-of date and one version of each champion. Atomic (staged, then
published in one transaction), idempotent (run_id is deterministic; a re-run replaces
its rows), exclusive (a lock row per warehouse), chunked (score + explain N customers
at a time, results staged in the warehouse as they are produced).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import pandas as pd

from features.load import Warehouse
from features.snapshots import build_features
from propensity.config import Config
from serving import sink
from serving.registry import champions
from serving.score import score_chunk
from training.feature_sets import default_campaign_kind
from serving.sink import ScoringError
from training.models import LgbmModel

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

DEFAULT_MARGIN = 0.3
DEFAULT_CONTACT_COST = 1.0
DEFAULT_CHUNK = 50_000
REASONS_PER_MODEL = 5

__all__ = ["RunSummary", "ScoringError", "make_run_id", "run_scoring", "score_with"]


@dataclass
class RunSummary:
    """What a scoring run did: ids, versions, row counts and time per stage."""

    run_id: str
    attempt: int
    as_of: date
    status: str
    versions: dict[str, str]
    campaign_kind: str | None
    customers: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    data_fingerprint: str = ""

    def report(self) -> str:
        versions = ", ".join(f"{k} v{v}" for k, v in self.versions.items())
        lines = [
            f"scoring run {self.run_id} (attempt {self.attempt}) as of {self.as_of}: {self.status}",
            f"  models: {versions}; response scored for campaign kind {self.campaign_kind!r}",
            f"  customers: {self.customers:,}; rows: "
            + ", ".join(f"{k} {v:,}" for k, v in self.rows.items()),
            f"  data fingerprint: {self.data_fingerprint}",
            "  time: " + ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items())
            + f" (total {sum(self.timings.values()):.1f}s)",
        ]
        return "\n".join(lines)


def make_run_id(as_of: date, versions: dict[str, str], campaign_kind: str | None) -> str:
    """Deterministic: the same as-of date, model versions and campaign kind give the same id."""
    key = f"{as_of:%Y-%m-%d}|" + "|".join(f"{k}={versions[k]}" for k in sorted(versions)) + f"|{campaign_kind}"
    return f"{as_of:%Y%m%d}-" + hashlib.sha256(key.encode()).hexdigest()[:10]


def data_fingerprint(as_of: date, features: pd.DataFrame) -> str:
    """A short hash of the feature rows the models read (features repeat bit for bit)."""
    digest = hashlib.sha256(f"{as_of}|{','.join(features.columns)}".encode())
    digest.update(pd.util.hash_pandas_object(features, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def run_scoring(
    warehouse: Warehouse,
    cfg: Config,
    as_of: date,
    progress: Progress | None = None,
    margin: float = DEFAULT_MARGIN,
    contact_cost: float = DEFAULT_CONTACT_COST,
    chunk_size: int = DEFAULT_CHUNK,
) -> RunSummary:
    """Score every customer with history before `as_of` with the champion models.

    Args:
        warehouse: holds the canonical tables; receives the segment tables (DuckDB).
        cfg: the project configuration (features, MLflow store, threads).
        as_of: the cutoff; features see rows strictly before it.
        progress: called with a one-line message at each stage and chunk.
        margin: share of the predicted value that is profit.
        contact_cost: cost of one contact.
        chunk_size: customers scored and explained at a time.

    Returns:
        The run's summary (status 'succeeded').

    Raises:
        ScoringError: another run holds the lock, or no customer has history before `as_of`.
        RegistryError: a model has no champion.
    """
    started = time.perf_counter()
    loaded = champions(cfg)
    return score_with(warehouse, cfg, as_of, {k: m for k, (m, _) in loaded.items()},
                      {k: v for k, (_, v) in loaded.items()}, progress, margin, contact_cost, chunk_size,
                      load_seconds=time.perf_counter() - started)


def score_with(
    warehouse: Warehouse,
    cfg: Config,
    as_of: date,
    models: dict[str, LgbmModel],
    versions: dict[str, str],
    progress: Progress | None = None,
    margin: float = DEFAULT_MARGIN,
    contact_cost: float = DEFAULT_CONTACT_COST,
    chunk_size: int = DEFAULT_CHUNK,
    load_seconds: float = 0.0,
) -> RunSummary:
    """`run_scoring` with the models already loaded (same arguments, plus models and versions)."""
    if chunk_size < 1:
        raise ScoringError(f"chunk size must be at least 1, got {chunk_size}")
    say = progress or (lambda _m: None)
    campaign_kind = default_campaign_kind(models["response"])
    run_id = make_run_id(as_of, versions, campaign_kind)
    summary = RunSummary(run_id, 0, as_of, "running", dict(versions), campaign_kind)
    summary.timings["load models"] = load_seconds

    sink.claim_lock(warehouse, run_id)
    try:
        summary.attempt = sink.start_attempt(warehouse, {
            "run_id": run_id, "as_of": as_of,
            **{f"{k}_version": versions[k] for k in ("churn", "response", "value")},
            "campaign_kind": campaign_kind, "margin": margin, "contact_cost": contact_cost,
            "chunk_size": chunk_size,
        })
        try:
            _run(warehouse, cfg, as_of, models, campaign_kind, margin, contact_cost, chunk_size, summary, say)
        except BaseException as e:
            summary.status = "failed"
            sink.mark_failed(warehouse, run_id, summary.attempt, f"{type(e).__name__}: {e}")
            raise
    finally:
        sink.release_lock(warehouse, run_id)
    summary.status = "succeeded"
    say(f"published run {run_id}: {summary.customers:,} customers")
    return summary


def _run(
    warehouse: Warehouse, cfg: Config, as_of: date, models: dict[str, LgbmModel], campaign_kind: str | None,
    margin: float, contact_cost: float, chunk_size: int, summary: RunSummary, say: Progress,
) -> None:
    run_id = summary.run_id
    t = time.perf_counter()
    say(f"features as of {as_of}")
    features = build_features(warehouse, as_of, cfg.features, with_labels=False)
    if features.empty:
        raise ScoringError(f"no customer has transactions before {as_of}; choose a later --as-of")
    summary.customers = n = len(features)
    summary.timings["features"] = time.perf_counter() - t

    t = time.perf_counter()
    sink.reset_stage(warehouse)
    summary.data_fingerprint = data_fingerprint(as_of, features)
    chunks = range(0, n, chunk_size)
    for i, start in enumerate(chunks, 1):
        part = features.iloc[start:start + chunk_size].reset_index(drop=True)
        result = score_chunk(part, models, as_of, campaign_kind, margin, contact_cost, k=REASONS_PER_MODEL)
        for name, frame in ((sink.SCORES, result.scores), (sink.SEGMENTS, result.segments),
                            (sink.REASONS, result.reasons)):
            frame.insert(0, "run_id", run_id)
            sink.stage(warehouse, name, frame)
        say(f"scored and explained {min(start + chunk_size, n):,} / {n:,} customers (chunk {i} of {len(chunks)})")
    del features
    summary.timings["score + explain"] = time.perf_counter() - t

    t = time.perf_counter()
    say("deciles and tiers")
    sink.rank_stage(warehouse)
    summary.rows = sink.staged_counts(warehouse)
    expected = {sink.SCORES: n, sink.SEGMENTS: n, sink.REASONS: n * len(models) * REASONS_PER_MODEL}
    if summary.rows != expected:  # a bug, never a data problem
        raise RuntimeError(f"staged rows {summary.rows} differ from the expected {expected}")
    summary.timings["rank"] = time.perf_counter() - t

    t = time.perf_counter()
    say("publishing")
    sink.publish(warehouse, run_id, summary.attempt, summary.rows, summary.data_fingerprint)
    summary.timings["publish"] = time.perf_counter() - t

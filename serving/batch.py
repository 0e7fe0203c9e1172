"""The batch scorer: as-of features -> champion models -> scores, reasons, segments -> tables.

One run = one as-of date and one version of each champion. Atomic (staged, then
published in one transaction), idempotent (run_id is deterministic; a re-run replaces
its rows), exclusive (a lock row per warehouse), bounded in memory (the features are
streamed by DuckDB into a Parquet snapshot, then scored and explained N customers at a
time, each chunk's rows staged in the warehouse as they are produced).

The snapshot is kept (path and SHA-256 in `scoring_runs`): with the model versions it
is the run's lineage, from which `propensity explain customer ID --run RUN_ID`
recomputes exactly the reasons the run stored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd

from features.btyd import BTYD_FEATURES, add_btyd_features, btyd_input_columns, btyd_params
from features.load import Warehouse
from features.snapshots import check_as_of, iter_features, snapshot_fingerprint, write_features
from propensity.config import Config
from propensity.failpoints import failpoint
from serving import sink
from serving.registry import MODEL_NAMES, champions, missing_reasons
from serving.response_value import ResponseValue, snapshot_median
from serving.response_value import observed as observed_response_value
from serving.score import AttributionSums, ChunkResult, score_chunk
from serving.sink import ScoringError
from training.feature_sets import default_campaign_kind
from training.models import LgbmModel

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
Counter = Callable[[int, int], None]  # (customers done, customers in the run): drives a progress bar

# Customers scored and explained per step inside a chunk: the progress moves at least
# this often, and a chunk's rows are staged in pieces of this size.
PIECE = 25_000

__all__ = ["RunSummary", "ScoringError", "make_run_id", "run_scoring", "score_with", "file_sha256"]


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
    # inside "score + explain": seconds of work per part, summed over the scoring threads
    work: dict[str, float] = field(default_factory=dict)
    data_fingerprint: str = ""
    snapshot: Path | None = None
    missing: dict[str, str] = field(default_factory=dict)  # model -> why it has no scores in this run
    response_value: ResponseValue | None = None  # k and AOV fallback of expected_profit (serving.response_value)
    # model -> |contribution| sums over every customer explained (scoring_runs.attributions)
    attributions: dict[str, AttributionSums] = field(default_factory=dict)

    def report(self) -> str:
        versions = ", ".join(f"{k} v{v}" for k, v in self.versions.items())
        lines = [
            f"scoring run {self.run_id} (attempt {self.attempt}) as of {self.as_of}: {self.status}",
            f"  models: {versions}"
            + (f"; response scored for campaign kind {self.campaign_kind!r}" if "response" in self.versions else ""),
            *(f"  not scored: {k} (columns left null) - {v}" for k, v in self.missing.items()),
            *([f"  value per response = average order value x {self.response_value.describe()}"]
              if self.response_value is not None else []),
            f"  customers: {self.customers:,}; rows: "
            + ", ".join(f"{k} {v:,}" for k, v in self.rows.items()),
            f"  data fingerprint: {self.data_fingerprint}; feature snapshot: {self.snapshot}",
            "  time: " + ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items())
            + f" (total {sum(self.timings.values()):.1f}s)",
        ]
        if self.work:
            lines.append("  score + explain, seconds of work over the scoring threads: "
                         + ", ".join(f"{k} {v:.1f}s" for k, v in self.work.items()))
        return "\n".join(lines)


def make_run_id(as_of: date, versions: dict[str, str], campaign_kind: str | None) -> str:
    """Deterministic: the same as-of date, model versions and campaign kind give the same id."""
    key = f"{as_of:%Y-%m-%d}|" + "|".join(f"{k}={versions[k]}" for k in sorted(versions)) + f"|{campaign_kind}"
    return f"{as_of:%Y%m%d}-" + hashlib.sha256(key.encode()).hexdigest()[:10]


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (the snapshot's integrity in the lineage)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def snapshot_path(cfg: Config, run_id: str, attempt: int) -> Path:
    """Where an attempt keeps the features it scored."""
    return Path(cfg.serving.snapshot_dir) / f"{run_id}-attempt{attempt}.parquet"


def run_scoring(
    warehouse: Warehouse,
    cfg: Config,
    as_of: date,
    progress: Progress | None = None,
    margin: float | None = None,
    contact_cost: float | None = None,
    chunk_size: int | None = None,
    break_lock: bool = False,
    counter: Counter | None = None,
    any_date: bool = False,
) -> RunSummary:
    """Score every customer with history before `as_of` with the champion models.

    Args:
        warehouse: holds the canonical tables; receives the segment tables.
        cfg: the project configuration (features, MLflow store, threads, [serving]).
        as_of: the cutoff; features see rows strictly before it.
        progress: called with a one-line message at each stage and chunk.
        margin: share of the predicted value that is profit (default: [serving] margin).
        contact_cost: cost of one contact (default: [serving] contact_cost).
        chunk_size: customers scored and explained at a time (default: [serving] chunk_size).
        break_lock: take over a lock held by a process on another host (known to be gone).
        counter: called with (customers done, total) as scoring and explaining advance.
        any_date: score even when `as_of` is before the data or more than a horizon after it.

    Returns:
        The run's summary (status 'succeeded').

    Raises:
        ScoringError: another run holds the lock, or no customer has history before `as_of`.
        CutoffError: `as_of` is outside what the data can speak for (see `check_as_of`).
        RegistryError: no model has a champion.
    """
    if not any_date:  # before anything is written
        check_as_of(warehouse, as_of, cfg.features.horizon_days)
    started = time.perf_counter()
    loaded = champions(cfg)
    return score_with(warehouse, cfg, as_of, {k: m for k, (m, _) in loaded.items()},
                      {k: v for k, (_, v) in loaded.items()}, progress, margin, contact_cost, chunk_size,
                      load_seconds=time.perf_counter() - started, break_lock=break_lock, counter=counter)


def score_with(
    warehouse: Warehouse,
    cfg: Config,
    as_of: date,
    models: dict[str, LgbmModel],
    versions: dict[str, str],
    progress: Progress | None = None,
    margin: float | None = None,
    contact_cost: float | None = None,
    chunk_size: int | None = None,
    load_seconds: float = 0.0,
    break_lock: bool = False,
    counter: Counter | None = None,
) -> RunSummary:
    """`run_scoring` with the models already loaded (same arguments, plus models and versions)."""
    margin = cfg.serving.margin if margin is None else margin
    contact_cost = cfg.serving.contact_cost if contact_cost is None else contact_cost
    chunk_size = cfg.serving.chunk_size if chunk_size is None else chunk_size
    if chunk_size < 1:
        raise ScoringError(f"chunk size must be at least 1, got {chunk_size}")
    say = progress or (lambda _m: None)
    if not models:
        raise ScoringError("no champion model to score with; train and promote at least one")
    campaign_kind = default_campaign_kind(models["response"]) if "response" in models else None
    run_id = make_run_id(as_of, versions, campaign_kind)
    summary = RunSummary(run_id, 0, as_of, "running", dict(versions), campaign_kind,
                         missing=missing_reasons(models))
    summary.timings["load models"] = load_seconds
    summary.response_value = observed_response_value(warehouse, campaign_kind, as_of,
                                                     cfg.features.frequency_window_days)

    db = sink.database(warehouse)
    sink.claim_lock(db, run_id, break_lock=break_lock)
    try:
        summary.attempt = sink.start_attempt(db, {
            "run_id": run_id, "as_of": as_of,
            **{f"{k}_version": versions.get(k) for k in MODEL_NAMES},
            "missing_models": sink.missing_text(summary.missing),
            "response_value_k": summary.response_value.k,
            "response_value_source": summary.response_value.describe(),
            "campaign_kind": campaign_kind, "margin": margin, "contact_cost": contact_cost,
            "chunk_size": chunk_size, "reasons_per_model": cfg.serving.reasons_per_model,
        })
        summary.snapshot = snapshot_path(cfg, run_id, summary.attempt)
        try:
            _run(db, warehouse, cfg, models, margin, contact_cost, chunk_size, summary, say,
                 counter or (lambda _d, _n: None))
        except BaseException as e:
            summary.status = "failed"
            sink.mark_failed(db, run_id, summary.attempt, f"{type(e).__name__}: {e}")
            summary.snapshot.unlink(missing_ok=True)
            raise
    finally:
        sink.release_lock(db, run_id)
    summary.status = "succeeded"
    for old in summary.snapshot.parent.glob(f"{run_id}-attempt*.parquet"):  # superseded attempts
        if old != summary.snapshot:
            old.unlink(missing_ok=True)
    say(f"published run {run_id}: {summary.customers:,} customers")
    return summary


def _stage(db: sink._Db, run_id: str, result: ChunkResult, summary: RunSummary) -> int:
    """Stage one scored piece's rows; returns its customers. Adds its seconds and attributions to `summary`."""
    work = summary.work
    for name, sums in result.attributions.items():
        if name in summary.attributions:
            summary.attributions[name].add(sums)
        else:
            summary.attributions[name] = sums.copy()
    t = time.perf_counter()
    for name, frame in ((sink.SCORES, result.scores), (sink.SEGMENTS, result.segments),
                        (sink.REASONS, result.reasons)):
        frame.insert(0, "run_id", run_id)
        sink.stage(db, name, frame)
    for part in ("score", "explain", "reasons"):
        work[part] = work.get(part, 0.0) + result.seconds.get(part, 0.0)
    work["stage"] = work.get("stage", 0.0) + time.perf_counter() - t
    return len(result.scores)


def snapshot_btyd_params(path: Path, models: dict[str, LgbmModel], horizon_days: int,
                         window_days: int) -> dict | None:
    """BTYD parameters fitted once on a whole feature snapshot, for every chunk of the run.

    Reads only the columns the fit needs, so the whole population fits in memory while
    the features stay on disk; applying the result to each chunk gives the numbers a fit
    on the whole frame at once gives. None when no model reads a BTYD feature (models
    trained before those features existed). The horizon is recorded with the parameters.
    """
    if not any(c in m.numeric for m in models.values() for c in BTYD_FEATURES):
        return None
    inputs = pd.read_parquet(path, columns=btyd_input_columns(window_days))
    return {"horizon_days": int(horizon_days), **btyd_params(inputs, window_days=window_days)}


def _run(
    db: sink._Db, warehouse: Warehouse, cfg: Config, models: dict[str, LgbmModel],
    margin: float, contact_cost: float, chunk_size: int, summary: RunSummary, say: Progress, count: Counter,
) -> None:
    run_id, as_of, k = summary.run_id, summary.as_of, cfg.serving.reasons_per_model
    t = time.perf_counter()
    say(f"features as of {as_of} -> {summary.snapshot}")
    n = write_features(warehouse, as_of, cfg.features, summary.snapshot)
    if n == 0:
        raise ScoringError(f"no customer has transactions before {as_of}; choose a later --as-of")
    summary.customers = n
    summary.data_fingerprint = snapshot_fingerprint(summary.snapshot, as_of)
    sink.update_attempt(db, run_id, summary.attempt, snapshot_path=str(summary.snapshot.resolve()),
                        snapshot_sha256=file_sha256(summary.snapshot), data_fingerprint=summary.data_fingerprint)
    summary.response_value = summary.response_value.with_fallback(
        snapshot_median(summary.snapshot, summary.response_value.window_days))
    btyd = snapshot_btyd_params(summary.snapshot, models, cfg.features.horizon_days,
                                cfg.features.frequency_window_days)
    if btyd is not None:
        sink.update_attempt(db, run_id, summary.attempt, btyd_params=json.dumps(btyd))
        if "note" in btyd:
            say(btyd["note"])
    summary.timings["features"] = time.perf_counter() - t

    t = time.perf_counter()
    sink.reset_stage(db)
    done, chunks = 0, -(-n // (2048 * max(1, -(-chunk_size // 2048))))
    count(0, n)
    # Pieces are scored on `workers` threads at once, one thread each (TreeSHAP, LightGBM
    # and Arrow release the GIL), and staged here in order while the next ones compute.
    workers = max(1, max((m.num_threads for m in models.values()), default=1))
    per_piece = 1 if workers > 1 else None
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="score") as pool:
        for i, part in enumerate(iter_features(summary.snapshot, as_of, chunk_size), 1):
            if btyd is not None:
                part, _ = add_btyd_features(part, btyd["horizon_days"], btyd)
            pending: deque[Future] = deque()
            for start in range(0, len(part), PIECE):
                piece = part.iloc[start:start + PIECE].reset_index(drop=True)
                pending.append(pool.submit(score_chunk, piece, models, as_of, summary.campaign_kind, margin,
                                           contact_cost, k=k, response_value=summary.response_value,
                                           threads=per_piece))
                while len(pending) > workers or (pending and pending[0].done()):
                    done += _stage(db, run_id, pending.popleft().result(), summary)
                    count(done, n)
            while pending:
                done += _stage(db, run_id, pending.popleft().result(), summary)
                count(done, n)
            say(f"scored and explained {done:,} / {n:,} customers (chunk {i} of {chunks})")
            failpoint("staged-chunk")
    summary.timings["score + explain"] = time.perf_counter() - t

    t = time.perf_counter()
    say("deciles and tiers")
    sink.rank_stage(db)
    summary.rows = sink.staged_counts(db)
    expected = {sink.SCORES: n, sink.SEGMENTS: n, sink.REASONS: n * len(models) * k}
    if summary.rows != expected:  # a bug, never a data problem
        raise RuntimeError(f"staged rows {summary.rows} differ from the expected {expected}")
    summary.timings["rank"] = time.perf_counter() - t
    sink.update_attempt(db, run_id, summary.attempt, attributions=json.dumps(
        {name: sums.as_json() for name, sums in summary.attributions.items()}))

    t = time.perf_counter()
    say("publishing")
    sink.publish(db, run_id, summary.attempt, summary.rows, summary.data_fingerprint)
    summary.timings["publish"] = time.perf_counter() - t

"""The batch scorer on Spark: Parquet tables in, Parquet segment tables out.

`propensity score --engine spark` for data beyond one machine. The same steps as
`serving.batch` (as-of features -> champion models -> scores, deciles, tiers, reason
codes, segments), with the features from `features.spark_sql` (the DuckDB definitions
in Spark SQL) and the predictions from the logged pyfunc models through
`mlflow.pyfunc.spark_udf`, pinned to the champion *versions* resolved when the run
starts, so a promotion during the run cannot mix versions.

Output: one Parquet dataset per table under `output_dir/<table>/`, partitioned by
run_id (`customer_scores`, `customer_segments`, `score_reasons` and `scoring_runs`,
with the columns of the DuckDB tables in `serving.sink`), plus the run's feature
snapshot under `feature_snapshots/run_id=<run_id>/` (the lineage, laid out like the
DuckDB scorer's snapshot file: no as_of column). A run writes only its own partition:
a re-run of the same run_id (same as-of date, model versions and campaign kind)
replaces that partition and leaves other runs untouched.

Parquet has no transaction across tables, so `scoring_runs` holds one row per run_id
(its latest attempt), written 'running' first and 'succeeded' (or 'failed') last:
read a run's rows only when its record says 'succeeded'. Each table's partition is
replaced at the commit of its own Spark job (dynamic partition overwrite), so a job
that fails leaves that table's previous rows of the run in place.

Spark is an optional extra (`pip install 'propensity[spark]'`); nothing here imports
it at module import time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import socket
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from features import spark_sql
from features.btyd import BTYD_FEATURES, add_btyd_features, btyd_input_columns, btyd_params
from features.snapshots import SEGMENT_COLUMNS
from propensity.config import Config
from serving import sink
from serving.batch import make_run_id
from serving.registry import missing_reasons
from serving.response_value import ResponseValue, observed_spark, unobserved
from serving.score import REASON_COLUMNS
from serving.sink import DECILES, REASONS, RUNS, SCORE_COLUMN, SCORES, SEGMENTS, TIER_SQL, TIERS, ScoringError
from training.feature_sets import default_campaign_kind, with_campaign_kind
from training.models import LgbmModel
from training.track import CHAMPION, RegistryError, alias_version, configure, load_pyfunc_version

if TYPE_CHECKING:  # pyspark is an optional extra
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

MODELS = ("churn", "response", "value")
PUBLISHED = (SCORES, SEGMENTS, REASONS)
SNAPSHOTS = "feature_snapshots"
INSTALL_HINT = "install the spark extra: pip install 'propensity[spark]'"

# Columns the reason sentences read besides the features (see training.explain).
_CONTEXT_COLUMNS = ("recency_days", "gap_median_days", "needs_latest_dimension", "history_days")

# Spark type of every column of the segment tables (names and order: serving.sink.columns).
_SPARK_TYPES = {
    "run_id": "string", "attempt": "int", "as_of": "date", "started_at": "timestamp_ntz",
    "finished_at": "timestamp_ntz", "status": "string", "churn_version": "string", "response_version": "string",
    "value_version": "string", "campaign_kind": "string", "margin": "double", "contact_cost": "double",
    "chunk_size": "bigint", "reasons_per_model": "int", "customers": "bigint", "score_rows": "bigint",
    "segment_rows": "bigint", "reason_rows": "bigint", "data_fingerprint": "string", "snapshot_path": "string",
    "snapshot_sha256": "string", "host": "string", "pid": "int", "error": "string", "missing_models": "string",
    "response_value_k": "double", "response_value_source": "string", "response_value": "double",
    "btyd_params": "string", "attributions": "string",
    "customer_id": "string", "churn_risk": "double", "response_prob": "double", "predicted_value": "double",
    "expected_profit": "double", "churn_decile": "smallint", "response_decile": "smallint",
    "value_decile": "smallint", "profit_decile": "smallint", "churn_tier": "string", "response_tier": "string",
    "predicted_value_tier": "string", "profit_tier": "string",
    "r_score": "smallint", "f_score": "smallint", "m_score": "smallint", "w_score": "smallint",
    "rfmw_segment": "string", "value_tier": "string", "loyalty_tier": "string", "activity": "string",
    "risk_tier": "string",
    "model": "string", "rank": "smallint", "feature": "string", "feature_value": "string",
    "contribution": "double", "scale": "string", "effect": "double", "text": "string",
}


def table_schema(name: str) -> StructType:
    """The Spark schema of segment table `name`: the columns of `serving.sink`, in order."""
    from pyspark.sql.types import StructType

    cols = sink.columns(name)
    unknown = [c for c in cols if c not in _SPARK_TYPES]
    if unknown:  # serving.sink gained a column this module does not know yet: a bug
        raise RuntimeError(f"no Spark type for column(s) {', '.join(unknown)} of {name}")
    return StructType.fromDDL(", ".join(f"`{c}` {_SPARK_TYPES[c]}" for c in cols))


@dataclass
class SparkRunSummary:
    """What a Spark scoring run did: ids, versions, row counts, time per stage, output paths."""

    run_id: str
    as_of: date
    versions: dict[str, str]
    campaign_kind: str | None
    attempt: int = 1
    status: str = "running"
    customers: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, Path] = field(default_factory=dict)
    data_fingerprint: str = ""
    snapshot: Path | None = None
    spark_version: str = ""

    def report(self) -> str:
        """A few lines for the CLI, like `serving.batch.RunSummary.report`."""
        versions = ", ".join(f"{k} v{v}" for k, v in self.versions.items())
        lines = [
            f"scoring run {self.run_id} (attempt {self.attempt}) as of {self.as_of}: {self.status} "
            f"(Spark {self.spark_version})",
            f"  models: {versions}; response scored for campaign kind {self.campaign_kind!r}",
            f"  customers: {self.customers:,}; rows: " + ", ".join(f"{k} {v:,}" for k, v in self.rows.items()),
            f"  data fingerprint: {self.data_fingerprint}; feature snapshot: {self.snapshot}",
            "  output: " + ", ".join(f"{k} {p}" for k, p in self.outputs.items()),
            "  time: " + ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items())
            + f" (total {sum(self.timings.values()):.1f}s)",
        ]
        return "\n".join(lines)


# -- set-up --------------------------------------------------------------------------------

def require_pyspark() -> None:
    """Raise ScoringError with the install command when pyspark is not importable."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise ScoringError(f"pyspark is not installed; {INSTALL_HINT}") from None


def start_session(master: str) -> SparkSession:
    """A Spark session for one run: UTC clock, no console progress bars (stages are reported).

    In local mode the Python workers run this interpreter, which has the project and its
    dependencies installed, unless PYSPARK_PYTHON names another (PySpark reads the
    variable when the session starts; its default, `python3` on the PATH, may lack them).
    """
    from pyspark.sql import SparkSession

    if master.startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(master)
        .appName("propensity-score")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.showConsoleProgress", "false")
    )
    try:
        session = builder.getOrCreate()
    except Exception as e:  # Java start-up errors carry pages of text
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ScoringError(
            f"cannot start Spark on {master} ({first}); check that Java 17 is installed and JAVA_HOME points at it"
        ) from None
    session.sparkContext.setLogLevel("ERROR")  # e.g. the single-partition warning of the global ranks
    return session


def champion_versions(cfg: Config) -> dict[str, str]:
    """name -> the version `champion` points at now, for those of churn, response and value that have one.

    Raises:
        RegistryError: no model has a champion (train and promote one first).
    """
    configure(cfg.mlflow, cfg.training.experiment)
    out = {}
    for name in MODELS:
        info = alias_version(name, CHAMPION)
        if info is not None:
            out[name] = str(info["version"])
    if not out:
        raise RegistryError(f"no model has a @{CHAMPION} yet; train and promote at least one")
    return out


def model_uri(name: str, version: str) -> str:
    """The registry URI of one pinned version."""
    return f"models:/{name}/{version}"


def load_model(name: str, version: str) -> LgbmModel:
    """The LightGBM model inside the logged pyfunc of `name` version `version`, on one thread."""
    model = load_pyfunc_version(name, version).unwrap_python_model().model
    model.num_threads = 1  # one Spark task per core: LightGBM must not start more threads
    return model


# -- stages --------------------------------------------------------------------------------

def model_inputs(model: LgbmModel, campaign_kind: str | None) -> list:
    """Spark columns in the pyfunc's signature shape: numbers as double, categories as text.

    The response model also reads the campaign kind (`training.feature_sets.with_campaign_kind`).
    """
    from pyspark.sql import functions as F

    cols = [F.col(c).cast("double").alias(c) for c in model.numeric]
    for c in model.categorical:
        if c == "campaign_kind":
            cols.append(F.lit(campaign_kind or default_campaign_kind(model)).cast("string").alias(c))
        else:
            cols.append(F.col(c).cast("string").alias(c))
    return cols


@contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Hide one logger's warnings for the duration of the block."""
    log = logging.getLogger(logger)
    before = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(before)


def _shape(frame: DataFrame, name: str) -> DataFrame:
    """The columns of segment table `name`, in its order and with its types."""
    from pyspark.sql import functions as F

    return frame.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in table_schema(name).fields])


def score_frame(
    spark: SparkSession, features: DataFrame, versions: dict[str, str], models: dict[str, LgbmModel],
    campaign_kind: str | None, run_id: str, margin: float, contact_cost: float,
    response_value: ResponseValue | None = None,
) -> DataFrame:
    """customer_scores rows: pyfunc predictions, expected profit, deciles and tiers.

    The value per response as `serving.response_value.value_per_response` (the AOV
    feature, the run's median where null, x k; default k = 1 and no fallback); expected
    profit as `serving.score.expected_profit` (p * value per response * margin - cost, in
    that order); deciles as `serving.sink.rank_stage`: ntile(10) over the score, ties by
    customer id, 10 = highest; tiers by `serving.sink.TIER_SQL`.
    """
    import mlflow
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    predictions = []
    for name in MODELS:
        if name not in versions:  # no champion: the column stays null, as in the DuckDB scorer
            predictions.append(F.lit(None).cast("double").alias(SCORE_COLUMN[name]))
            continue
        with _quiet("mlflow.pyfunc"):  # its advice against env_manager="local": the project's env is the one
            udf = mlflow.pyfunc.spark_udf(spark, model_uri(name, versions[name]), result_type="double",
                                          env_manager="local")
        predictions.append(udf(F.struct(*model_inputs(models[name], campaign_kind))).alias(SCORE_COLUMN[name]))
    value = response_value or unobserved(campaign_kind, None, "not measured")
    fallback = F.lit(None).cast("double") if math.isnan(value.fallback) else F.lit(float(value.fallback))
    per_response = (F.coalesce(F.col(value.feature).cast("double"), fallback) * F.lit(float(value.k)))
    scores = features.select("customer_id", "as_of", *predictions, per_response.alias("response_value"))
    scores = scores.withColumn(
        SCORE_COLUMN["profit"],
        F.col(SCORE_COLUMN["response"]) * F.col("response_value") * F.lit(float(margin))
        - F.lit(float(contact_cost)),
    )
    for key, col in DECILES.items():
        by = (Window.partitionBy(F.col(col).isNull())
              .orderBy(F.col(col).asc_nulls_last(), F.col("customer_id").asc_nulls_last()))
        scores = scores.withColumn(f"{key}_decile", F.when(F.col(col).isNull(), F.lit(None))
                                   .otherwise(F.ntile(10).over(by)))
    for key, tier in TIERS.items():
        scores = scores.withColumn(tier, F.expr(TIER_SQL.format(d=f"{key}_decile")))
    return _shape(scores.withColumn("run_id", F.lit(run_id)), SCORES)


def segment_frame(features: DataFrame, run_id: str) -> DataFrame:
    """customer_segments rows: the segment columns of the features."""
    from pyspark.sql import functions as F

    segments = features.select("customer_id", "as_of", *SEGMENT_COLUMNS).withColumn("run_id", F.lit(run_id))
    return _shape(segments, SEGMENTS)


def _explainer(
    models: dict[str, LgbmModel], campaign_kind: str | None, run_id: str, k: int
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """The function mapInPandas runs on each partition: every model's reason codes per batch."""

    def explain(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from training.explain import reason_codes

        for frame in batches:
            parts = [
                reason_codes(model, with_campaign_kind(model, frame, campaign_kind), name, k=k)[REASON_COLUMNS]
                for name, model in models.items()
            ]
            out = pd.concat(parts, ignore_index=True)
            out["rank"] = out["rank"].astype("int16")
            out.insert(0, "run_id", run_id)
            # pandas 3 keeps text in Arrow-backed columns, which PySpark 4.3 cannot hand to
            # Arrow ("Cannot convert ChunkedArray to Array"); plain objects convert.
            text = [c for c in out.columns if pd.api.types.is_string_dtype(out[c])]
            yield out.astype({c: object for c in text})

    return explain


def reason_frame(
    features: DataFrame, models: dict[str, LgbmModel], campaign_kind: str | None, run_id: str, k: int
) -> DataFrame:
    """score_reasons rows: the k strongest SHAP reasons per customer and model.

    `training.explain.reason_codes` on each Arrow batch of each partition (memory bounded
    by `spark.sql.execution.arrow.maxRecordsPerBatch`), with the LightGBM model inside the
    same pyfunc versions the scores come from.
    """
    wanted = {"customer_id", *_CONTEXT_COLUMNS}
    for model in models.values():
        wanted.update(c for c in model.features if c != "campaign_kind")
    columns = [c for c in features.columns if c in wanted]
    ordered = {name: models[name] for name in MODELS if name in models}
    return features.select(*columns).mapInPandas(_explainer(ordered, campaign_kind, run_id, k), table_schema(REASONS))


def fingerprint(features: DataFrame, as_of: date) -> tuple[int, str]:
    """(rows, a short order-free hash of the feature rows), in one pass over the snapshot.

    Like `features.snapshots.snapshot_fingerprint` (a sum of row hashes), but with Spark's
    xxhash64, so the two engines' values differ for the same rows.
    """
    from pyspark.sql import functions as F

    row_hash = F.xxhash64(*[F.col(f"`{c}`") for c in features.columns]).cast("decimal(38,0)")
    row = features.agg(F.count(F.lit(1)).alias("n"), F.sum(row_hash).alias("h")).collect()[0]
    n = int(row["n"])
    key = f"{as_of:%Y-%m-%d}|{','.join(features.columns)}|{n}|{row['h'] or 0}"
    return n, hashlib.sha256(key.encode()).hexdigest()[:16]


# -- output --------------------------------------------------------------------------------

def partition_path(output_dir: Path, table: str, run_id: str) -> Path:
    """The folder of one run's rows of one table."""
    return Path(output_dir) / table / f"run_id={run_id}"


def write_partition(frame: DataFrame, folder: Path) -> None:
    """Write `frame` under `folder`, partitioned by run_id, replacing only its runs' partitions."""
    (frame.write.mode("overwrite").option("partitionOverwriteMode", "dynamic")
     .partitionBy("run_id").parquet(str(folder)))


def partition_rows(spark: SparkSession, folder: Path) -> int:
    """Rows in one partition folder (0 when it does not exist)."""
    return spark.read.parquet(str(folder)).count() if folder.exists() else 0


def folder_sha256(folder: Path) -> str:
    """SHA-256 over the names and bytes of a folder's Parquet part files, in name order."""
    digest = hashlib.sha256()
    for part in sorted(Path(folder).glob("*.parquet")):
        digest.update(part.name.encode())
        with open(part, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def previous_attempt(spark: SparkSession, output_dir: Path, run_id: str) -> int:
    """The attempt number recorded for `run_id` so far (0 when none)."""
    folder = partition_path(output_dir, RUNS, run_id)
    if not folder.exists():
        return 0
    from pyspark.sql import functions as F

    value = spark.read.parquet(str(folder)).agg(F.max("attempt")).collect()[0][0]
    return int(value or 0)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def write_run_record(spark: SparkSession, output_dir: Path, record: dict[str, Any]) -> None:
    """The run's `scoring_runs` row (one per run_id: its latest attempt), replacing the earlier one."""
    schema = table_schema(RUNS)
    row = tuple(record.get(f.name) for f in schema.fields)
    write_partition(spark.createDataFrame([row], schema).coalesce(1), Path(output_dir) / RUNS)


# -- the run -------------------------------------------------------------------------------

def run_spark_scoring(
    cfg: Config,
    as_of: date,
    input_dir: Path,
    output_dir: Path,
    *,
    margin: float | None = None,
    contact_cost: float | None = None,
    progress: Progress | None = None,
    master: str = "local[2]",
    spark: SparkSession | None = None,
) -> SparkRunSummary:
    """Score every customer with history before `as_of` with the champion models, on Spark.

    Args:
        cfg: the project configuration (features, MLflow store, [serving]).
        as_of: the cutoff; features see rows strictly before it.
        input_dir: folder of canonical tables as `<table>.parquet` (transactions required).
        output_dir: receives `<table>/run_id=<run_id>/` Parquet partitions.
        margin: share of the predicted value that is profit (default: [serving] margin).
        contact_cost: cost of one contact (default: [serving] contact_cost).
        progress: called with a one-line message at each stage.
        master: Spark master when a session is started here (ignored when `spark` is given).
        spark: an existing session to use (left running); None starts one and stops it after.

    Returns:
        The run's summary (status 'succeeded').

    Raises:
        WarehouseError: the input folder or its transactions.parquet is missing.
        ScoringError: pyspark is not installed, Spark cannot start, or no customer has
            history before `as_of`.
        RegistryError: a model has no champion.
    """
    with warnings.catch_warnings():
        # PySpark 4.3 warns on every pandas UDF that pandas 3 is "not fully supported";
        # the parity test checks the results, so the warning is only noise here.
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
        return _score(cfg, as_of, input_dir, output_dir, margin, contact_cost, progress, master, spark)


def _score(
    cfg: Config, as_of: date, input_dir: Path, output_dir: Path, margin: float | None, contact_cost: float | None,
    progress: Progress | None, master: str, spark: SparkSession | None,
) -> SparkRunSummary:
    say = progress or (lambda _m: None)
    margin = cfg.serving.margin if margin is None else margin
    contact_cost = cfg.serving.contact_cost if contact_cost is None else contact_cost
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    spark_sql.input_files(input_dir)  # fail before the slow parts
    require_pyspark()
    timings: dict[str, float] = {}

    t = time.perf_counter()
    versions = champion_versions(cfg)
    say("champion models: " + ", ".join(f"{k} v{v}" for k, v in versions.items()))
    models = {name: load_model(name, versions[name]) for name in MODELS if name in versions}
    campaign_kind = default_campaign_kind(models["response"]) if "response" in models else None
    missing = missing_reasons(models)
    run_id = make_run_id(as_of, versions, campaign_kind)
    timings["load models"] = time.perf_counter() - t

    own_session = spark is None
    if own_session:
        t = time.perf_counter()
        say(f"starting Spark ({master})")
        spark = start_session(master)
        timings["start spark"] = time.perf_counter() - t
    summary = SparkRunSummary(
        run_id, as_of, dict(versions), campaign_kind, timings=timings,
        outputs={name: output_dir / name for name in (*PUBLISHED, RUNS)},
        snapshot=partition_path(output_dir, SNAPSHOTS, run_id), spark_version=spark.version,
    )
    try:
        summary.attempt = previous_attempt(spark, output_dir, run_id) + 1
        record: dict[str, Any] = {
            "run_id": run_id, "attempt": summary.attempt, "as_of": as_of, "started_at": _now(),
            "status": "running", **{f"{k}_version": versions.get(k) for k in MODELS},
            "missing_models": sink.missing_text(missing),
            "campaign_kind": campaign_kind, "margin": float(margin), "contact_cost": float(contact_cost),
            "reasons_per_model": cfg.serving.reasons_per_model, "host": socket.gethostname(), "pid": os.getpid(),
        }
        write_run_record(spark, output_dir, record)
        try:
            _run(spark, cfg, input_dir, output_dir, models, margin, contact_cost, summary, record, say)
        except BaseException as e:
            summary.status = "failed"
            record.update(status="failed", finished_at=_now(), error=f"{type(e).__name__}: {e}"[:2000])
            try:
                write_run_record(spark, output_dir, record)
            except Exception as again:  # Spark itself may be gone; the first error is the one to see
                log.warning("could not record the failure of run %s: %s", run_id, again)
            raise
    finally:
        if own_session:
            spark.stop()
    summary.status = "succeeded"
    say(f"published run {run_id}: {summary.customers:,} customers")
    return summary


def spark_btyd_params(features: Any, models: dict[str, LgbmModel], cfg: Config) -> dict | None:
    """BTYD parameters fitted once on the whole snapshot, as `serving.batch.snapshot_btyd_params`.

    The five input columns are collected to the driver (about 40 bytes a customer) and
    fitted there. None when no model reads a BTYD feature.
    """
    if not any(c in m.numeric for m in models.values() for c in BTYD_FEATURES):
        return None
    window = cfg.features.frequency_window_days
    inputs = features.select(*btyd_input_columns(window)).toPandas()
    return {"horizon_days": int(cfg.features.horizon_days), **btyd_params(inputs, window_days=window)}


def with_btyd_columns(features: Any, params: dict) -> Any:
    """The features with the BTYD columns from `params`, computed per partition and joined by customer."""
    columns = ["customer_id", *btyd_input_columns(int(params.get("window_days", 365)))]

    def add(parts: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for part in parts:
            yield add_btyd_features(part, params["horizon_days"], params)[0][["customer_id", *BTYD_FEATURES]]

    schema = "customer_id string, " + ", ".join(f"{c} double" for c in BTYD_FEATURES)
    return features.join(features.select(*columns).mapInPandas(add, schema), "customer_id", "left")


def _run(
    spark: SparkSession, cfg: Config, input_dir: Path, output_dir: Path, models: dict[str, LgbmModel],
    margin: float, contact_cost: float, summary: SparkRunSummary, record: dict[str, Any], say: Progress,
) -> None:
    from pyspark.sql import functions as F

    run_id, as_of, k, timings = summary.run_id, summary.as_of, cfg.serving.reasons_per_model, summary.timings
    snapshot = partition_path(output_dir, SNAPSHOTS, run_id)

    t = time.perf_counter()
    say(f"features as of {as_of} (Spark SQL) -> {snapshot}")
    raw = spark_sql.features_from_parquet(spark, input_dir, as_of, cfg.features, with_labels=False)
    # The segment ranks gather every row in one partition: spread them again for the models.
    # Static overwrite of the run's own folder: an empty result leaves an empty snapshot.
    (raw.drop("as_of").repartition(spark.sparkContext.defaultParallelism, "customer_id")
     .write.mode("overwrite").parquet(str(snapshot)))
    features = spark.read.parquet(str(snapshot))
    features = features.select("customer_id", F.lit(as_of).alias("as_of"),
                               *[c for c in features.columns if c != "customer_id"])
    n, summary.data_fingerprint = fingerprint(features.drop("as_of"), as_of)
    if n == 0:
        raise ScoringError(f"no customer has transactions before {as_of}; choose a later --as-of")
    summary.customers = n
    record.update(snapshot_path=str(snapshot.resolve()), snapshot_sha256=folder_sha256(snapshot),
                  data_fingerprint=summary.data_fingerprint, customers=n)
    btyd = spark_btyd_params(features, models, cfg)
    if btyd is not None:
        record["btyd_params"] = json.dumps(btyd)
        features = with_btyd_columns(features, btyd)
    timings["features"] = time.perf_counter() - t
    say(f"features: {n:,} customers")

    t = time.perf_counter()
    say("scores (pyfunc spark_udf: churn, response, value), expected profit, deciles and tiers")
    value = observed_spark(spark, summary.campaign_kind, as_of, cfg.features.frequency_window_days)
    median = features.agg(F.median(F.col(value.feature).cast("double"))).collect()[0][0]
    value = value.with_fallback(median)
    record.update(response_value_k=value.k, response_value_source=value.describe())
    say(f"value per response = average order value x {value.describe()}")
    write_partition(score_frame(spark, features, summary.versions, models, summary.campaign_kind, run_id, margin,
                                contact_cost, value), output_dir / SCORES)
    timings["score"] = time.perf_counter() - t

    t = time.perf_counter()
    say("segments")
    write_partition(segment_frame(features, run_id), output_dir / SEGMENTS)
    timings["segments"] = time.perf_counter() - t

    t = time.perf_counter()
    say(f"reason codes (SHAP, top {k} per model) for {n:,} customers")
    write_partition(reason_frame(features, models, summary.campaign_kind, run_id, k), output_dir / REASONS)
    timings["explain"] = time.perf_counter() - t

    t = time.perf_counter()
    say("publishing")
    summary.rows = {name: partition_rows(spark, partition_path(output_dir, name, run_id)) for name in PUBLISHED}
    expected = {SCORES: n, SEGMENTS: n, REASONS: n * len(models) * k}
    if summary.rows != expected:  # a bug, never a data problem
        raise RuntimeError(f"written rows {summary.rows} differ from the expected {expected}")
    record.update(status="succeeded", finished_at=_now(), score_rows=n, segment_rows=n,
                  reason_rows=summary.rows[REASONS])
    write_run_record(spark, output_dir, record)
    timings["publish"] = time.perf_counter() - t

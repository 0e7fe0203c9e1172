"""The Spark engine against the DuckDB one on the same sample world.

Features (Spark SQL vs DuckDB SQL), predictions through `mlflow.pyfunc.spark_udf` vs the
DuckDB scorer, deciles, reasons and segments; idempotent re-runs of the Parquet output;
one-line errors. One local[2] Spark session for the module.
"""

from __future__ import annotations

import json

import os
import shutil
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import spark_sql
from features.load import Warehouse, WarehouseError
from features.snapshots import SEGMENT_COLUMNS, build_features
from features.synth import SynthConfig
from features.synth_import import load_sample_world
from propensity.config import project_in
from serving import sink
from serving.batch import run_scoring
from serving.sink import ScoringError
from serving.spark_engine import SparkRunSummary, run_spark_scoring
from training.track import RegistryError

# The modules above import pyspark only when they run; the tests need it.
pytest.importorskip(
    "pyspark", reason="pyspark is not installed; install the spark extra (pip install 'propensity[spark]')"
)

pytestmark = [
    pytest.mark.spark,
    # PySpark 4.3 warns that pandas 3 is "not fully supported" and calls a deprecated
    # pandas keyword; both come from inside PySpark (see notes/STACK.md), not from us.
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]

CUSTOMERS = 1500
AS_OF = date(2025, 6, 1)  # the scoring date
EARLY = date(2023, 9, 1)  # eight months in: part of the customers have a needs evaluation
LABELLED = date(2025, 1, 1)  # a cutoff with a complete label window
PREDICTIONS = ("churn_risk", "response_prob", "predicted_value", "expected_profit")
DECILES = ("churn_decile", "response_decile", "value_decile", "profit_decile")
TIERS = ("churn_tier", "response_tier", "predicted_value_tier", "profit_tier")


@pytest.fixture(scope="module")
def spark():
    """One local[2] session for the module (UTC clock; workers run this interpreter)."""
    from pyspark.sql import SparkSession

    with pytest.MonkeyPatch.context() as env:
        env.setenv("SPARK_LOCAL_IP", os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"))
        env.setenv("PYSPARK_PYTHON", os.environ.get("PYSPARK_PYTHON", sys.executable))
        session = (
            SparkSession.builder.master("local[2]")
            .appName("propensity-tests")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .getOrCreate()
        )
        session.sparkContext.setLogLevel("ERROR")
        yield session
        session.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A sample world exported to Parquet, three small champions, and a DuckDB scoring run as of AS_OF."""
    from training.pipeline import promote_models, train_and_log

    folder = tmp_path_factory.mktemp("spark")
    cfg = project_in(folder)
    # Small models train in seconds; they still split on categories (needs, attributes, campaign kind).
    cfg = cfg.model_copy(update={"training": cfg.training.model_copy(
        update={"max_rounds": 60, "early_stopping_rounds": 15, "num_leaves": 15, "min_child_samples": 20})})
    wh = Warehouse(cfg.warehouse.url)
    load_sample_world(wh, SynthConfig(customers=CUSTOMERS, seed=1))
    parquet = folder / "parquet"
    wh.export_parquet(parquet)
    train_and_log(["churn", "response", "value"], wh, cfg)
    promote_models(["churn", "response", "value"], wh, cfg, margin=0.0, force=True)  # small world: past the evidence checks
    duck = run_scoring(wh, cfg, AS_OF)
    yield {"cfg": cfg, "wh": wh, "parquet": parquet, "folder": folder, "duck": duck}
    wh.close()


@pytest.fixture(scope="module")
def spark_run(world, spark):
    """One Spark scoring run as of AS_OF on the exported Parquet."""
    messages: list[str] = []
    output = world["folder"] / "spark_out"
    summary = run_spark_scoring(world["cfg"], AS_OF, world["parquet"], output, margin=0.3, contact_cost=1.0,
                                progress=messages.append, spark=spark)
    return {"summary": summary, "messages": messages, "output": output}


def _read(output: Path, table: str, keys: list[str]) -> pd.DataFrame:
    """A Parquet segment table as pandas (run_id from the partition folders), sorted by keys."""
    frame = pd.read_parquet(output / table)
    frame["run_id"] = frame["run_id"].astype(str)
    return frame.sort_values(keys).reset_index(drop=True)


def _duck(wh: Warehouse, view: str, keys: list[str]) -> pd.DataFrame:
    return wh.query(f"select * from {view} order by {', '.join(keys)}")


def _text(s: pd.Series) -> list:
    return [None if pd.isna(v) else str(v) for v in s]


def _assert_same_features(duck: pd.DataFrame, spark_frame) -> None:
    """Same columns in the same order; integers, text and categoricals exact; floats within 1e-9 relative."""
    from pyspark.sql.types import LongType, StringType

    types = {f.name: f.dataType for f in spark_frame.schema.fields}
    got = spark_frame.toPandas().sort_values("customer_id").reset_index(drop=True)
    assert list(got.columns) == list(duck.columns)
    assert len(got) == len(duck) and got["customer_id"].tolist() == duck["customer_id"].tolist()
    assert (pd.to_datetime(got["as_of"]) == duck["as_of"]).all()
    for c in duck.columns:
        if c in ("customer_id", "as_of"):
            continue
        d, s = duck[c], got[c]
        if pd.api.types.is_float_dtype(d):
            np.testing.assert_allclose(s.to_numpy(dtype=float), d.to_numpy(dtype=float), rtol=1e-9, atol=0,
                                       equal_nan=True, err_msg=c)
        elif pd.api.types.is_integer_dtype(d):
            assert isinstance(types[c], LongType), (c, types[c])  # DuckDB's BIGINT
            pd.testing.assert_series_equal(s.astype("Int64"), d.astype("Int64"), check_names=False, obj=c)
        else:
            assert isinstance(types[c], StringType), (c, types[c])
            assert _text(s) == _text(d), c


# -- features ------------------------------------------------------------------------------

@pytest.mark.parametrize("as_of", [AS_OF, EARLY], ids=["scoring-date", "early"])
def test_features_equal_duckdb(world, spark, as_of: date) -> None:
    cfg, wh = world["cfg"], world["wh"]
    fcfg = cfg.features
    if as_of == EARLY:  # another horizon, and the season features with holidays of both kinds
        fcfg = fcfg.model_copy(update={"horizon_days": 45, "horizon_features": True, "season_features": True,
                                       "holidays": ("12-25", "03-01", "2031-01-01")})
    duck = build_features(wh, as_of, fcfg, with_labels=False)
    if as_of == EARLY:
        assert {"frequency_45d", "cutoff_month", "days_to_holiday"} <= set(duck.columns)
    evaluated = duck["needs_evaluations_total"] > 0
    assert 0 < evaluated.sum() < len(duck)  # both kinds of customer are compared
    assert duck["needs_latest_level"].notna().sum() == evaluated.sum()
    assert duck["attr_region"].notna().all() and duck["gap_median_days"].isna().any()
    assert set(SEGMENT_COLUMNS) <= set(duck.columns)
    frame = spark_sql.features_from_parquet(spark, world["parquet"], as_of, fcfg, with_labels=False)
    _assert_same_features(duck, frame)


def test_features_with_labels_equal_duckdb(world, spark) -> None:
    cfg, wh = world["cfg"], world["wh"]
    duck = build_features(wh, LABELLED, cfg.features, with_labels=True)
    assert duck["label_response"].notna().any() and duck["label_churn"].between(0, 1).all()
    frame = spark_sql.features_from_parquet(spark, world["parquet"], LABELLED, cfg.features, with_labels=True)
    got = frame.toPandas().sort_values("customer_id").reset_index(drop=True)
    assert list(got.columns) == list(duck.columns)
    for c in ("label_churn", "label_purchases", "label_contacted", "label_response"):
        pd.testing.assert_series_equal(got[c].astype("Int64"), duck[c].astype("Int64"), check_names=False, obj=c)
    np.testing.assert_allclose(got["label_value"], duck["label_value"], rtol=1e-9, atol=0)


def test_features_from_transactions_only(world, spark, tmp_path) -> None:
    """Optional tables absent: the stand-ins give the same features as DuckDB's."""
    cfg = world["cfg"]
    only = tmp_path / "only"
    only.mkdir()
    shutil.copy(world["parquet"] / "transactions.parquet", only)
    with Warehouse(f"duckdb:///{tmp_path / 'tx.duckdb'}") as wh:
        wh.duck().execute(f"create table transactions as select * from read_parquet('{only / 'transactions.parquet'}')")
        duck = build_features(wh, AS_OF, cfg.features, with_labels=False)
    assert (duck["needs_evaluations_total"] == 0).all()
    assert not any(c.startswith("attr_") for c in duck.columns)
    _assert_same_features(duck, spark_sql.features_from_parquet(spark, only, AS_OF, cfg.features))


# -- scores, reasons, segments ---------------------------------------------------------------

def test_predictions_equal_duckdb(world, spark_run) -> None:
    s, duck = spark_run["summary"], world["duck"]
    assert s.run_id == duck.run_id and s.versions == duck.versions and s.campaign_kind == duck.campaign_kind
    want = _duck(world["wh"], "current_customer_scores", ["customer_id"])
    got = _read(spark_run["output"], sink.SCORES, ["customer_id"])
    assert got["customer_id"].tolist() == want["customer_id"].tolist()
    assert len(got) == s.customers == duck.customers
    for c in PREDICTIONS:
        np.testing.assert_allclose(got[c], want[c], rtol=0, atol=1e-9, err_msg=c)
    for c in DECILES:
        assert got[c].tolist() == want[c].tolist(), c
    for c in TIERS:
        assert got[c].tolist() == want[c].tolist(), c
    # expected profit by hand for one customer: P(response) x value per response x margin - cost
    np.testing.assert_allclose(got["response_value"], want["response_value"], rtol=0, atol=1e-9)
    row = got.iloc[7]
    assert row["expected_profit"] == pytest.approx(row["response_prob"] * row["response_value"] * 0.3 - 1.0, rel=1e-12)
    runs = pd.read_parquet(spark_run["output"] / sink.RUNS).iloc[0]
    duck_run = world["wh"].query("select * from scoring_runs where status = 'succeeded'").iloc[0]
    assert runs["response_value_k"] == pytest.approx(duck_run["response_value_k"], rel=1e-12)
    assert runs["response_value_source"] == duck_run["response_value_source"]
    # BTYD features: fitted once on each engine's whole snapshot, the same parameters
    assert json.loads(runs["btyd_params"]) == pytest.approx(json.loads(duck_run["btyd_params"]), rel=1e-12)
    assert runs["response_value_source"].startswith("k = ") and "contacts.revenue" in runs["response_value_source"]
    assert (got["run_id"] == s.run_id).all() and (pd.to_datetime(got["as_of"]) == pd.Timestamp(AS_OF)).all()


def test_reasons_equal_duckdb(world, spark_run) -> None:
    keys = ["customer_id", "model", "rank"]
    want = _duck(world["wh"], "current_score_reasons", keys)
    got = _read(spark_run["output"], sink.REASONS, keys)
    k = world["cfg"].serving.reasons_per_model
    assert len(got) == len(want) == spark_run["summary"].customers * 3 * k
    for c in ("customer_id", "model", "feature", "feature_value", "scale", "text"):
        assert got[c].tolist() == want[c].tolist(), c
    assert got["rank"].tolist() == want["rank"].tolist()
    np.testing.assert_allclose(got["contribution"], want["contribution"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(got["effect"], want["effect"], rtol=0, atol=1e-9)


def test_segments_equal_duckdb(world, spark_run) -> None:
    want = _duck(world["wh"], "current_customer_segments", ["customer_id"])
    got = _read(spark_run["output"], sink.SEGMENTS, ["customer_id"])
    for c in ("customer_id", *SEGMENT_COLUMNS):
        assert got[c].tolist() == want[c].tolist(), c
    assert set(got["r_score"]) == {1, 2, 3, 4, 5}


def test_tables_have_the_duckdb_columns(world, spark_run) -> None:
    wh = world["wh"]
    for table in (*sink.PUBLISHED, sink.RUNS):
        got = pd.read_parquet(spark_run["output"] / table)
        duck_columns = list(wh.query(f"select * from {table} limit 0").columns)
        assert sorted(got.columns) == sorted(duck_columns) == sorted(sink.columns(table)), table


def test_run_record_progress_and_report(world, spark_run) -> None:
    s: SparkRunSummary = spark_run["summary"]
    run = pd.read_parquet(spark_run["output"] / sink.RUNS)
    assert len(run) == 1
    r = run.iloc[0]
    assert str(r["run_id"]) == s.run_id and r["status"] == "succeeded" and r["attempt"] == 1
    assert r["customers"] == r["score_rows"] == r["segment_rows"] == s.customers
    assert r["reason_rows"] == s.customers * 3 * world["cfg"].serving.reasons_per_model
    assert [r["churn_version"], r["response_version"], r["value_version"]] == [s.versions[k] for k in
                                                                                ("churn", "response", "value")]
    assert r["data_fingerprint"] == s.data_fingerprint and len(s.data_fingerprint) == 16
    assert Path(r["snapshot_path"]).is_dir() and len(r["snapshot_sha256"]) == 64
    assert pd.isna(r["error"]) and r["finished_at"] >= r["started_at"]
    # the snapshot holds the features the models read: DuckDB's, row for row
    snapshot = pd.read_parquet(r["snapshot_path"]).sort_values("customer_id").reset_index(drop=True)
    duck = build_features(world["wh"], AS_OF, world["cfg"].features, with_labels=False).drop(columns="as_of")
    assert list(snapshot.columns) == list(duck.columns) and len(snapshot) == len(duck)
    np.testing.assert_allclose(snapshot["spend_365d"], duck["spend_365d"], rtol=1e-9)
    messages = spark_run["messages"]
    assert messages[0].startswith("champion models: churn v")
    assert any(m.startswith(f"features as of {AS_OF}") for m in messages)
    assert messages[-1] == f"published run {s.run_id}: {s.customers:,} customers"
    assert set(s.timings) == {"load models", "features", "score", "segments", "explain", "publish"}
    text = s.report()
    assert s.run_id in text and f"customers: {s.customers:,}" in text and "score_reasons" in text
    assert s.rows == {sink.SCORES: s.customers, sink.SEGMENTS: s.customers,
                      sink.REASONS: s.customers * 3 * world["cfg"].serving.reasons_per_model}


def test_rerun_replaces_its_partition_only(world, spark, spark_run) -> None:
    output, first = spark_run["output"], spark_run["summary"]
    keys = {sink.SCORES: ["customer_id"], sink.SEGMENTS: ["customer_id"],
            sink.REASONS: ["customer_id", "model", "rank"]}
    before = {t: _read(output, t, k) for t, k in keys.items()}
    # another run's partition, which the re-run must leave alone
    for table in keys:
        shutil.copytree(output / table / f"run_id={first.run_id}", output / table / "run_id=other-run")
    again = run_spark_scoring(world["cfg"], AS_OF, world["parquet"], output, margin=0.3, contact_cost=1.0,
                              spark=spark)
    assert again.run_id == first.run_id and again.attempt == 2
    assert again.data_fingerprint == first.data_fingerprint
    for table, k in keys.items():
        after = _read(output, table, k)
        assert (after["run_id"] == "other-run").sum() == len(before[table])
        mine = after[after["run_id"] == first.run_id].reset_index(drop=True)
        assert len(mine) == len(before[table])  # replaced, not duplicated
        pd.testing.assert_frame_equal(mine.drop(columns="run_id"), before[table].drop(columns="run_id"),
                                      check_exact=True)
    runs = pd.read_parquet(output / sink.RUNS)
    assert runs[["attempt", "status"]].values.tolist() == [[2, "succeeded"]]
    for table in keys:
        shutil.rmtree(output / table / "run_id=other-run")


# -- errors --------------------------------------------------------------------------------

def test_missing_input_folder_is_one_line_error(world, tmp_path) -> None:
    with pytest.raises(WarehouseError, match="input folder .*nowhere does not exist") as e:
        run_spark_scoring(world["cfg"], AS_OF, tmp_path / "nowhere", tmp_path / "out", margin=0.3, contact_cost=1.0)
    assert "\n" not in str(e.value)
    (tmp_path / "partial").mkdir()
    shutil.copy(world["parquet"] / "customers.parquet", tmp_path / "partial")
    with pytest.raises(WarehouseError, match="has no transactions.parquet") as e:
        run_spark_scoring(world["cfg"], AS_OF, tmp_path / "partial", tmp_path / "out", margin=0.3, contact_cost=1.0)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "out").exists()


def test_pyspark_missing_names_the_extra(world, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # `import pyspark` now raises ImportError
    with pytest.raises(ScoringError, match=r"pip install 'propensity\[spark\]'") as e:
        run_spark_scoring(world["cfg"], AS_OF, world["parquet"], tmp_path / "out", margin=0.3, contact_cost=1.0)
    assert "\n" not in str(e.value)


def test_no_champion_is_a_registry_error(world, tmp_path) -> None:
    empty = project_in(tmp_path)  # a fresh MLflow store without models
    with pytest.raises(RegistryError, match="no model has a @champion yet; train and promote at least one"):
        run_spark_scoring(empty, AS_OF, world["parquet"], tmp_path / "out", margin=0.3, contact_cost=1.0)


def test_no_customers_before_as_of_is_a_clear_error(world, spark, tmp_path) -> None:
    output = tmp_path / "out"
    with pytest.raises(ScoringError, match="no customer has transactions before 2000-01-01") as e:
        run_spark_scoring(world["cfg"], date(2000, 1, 1), world["parquet"], output, margin=0.3, contact_cost=1.0,
                          spark=spark)
    assert "\n" not in str(e.value)
    runs = pd.read_parquet(output / sink.RUNS)
    assert runs["status"].tolist() == ["failed"] and runs["error"][0].startswith("ScoringError: no customer")
    assert not (output / sink.SCORES).exists()


def test_a_model_without_champion_is_null_in_both_engines(world, spark, tmp_path) -> None:
    """No response@champion (a business without campaigns): both engines leave its columns null alike."""
    import mlflow

    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias("response", "champion").version
    client.delete_registered_model_alias("response", "champion")
    try:
        with Warehouse(f"duckdb:///{tmp_path / 'copy.duckdb'}") as wh:
            for file in sorted(world["parquet"].glob("*.parquet")):  # the same input as Spark's
                wh.duck().execute(f"create table {file.stem} as select * from read_parquet('{file}')")
            duck = run_scoring(wh, world["cfg"], AS_OF)
            want = wh.query("select * from current_customer_scores order by customer_id")
            duck_run = wh.query("select * from scoring_runs where status = 'succeeded'").iloc[0]
        output = tmp_path / "spark_out"
        summary = run_spark_scoring(world["cfg"], AS_OF, world["parquet"], output, margin=0.3, contact_cost=1.0,
                                    spark=spark)
    finally:
        client.set_registered_model_alias("response", "champion", version)
    got = _read(output, sink.SCORES, ["customer_id"])
    assert summary.run_id == duck.run_id and set(summary.versions) == {"churn", "value"}
    for frame in (got, want):
        assert frame["response_prob"].isna().all() and frame["expected_profit"].isna().all()
        assert frame["response_decile"].isna().all() and frame["profit_tier"].isna().all()
        assert frame["churn_decile"].notna().all() and sorted(frame["churn_decile"].unique()) == list(range(1, 11))
    for c in ("churn_decile", "value_decile", "churn_tier", "predicted_value_tier"):
        assert got[c].tolist() == want[c].tolist(), c
    np.testing.assert_allclose(got["churn_risk"], want["churn_risk"], rtol=0, atol=1e-9)
    runs = pd.read_parquet(output / sink.RUNS).iloc[0]
    assert runs["missing_models"] == duck_run["missing_models"]
    assert str(runs["missing_models"]).startswith("response: no response@champion: the promotion gate refused") or \
        str(runs["missing_models"]).startswith("response: no response@champion in the registry")
    reasons = pd.read_parquet(output / sink.REASONS)
    assert set(reasons["model"]) == {"churn", "value"}

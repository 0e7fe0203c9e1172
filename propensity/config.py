"""`propensity.toml`: one validated, frozen configuration object per stage.

The CLI reads the file once and passes the relevant section down; library code never
reads the file or the environment itself. Secrets (database passwords) come from the
environment through `${VAR}` references in URLs.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

CONFIG_FILE = "propensity.toml"


class ConfigError(ValueError):
    """A configuration problem the user can fix; the message says what to change."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WarehouseConfig(_Section):
    """Where the canonical tables and the outputs live."""

    url: str = "duckdb:///warehouse.duckdb"
    # A DuckDB file has one writing process at a time: a command that needs the file while
    # another process (the API between two reads, another command) has it open waits up to
    # this long before giving up, before doing any work.
    lock_wait_seconds: float = Field(default=60.0, ge=0, le=86400)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, v: str) -> str:
        if not (v.startswith("duckdb://") or v.startswith("postgresql")):
            raise ValueError(
                "must start with duckdb:/// (a file) or postgresql:// (a server URL)"
            )
        return v


class MlflowConfig(_Section):
    """The local MLflow store (used from the training stage on)."""

    tracking_uri: str = "sqlite:///mlruns/mlflow.db"
    artifact_location: str = "mlruns/artifacts"


class ImportConfig(_Section):
    """How source files are read and checked."""

    timestamp_format: str | None = None  # None: ISO 8601 (2024-03-01, 2024-03-01 10:15:00)
    max_unparsable_share: Annotated[float, Field(ge=0, le=1)] = 0.05
    csv_delimiter: str = ","


class FeaturesConfig(_Section):
    """Windows and horizons of the as-of features and labels."""

    frequency_window_days: Annotated[int, Field(gt=0)] = 365
    short_windows_days: tuple[int, ...] = (30, 90)
    trend_window_days: Annotated[int, Field(gt=0)] = 90
    horizon_days: Annotated[int, Field(gt=0)] = 90
    snapshot_step_days: Annotated[int, Field(gt=0)] = 91
    snapshot_count: Annotated[int, Field(gt=0)] = 4
    # A training cutoff needs at least this many days of data before it; earlier cutoffs
    # of the schedule are left out (a short history gets fewer cutoffs, not empty features).
    min_history_days: Annotated[int, Field(ge=1)] = 60
    output_dir: str = "out"


class LightgbmConfig(_Section):
    """Training resources (used from the training stage on)."""

    num_threads: Annotated[int, Field(ge=0)] = 0  # 0: the cores that are free right now
    seed: int = 42


class TrainingConfig(_Section):
    """LightGBM settings, the validation split and the promotion gate."""

    learning_rate: Annotated[float, Field(gt=0, le=1)] = 0.05
    num_leaves: Annotated[int, Field(ge=2)] = 31
    min_child_samples: Annotated[int, Field(ge=1)] = 50
    feature_fraction: Annotated[float, Field(gt=0, le=1)] = 0.9
    lambda_l2: Annotated[float, Field(ge=0)] = 1.0
    max_rounds: Annotated[int, Field(ge=1)] = 2000
    early_stopping_rounds: Annotated[int, Field(ge=1)] = 100
    tweedie_variance_power: Annotated[float, Field(gt=1, lt=2)] = 1.3
    # Share of the out-of-time customers used for early stopping and calibration; the
    # rest is the untouched test half that every reported metric is computed on.
    tuning_share: Annotated[float, Field(gt=0, lt=1)] = 0.5
    calibrate_above_ece: Annotated[float, Field(ge=0)] = 0.01
    # Promotion: the challenger must beat the champion by this much on the same data
    # (AUC for churn and response, normalised Gini for value).
    promotion_margin: Annotated[float, Field(ge=0)] = 0.0
    # The gate also refuses (without --force) a challenger that is not ahead of the best
    # baseline on the same test half, or whose test half is too small to judge it.
    min_test_rows: Annotated[int, Field(ge=0)] = 500
    min_test_positives: Annotated[int, Field(ge=0)] = 50
    experiment: str = "propensity"


class ServingConfig(_Section):
    """The batch scorer: expected profit, reasons, chunking, where run snapshots go."""

    # expected_profit = response_prob x response_value x margin - contact_cost, where
    # response_value = average order value x k (serving/response_value.py)
    margin: Annotated[float, Field(ge=0, le=1)] = 0.3
    contact_cost: Annotated[float, Field(ge=0)] = 1.0
    # Customers scored and explained at a time: bounds memory whatever the customer count.
    chunk_size: Annotated[int, Field(ge=1)] = 50_000
    reasons_per_model: Annotated[int, Field(ge=1, le=50)] = 5
    # Each run's feature snapshot (Parquet) is kept here, for lineage and re-explaining.
    snapshot_dir: str = "out/scoring"


class ApiConfig(_Section):
    """`propensity serve`: where it listens and where the hashed API tokens are kept."""

    # A relative path is taken next to propensity.toml.
    token_file: str = "api_tokens.json"
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8000


class Config(_Section):
    """The whole `propensity.toml`."""

    warehouse: WarehouseConfig = WarehouseConfig()
    mlflow: MlflowConfig = MlflowConfig()
    mapping: dict[str, dict[str, str]] = Field(default_factory=dict)
    import_: ImportConfig = Field(default=ImportConfig(), alias="import")
    features: FeaturesConfig = FeaturesConfig()
    lightgbm: LightgbmConfig = LightgbmConfig()
    training: TrainingConfig = TrainingConfig()
    serving: ServingConfig = ServingConfig()
    api: ApiConfig = ApiConfig()

    @field_validator("mapping")
    @classmethod
    def _known_tables(cls, v: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        from features.schema import TABLES

        for table, columns in v.items():
            if table not in TABLES:
                raise ValueError(f"unknown table {table!r}; use one of {', '.join(TABLES)}")
            names = TABLES[table].names
            extra_ok = TABLES[table].keep_extra_columns
            for canonical in columns:
                if canonical not in names and not extra_ok:
                    raise ValueError(
                        f"{table}: unknown column {canonical!r}; use one of {', '.join(names)}"
                    )
        return v


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand_env(text: str) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in os.environ:
            raise ConfigError(f"environment variable {name} is referenced in the config but not set")
        return os.environ[name]

    return _ENV_REF.sub(sub, text)


def load_config(path: Path | None = None) -> Config:
    """Read and validate a config file; defaults when `path` is None and no file exists.

    Args:
        path: the file to read; None means `./propensity.toml` if present.

    Returns:
        The validated, frozen configuration.

    Raises:
        ConfigError: with a one-line message naming the key and what is allowed.
    """
    if path is None:
        path = Path(CONFIG_FILE)
        if not path.exists():
            return Config()
    elif not path.exists():
        raise ConfigError(f"config file {path} not found; create one with `propensity init`")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    try:
        config = Config.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key; see `propensity init` for the keys that exist"
        raise ConfigError(f"{path}: {key}: {msg}") from None
    url = _expand_env(config.warehouse.url)
    return config.model_copy(update={"warehouse": config.warehouse.model_copy(update={"url": url})})


def project_in(folder: Path, num_threads: int = 1) -> Config:
    """Defaults, with the warehouse and the MLflow store inside `folder` (notebooks, tests)."""
    return Config(
        warehouse=WarehouseConfig(url=f"duckdb:///{folder / 'warehouse.duckdb'}"),
        mlflow=MlflowConfig(
            tracking_uri=f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}",
            artifact_location=str(folder / "mlruns" / "artifacts"),
        ),
        lightgbm=LightgbmConfig(num_threads=num_threads),
        serving=ServingConfig(snapshot_dir=str(folder / "scoring")),
    )


DEFAULT_TOML = """\
# propensity.toml: settings for every `propensity` command run in this folder.
# Every key is optional; the values shown are the defaults.

[warehouse]
# Where canonical tables and outputs live: a DuckDB file, or a PostgreSQL server
# (postgresql://user:${PGPASSWORD}@host:5432/db; ${VAR} is read from the environment).
url = "duckdb:///warehouse.duckdb"
# A DuckDB file has one writing process at a time: a command that finds it in use (by the
# API between two reads, or another command) waits this many seconds before giving up.
lock_wait_seconds = 60

[mlflow]
# Local tracking store: a sqlite database and artifacts, both under mlruns/.
tracking_uri = "sqlite:///mlruns/mlflow.db"
artifact_location = "mlruns/artifacts"

[import]
# Timestamp format of source files (strftime codes); leave unset for ISO 8601.
# timestamp_format = "%d/%m/%Y %H:%M"
# A file in which more than this share of a column cannot be parsed is refused whole
# (a wrong format, not a few bad rows); below it, the bad rows are quarantined.
max_unparsable_share = 0.05
csv_delimiter = ","

# Map your column names onto the canonical ones: [mapping.TABLE] canonical = "yours".
# The same can be given per import with --map canonical=yours.
# [mapping.transactions]
# customer_id = "CustomerNo"
# ts = "InvoiceDate"
# amount = "LineTotal"
# category = "ProductGroup"

[features]
# Frequency and average spend count purchases in this many days before the as-of date.
frequency_window_days = 365
# Extra windows for counts and spend.
short_windows_days = [30, 90]
# Trend: the last N days against the N days before them.
trend_window_days = 90
# Labels look this many days ahead of the as-of date: [as_of, as_of + horizon).
horizon_days = 90
# Training snapshots: this many cutoffs, this many days apart, ending at the latest
# cutoff whose label window is complete.
snapshot_step_days = 91
snapshot_count = 4
# Cutoffs with fewer days of data before them than this are left out of training.
min_history_days = 60
# Where `propensity features build` writes its Parquet files.
output_dir = "out"

[lightgbm]
# Threads for LightGBM: 0 = the cores that are free when training starts. More threads
# than free cores slows training by an order of magnitude on a busy machine.
num_threads = 0
seed = 42

[training]
learning_rate = 0.05
num_leaves = 31
min_child_samples = 50
feature_fraction = 0.9
lambda_l2 = 1.0
max_rounds = 2000
early_stopping_rounds = 100
# The value model's Tweedie objective (many customers spend nothing in the horizon).
tweedie_variance_power = 1.3
# The latest labelled cutoff is the out-of-time validation set. This share of its
# customers is used for early stopping and calibration; the rest is the test half on
# which every metric (model and baselines) is reported.
tuning_share = 0.5
# Calibrate a classifier (Platt scaling on the tuning half) when its calibration error
# there exceeds this.
calibrate_above_ece = 0.01
# `propensity promote` moves `champion` only when the challenger beats it by this much
# on the same out-of-time data (AUC for churn and response, normalised Gini for value).
promotion_margin = 0.0
# ... and only when it is ahead of the best baseline (RFM score, logistic/ridge, BTYD) on
# that test half, and the test half has at least this many rows and positives (buyers
# for value); `propensity promote --force` overrides these two checks.
min_test_rows = 500
min_test_positives = 50
experiment = "propensity"

[serving]
# `propensity score`: expected_profit = response_prob x response_value x margin - contact_cost,
# response_value = the customer's average order value x k, what one response was worth
# (--margin and --contact-cost override these for one run).
margin = 0.3
contact_cost = 1.0
# Customers scored and explained at a time: memory stays bounded by this, not by the
# number of customers.
chunk_size = 50000
# Reason codes stored per customer and model.
reasons_per_model = 5
# Each run keeps the feature snapshot it scored here (Parquet), so that
# `propensity explain customer ID --run RUN_ID` reproduces its reasons exactly.
snapshot_dir = "out/scoring"

[api]
# `propensity serve`: the address it listens on, and the file of hashed API tokens
# (`propensity tokens create --role marketer|auditor|admin --name NAME`).
token_file = "api_tokens.json"
host = "127.0.0.1"
port = 8000
"""


def write_default_config(folder: Path) -> Path:
    """Write a commented default `propensity.toml` into `folder`; refuse to overwrite.

    Args:
        folder: the target folder (created if missing).

    Returns:
        The path written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / CONFIG_FILE
    if target.exists():
        raise ConfigError(f"{target} already exists; edit it, or remove it first")
    target.write_text(DEFAULT_TOML)
    return target

"""`propensity.toml`: one validated, frozen configuration object per stage.

The CLI reads the file once and passes the relevant section down; library code never
reads the file or the environment itself. Secrets (database passwords) come from the
environment through `${VAR}` references in URLs.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import (BaseModel, ConfigDict, Field, Strict, ValidationError, field_validator,
                      model_validator)

CONFIG_FILE = "propensity.toml"
MAX_CONFIG_BYTES = 1 << 20  # a config is a small text file; anything bigger is the wrong file
MAX_DAYS = 36_500  # windows and horizons: up to a century (date arithmetic stays in range)


class ConfigError(ValueError):
    """A configuration problem the user can fix; the message says what to change."""


# TOML has types: a quoted "90" or `true` where a number belongs is a mistake, not a number.
Days = Annotated[int, Strict(), Field(ge=1, le=MAX_DAYS)]
Count = Annotated[int, Strict(), Field(ge=0)]
Share = Annotated[float, Strict(), Field(ge=0, le=1)]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


def _not_blank(v: str) -> str:
    if not v.strip():
        raise ValueError("is empty; remove the line to use the default, or give a value")
    return v


_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


def _check_port(url: str) -> None:
    from urllib.parse import urlsplit

    try:
        urlsplit(url).port
    except ValueError:
        raise ValueError("the port must be a number from 1 to 65535, e.g. host:5432") from None


def _duckdb_file(url: str) -> str:
    """The file part of a duckdb:// URL, as `Warehouse` reads it ('' or ':memory:' for none)."""
    return url.removeprefix("duckdb://").removeprefix("/")


class WarehouseConfig(_Section):
    """Where the canonical tables and the outputs live."""

    url: str = "duckdb:///warehouse.duckdb"
    # A DuckDB file has one writing process at a time: a command that needs the file while
    # another process (the API between two reads, another command) has it open waits up to
    # this long before giving up, before doing any work.
    lock_wait_seconds: Annotated[float, Strict(), Field(ge=0, le=86400)] = 60.0

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, v: str) -> str:
        _not_blank(v)
        if v.startswith("duckdb:"):
            if not v.startswith("duckdb://"):
                raise ValueError("write a DuckDB file as duckdb:///warehouse.duckdb (three slashes)")
            if v.endswith("/") and _duckdb_file(v):
                raise ValueError("ends with / (a folder); name the file in it, e.g. duckdb:///data/warehouse.duckdb")
            if _duckdb_file(v) in ("", ":memory:"):
                raise ValueError("names no file (an in-memory warehouse keeps nothing between commands); "
                                 "name one, e.g. duckdb:///warehouse.duckdb")
            return v
        if re.match(r"^postgresql(\+[a-z0-9]+)?://", v):
            _check_port(v)
            return v
        raise ValueError("must start with duckdb:/// (a file) or postgresql:// (a server URL)")


_TRACKING_SCHEMES = {"sqlite", "file", "http", "https", "databricks", "postgresql", "mysql", "mssql"}


class MlflowConfig(_Section):
    """The local MLflow store (used from the training stage on)."""

    tracking_uri: str = "sqlite:///mlruns/mlflow.db"
    artifact_location: str = "mlruns/artifacts"

    @field_validator("tracking_uri")
    @classmethod
    def _known_store(cls, v: str) -> str:
        _not_blank(v)
        m = _URL_SCHEME.match(v)
        if m is None:
            return v  # a folder: MLflow's file store
        scheme = m.group(1).lower().split("+")[0]
        if scheme not in _TRACKING_SCHEMES:
            raise ValueError(
                f"the scheme {m.group(1)}: is not supported; use sqlite:///mlruns/mlflow.db (a local store), "
                "http(s)://host:port (a tracking server), or a postgresql:// or mysql:// database URL"
            )
        if scheme == "sqlite" and (not v.startswith("sqlite:///") or v.rstrip("/") == "sqlite:"):
            raise ValueError("write a sqlite store as sqlite:///mlruns/mlflow.db (three slashes, then a file)")
        if scheme in ("http", "https"):
            from urllib.parse import urlsplit

            if not urlsplit(v).hostname:
                raise ValueError(f"names no host; write {scheme}://host:5000")
        _check_port(v)
        return v

    @field_validator("artifact_location")
    @classmethod
    def _a_folder(cls, v: str) -> str:
        _not_blank(v)
        if "://" in v or v.startswith("file:"):
            raise ValueError("must be a folder path (e.g. mlruns/artifacts), not a URI")
        return v


def check_timestamp_format(fmt: str) -> None:
    """Refuse a strftime format the importer's parser (pandas) cannot use, or one without a year.

    Raises:
        ValueError: what is wrong with the format, in words.
    """
    if not fmt.strip():
        raise ValueError("is empty; remove the line for ISO 8601 timestamps, or give a format like '%d/%m/%Y %H:%M'")
    import pandas as pd

    try:
        pd.to_datetime(pd.Series(["x"]), format=fmt, errors="coerce")
    except ValueError as e:
        text = " ".join(str(e).split())
        bad = re.match(r"'(.)' is a bad directive", text)
        if bad:
            text = f"%{bad.group(1)} is not a strftime code"
        elif text.startswith("stray %"):
            text = "a % must start a code (write %% for a literal %)"
        raise ValueError(f"{text}; use codes like %Y %m %d %H %M %S (e.g. '%d/%m/%Y %H:%M')") from None
    codes = set(re.findall(r"%(.)", fmt.replace("%%", "")))
    if not codes & {"Y", "y", "G"}:
        raise ValueError("has no year (%Y or %y): every timestamp would fall in 1900; e.g. '%d/%m/%Y %H:%M'")


class ImportConfig(_Section):
    """How source files are read and checked."""

    timestamp_format: str | None = None  # None: ISO 8601 (2024-03-01, 2024-03-01 10:15:00)
    max_unparsable_share: Share = 0.05
    csv_delimiter: str = ","

    @field_validator("timestamp_format")
    @classmethod
    def _parsable(cls, v: str | None) -> str | None:
        if v is not None:
            check_timestamp_format(v)
        return v

    @field_validator("csv_delimiter")
    @classmethod
    def _one_char(cls, v: str) -> str:
        if len(v) != 1 or v in ('"', "\n", "\r"):
            raise ValueError("must be one character other than a quote or a line break, e.g. ',' or ';' or '\\t'")
        return v


class FeaturesConfig(_Section):
    """Windows and horizons of the as-of features and labels."""

    frequency_window_days: Days = 365
    short_windows_days: tuple[Days, ...] = (30, 90)
    trend_window_days: Days = 90
    horizon_days: Days = 90
    snapshot_step_days: Days = 30
    snapshot_count: Annotated[int, Strict(), Field(ge=1, le=1000)] = 12
    # A training cutoff needs at least this many days of data before it; earlier cutoffs
    # of the schedule are left out (a short history gets fewer cutoffs, not empty features).
    min_history_days: Days = 60
    # Horizon-aware features: purchases and spend in a window as long as the horizon, and
    # in the same horizon-long window a year before the cutoff (`features.rfmw`). Off by
    # default: no gain beyond the seed spread on the public sets (bench/results/quality.md).
    horizon_features: Annotated[bool, Strict()] = False
    # Season of the cutoff: its month and, with `holidays`, the days to the next holiday.
    season_features: Annotated[bool, Strict()] = False
    # Known holidays of the data: "MM-DD" (every year) or "YYYY-MM-DD" (once).
    holidays: tuple[str, ...] = ()
    output_dir: str = "out"

    _output_dir = field_validator("output_dir")(_not_blank)

    @field_validator("holidays")
    @classmethod
    def _holiday_dates(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for day in v:
            holiday_parts(day)
        return v


def holiday_parts(day: str) -> tuple[int | None, int, int]:
    """(year or None for every year, month, day) of a `holidays` entry; ValueError says what is wrong."""
    from datetime import date

    m = re.fullmatch(r"(?:(\d{4})-)?(\d{2})-(\d{2})", day)
    if m is None:
        raise ValueError(f"holiday {day!r} is not MM-DD or YYYY-MM-DD")
    year, month, dom = (int(m.group(1)) if m.group(1) else None), int(m.group(2)), int(m.group(3))
    try:
        date(year or 2001, month, dom)  # 2001: not a leap year, so 02-29 every year is refused
    except ValueError:
        raise ValueError(f"holiday {day!r} is not a date" + ("" if year else " in every year")) from None
    return year, month, dom


class LightgbmConfig(_Section):
    """Training resources (used from the training stage on)."""

    num_threads: Annotated[int, Strict(), Field(ge=0, le=1024)] = 0  # 0: the cores that are free right now
    seed: Annotated[int, Strict(), Field(ge=0, le=2**31 - 1)] = 42


class TrainingConfig(_Section):
    """LightGBM settings, the validation split and the promotion gate."""

    # Defaults from evidence: chosen on the tune halves of every public set (bench/quality.py).
    learning_rate: Annotated[float, Strict(), Field(gt=0, le=1)] = 0.05
    num_leaves: Annotated[int, Strict(), Field(ge=2, le=131_072)] = 7
    min_child_samples: Annotated[int, Strict(), Field(ge=1)] = 200
    feature_fraction: Annotated[float, Strict(), Field(gt=0, le=1)] = 0.9
    lambda_l2: Annotated[float, Strict(), Field(ge=0)] = 1.0
    max_rounds: Annotated[int, Strict(), Field(ge=1, le=1_000_000)] = 2000
    early_stopping_rounds: Annotated[int, Strict(), Field(ge=1)] = 100
    tweedie_variance_power: Annotated[float, Strict(), Field(gt=1, lt=2)] = 1.3
    # Share of the out-of-time customers used for early stopping and calibration; the
    # rest is the untouched test half that every reported metric is computed on.
    tuning_share: Annotated[float, Strict(), Field(gt=0, lt=1)] = 0.5
    calibrate_above_ece: Share = 0.01
    # Value model: multiply its predictions by sum(actual) / sum(predicted) on the tune
    # half (shrunk towards 1 as far as that ratio is uncertain), so that its level follows
    # the latest period rather than the training cutoffs.
    value_level_correction: Annotated[bool, Strict()] = True
    # Promotion: the challenger must beat the champion by this much on the same data
    # (AUC for churn and response, normalised Gini for value).
    promotion_margin: Share = 0.0
    # The gate also refuses (without --force) a challenger that is not ahead of the best
    # baseline on the same test half, or whose test half is too small to judge it.
    min_test_rows: Count = 500
    min_test_positives: Count = 50
    experiment: str = "propensity"

    _experiment = field_validator("experiment")(_not_blank)

    @model_validator(mode="after")
    def _positives_fit(self) -> TrainingConfig:
        if self.min_test_positives > self.min_test_rows:
            raise ValueError(f"min_test_positives ({self.min_test_positives}) is more than min_test_rows "
                             f"({self.min_test_rows}); lower it or raise min_test_rows")
        return self


class ServingConfig(_Section):
    """The batch scorer: expected profit, reasons, chunking, where run snapshots go."""

    # expected_profit = response_prob x response_value x margin - contact_cost, where
    # response_value = average order value x k (serving/response_value.py)
    margin: Share = 0.3
    contact_cost: Annotated[float, Strict(), Field(ge=0)] = 1.0
    # Customers scored and explained at a time: bounds memory whatever the customer count.
    chunk_size: Annotated[int, Strict(), Field(ge=1, le=10_000_000)] = 50_000
    reasons_per_model: Annotated[int, Strict(), Field(ge=1, le=50)] = 5
    # Each run's feature snapshot (Parquet) is kept here, for lineage and re-explaining.
    snapshot_dir: str = "out/scoring"

    _snapshot_dir = field_validator("snapshot_dir")(_not_blank)


class ApiConfig(_Section):
    """`propensity serve`: where it listens and where the hashed API tokens are kept."""

    # A relative path is taken next to propensity.toml.
    token_file: str = "api_tokens.json"
    host: str = "127.0.0.1"
    port: Annotated[int, Strict(), Field(ge=1, le=65535)] = 8000

    _token_file = field_validator("token_file")(_not_blank)

    @field_validator("host")
    @classmethod
    def _bare_host(cls, v: str) -> str:
        _not_blank(v)
        if "/" in v or " " in v or v.count(":") == 1:
            raise ValueError("write only the host name or address (e.g. 127.0.0.1 or 0.0.0.0); the port is `port`")
        return v


class MonitoringConfig(_Section):
    """`propensity monitor`: when a scoring run's drift raises an alert (exit code 3)."""

    # PSI against the model's reference profile (its out-of-time test half): below 0.1
    # stable, 0.1-0.25 moderate, above 0.25 large.
    feature_psi_alert: Annotated[float, Strict(), Field(gt=0, le=100)] = 0.25
    prediction_psi_alert: Annotated[float, Strict(), Field(gt=0, le=100)] = 0.25
    # Attribution shift of a model (monitoring.attribution): importance, the total variation
    # distance between the run's and the reference's shares of mean |SHAP| per feature
    # (0-1); direction, how far the mean signed contributions moved, over the reference's
    # total mean |SHAP|. Sample world, 90 days on without drift: at most 0.011 and 0.083.
    attribution_shift_alert: Annotated[float, Strict(), Field(gt=0, le=1)] = 0.1
    direction_shift_alert: Annotated[float, Strict(), Field(gt=0, le=100)] = 0.2
    # A run's estimated or realised AUC (Gini for value) this far below the model card's
    # out-of-time number.
    performance_drop_alert: Annotated[float, Strict(), Field(gt=0, le=2)] = 0.05
    # Segment drift: a feature's PSI inside one level of a categorical model input (e.g.
    # needs_orientation=price) is measured when the reference and the run both hold at
    # least this many of its customers (fewer: sampling noise alone nears the alert line).
    segment_min_rows: Annotated[int, Strict(), Field(ge=50, le=10_000_000)] = 300
    # The categorical inputs to split by; empty: every one the reference profile split by
    # (at most 12 levels).
    segment_columns: tuple[str, ...] = ()


SECTIONS = {"warehouse": WarehouseConfig, "mlflow": MlflowConfig, "import": ImportConfig,
            "features": FeaturesConfig, "lightgbm": LightgbmConfig, "training": TrainingConfig,
            "serving": ServingConfig, "api": ApiConfig, "monitoring": MonitoringConfig}


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
    monitoring: MonitoringConfig = MonitoringConfig()

    @field_validator("mapping")
    @classmethod
    def _known_tables(cls, v: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        from features.schema import TABLES

        for table, columns in v.items():
            if table not in TABLES:
                raise ValueError(f"unknown table {table!r}; use one of {', '.join(TABLES)}")
            names = TABLES[table].names
            extra_ok = TABLES[table].keep_extra_columns
            for canonical, source in columns.items():
                if canonical not in names and not extra_ok:
                    raise ValueError(
                        f"{table}: unknown column {canonical!r}; use one of {', '.join(names)}"
                    )
                if not source.strip():
                    raise ValueError(f"{table}: {canonical} = '': give the column name in your file")
        return v


# -- reading the file ----------------------------------------------------------------
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Keys whose `${VAR}` references are read from the environment (secrets, per-machine places).
ENV_KEYS = (("warehouse", "url"), ("mlflow", "tracking_uri"), ("mlflow", "artifact_location"))


def _expand_env(text: str, where: str = "the config") -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in os.environ:
            raise ConfigError(
                f"{where}: environment variable {name} is referenced but not set; "
                f"export {name}=... before running, or write the value in place of ${{{name}}}"
            )
        return os.environ[name]

    rest = _ENV_REF.sub("", text)
    if "${" in rest:
        raise ConfigError(f"{where}: a ${{...}} reference must name a variable, like ${{PGPASSWORD}}")
    return _ENV_REF.sub(sub, text)


def _read_toml(path: Path) -> dict[str, Any]:
    """The parsed file, or a ConfigError that says why it cannot be read."""
    if path.is_dir():
        inside = path / CONFIG_FILE
        hint = f"use --config {inside}" if inside.is_file() else f"name the file (e.g. {inside}), or run `propensity init {path}`"
        raise ConfigError(f"config {path} is a folder, not a file; {hint}")
    if not path.exists():
        raise ConfigError(f"config file {path} not found; check the path, or create one with `propensity init`")
    if not path.is_file():
        raise ConfigError(f"config {path} is not a regular file; give the propensity.toml file")
    try:
        with path.open("rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except PermissionError:
        raise ConfigError(f"config file {path}: cannot read it (permission denied); "
                          "make it readable for this user (chmod u+r) or pass another --config") from None
    except OSError as e:
        raise ConfigError(f"config file {path}: cannot read it ({e.strerror or e}); check the file") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {path} is larger than {MAX_CONFIG_BYTES // 1024} KiB: not a propensity.toml; "
                          "check the --config path")
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark (some Windows editors) is fine
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError(f"config file {path}: not UTF-8 text (byte 0x{data[e.start]:02x} on line {line}); "
                          "save it as UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        at = re.search(r"\s*\(at (line \d+, column \d+|end of document)\)$", msg)
        if at:
            msg = f"at {at.group(1)}: {msg[: at.start()]}"
        raise ConfigError(f"{path}: not valid TOML {msg}; fix that line (text values need quotes, "
                          "sections look like [features])") from None


_SECRET = re.compile(r"(//[^:/@]+:)[^@]*@")


def _shown(value: Any) -> str:
    """A value as the user wrote it in TOML (passwords in URLs masked), at most 60 characters."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = '"' + _SECRET.sub(r"\1***@", value) + '"'
    elif isinstance(value, dict):
        text = "a table"
    else:
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _section_of(key: str) -> str | None:
    for name, model in SECTIONS.items():
        if key in model.model_fields:
            return name
    return None


def _describe(err: dict[str, Any]) -> str:
    """One pydantic error as `key: what is wrong (got VALUE)`, saying what to write instead."""
    loc = [p for p in err["loc"]]
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (("." if key else "") + str(part))
    kind, msg, value = err["type"], err["msg"], err.get("input")
    msg = msg.removeprefix("Value error, ")
    if kind == "extra_forbidden":
        if len(loc) == 1:
            name = str(loc[0])
            home = _section_of(name)
            if isinstance(value, dict):
                near = difflib.get_close_matches(name.lower(), [*SECTIONS, "mapping"], n=1)
                hint = f"did you mean [{near[0]}]?" if near else f"the sections are {', '.join([*SECTIONS, 'mapping'])}"
                return f"[{name}]: unknown section; {hint}"
            if home:
                return f"{name}: a key outside any section; put it under [{home}]"
            return f"{name}: unknown key outside any section; settings go under a section such as [features]"
        section = str(loc[0])
        fields = list(SECTIONS[section].model_fields) if section in SECTIONS else []
        near = difflib.get_close_matches(str(loc[-1]), fields, n=1)
        hint = f"did you mean {near[0]}?" if near else f"the keys of [{section}] are {', '.join(fields)}"
        return f"{key}: unknown key; {hint}"
    if kind in ("model_type", "model_attributes_type", "dict_type") and len(loc) == 1:
        return f"{key}: should be a section ([{key}] followed by key = value lines) (got {_shown(value)})"
    if kind in ("tuple_type", "list_type"):
        return f"{key}: should be a list of whole numbers of days, e.g. [30, 90] (got {_shown(value)})"
    if kind in ("int_type", "float_type", "int_parsing", "float_parsing", "int_from_float") and isinstance(value, str):
        msg += "; write the number without quotes"
    elif kind in ("int_type", "float_type") and isinstance(value, bool):
        msg += ", not true/false"
    elif kind == "int_type" and isinstance(value, float):
        msg += " (a whole number)"
    if isinstance(value, dict):  # a check across keys: the message names them
        return f"[{key}]: {msg}"
    return f"{key}: {msg} (got {_shown(value)})"


def _validate(raw: dict[str, Any], path: Path) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        errors = e.errors()
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        raise ConfigError(f"{path}: {_describe(errors[0])}{more}") from None


# -- relative paths: next to the config file ----------------------------------------
def _under(base: Path, path: str) -> str:
    p = Path(path)
    return str(p if p.is_absolute() else base / p)


def resolve_paths(config: Config, base: Path) -> Config:
    """`config` with relative file paths taken in the folder `base` (the config file's).

    The warehouse's DuckDB file, the MLflow sqlite store (or file store) and artifact
    folder, and the features' and scoring snapshots' output folders. Absolute paths and
    server URLs are unchanged.
    """
    base = base.absolute()
    wh = config.warehouse.url
    if wh.startswith("duckdb://"):
        wh = f"duckdb:///{_under(base, _duckdb_file(wh))}"
    uri = config.mlflow.tracking_uri
    if uri.startswith("sqlite:///"):
        uri = f"sqlite:///{_under(base, uri.removeprefix('sqlite:///'))}"
    elif _URL_SCHEME.match(uri) is None:
        uri = _under(base, uri)
    return config.model_copy(update={
        "warehouse": config.warehouse.model_copy(update={"url": wh}),
        "mlflow": config.mlflow.model_copy(update={
            "tracking_uri": uri, "artifact_location": _under(base, config.mlflow.artifact_location)}),
        "features": config.features.model_copy(update={"output_dir": _under(base, config.features.output_dir)}),
        "serving": config.serving.model_copy(update={"snapshot_dir": _under(base, config.serving.snapshot_dir)}),
    })


def load_config(path: Path | None = None) -> Config:
    """Read and validate a config file; defaults when `path` is None and no file exists.

    Relative paths in the file (the DuckDB warehouse, the MLflow store and artifacts, the
    output folders) are taken in the file's folder, wherever the command runs from; the
    built-in defaults (no file) stay relative to the current folder.

    Args:
        path: the file to read; None means `./propensity.toml` if present.

    Returns:
        The validated, frozen configuration.

    Raises:
        ConfigError: with a one-line message naming the file, the key and what to change.
    """
    if path is None:
        path = Path(CONFIG_FILE)
        if not path.exists() and not path.is_symlink():
            return Config()
    path = Path(path)
    raw = _read_toml(path)
    for section, key in ENV_KEYS:
        table = raw.get(section)
        if isinstance(table, dict) and isinstance(table.get(key), str):
            table[key] = _expand_env(table[key], f"{path}: {section}.{key}")
    config = resolve_paths(_validate(raw, path), path.absolute().parent)
    wh = config.warehouse.url
    if wh.startswith("duckdb://") and Path(_duckdb_file(wh)).is_dir():
        raise ConfigError(f"{path}: warehouse.url: {_duckdb_file(wh)} is a folder; name the DuckDB file in it, "
                          f"e.g. duckdb:///{Path(_duckdb_file(wh)) / 'warehouse.duckdb'}")
    return config


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
# Every key is optional; the values shown are the defaults. Relative paths (the DuckDB
# file, the MLflow store and artifacts, output folders) are taken in this file's folder.

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
# cutoff whose label window is complete. A step shorter than the horizon gives more
# training cutoffs from the same history; those whose labels would overlap the latest
# (out-of-time) cutoff's are left out.
snapshot_step_days = 30
snapshot_count = 12
# Cutoffs with fewer days of data before them than this are left out of training.
min_history_days = 60
# Purchases and spend in a window as long as the horizon, and in the same window a year
# before the cutoff (null when the data holds less than a year); off: measured no gain
# in bench/results/quality.md.
horizon_features = false
# The cutoff's month and, with holidays, days to the next one (off: measured in
# bench/results/quality.md).
season_features = false
# holidays = ["12-25", "2011-11-25"]  # MM-DD every year, or one date
# Where `propensity features build` writes its Parquet files.
output_dir = "out"

[lightgbm]
# Threads for LightGBM: 0 = the cores that are free when training starts. More threads
# than free cores slows training by an order of magnitude on a busy machine.
num_threads = 0
seed = 42

[training]
# Chosen on the tune halves of every public set (bench/results/quality.md, the sweep).
learning_rate = 0.05
num_leaves = 7
min_child_samples = 200
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
# Rescale the value model so that its mean prediction on the tuning half equals the mean
# actual spend there (classifiers get their level from the calibration above).
value_level_correction = true
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

[monitoring]
# `propensity monitor` exits 3 when a feature's or a model's scores' PSI against the
# model's reference profile (its out-of-time test half) reaches these (0.1-0.25 is a
# moderate shift, above 0.25 a large one).
feature_psi_alert = 0.25
prediction_psi_alert = 0.25
# ... or when a model's attribution shift reaches these: importance (how differently it
# spreads mean |SHAP| over its features than on the reference, 0-1) and direction (how
# far the features' mean signed contributions moved, over the reference's mean |SHAP|),
attribution_shift_alert = 0.1
direction_shift_alert = 0.2
# ... or when a run's estimated or realised AUC (Gini for value) falls this far below
# the model card's out-of-time number.
performance_drop_alert = 0.05
# Feature drift is also measured inside each level of the categorical model inputs with
# at most 12 levels (e.g. needs_orientation=price) holding at least segment_min_rows
# customers in the reference and in the run; segment_columns = [...] limits the inputs.
segment_min_rows = 300
segment_columns = []
"""


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def config_toml(cfg: Config) -> str:
    """`cfg` as the text of a propensity.toml, with only the keys that differ from the defaults.

    `load_config` of the text gives `cfg` back (paths in it should be absolute: relative
    ones are read against the file's folder).
    """
    lines: list[str] = []
    for section, model in SECTIONS.items():
        current = getattr(cfg, "import_" if section == "import" else section)
        changed = {k: v for k, v in current.model_dump().items() if v != getattr(model(), k)}
        if changed:
            lines += [f"[{section}]", *(f"{k} = {_toml_value(v)}" for k, v in changed.items()), ""]
    for table, columns in cfg.mapping.items():
        lines += [f"[mapping.{table}]", *(f"{k} = {_toml_value(v)}" for k, v in columns.items()), ""]
    return "\n".join(lines)


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

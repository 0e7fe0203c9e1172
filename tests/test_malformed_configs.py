"""The malformed-config corpus: every bad propensity.toml is refused in one line, nothing written.

Each case writes a bad `propensity.toml` (or passes a bad `--config`) into a project whose
warehouse already holds data (`tests.corpus.seed_project`), runs a command that would
otherwise write (an import, a features build, a scoring run), and checks with
`tests.corpus.assert_refused`: exit 1, one `error:` line naming the file and the key and
saying what to change, no traceback, and every warehouse table byte-identical.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.corpus import assert_refused, copy_project, seed_project

IMPORT = ["data", "import", "transactions", "seed.csv", "--append", "--extracted-at", "2024-06-30"]
FEATURES = ["features", "build", "--as-of", "2024-03-05"]
SCORE = ["score", "--as-of", "2024-03-10"]
UNSET = "PROPENSITY_TEST_SURELY_UNSET"


@dataclass
class Case:
    id: str
    toml: str | bytes | None  # written as <project>/propensity.toml (None: none written)
    says: str | tuple[str, ...]  # the line must contain this (what to change)
    args: tuple[str, ...] = tuple(IMPORT)
    config: str | None = None  # --config argument, relative to the project (default: ./propensity.toml)
    setup: Callable[[Path], None] | None = None


def _folder_named(name: str) -> Callable[[Path], None]:
    return lambda project: (project / name).mkdir()


CASES = [
    # -- [import] -------------------------------------------------------------------------
    Case("strftime-unknown-directive", '[import]\ntimestamp_format = "%Q"\n',
         'import.timestamp_format: %Q is not a strftime code; use codes like %Y %m %d'),
    Case("strftime-stray-percent", '[import]\ntimestamp_format = "%d/%m/%Y %"\n',
         "import.timestamp_format: a % must start a code (write %% for a literal %)"),
    Case("strftime-without-year", '[import]\ntimestamp_format = "%d/%m %H:%M"\n',
         "import.timestamp_format: has no year (%Y or %y)"),
    Case("strftime-empty", '[import]\ntimestamp_format = ""\n',
         "import.timestamp_format: is empty; remove the line for ISO 8601 timestamps"),
    Case("share-above-one", "[import]\nmax_unparsable_share = 5\n",
         "import.max_unparsable_share: Input should be less than or equal to 1 (got 5)"),
    Case("delimiter-two-chars", '[import]\ncsv_delimiter = ";;"\n',
         "import.csv_delimiter: must be one character"),
    # -- [features] -----------------------------------------------------------------------
    Case("windows-zero-and-negative", "[features]\nshort_windows_days = [0, -1]\n",
         "features.short_windows_days[0]: Input should be greater than or equal to 1 (got 0) (and 1 more problem)"),
    Case("windows-not-a-list", "[features]\nshort_windows_days = 30\n",
         "features.short_windows_days: should be a list of whole numbers of days, e.g. [30, 90] (got 30)"),
    Case("horizon-quoted", '[features]\nhorizon_days = "90"\n',
         'features.horizon_days: Input should be a valid integer; write the number without quotes (got "90")'),
    Case("horizon-boolean", "[features]\nhorizon_days = true\n",
         "features.horizon_days: Input should be a valid integer, not true/false (got true)"),
    Case("horizon-fraction", "[features]\nhorizon_days = 90.5\n",
         "features.horizon_days: Input should be a valid integer (a whole number) (got 90.5)"),
    Case("horizon-beyond-a-century", "[features]\nhorizon_days = 99999999\n",
         "features.horizon_days: Input should be less than or equal to 36500", args=tuple(FEATURES)),
    Case("snapshot-count-zero", "[features]\nsnapshot_count = 0\n",
         "features.snapshot_count: Input should be greater than or equal to 1 (got 0)", args=tuple(FEATURES)),
    Case("output-dir-empty", '[features]\noutput_dir = ""\n',
         "features.output_dir: is empty", args=tuple(FEATURES)),
    # -- [warehouse] ----------------------------------------------------------------------
    Case("warehouse-url-empty", '[warehouse]\nurl = ""\n', "warehouse.url: is empty"),
    Case("warehouse-unsupported-scheme", '[warehouse]\nurl = "mysql://u@h/db"\n',
         "warehouse.url: must start with duckdb:/// (a file) or postgresql:// (a server URL)"),
    Case("warehouse-in-memory", '[warehouse]\nurl = "duckdb://"\n', "warehouse.url: names no file"),
    Case("warehouse-url-ends-in-slash", '[warehouse]\nurl = "duckdb:///data/"\n',
         "warehouse.url: ends with / (a folder); name the file in it"),
    Case("warehouse-url-is-a-folder", '[warehouse]\nurl = "duckdb:///data"\n', "is a folder; name the DuckDB file in it",
         setup=_folder_named("data")),
    Case("postgres-port-out-of-range", '[warehouse]\nurl = "postgresql://u:hunter2@db:99999/w"\n',
         "warehouse.url: the port must be a number from 1 to 65535"),
    Case("lock-wait-negative", "[warehouse]\nlock_wait_seconds = -1\n",
         "warehouse.lock_wait_seconds: Input should be greater than or equal to 0 (got -1)"),
    Case("env-reference-malformed", '[warehouse]\nurl = "postgresql://u:${}@db/w"\n',
         "warehouse.url: a ${...} reference must name a variable"),
    # -- [mlflow] -------------------------------------------------------------------------
    Case("tracking-uri-unset-variable", f'[mlflow]\ntracking_uri = "http://${{{UNSET}}}:5000"\n',
         f"mlflow.tracking_uri: environment variable {UNSET} is referenced but not set; export {UNSET}=..."),
    Case("artifacts-unset-variable", f'[mlflow]\nartifact_location = "${{{UNSET}}}/artifacts"\n',
         f"mlflow.artifact_location: environment variable {UNSET} is referenced but not set"),
    Case("tracking-uri-ftp", '[mlflow]\ntracking_uri = "ftp://files.example.com/mlruns"\n',
         "mlflow.tracking_uri: the scheme ftp: is not supported; use sqlite:///mlruns/mlflow.db"),
    Case("tracking-uri-no-host", '[mlflow]\ntracking_uri = "http://:5000"\n',
         "mlflow.tracking_uri: names no host; write http://host:5000"),
    Case("artifacts-s3-uri", '[mlflow]\nartifact_location = "s3://bucket/artifacts"\n',
         "mlflow.artifact_location: must be a folder path (e.g. mlruns/artifacts), not a URI"),
    # -- [lightgbm], [training], [serving], [api] -----------------------------------------
    Case("threads-negative", "[lightgbm]\nnum_threads = -2\n",
         "lightgbm.num_threads: Input should be greater than or equal to 0 (got -2)"),
    Case("seed-negative", "[lightgbm]\nseed = -1\n", "lightgbm.seed: Input should be greater than or equal to 0"),
    Case("learning-rate-nan", "[training]\nlearning_rate = nan\n",
         "training.learning_rate: Input should be a finite number (got nan)"),
    Case("tuning-share-one", "[training]\ntuning_share = 1.0\n",
         "training.tuning_share: Input should be less than 1 (got 1.0)"),
    Case("tweedie-power-out-of-range", "[training]\ntweedie_variance_power = 2.5\n",
         "training.tweedie_variance_power: Input should be less than 2"),
    Case("positives-above-rows", "[training]\nmin_test_positives = 600\n",
         "[training]: min_test_positives (600) is more than min_test_rows (500)"),
    Case("experiment-blank", '[training]\nexperiment = "  "\n', "training.experiment: is empty"),
    Case("margin-above-one", "[serving]\nmargin = 1.5\n",
         "serving.margin: Input should be less than or equal to 1 (got 1.5)", args=tuple(SCORE)),
    Case("contact-cost-infinite", "[serving]\ncontact_cost = inf\n",
         "serving.contact_cost: Input should be a finite number (got inf)", args=tuple(SCORE)),
    Case("chunk-size-zero", "[serving]\nchunk_size = 0\n",
         "serving.chunk_size: Input should be greater than or equal to 1", args=tuple(SCORE)),
    Case("reasons-above-fifty", "[serving]\nreasons_per_model = 51\n",
         "serving.reasons_per_model: Input should be less than or equal to 50", args=tuple(SCORE)),
    Case("api-port-out-of-range", "[api]\nport = 70000\n", "api.port: Input should be less than or equal to 65535"),
    Case("api-host-with-port", '[api]\nhost = "localhost:8000"\n', "api.host: write only the host name or address"),
    # -- structure ------------------------------------------------------------------------
    Case("unknown-section-capitalised", "[Features]\nhorizon_days = 30\n",
         "[Features]: unknown section; did you mean [features]?"),
    Case("unknown-section", "[scoring]\nmargin = 0.2\n", "[scoring]: unknown section; did you mean [serving]?"),
    Case("unknown-key-typo", "[features]\nhorizn_days = 30\n", "features.horizn_days: unknown key; did you mean horizon_days?"),
    Case("key-outside-any-section", "horizon_days = 30\n",
         "horizon_days: a key outside any section; put it under [features]"),
    Case("section-given-a-value", "features = 5\n",
         "features: should be a section ([features] followed by key = value lines) (got 5)"),
    Case("mapping-unknown-table", "[mapping.orders]\nts = 'x'\n", "unknown table 'orders'; use one of transactions"),
    Case("mapping-empty-column", "[mapping.transactions]\nts = ''\n", "transactions: ts = '': give the column name"),
    # -- the file itself ------------------------------------------------------------------
    Case("toml-unquoted-text", "[features]\nhorizon_days = thirty\n",
         "not valid TOML at line 2, column 16: Invalid value; fix that line"),
    Case("toml-section-twice", "[features]\nhorizon_days = 30\n[features]\nsnapshot_count = 2\n",
         "not valid TOML at line 3, column 10: Cannot declare ('features',) twice"),
    Case("toml-unclosed-section", "[features\nhorizon_days = 30\n", "not valid TOML at line 1"),
    Case("not-utf8", b"[features]\n# caf\xe9 au lait\nhorizon_days = 30\n",
         "not UTF-8 text (byte 0xe9 on line 2); save it as UTF-8"),
    Case("config-is-a-folder", None, "is a folder, not a file; name the file (e.g. conf/propensity.toml)",
         config="conf", setup=_folder_named("conf")),
    Case("config-is-a-folder-holding-one", None, "is a folder, not a file; use --config conf/propensity.toml",
         config="conf", setup=lambda p: (_folder_named("conf")(p), (p / "conf" / "propensity.toml").write_text(""))),
    Case("config-missing", None, "config file nowhere.toml not found; check the path", config="nowhere.toml"),
    Case("config-too-large", "# " + "x" * (1 << 20) + "\n", "is larger than 1024 KiB: not a propensity.toml",
         config="propensity.toml"),
    Case("config-not-a-regular-file", None, "is not a regular file", config="/dev/null"),
]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Path:
    return seed_project(tmp_path_factory.mktemp("seeded") / "project")


@pytest.fixture
def project(seeded: Path, tmp_path: Path) -> Path:
    """A copy of the seeded project."""
    return copy_project(seeded, tmp_path)


def _line_of(case: Case, project: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv(UNSET, raising=False)
    if isinstance(case.toml, bytes):
        (project / "propensity.toml").write_bytes(case.toml)
    elif case.toml is not None:
        (project / "propensity.toml").write_text(case.toml)
    if case.setup:
        case.setup(project)
    args = list(case.args) + (["--config", case.config] if case.config else [])
    return assert_refused(args, project, case.says)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_config_is_refused_in_one_line(case: Case, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    line = _line_of(case, project, monkeypatch)
    named = case.config or "propensity.toml"
    assert named in line, f"{line!r} does not name the file"
    assert "hunter2" not in line  # a password in a URL is never echoed


def test_corpus_is_large_and_distinct() -> None:
    assert len(CASES) >= 16
    assert len({c.id for c in CASES}) == len(CASES)


def test_unreadable_config_is_refused(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """chmod 000; as root (who reads anything) the read itself is made to fail the same way."""
    config = project / "propensity.toml"
    config.write_text("[features]\nhorizon_days = 30\n")
    if os.geteuid() == 0:
        real_open = Path.open

        def refusing_open(self: Path, *args, **kwargs):
            if self.name == "propensity.toml":
                raise PermissionError(13, "Permission denied", str(self))
            return real_open(self, *args, **kwargs)

        monkeypatch.setattr(Path, "open", refusing_open)
    else:
        config.chmod(0)
    try:
        line = assert_refused(IMPORT, project, "cannot read it (permission denied); make it readable")
    finally:
        config.chmod(0o644)
    assert line.startswith("error: config file propensity.toml:")


def test_a_config_that_is_fine_still_imports(project: Path) -> None:
    """The control: the same command with a good config (BOM included) writes, so the corpus is meaningful."""
    from tests.corpus import dump_warehouse, run

    (project / "propensity.toml").write_bytes(b"\xef\xbb\xbf[import]\ntimestamp_format = '%Y-%m-%d %H:%M'\n")
    (project / "more.csv").write_text("customer_id,order_id,ts,amount,category\nc9,o9,2024-04-01 09:30,5.00,a\n")
    before = dump_warehouse(project / "warehouse.duckdb")
    out = run(["data", "import", "transactions", "more.csv", "--append", "--extracted-at", "2024-06-30"], project)
    assert out.exit_code == 0, out.stderr
    after = dump_warehouse(project / "warehouse.duckdb")
    assert before["transactions"] != after["transactions"]

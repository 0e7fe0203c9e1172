"""propensity.toml: defaults, init, one-line errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from propensity.cli import app
from propensity.config import DEFAULT_TOML, Config, ConfigError, load_config, resolve_paths

runner = CliRunner()


def test_init_writes_the_defaults(tmp_path: Path) -> None:
    res = runner.invoke(app, ["init", str(tmp_path)])
    assert res.exit_code == 0, res.output
    written = load_config(tmp_path / "propensity.toml")
    # the defaults, with the relative paths taken in the config file's folder
    assert written == resolve_paths(Config(), tmp_path)
    assert written.warehouse.url == f"duckdb:///{tmp_path}/warehouse.duckdb"
    assert written.mlflow.tracking_uri == f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    assert written.features.horizon_days == 90
    # a second init refuses to overwrite
    res = runner.invoke(app, ["init", str(tmp_path)])
    assert res.exit_code == 1 and "already exists" in res.output


@pytest.mark.parametrize(
    "text, message",
    [
        ("[features]\nhorizon_days = -3\n", "features.horizon_days: Input should be greater than or equal to 1 (got -3)"),
        ("[features]\nhorizn_days = 3\n", "features.horizn_days: unknown key"),
        ("[warehouse]\nurl = 'mysql://x'\n", "warehouse.url: must start with duckdb:///"),
        ("[mapping.orders]\nts = 'x'\n", "unknown table 'orders'"),
        ("[mapping.transactions]\nwhen = 'x'\n", "unknown column 'when'"),
        ("[features\n", "not valid TOML"),
        ("[warehouse]\nurl = 'postgresql://u:${NO_SUCH_VAR_X}@h/db'\n", "NO_SUCH_VAR_X"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_env_reference_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPW_TEST", "s3cret")
    path = tmp_path / "p.toml"
    path.write_text("[warehouse]\nurl = 'postgresql://u:${PGPW_TEST}@h/db'\n")
    assert load_config(path).warehouse.url == "postgresql://u:s3cret@h/db"


def test_cli_reports_config_error_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text("[features]\nhorizon_days = 'soon'\n")
    res = runner.invoke(app, ["features", "build", "--as-of", "2024-01-01", "--config", str(path)])
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == [
        f'error: {path}: features.horizon_days: Input should be a valid integer; write the number without quotes (got "soon")'
    ]


def test_default_toml_documents_every_section() -> None:
    for section in ("[warehouse]", "[mlflow]", "[import]", "[features]", "[lightgbm]", "[mapping.transactions]"):
        assert section in DEFAULT_TOML


# -- relative paths: taken in the config file's folder ----------------------------------
def _load_from_elsewhere(folder: Path, text: str, cwd: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "propensity.toml").write_text(text)
    cwd.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(cwd)
    return load_config(folder / "propensity.toml")


@pytest.mark.parametrize("url, expected", [
    ("duckdb:///warehouse.duckdb", "proj/warehouse.duckdb"),
    ("duckdb:///data/w.duckdb", "proj/data/w.duckdb"),
    ("duckdb://w.duckdb", "proj/w.duckdb"),  # two slashes: still a relative file, as Warehouse reads it
])
def test_relative_duckdb_url_is_next_to_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   url: str, expected: str) -> None:
    cfg = _load_from_elsewhere(tmp_path / "proj", f'[warehouse]\nurl = "{url}"\n', tmp_path / "elsewhere", monkeypatch)
    assert cfg.warehouse.url == f"duckdb:///{tmp_path / expected}"
    from features.load import Warehouse

    assert Warehouse(cfg.warehouse.url).path == tmp_path / expected


def test_absolute_paths_and_servers_are_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HOST_T", "tracker.internal")
    cfg = _load_from_elsewhere(tmp_path / "proj", (
        '[warehouse]\nurl = "duckdb:////srv/data/w.duckdb"\n'
        '[mlflow]\ntracking_uri = "http://${MLFLOW_HOST_T}:5000"\nartifact_location = "/srv/artifacts"\n'
        '[features]\noutput_dir = "/srv/out"\n[serving]\nsnapshot_dir = "/srv/scoring"\n'),
        tmp_path / "elsewhere", monkeypatch)
    assert cfg.warehouse.url == "duckdb:////srv/data/w.duckdb"
    assert cfg.mlflow.tracking_uri == "http://tracker.internal:5000"
    assert (cfg.mlflow.artifact_location, cfg.features.output_dir, cfg.serving.snapshot_dir) == (
        "/srv/artifacts", "/srv/out", "/srv/scoring")
    pg = _load_from_elsewhere(tmp_path / "pg", '[warehouse]\nurl = "postgresql://u@db:5432/w"\n',
                              tmp_path / "elsewhere", monkeypatch)
    assert pg.warehouse.url == "postgresql://u@db:5432/w"


def test_relative_mlflow_and_output_paths_are_next_to_the_config(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    proj = tmp_path / "proj"
    cfg = _load_from_elsewhere(proj, (
        '[mlflow]\ntracking_uri = "sqlite:///store/mlflow.db"\nartifact_location = "store/artifacts"\n'
        '[features]\noutput_dir = "out"\n'), tmp_path / "elsewhere", monkeypatch)
    assert cfg.mlflow.tracking_uri == f"sqlite:///{proj}/store/mlflow.db"
    assert cfg.mlflow.artifact_location == str(proj / "store" / "artifacts")
    assert cfg.features.output_dir == str(proj / "out")
    assert cfg.serving.snapshot_dir == str(proj / "out" / "scoring")  # the default, also next to the file
    files = _load_from_elsewhere(tmp_path / "p2", '[mlflow]\ntracking_uri = "runs"\n', tmp_path, monkeypatch)
    assert files.mlflow.tracking_uri == str(tmp_path / "p2" / "runs")  # MLflow's file store: a folder


def test_without_a_file_the_defaults_stay_relative_to_the_current_folder(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config() == Config()
    assert load_config().warehouse.url == "duckdb:///warehouse.duckdb"
    (tmp_path / "propensity.toml").write_text("[features]\nhorizon_days = 30\n")
    here = load_config()  # ./propensity.toml: its folder is the current one
    assert here.warehouse.url == f"duckdb:///{tmp_path}/warehouse.duckdb"
    assert here.features.horizon_days == 30


def test_cli_with_config_elsewhere_writes_the_warehouse_next_to_it(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    proj, elsewhere = tmp_path / "proj", tmp_path / "elsewhere"
    proj.mkdir()
    elsewhere.mkdir()
    (proj / "propensity.toml").write_text('[warehouse]\nurl = "duckdb:///data/w.duckdb"\n')
    sales = tmp_path / "sales.csv"
    sales.write_text("customer_id,ts,amount,category\nc1,2024-01-02,10.5,a\nc2,2024-01-03,7,b\n")
    monkeypatch.chdir(elsewhere)
    res = runner.invoke(app, ["data", "import", "transactions", str(sales), "--extracted-at", "2024-02-01",
                              "-c", str(proj / "propensity.toml")])
    assert res.exit_code == 0, res.output
    assert (proj / "data" / "w.duckdb").is_file()
    assert list(elsewhere.iterdir()) == []
    res = runner.invoke(app, ["data", "status", "-c", "../proj/propensity.toml"])  # a relative --config too
    assert res.exit_code == 0, res.output
    assert [line.split() for line in res.stdout.splitlines() if line.startswith("transactions")] == [
        ["transactions", "2"]]


def test_config_toml_round_trips(tmp_path) -> None:
    from propensity.config import FeaturesConfig, MonitoringConfig, TrainingConfig, config_toml, project_in

    cfg = project_in(tmp_path / 'a "quoted" folder').model_copy(update={
        "features": FeaturesConfig(short_windows_days=(7, 30), season_features=True, holidays=("12-25",),
                                   output_dir=str(tmp_path / "out")),
        "training": TrainingConfig(learning_rate=0.1, value_level_correction=False),
        "monitoring": MonitoringConfig(feature_psi_alert=0.1),
        "mapping": {"transactions": {"ts": "Invoice Date", "amount": 'Line "Total"'}},
    })
    text = config_toml(cfg)
    assert "[monitoring]\nfeature_psi_alert = 0.1\n" in text
    assert "prediction_psi_alert" not in text and "[api]" not in text  # defaults are left out
    path = tmp_path / "propensity.toml"
    path.write_text(text)
    assert load_config(path) == cfg
    assert config_toml(project_in(tmp_path).model_copy(update={"warehouse": Config().warehouse,
                                                                "mlflow": Config().mlflow,
                                                                "lightgbm": Config().lightgbm,
                                                                "serving": Config().serving})) == ""

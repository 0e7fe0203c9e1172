"""propensity.toml: defaults, init, one-line errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from propensity.cli import app
from propensity.config import DEFAULT_TOML, Config, ConfigError, load_config

runner = CliRunner()


def test_init_writes_the_defaults(tmp_path: Path) -> None:
    res = runner.invoke(app, ["init", str(tmp_path)])
    assert res.exit_code == 0, res.output
    written = load_config(tmp_path / "propensity.toml")
    assert written == Config()
    assert written.warehouse.url == "duckdb:///warehouse.duckdb"
    assert written.mlflow.tracking_uri == "sqlite:///mlruns/mlflow.db"
    assert written.features.horizon_days == 90
    # a second init refuses to overwrite
    res = runner.invoke(app, ["init", str(tmp_path)])
    assert res.exit_code == 1 and "already exists" in res.output


@pytest.mark.parametrize(
    "text, message",
    [
        ("[features]\nhorizon_days = -3\n", "features.horizon_days: Input should be greater than 0"),
        ("[features]\nhorizn_days = 3\n", "features.horizn_days: unknown key"),
        ("[warehouse]\nurl = 'mysql://x'\n", "warehouse.url: Value error, must start with duckdb:///"),
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
        f"error: {path}: features.horizon_days: Input should be a valid integer, unable to parse string as an integer"
    ]


def test_default_toml_documents_every_section() -> None:
    for section in ("[warehouse]", "[mlflow]", "[import]", "[features]", "[lightgbm]", "[mapping.transactions]"):
        assert section in DEFAULT_TOML

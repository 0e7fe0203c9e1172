"""Shared fixtures: paths, a fresh warehouse per test, the public data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from features.load import Warehouse

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_DATA = Path(os.environ.get("PROPENSITY_PUBLIC_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture
def warehouse(tmp_path: Path):
    """An empty DuckDB warehouse file in a temp folder."""
    wh = Warehouse(f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    yield wh
    wh.close()


@pytest.fixture(scope="session")
def public_data() -> Path:
    """The folder of public data sets; skips the test when it is absent."""
    if not (PUBLIC_DATA / "README.md").exists():
        pytest.skip(
            f"public data sets not found at {PUBLIC_DATA} "
            "(set PROPENSITY_PUBLIC_DATA to the shared/data folder to run this test)"
        )
    return PUBLIC_DATA


@pytest.fixture(scope="session")
def postgres_url(postgres_server):
    """The URL of the database `warehouse` on the test PostgreSQL server."""
    return postgres_server("warehouse")


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server, initdb'd in a temp folder and started on 127.0.0.1 for the session.

    Yields a function that creates a new database and returns its URL. Skips with a
    message when the server binaries are not installed.
    """
    from tests.pgserver import pg_bin, temporary_postgres

    if pg_bin() is None:
        pytest.skip("PostgreSQL server not installed (apt-get install postgresql); `make test` installs it")
    with temporary_postgres() as new_database:
        yield new_database


MONITORED_WORLD = {"customers": 3000, "seed": 4}  # the sample world the monitoring tests score


@pytest.fixture(scope="session")
def monitored_champions(tmp_path_factory):
    """Churn, response and value champions trained once on a 3,000-customer sample world.

    Yields `project(folder, drift=())`: a Config whose MLflow store holds those champions
    and whose warehouse (in `folder`, new) holds the same world, with `drift` injected
    (`features.synth.Drift`). Each test module scores and monitors in its own warehouse.
    """
    from features.synth import SynthConfig
    from features.synth_import import load_sample_world
    from propensity.config import WarehouseConfig, project_in
    from training.pipeline import promote_models, train_and_log

    base = project_in(tmp_path_factory.mktemp("champions"))
    with Warehouse(base.warehouse.url) as wh:
        load_sample_world(wh, SynthConfig(**MONITORED_WORLD))
        train_and_log(["churn", "response", "value"], wh, base)
        promote_models(["churn", "response", "value"], wh, base, margin=0.0, force=True)

    def project(folder: Path, drift: tuple = ()):
        cfg = base.model_copy(update={
            "warehouse": WarehouseConfig(url=f"duckdb:///{folder / 'warehouse.duckdb'}"),
            "serving": base.serving.model_copy(update={"snapshot_dir": str(folder / "scoring")})})
        with Warehouse(cfg.warehouse.url) as wh:
            load_sample_world(wh, SynthConfig(**MONITORED_WORLD, drift=drift))
        return cfg

    yield project

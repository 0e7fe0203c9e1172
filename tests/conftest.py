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

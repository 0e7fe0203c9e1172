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

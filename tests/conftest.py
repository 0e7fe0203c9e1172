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


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@pytest.fixture(scope="session")
def postgres_url(postgres_server):
    """The URL of the database `warehouse` on the test PostgreSQL server."""
    return postgres_server("warehouse")


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server, initdb'd in a temp folder and started on 127.0.0.1.

    Yields a function that creates a new database and returns its URL.

    Runs as the `postgres` system user when the tests run as root (initdb refuses root).
    Skips with a message when the server binaries are not installed.
    """
    import shutil
    import socket
    import subprocess

    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server not installed (apt-get install postgresql); `make test` installs it")
    import tempfile

    # Not under pytest's temp root: that is private to root, and the server runs as postgres.
    folder = Path(tempfile.mkdtemp(prefix="propensity-pg-"))
    data = folder / "data"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "propensity", "--auth=trust", "-E", "UTF8"],
        check=True, capture_output=True,
    )
    subprocess.run(
        [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w", "start",
         "-o", f"-h 127.0.0.1 -p {port} -k {folder}"],
        check=True, capture_output=True,
    )
    createdb = bindir / "createdb" if (bindir / "createdb").exists() else Path("createdb")

    def new_database(name: str) -> str:
        subprocess.run(
            [str(createdb), "-h", "127.0.0.1", "-p", str(port), "-U", "propensity", name],
            check=True, capture_output=True,
        )
        return f"postgresql://propensity@127.0.0.1:{port}/{name}"

    try:
        yield new_database
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)

"""A throw-away PostgreSQL server for tests and benchmarks (Debian's postgresql package).

`initdb` in a temp folder, started on 127.0.0.1 with a free port, stopped and removed
on exit. Runs the server as the `postgres` system user when called as root (initdb
refuses root).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def pg_bin() -> Path | None:
    """The folder of the newest installed server binaries, or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@contextmanager
def temporary_postgres() -> Iterator[Callable[[str], str]]:
    """Start a server; yield `new_database(name) -> url`. Raises FileNotFoundError when not installed."""
    bindir = pg_bin()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL server not installed (apt-get install postgresql)")
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
        subprocess.run([str(createdb), "-h", "127.0.0.1", "-p", str(port), "-U", "propensity", name],
                       check=True, capture_output=True)
        return f"postgresql://propensity@127.0.0.1:{port}/{name}"

    try:
        yield new_database
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)

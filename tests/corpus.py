"""The malformed-input corpus harness: a refused input gives one line, exit 1, and no change.

Each case runs a `propensity` command in-process (Typer's runner, so the corpus stays
fast) inside a project folder with a warehouse that already holds data, and checks:

- exit code 1 and exactly one non-empty line on stderr, starting with ``error: ``, no
  traceback, at most `MAX_LINE` characters;
- the line says what to change (a substring the case names);
- every warehouse table dumps to the same bytes before and after (schema and rows, in
  stored order), and no table appeared or vanished.

Used by tests/test_malformed_imports.py and tests/test_malformed_configs.py.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.ipc as ipc
from typer.testing import CliRunner

MAX_LINE = 500  # characters: a refused input never prints a wall of text

SEED_CSV = """customer_id,order_id,ts,amount,category
c1,o1,2024-01-02 10:00,10.50,a
c1,o2,2024-02-03 11:00,20.00,b
c2,o3,2024-01-05,7.25,a
c3,o4,2024-03-01,12.00,c
c3,o5,2024-03-09,3.00,c
"""


def seed_project(folder: Path) -> Path:
    """A project folder whose warehouse holds five transaction lines (imported the normal way)."""
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "seed.csv"
    source.write_text(SEED_CSV)
    result = run(["data", "import", "transactions", str(source), "--extracted-at", "2024-06-30"], folder)
    assert result.exit_code == 0, result.stderr
    return folder


def copy_project(seeded: Path, tmp_path: Path) -> Path:
    """A fresh copy of a project made once by `seed_project` (importing once per module keeps a corpus fast)."""
    import shutil

    folder = tmp_path / "project"
    shutil.copytree(seeded, folder)
    return folder


@dataclass
class Outcome:
    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None


def run(args: list[str], cwd: Path) -> Outcome:
    """Run `propensity ARGS` in `cwd` in this process; stdout and stderr apart."""
    from propensity.cli import app

    import os

    before = Path.cwd()
    os.chdir(cwd)
    try:
        res = CliRunner().invoke(app, args)
    finally:
        os.chdir(before)
    exc = res.exception if not isinstance(res.exception, SystemExit) else None
    return Outcome(res.exit_code, res.stdout, res.stderr, exc)


def dump_warehouse(path: Path) -> dict[str, bytes]:
    """Every table of a DuckDB warehouse file as Arrow IPC bytes (schema + rows in stored order)."""
    if not path.exists():
        return {}
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = [r[0] for r in con.execute(
            "select table_name from information_schema.tables order by table_name").fetchall()]
        out = {}
        for name in names:
            table: pa.Table = con.sql(f'select * from "{name}"').to_arrow_table()
            # DuckDB's Arrow export leaves whatever was in memory under NULL slots (seen after a
            # failed write: the same rows, other bytes): rebuild, so equal tables dump equal.
            table = pa.Table.from_pylist(table.to_pylist(), schema=table.schema)
            sink = io.BytesIO()
            with ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            out[name] = sink.getvalue()
        return out
    finally:
        con.close()


def assert_refused(args: list[str], cwd: Path, says: str | tuple[str, ...],
                   warehouse: Path | None = None) -> str:
    """Run a command that must be refused; return its one line.

    Args:
        args: the command line after `propensity`.
        cwd: the project folder (holds propensity.toml if the case has one).
        says: text (or alternatives) the line must contain, case-insensitive.
        warehouse: the DuckDB file to compare (default: cwd/warehouse.duckdb).
    """
    warehouse = warehouse or cwd / "warehouse.duckdb"
    before = dump_warehouse(warehouse)
    out = run(args, cwd)
    after = dump_warehouse(warehouse)
    assert out.exception is None, f"{args}: raised {out.exception!r} (a traceback, not a one-line error)"
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert out.exit_code == 1, f"{args}: exit {out.exit_code}, stderr:\n{out.stderr[-2000:]}"
    assert len(errors) == 1, f"{args}: expected one error line, got:\n{out.stderr[-2000:]}"
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout
    line = errors[0]
    assert len(line) <= MAX_LINE, f"{args}: error line of {len(line)} characters"
    wanted = (says,) if isinstance(says, str) else says
    assert any(w.lower() in line.lower() for w in wanted), f"{args}: {line!r} does not say any of {wanted}"
    assert sorted(after) == sorted(before), f"{args}: tables changed: {sorted(before)} -> {sorted(after)}"
    changed = [name for name in before if before[name] != after[name]]
    assert not changed, f"{args}: tables changed: {changed}"
    return line

"""Disk faults as real processes on real file systems: one line, exit 1, the warehouse intact.

- A full disk (a small tmpfs holding the project) during an import (a file larger than the
  free space, and a small one whose commit cannot be written), a features build and a
  scoring run: `no space left on device writing ...; free space there and re-run`, and
  after freeing space the warehouse opens with byte-identical tables and the same command
  succeeds.
- A warehouse folder that cannot be written: a read-only bind mount of the folder with the
  file itself still writable (what `chmod 0555` on the folder does to a non-root user;
  root ignores permission bits), `chmod 0555` itself when not root, and a read-only mount.

Mounting needs root (CI runs the tests as root); without it these tests are skipped with the
reason. Every mount is undone in teardown. The classification itself (what is a disk fault,
what stays a bug with its traceback) is unit-tested at the end without mounts.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from tests.corpus import dump_warehouse, seed_project

ROOT = Path(__file__).resolve().parents[1]
IMPORT = ["data", "import", "transactions"]


# -- helpers ---------------------------------------------------------------------------------
def cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """`propensity ARGS` as its own process in `cwd`."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CI": "1"}
    return subprocess.run([sys.executable, "-m", "propensity.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def one_error_line(res: subprocess.CompletedProcess) -> str:
    """The refusal's single `error:` line; fails on a traceback, several lines or another exit code."""
    assert res.returncode == 1, f"exit {res.returncode}:\n{res.stderr[-3000:]}"
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout, res.stderr[-3000:]
    errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, res.stderr[-3000:]
    return errors[0]


def fill(folder: Path, leave: int = 0) -> Path:
    """Fill the file system of `folder` with a ballast file, leaving about `leave` bytes free."""
    ballast = folder / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for chunk in (1 << 20, 1 << 12):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
        os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
    finally:
        os.close(fd)
    return ballast


def sales_csv(path: Path, rows: int, start: int = 0) -> Path:
    with path.open("w") as f:
        f.write("customer_id,order_id,ts,amount,category\n")
        for i in range(start, start + rows):
            f.write(f"cust{i % 50_000},ord{i},2024-0{1 + i % 5}-{1 + i % 27:02d} 10:00,{(i % 997) / 7:.2f},cat{i % 40}\n")
    return path


def row_count(warehouse: Path, table: str) -> int:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(f'select count(*) from "{table}"').fetchone()[0]
    finally:
        con.close()


class Mounts:
    """Mounts made by one test, undone in reverse order whatever happens."""

    def __init__(self) -> None:
        self.points: list[Path] = []

    def run(self, *args: str) -> None:
        res = subprocess.run(["mount", *args], capture_output=True, text=True)
        if res.returncode != 0:
            raise PermissionError(res.stderr.strip() or f"mount {' '.join(args)} failed")

    def tmpfs(self, point: Path, size: str) -> Path:
        point.mkdir(parents=True, exist_ok=True)
        self.run("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point))
        self.points.append(point)
        return point

    def bind(self, source: Path, point: Path, read_only: bool = False) -> Path:
        self.run("--bind", str(source), str(point))
        self.points.append(point)
        if read_only:
            self.run("-o", "remount,bind,ro", str(point))
        return point

    def remount(self, point: Path, options: str) -> None:
        self.run("-o", f"remount,{options}", str(point))

    def undo(self) -> None:
        for point in reversed(self.points):
            if subprocess.run(["umount", str(point)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(point)], capture_output=True)
        self.points.clear()


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[Mounts]:
    if shutil.which("mount") is None:
        pytest.skip("no `mount` command: the disk-fault tests need a small tmpfs")
    m = Mounts()
    try:
        m.tmpfs(tmp_path / "probe", "64k")
    except PermissionError as e:
        pytest.skip(f"cannot mount a tmpfs here (the disk-fault tests need root, as in CI): {e}")
    m.undo()
    try:
        yield m
    finally:
        m.undo()


FULL = re.compile(r"^error: no space left on device writing (\S+); free space there and re-run: "
                  r"the warehouse is unchanged$")


# -- a full disk -------------------------------------------------------------------------------
def test_import_larger_than_the_free_space(mounts: Mounts, tmp_path: Path) -> None:
    disk = mounts.tmpfs(tmp_path / "disk", "4m")
    project = seed_project(disk / "project")
    warehouse = project / "warehouse.duckdb"
    before = dump_warehouse(warehouse)
    big = sales_csv(tmp_path / "big.csv", 400_000)  # ~19 MB, outside the small disk
    assert big.stat().st_size > 4 * shutil.disk_usage(disk).free

    line = one_error_line(cli([*IMPORT, str(big), "--append", "--extracted-at", "2024-06-30"], project))
    match = FULL.match(line)
    assert match, line
    assert Path(match.group(1)).name in ("warehouse.duckdb", "warehouse.duckdb.wal")
    assert Path(match.group(1)).parent == project

    mounts.remount(disk, "size=256m")  # space freed: the warehouse opens, unchanged, and the import works
    assert dump_warehouse(warehouse) == before
    res = cli([*IMPORT, str(big), "--append", "--extracted-at", "2024-06-30"], project)
    assert res.returncode == 0, res.stderr[-3000:]
    assert row_count(warehouse, "transactions") == 5 + 400_000


def test_import_whose_commit_cannot_be_written(mounts: Mounts, tmp_path: Path) -> None:
    disk = mounts.tmpfs(tmp_path / "disk", "8m")
    project = seed_project(disk / "project")
    warehouse = project / "warehouse.duckdb"
    before = dump_warehouse(warehouse)
    small = sales_csv(tmp_path / "small.csv", 3000)
    ballast = fill(disk)

    line = one_error_line(cli([*IMPORT, str(small), "--append", "--extracted-at", "2024-06-30"], project))
    assert line == (f"error: no space left on device writing {project}/warehouse.duckdb.wal; "
                    "free space there and re-run: the warehouse is unchanged")

    ballast.unlink()
    assert dump_warehouse(warehouse) == before
    res = cli([*IMPORT, str(small), "--append", "--extracted-at", "2024-06-30"], project)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "3,000 loaded" in res.stderr
    assert row_count(warehouse, "transactions") == 5 + 3000


def test_features_build_on_a_full_disk(mounts: Mounts, tmp_path: Path) -> None:
    disk = mounts.tmpfs(tmp_path / "disk", "8m")
    project = seed_project(disk / "project")
    (project / "propensity.toml").write_text('[features]\noutput_dir = "out"\n')
    before = dump_warehouse(project / "warehouse.duckdb")
    ballast = fill(disk)

    line = one_error_line(cli(["features", "build", "--as-of", "2024-03-05"], project))
    assert line == ("error: no space left on device while writing; free space where this command writes "
                    "(the warehouse's folder, [features] output_dir, [serving] snapshot_dir, the MLflow store) "
                    "and re-run")
    ballast.unlink()
    assert dump_warehouse(project / "warehouse.duckdb") == before
    res = cli(["features", "build", "--as-of", "2024-03-05"], project)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (project / "out" / "features_2024-03-05.parquet").is_file()  # next to the config file


@pytest.fixture(scope="module")
def champion(tmp_path_factory) -> Path:
    """A small sample world with a churn champion, on the ordinary disk (trained once)."""
    from features.load import Warehouse
    from features.synth import SynthConfig
    from features.synth_import import load_sample_world
    from propensity.config import project_in
    from training.pipeline import promote_models, train_and_log

    folder = tmp_path_factory.mktemp("champion")
    cfg = project_in(folder)
    with Warehouse(cfg.warehouse.url) as wh:
        load_sample_world(wh, SynthConfig(customers=1000, seed=3))
        train_and_log(["churn"], wh, cfg)
        promote_models(["churn"], wh, cfg, margin=0.0, force=True)  # a small world: past the evidence checks
    return folder


@pytest.mark.slow
def test_scoring_on_a_full_disk(mounts: Mounts, tmp_path: Path, champion: Path) -> None:
    disk = mounts.tmpfs(tmp_path / "disk", "16m")
    project = disk / "project"
    project.mkdir()
    shutil.copy(champion / "warehouse.duckdb", project / "warehouse.duckdb")
    (project / "propensity.toml").write_text(
        f'[mlflow]\ntracking_uri = "sqlite:///{champion}/mlruns/mlflow.db"\n'
        f'artifact_location = "{champion}/mlruns/artifacts"\n[lightgbm]\nnum_threads = 1\n')
    warehouse = project / "warehouse.duckdb"
    res = cli(["score", "--as-of", "2025-06-01"], project)
    assert res.returncode == 0, res.stderr[-3000:]
    published = dump_warehouse(warehouse)
    assert "current_customer_scores" in published

    # full before the run can even take the scoring lock: nothing at all changes
    ballast = fill(disk)
    line = one_error_line(cli(["score", "--as-of", "2025-06-15"], project))
    assert line == (f"error: no space left on device writing {warehouse}.wal; free space there and re-run")
    ballast.unlink()
    assert dump_warehouse(warehouse) == published

    # full in the middle of the run: the attempt is recorded as failed, the published results stay
    ballast = fill(disk, leave=300_000)
    line = one_error_line(cli(["score", "--as-of", "2025-06-15"], project))
    assert line == (f"error: no space left on device writing {warehouse}.wal; free space there and re-run")
    ballast.unlink()
    after = dump_warehouse(warehouse)
    assert sorted(after) == sorted(published)
    assert [t for t in published if published[t] != after[t]] == ["scoring_runs"]
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        runs = con.execute("select as_of::varchar, status, error from scoring_runs order by as_of, attempt").fetchall()
    finally:
        con.close()
    assert [(r[0], r[1]) for r in runs] == [("2025-06-01", "succeeded"), ("2025-06-15", "failed")]
    assert "No space left on device" in runs[1][2]

    res = cli(["score", "--as-of", "2025-06-15"], project)  # space freed: the same command succeeds
    assert res.returncode == 0, res.stderr[-3000:]


# -- a warehouse folder that cannot be written ----------------------------------------------------
def test_read_only_warehouse_folder_with_a_writable_file(mounts: Mounts, tmp_path: Path) -> None:
    """DuckDB opens the file, then cannot create its write-ahead log beside it at commit."""
    project = seed_project(tmp_path / "project")
    view = tmp_path / "view"
    view.mkdir()
    mounts.bind(project, view, read_only=True)
    mounts.bind(project / "warehouse.duckdb", view / "warehouse.duckdb")  # the file itself stays writable
    assert os.access(view / "warehouse.duckdb", os.W_OK)
    before = dump_warehouse(view / "warehouse.duckdb")

    more = sales_csv(tmp_path / "more.csv", 10)
    line = one_error_line(cli([*IMPORT, str(more), "--append", "--extracted-at", "2024-06-30"], view))
    assert line == (f"error: read-only file system writing {view}/warehouse.duckdb.wal; remount it read-write, or "
                    "point [warehouse] url at a writable folder, then re-run: the warehouse is unchanged")
    assert dump_warehouse(view / "warehouse.duckdb") == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits; the bind-mount test covers root")
def test_warehouse_folder_chmod_0555(tmp_path: Path) -> None:
    project = seed_project(tmp_path / "project")
    before = dump_warehouse(project / "warehouse.duckdb")
    more = sales_csv(tmp_path / "more.csv", 10)
    project.chmod(0o555)
    try:
        line = one_error_line(cli([*IMPORT, str(more), "--append", "--extracted-at", "2024-06-30"], project))
    finally:
        project.chmod(0o755)
    assert line.startswith("error: permission denied on ") and "make its folder writable for this user" in line
    assert dump_warehouse(project / "warehouse.duckdb") == before


def test_read_only_mount(mounts: Mounts, tmp_path: Path) -> None:
    disk = mounts.tmpfs(tmp_path / "disk", "8m")
    project = seed_project(disk / "project")
    (project / "propensity.toml").write_text("")  # the warehouse path is then taken next to it
    before = dump_warehouse(project / "warehouse.duckdb")
    mounts.remount(disk, "ro")

    more = sales_csv(tmp_path / "more.csv", 10)
    line = one_error_line(cli([*IMPORT, str(more), "--append", "--extracted-at", "2024-06-30"], project))
    assert line == (f"error: cannot open warehouse {project}/warehouse.duckdb: read-only file system; remount it "
                    "read-write, or point [warehouse] url at a writable folder, then re-run")
    res = cli(["data", "status"], project)  # reading is fine
    assert res.returncode == 0 and re.search(r"^transactions\s+5$", res.stdout, re.M), res.stderr
    line = one_error_line(cli(["features", "build", "--as-of", "2024-03-05", "--out", "sub/f.parquet"], project))
    assert line == ("error: read-only file system writing sub; remount it read-write, or point "  # --out as given
                    "propensity.toml at a writable folder, then re-run")
    mounts.remount(disk, "rw")
    assert dump_warehouse(project / "warehouse.duckdb") == before


# -- what is a disk fault, what stays a bug ---------------------------------------------------------
def test_disk_fault_classification() -> None:
    from propensity.faults import disk_fault

    full = OSError(errno.ENOSPC, "No space left on device", "/data/w.duckdb")
    assert disk_fault(full).line() == "no space left on device writing /data/w.duckdb; free space there and re-run"
    quota = OSError(errno.EDQUOT, "Disk quota exceeded", "/home/u/out/f.parquet")
    assert disk_fault(quota).line().startswith("disk quota exceeded writing /home/u/out/f.parquet; free space or")
    denied = PermissionError(errno.EACCES, "Permission denied", "/srv/out")
    assert disk_fault(denied).line("", "[features] output_dir") == (
        "permission denied on /srv/out; make its folder writable for this user, or point [features] output_dir "
        "at a writable folder, then re-run")

    # DuckDB hides the cause behind "transaction aborted" while cleaning up: found through the chain
    try:
        try:
            raise duckdb.IOException('IO Error: Could not write file "/d/w.duckdb": No space left on device')
        except duckdb.IOException:
            raise duckdb.TransactionException("TransactionContext Error: Current transaction is aborted")
    except duckdb.Error as e:
        chained = e
    fault = disk_fault(chained)
    assert (fault.code, fault.path) == (errno.ENOSPC, "/d/w.duckdb")

    # a bug raised while handling a disk error is still a bug
    try:
        try:
            raise full
        except OSError:
            {}["missing"]
    except KeyError as e:
        bug = e
    assert disk_fault(bug) is None
    assert disk_fault(ValueError("No space left on device")) is None  # not an I/O error: not trusted
    assert disk_fault(OSError(errno.ENOENT, "No such file or directory", "/x")) is None
    assert disk_fault(FileNotFoundError(errno.ENOENT, "No such file or directory")) is None


def test_friendly_prints_disk_faults_and_keeps_bugs(capsys: pytest.CaptureFixture[str]) -> None:
    import typer

    from propensity.console import friendly

    @friendly
    def writes_to_a_full_disk() -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "/data/out/f.parquet")

    @friendly
    def has_a_bug() -> None:
        raise KeyError("churn")

    @friendly
    def reads_a_missing_file() -> None:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/nope")

    with pytest.raises(typer.Exit) as exit_:
        writes_to_a_full_disk()
    assert exit_.value.exit_code == 1
    assert capsys.readouterr().err == (
        "error: no space left on device writing /data/out/f.parquet; free space there and re-run\n")
    with pytest.raises(KeyError):
        has_a_bug()
    with pytest.raises(FileNotFoundError):
        reads_a_missing_file()
    assert capsys.readouterr().err == ""


def test_permission_errors_that_are_not_about_files_stay_bugs() -> None:
    from propensity.faults import disk_fault

    assert disk_fault(PermissionError(errno.EACCES, "Permission denied")) is None  # e.g. binding port 80
    assert disk_fault(PermissionError(errno.EPERM, "Operation not permitted")) is None  # e.g. os.kill
    assert disk_fault(PermissionError(errno.EACCES, "Permission denied", "/srv/w")).path == "/srv/w"

"""Training killed with SIGKILL at three points, as real processes, on a small sample world.

The train process kills itself at a named failpoint (`propensity.failpoints`): after the
MLflow run starts and before the model is logged; after the model is logged and before
the card; after the version is registered (and `challenger`) and before it is tagged
complete. The next command marks the dead process's run FAILED and says so in one line,
leaves no run RUNNING, and no incomplete version is promoted or scored: the gate refuses
it in one line naming it, the champion stays where it was, and the scorer refuses a
champion alias that somehow points at one. A run of a live process (a training paused
while another command runs) and a run of another host are left alone; `--fail-other-hosts`
fails the latter.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import pytest

from features.load import Warehouse
from features.synth import SynthConfig
from features.synth_import import load_sample_world
from tests.test_score_safety import _cli, _one_line_error, _stopped

CUSTOMERS = 400  # the smallest sample world churn trains on (164 out-of-time test rows)
AS_OF = "2025-06-01"
MARKED = "marked 1 MLflow run left RUNNING by a process that no longer exists as FAILED: "


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> str:
    """The sample world's warehouse URL (each test has its own MLflow store)."""
    folder = tmp_path_factory.mktemp("faults_train")
    url = f"duckdb:///{folder / 'warehouse.duckdb'}"
    with Warehouse(url) as wh:
        load_sample_world(wh, SynthConfig(customers=CUSTOMERS, seed=3))
    return url


def _project(folder: Path, url: str) -> Path:
    """A propensity.toml with its own MLflow store in `folder` and one LightGBM thread."""
    path = folder / "propensity.toml"
    path.write_text(f"""
[warehouse]
url = "{url}"
[mlflow]
tracking_uri = "sqlite:///{folder / 'mlruns' / 'mlflow.db'}"
artifact_location = "{folder / 'mlruns' / 'artifacts'}"
[lightgbm]
num_threads = 1
[serving]
snapshot_dir = "{folder / 'scoring'}"
""")
    return path


def _client(folder: Path) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}")


def _runs(folder: Path, status: str | None = None) -> list:
    client = _client(folder)
    experiments = [e.experiment_id for e in client.search_experiments()]
    where = f"attributes.status = '{status}'" if status else ""
    return list(client.search_runs(experiments, filter_string=where)) if experiments else []


def _versions(folder: Path, name: str = "churn") -> dict[str, object]:
    return {str(v.version): v for v in _client(folder).search_model_versions(f"name = '{name}'")}


def _alias(folder: Path, alias: str, name: str = "churn") -> str | None:
    try:
        return str(_client(folder).get_model_version_by_alias(name, alias).version)
    except mlflow.exceptions.MlflowException:
        return None


def _killed_train(config: Path, point: str) -> int:
    """`propensity train churn` killing itself at `point`; returns its pid."""
    proc = _cli(config, "train", "churn", failpoint=point, wait=False)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == -signal.SIGKILL, out
    return proc.pid


def _lines(result, prefix: str) -> list[str]:
    assert "Traceback" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith(prefix)]


@pytest.mark.parametrize("point", ["train:run-started", "train:model-logged"])
def test_kill_before_registration_leaves_a_failed_run_and_no_version(world, tmp_path: Path, point: str) -> None:
    config = _project(tmp_path, world)
    pid = _killed_train(config, point)
    (left,) = _runs(tmp_path, "RUNNING")  # nobody has looked yet: the kill left the run open
    run_id = left.info.run_id
    assert left.data.tags["propensity.pid"] == str(pid)
    assert left.data.tags["propensity.host"] == socket.gethostname()
    client = _client(tmp_path)
    logged = {a.path for a in client.list_artifacts(run_id)}
    models = client.search_logged_models(experiment_ids=[left.info.experiment_id],
                                         filter_string=f"source_run_id = '{run_id}'")
    if point == "train:run-started":
        assert not logged and not models  # nothing logged yet
    else:
        assert len(models) == 1 and "model_card.html" not in logged  # the model, not the card
    assert not _versions(tmp_path)  # nothing registered

    nxt = _cli(config, "promote", "churn")  # the next command
    assert nxt.returncode == 1
    assert _lines(nxt, "marked ") == [f"{MARKED}train-churn {run_id[:8]} (pid {pid} on {socket.gethostname()})"]
    assert _lines(nxt, "skipped ") == ["skipped churn: no churn@challenger to promote; train one with "
                                       "`propensity train churn`"]
    assert not _runs(tmp_path, "RUNNING")
    failed = client.get_run(run_id)
    assert failed.info.status == "FAILED" and failed.info.end_time is not None
    assert failed.data.tags["propensity.failed"].startswith(f"the process (pid {pid} on {socket.gethostname()}) "
                                                            "ended without finishing the run")
    assert not _versions(tmp_path) and _alias(tmp_path, "champion") is None and _alias(tmp_path, "challenger") is None
    from propensity.config import load_config
    from training.track import recover_abandoned_runs

    assert recover_abandoned_runs(load_config(config).mlflow) is None  # said once: nothing is RUNNING any more


def test_kill_after_registration_leaves_an_incomplete_version_nobody_uses(world, tmp_path: Path) -> None:
    from propensity.config import load_config
    from training.pipeline import promote_models, train_and_log
    from training.track import configure, version_problem

    config = _project(tmp_path, world)
    cfg = load_config(config)
    with Warehouse(cfg.warehouse.url, read_only=True) as wh:  # a complete champion, version 1
        (first,) = train_and_log(["churn"], wh, cfg)
        (decision,) = promote_models(["churn"], wh, cfg, margin=0.0, force=True)  # small world: past the evidence
    assert decision.promoted and _alias(tmp_path, "champion") == first.version.version == "1"
    assert _versions(tmp_path)["1"].tags["propensity.complete"] == "true"

    pid = _killed_train(config, "train:registered")
    assert not _runs(tmp_path, "RUNNING")  # the run ended before the version was registered
    incomplete = _versions(tmp_path)["2"]
    assert "propensity.complete" not in incomplete.tags and incomplete.tags["propensity.pid"] == str(pid)
    files = json.loads(incomplete.tags["propensity.artifacts"])
    assert "model_card.html" in files and int(incomplete.tags["propensity.artifact_count"]) == len(files)
    assert _client(tmp_path).get_run(incomplete.run_id).info.status == "FINISHED"
    assert _alias(tmp_path, "challenger") == "2"

    nxt = _cli(config, "promote", "churn", "--force")  # not even --force
    assert nxt.returncode == 1
    assert not _lines(nxt, "marked ")
    assert _lines(nxt, "skipped ") == [
        "skipped churn: churn version 2 (@challenger) is incomplete: its training stopped before tagging it "
        "complete; the gate refuses it - retrain with `propensity train churn`"]
    assert not _lines(nxt, "churn: ")  # no decision line: it was not judged
    assert _alias(tmp_path, "champion") == "1"
    refused = _versions(tmp_path)["2"].tags
    assert refused["promotion.decision"] == "refused"
    assert refused["promotion.reason"] == "incomplete: its training stopped before tagging it complete"

    # an incomplete version that somehow holds `champion`: the scorer refuses it by name, writing nothing
    _client(tmp_path).set_registered_model_alias("churn", "champion", "2")
    gone = subprocess.Popen(["true"])  # and a run left RUNNING by a process that has exited: score marks it too
    gone.wait()
    experiment = _client(tmp_path).get_run(incomplete.run_id).info.experiment_id
    orphan = _client(tmp_path).create_run(experiment, run_name="tune-churn", tags={
        "propensity.pid": str(gone.pid), "propensity.host": socket.gethostname()})
    score = _cli(config, "score", "--as-of", AS_OF)
    assert score.returncode == 1
    assert _lines(score, "marked ") == [f"{MARKED}tune-churn {orphan.info.run_id[:8]} (pid {gone.pid} on "
                                        f"{socket.gethostname()})"]
    assert not _runs(tmp_path, "RUNNING")
    assert _one_line_error(score) == (
        "error: churn@champion is version 2, which is incomplete (its training stopped before tagging it "
        "complete); not loading it: retrain it with `propensity train churn` and promote the new version")
    with Warehouse(world, read_only=True) as wh:
        assert not wh.has("scoring_runs")

    # the gate never compares against an incomplete champion: a complete challenger replaces it
    _client(tmp_path).set_registered_model_alias("churn", "challenger", "1")
    with Warehouse(cfg.warehouse.url, read_only=True) as wh:
        (replaced,) = promote_models(["churn"], wh, cfg, margin=0.0, force=True)
    assert replaced.promoted and replaced.champion_score is None and _alias(tmp_path, "champion") == "1"
    assert replaced.reason.startswith("version 1 (auc ") and "replaces champion version 2, which is incomplete (" \
        "its training stopped before tagging it complete)" in replaced.reason
    assert _versions(tmp_path)["1"].tags["promotion.decision"] == "replaced an incomplete champion"

    # the other ways a version is incomplete, on the complete version 1 (in this process)
    configure(cfg.mlflow, cfg.training.experiment)
    assert version_problem("churn", "1") is None
    client = _client(tmp_path)
    v1 = _versions(tmp_path)["1"]
    run_id = v1.run_id
    card = Path(urlparse(client.get_run(run_id).info.artifact_uri).path) / "model_card.html"
    card.rename(card.with_suffix(".bak"))
    assert version_problem("churn", "1") == "its model card is missing"
    card.with_suffix(".bak").rename(card)
    model = Path(urlparse(client.get_logged_model(v1.source.removeprefix("models:/")).artifact_location).path)
    assert (model / "MLmodel").exists()
    shutil.move(model, model.with_name("moved"))
    assert version_problem("churn", "1") == "its model artifact is missing"
    shutil.move(model.with_name("moved"), model)
    client.set_terminated(run_id, status="FAILED")
    assert version_problem("churn", "1") == f"its training run {run_id[:8]} is FAILED"


def test_runs_of_a_live_process_and_of_other_hosts_are_left_alone(world, tmp_path: Path) -> None:
    from propensity.config import load_config
    from training.track import configure, recover_abandoned_runs

    config = _project(tmp_path, world)
    cfg = load_config(config)
    experiment = configure(cfg.mlflow, cfg.training.experiment)
    elsewhere = _client(tmp_path).create_run(experiment, run_name="train-value", tags={
        "propensity.pid": "1", "propensity.host": "elsewhere.example"}).info.run_id
    assert recover_abandoned_runs(cfg.mlflow) is None  # another host's run: not judged from here by default

    paused = _cli(config, "train", "churn", failpoint="train:run-started:stop", wait=False)
    try:
        deadline = time.monotonic() + 300
        while not _stopped(paused.pid):  # stopped by itself with its run open: a training running now
            assert paused.poll() is None, paused.stdout.read()
            assert time.monotonic() < deadline
            time.sleep(0.2)
        (live,) = [r for r in _runs(tmp_path, "RUNNING") if r.info.run_id != elsewhere]
        assert live.data.tags["propensity.pid"] == str(paused.pid)
        nxt = _cli(config, "promote", "churn", "--fail-other-hosts")  # the next command, even with the flag
        assert nxt.returncode == 1
        assert _lines(nxt, "marked ") == [f"{MARKED}train-value {elsewhere[:8]} (pid 1 on elsewhere.example)"]
        assert [r.info.run_id for r in _runs(tmp_path, "RUNNING")] == [live.info.run_id]
        assert "propensity.failed" not in _client(tmp_path).get_run(live.info.run_id).data.tags
        assert _client(tmp_path).get_run(elsewhere).info.status == "FAILED"
    finally:
        os.kill(paused.pid, signal.SIGCONT)
    out, _ = paused.communicate(timeout=600)
    assert paused.returncode == 0, out  # it finishes as if nothing happened
    assert _client(tmp_path).get_run(live.info.run_id).info.status == "FINISHED"
    assert _versions(tmp_path)["1"].tags["propensity.complete"] == "true" and _alias(tmp_path, "challenger") == "1"
    assert not _runs(tmp_path, "RUNNING")

"""Every MLflow call of the project: tracking store, runs, the pyfunc model, the registry.

The store is a sqlite database with artifacts in a folder, both under `mlruns/` by
default (a plain file store is in maintenance mode in MLflow 3). Models are registered
under their model name (`churn`, `response`, `value`); aliases `challenger` and
`champion` point at versions. Nothing here runs at import time.

Crash safety (a training process can be killed at any point):
- Every run is started with the process that owns it as tags (`propensity.pid`,
  `propensity.host`, `propensity.process`: boot id and process start time, so a reused
  pid is not mistaken for the owner). The first `configure` of a process marks runs
  left RUNNING by a process of this host that no longer exists as FAILED, and says so
  in one line; runs of live processes and of other hosts are left alone (the CLI's
  `--fail-other-hosts` includes the latter).
- A version is registered only after its run has logged every artifact and ended
  FINISHED. It is created with the list of files the run logged
  (`propensity.artifacts`), then becomes `challenger`, and is tagged
  `propensity.complete=true` last. `version_problem` checks all of that; the gate
  refuses, and `load_pyfunc`/`load_pyfunc_version` never load, a version it faults.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from propensity.config import MlflowConfig
from propensity.failpoints import failpoint
from training.models import LgbmModel

CHALLENGER = "challenger"
CHAMPION = "champion"

# Run and version tags of crash safety (see the module docstring).
PID_TAG = "propensity.pid"
HOST_TAG = "propensity.host"
PROCESS_TAG = "propensity.process"  # "<boot id>/<start time in clock ticks>" of the pid, when /proc tells
FAILED_TAG = "propensity.failed"  # why a run was marked FAILED by a later process
ARTIFACTS_TAG = "propensity.artifacts"  # JSON list of the files the version's run logged
ARTIFACT_COUNT_TAG = "propensity.artifact_count"
COMPLETE_TAG = "propensity.complete"  # "true", set last
# What a run is, for the UI's run list and `search_runs`: a training run is "model"; each
# baseline it was compared with is a nested run ("baseline") with the model's metric names.
ROLE_TAG = "propensity.role"
MODEL_TAG = "propensity.model"
SCORER_TAG = "propensity.scorer"
# The experiment type MLflow 3's UI reads (an experiment without it may open in GenAI
# mode); "custom_model_development" is its value for classic ML training (the UI's
# ExperimentKind enum; also named in mlflow/assistant/skills/mlflow-onboarding/SKILL.md).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
ML_EXPERIMENT_KIND = "custom_model_development"
CARD_FILE = "model_card.html"
MODELS_WITH_CARDS = ("churn", "response", "value")


class RegistryError(ValueError):
    """A registry request the user can fix (unknown model, no challenger, ...)."""


class IncompleteVersion(RegistryError):
    """A version whose training did not finish (no completeness tag, a file or the model missing, run not FINISHED)."""


def _mlflow():
    import mlflow

    return mlflow


def _use_store(cfg: MlflowConfig) -> str:
    """Point MLflow at the local store; returns the tracking URI as set."""
    # MLflow reads this when it downloads artifacts; bars would flood the CLI's output.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow = _mlflow()
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    uri = cfg.tracking_uri
    if uri.startswith("sqlite:///"):
        # An absolute path: MLflow caches one store per URI text, so a relative one would
        # keep pointing at the first folder it was opened from.
        db = Path(uri.removeprefix("sqlite:///")).resolve()
        db.parent.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{db}"
    mlflow.set_tracking_uri(uri)
    return uri


_RECOVERED: set[str] = set()  # stores this process has already looked at for abandoned runs


def configure(cfg: MlflowConfig, experiment: str, recover: bool = True) -> str:
    """Point MLflow at the local store and return the experiment id (created if new).

    The first call of a process for a store also marks runs abandoned by dead processes
    of this host as FAILED (`recover_abandoned_runs`) and writes its one line to stderr.
    The experiment is typed for ML training (`mlflow.experimentKind`), also when an
    older version of this code created it untyped.
    """
    uri = _use_store(cfg)
    if recover and uri not in _RECOVERED:
        line = recover_abandoned_runs(cfg)
        if line:
            print(line, file=sys.stderr, flush=True)
    mlflow = _mlflow()
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    if exp is not None:
        if exp.tags.get(EXPERIMENT_KIND_TAG) != ML_EXPERIMENT_KIND:
            client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, ML_EXPERIMENT_KIND)
        return exp.experiment_id
    location = Path(cfg.artifact_location).resolve()
    location.mkdir(parents=True, exist_ok=True)
    return client.create_experiment(experiment, artifact_location=location.as_uri(),
                                    tags={EXPERIMENT_KIND_TAG: ML_EXPERIMENT_KIND})


def git_commit() -> str:
    """The code version: the current git commit (+ '-dirty' with uncommitted changes)."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")

# What a logged model needs to load and predict. Named here rather than left to MLflow's
# inference, which imports the model in a subprocess (seconds per model) and missed
# lightgbm.
MODEL_PACKAGES = ("propensity", "mlflow", "lightgbm", "numpy", "pandas", "pyarrow", "scikit-learn", "cloudpickle")


def model_requirements() -> list[str]:
    """The pip requirements logged with every model: the installed versions, pinned."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for package in MODEL_PACKAGES:
        try:
            out.append(f"{package}=={version(package)}")
        except PackageNotFoundError:  # e.g. running from a source tree without installing
            out.append(package)
    return out


@dataclass(frozen=True)
class LoggedVersion:
    """A registered model version produced by a training run."""

    name: str
    version: str
    run_id: str


def log_model_run(
    name: str,
    model: LgbmModel,
    example: pd.DataFrame,
    params: dict[str, Any],
    metrics: dict[str, float],
    tags: dict[str, str],
    artifacts: dict[str, Any],
    experiment_id: str,
    parent_run_id: str | None = None,
    late_artifacts: Callable[[str], dict[str, Any]] | None = None,
    baselines: dict[str, dict[str, float]] | None = None,
) -> LoggedVersion:
    """Log one training run: parameters, metrics, the pyfunc model, artifacts; then register it.

    Registration is the last step: the run logs everything and ends FINISHED first, so a
    process killed on the way leaves a run (marked FAILED by the next command) and no
    version, or a version without the completeness tag (see `register_version`).

    Args:
        name: registered model name (churn, response, value).
        model: the fitted model.
        example: a few rows of model input (numbers as float, categories as text).
        params, metrics, tags: logged as they are.
        artifacts: file name -> matplotlib Figure, DataFrame (CSV; an MLflow table when
            the name ends in .json), dict/list (JSON) or text.
        experiment_id: from `configure`.
        parent_run_id: nest the run under this one.
        late_artifacts: called with the run id once everything else is logged, for files
            made from the logged run (the model card); their names join the manifest.
        baselines: scorer -> its metrics under the model's metric names; each becomes a
            nested run of this one (see `log_baseline_runs`).

    Returns:
        The registered version; alias `challenger` now points at it.
    """
    mlflow = _mlflow()
    with tracked_run(experiment_id, f"train-{name}", parent_run_id) as run:
        run_id = run.info.run_id
        failpoint("train:run-started")
        mlflow.log_params(params)
        mlflow.log_metrics(_finite(metrics))
        mlflow.set_tags({**tags, ROLE_TAG: "model", MODEL_TAG: name})
        log_baseline_runs(experiment_id, run_id, name, baselines or {}, tags)
        with tempfile.TemporaryDirectory() as tmp:
            booster, meta = os.path.join(tmp, "booster.txt"), os.path.join(tmp, "meta.json")
            model.save(booster, meta)
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(MODEL_CODE),
                artifacts={"booster": booster, "meta": meta},
                input_example=example,
                signature=pyfunc_signature(),
                pip_requirements=model_requirements(),
                metadata={"features": {"numeric": model.numeric, "categorical": model.categorical}},
            )
        failpoint("train:model-logged")
        log_files(artifacts)
        late = late_artifacts(run_id) if late_artifacts is not None else {}
        log_files(late)
        failpoint("train:card-logged")
    failpoint("train:run-finished")
    version = register_version(name, info.model_uri, run_id, tags, [*artifacts, *late],
                               description=f"propensity {name} model")
    return LoggedVersion(name, version, run_id)


def _finite(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)}


def log_baseline_runs(experiment_id: str, parent_run_id: str, name: str, baselines: dict[str, dict[str, float]],
                      tags: dict[str, str]) -> list[str]:
    """Each baseline scorer as a nested run of the model's run ("baseline: <scorer>"); returns their run ids.

    Their metrics carry the model run's names (auc, pr_auc, ...), so the UI's "compare
    runs" lines a model up with its baselines column by column. Each run starts and ends
    FINISHED inside the parent (with this process's tags, like every run): a process
    killed later leaves at most the parent RUNNING, for `recover_abandoned_runs`.
    """
    mlflow = _mlflow()
    if baselines:  # the run page's description: where the comparison is
        mlflow.set_tag("mlflow.note.content",
                       f"{name} model. Its baselines ({', '.join(baselines)}) are the nested runs 'baseline: ...' "
                       "under this one, with the same metric names: select them with this run and Compare. "
                       "Every scorer in one table: metrics_by_scorer.json (or .csv) among the artifacts.")
    ids = []
    for scorer, values in baselines.items():
        with tracked_run(experiment_id, f"baseline: {scorer}", parent_run_id) as run:
            mlflow.set_tags({**tags, ROLE_TAG: "baseline", MODEL_TAG: name, SCORER_TAG: scorer})
            mlflow.log_metrics(_finite(values))
            ids.append(run.info.run_id)
    return ids


def log_files(artifacts: dict[str, Any]) -> None:
    """Log each artifact (see `log_model_run`) as a file of the active run."""
    with tempfile.TemporaryDirectory() as tmp:
        for fname, obj in artifacts.items():
            _log_artifact(Path(tmp), fname, obj)


def register_version(name: str, model_uri: str, run_id: str, tags: dict[str, str], files: list[str],
                     description: str) -> str:
    """Register the model of a FINISHED run that logged `files`; point `challenger` at it; tag it complete.

    The version is created with its tags, the manifest of files and the registering
    process in one call; `challenger` moves to it; `propensity.complete=true` comes last.
    A process killed in between leaves a version `version_problem` refuses.

    Returns:
        The new version number.
    """
    mlflow = _mlflow()
    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    present = {a.path for a in client.list_artifacts(run_id)}
    missing = sorted(set(files) - present)
    if run.info.status != "FINISHED" or missing:  # a bug in the caller: registering too early
        raise RuntimeError(f"run {run_id} is {run.info.status}, missing {missing}: not registering it")
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        try:
            client.create_registered_model(name, description=description)
        except mlflow.exceptions.MlflowException as e:  # created by a concurrent training in between
            if "already exists" not in str(e).lower():
                raise
    version_tags = {**tags, **process_tags(), ARTIFACTS_TAG: json.dumps(sorted(files)),
                    ARTIFACT_COUNT_TAG: str(len(files))}
    version = str(client.create_model_version(name, source=model_uri, run_id=run_id, tags=version_tags).version)
    client.set_registered_model_alias(name, CHALLENGER, version)
    failpoint("train:registered")
    client.set_model_version_tag(name, version, COMPLETE_TAG, "true")
    return version


def pyfunc_signature():
    """The logged model's signature: an output schema (one double per row), no input schema.

    MLflow enforces an input schema before the model sees the data and refuses int64
    (and nullable Int64) where it says double, yet `propensity features build` writes
    counts and days as integers. No MLflow column type takes both int64 and float64
    but `Any`, which MLflow checks value by value in Python (measured: 4 s for 200,000
    rows of 30 columns, against 0.1 s for double columns). So the pyfunc (`training/pyfunc_model.py`) checks and
    casts its input itself: the model's features in its order, numbers to float64,
    categories to text, an error for a missing feature. The feature lists are in the
    MLmodel metadata (`features`) and the input example shows one valid input.
    """
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    return ModelSignature(outputs=Schema([TensorSpec(np.dtype("float64"), (-1,))]))


def _log_artifact(folder: Path, fname: str, obj: Any) -> None:
    mlflow = _mlflow()
    path = folder / fname
    if hasattr(obj, "savefig"):
        obj.savefig(path, dpi=110, bbox_inches="tight")
    elif isinstance(obj, pd.DataFrame) and fname.endswith(".json"):
        mlflow.log_table(data=obj, artifact_file=fname)  # an MLflow table: shown as one, comparable across runs
        return
    elif isinstance(obj, pd.DataFrame):
        obj.to_csv(path, index=False)
    elif isinstance(obj, (dict, list)):
        path.write_text(json.dumps(obj, indent=1, default=str))
    else:
        path.write_text(str(obj))
    mlflow.log_artifact(str(path))


def start_parent_run(experiment_id: str, name: str):
    """A run that groups nested runs (tuning trials); use as a context manager."""
    return tracked_run(experiment_id, name)


def log_trial(experiment_id: str, parent_run_id: str, number: int, params: dict, metrics: dict) -> None:
    """One tuning trial as a nested run."""
    mlflow = _mlflow()
    with tracked_run(experiment_id, f"trial-{number}", parent_run_id):
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)


# -- runs of processes that died ---------------------------------------------------------
def _process_identity(pid: int) -> str | None:
    """'<boot id>/<start time>' of a live process (Linux /proc), None when unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command name: state is field 3, starttime 22
    return f"{boot}/{fields[19]}" if len(fields) > 19 else None


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def process_tags() -> dict[str, str]:
    """This process as run/version tags: pid, host and (on Linux) boot id and start time."""
    pid = os.getpid()
    tags = {PID_TAG: str(pid), HOST_TAG: socket.gethostname()}
    identity = _process_identity(pid)
    if identity:
        tags[PROCESS_TAG] = identity
    return tags


def process_gone(tags: dict[str, str]) -> bool | None:
    """Whether the process named by `process_tags` tags has ended.

    True: it was on this host and no longer exists (or its pid now belongs to another
    process, or is a zombie). False: it is alive. None: not known here (no such tags, or
    another host).
    """
    try:
        pid = int(tags[PID_TAG])
    except (KeyError, ValueError):
        return None
    if tags.get(HOST_TAG) != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        pass
    if _is_zombie(pid):
        return True
    recorded, now = tags.get(PROCESS_TAG), _process_identity(pid)
    return bool(recorded and now and recorded != now)  # the pid was reused by another process


def tracked_run(experiment_id: str, run_name: str, parent_run_id: str | None = None):
    """`mlflow.start_run` with this process recorded as tags at creation (a context manager)."""
    return _mlflow().start_run(experiment_id=experiment_id, run_name=run_name, nested=parent_run_id is not None,
                               parent_run_id=parent_run_id, tags=process_tags())


def recover_abandoned_runs(cfg: MlflowConfig, other_hosts: bool = False) -> str | None:
    """Mark runs left RUNNING by processes that no longer exist as FAILED; one line saying so, or None.

    Only runs this project started (tagged with their process) are judged: those of a
    process of this host that is gone. A run of a live process (a training running now)
    is never touched. `other_hosts` also fails the tagged runs of other hosts, whose
    processes cannot be checked from here (for a host known to be gone).
    """
    uri = _use_store(cfg)
    _RECOVERED.add(uri)
    mlflow = _mlflow()
    client = mlflow.MlflowClient()
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return None
    failed: list[str] = []
    token = None
    while True:
        page = client.search_runs(experiments, filter_string="attributes.status = 'RUNNING'", max_results=500,
                                  page_token=token)
        for run in page:
            tags = dict(run.data.tags)
            gone = process_gone(tags)
            if PID_TAG not in tags or not (gone or (other_hosts and gone is None)):
                continue
            owner = f"pid {tags[PID_TAG]} on {tags.get(HOST_TAG, '?')}"
            client.set_tag(run.info.run_id, FAILED_TAG,
                           f"the process ({owner}) ended without finishing the run (killed?); marked FAILED by "
                           f"pid {os.getpid()} on {socket.gethostname()} at "
                           f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}")
            client.set_terminated(run.info.run_id, status="FAILED")
            failed.append(f"{run.info.run_name or 'run'} {run.info.run_id[:8]} ({owner})")
        token = page.token
        if not token:
            break
    if not failed:
        return None
    shown = ", ".join(failed[:5]) + (f" and {len(failed) - 5} more" if len(failed) > 5 else "")
    runs = "run" if len(failed) == 1 else "runs"
    return f"marked {len(failed)} MLflow {runs} left RUNNING by a process that no longer exists as FAILED: {shown}"


# -- registry --------------------------------------------------------------------------
NOT_REGISTERED = "it is not in the registry"


def _retrain_hint(name: str) -> str:
    return "retrain it with `propensity train uplift --kind KIND`" if name == "uplift" else \
        f"retrain it with `propensity train {name}`"


def version_problem(name: str, version: str) -> str | None:
    """Why version `version` of `name` is incomplete, in a few words, or None when it is complete.

    Complete: tagged `propensity.complete=true`; its run FINISHED; every file of its
    manifest (and, for churn, response and value, the model card) among the run's
    artifacts; its model's MLmodel present. A version registered before these tags
    existed (its run has no process tags) needs all but the tag.
    """
    mlflow = _mlflow()
    client = mlflow.MlflowClient()
    try:
        mv = client.get_model_version(name, version)
    except mlflow.exceptions.MlflowException:
        return NOT_REGISTERED
    tags = dict(mv.tags)
    try:
        run = client.get_run(mv.run_id) if mv.run_id else None
    except mlflow.exceptions.MlflowException:
        run = None
    if run is None:
        return f"its training run {mv.run_id or '(none)'} is not in the store"
    problems = []
    legacy = PID_TAG not in run.data.tags
    if not legacy and tags.get(COMPLETE_TAG) != "true":
        if process_gone(tags) is False:
            problems.append(f"not tagged complete yet: pid {tags[PID_TAG]} is still registering it, try again "
                            "in a moment")
        else:
            problems.append("its training stopped before tagging it complete")
    if run.info.status != "FINISHED":
        problems.append(f"its training run {mv.run_id[:8]} is {run.info.status}")
    try:
        expected = set(json.loads(tags.get(ARTIFACTS_TAG, "[]")))
    except ValueError:
        expected = set()
        problems.append(f"its {ARTIFACTS_TAG} tag is unreadable")
    if name in MODELS_WITH_CARDS:
        expected.add(CARD_FILE)
    present = {a.path for a in client.list_artifacts(mv.run_id)}
    missing = sorted(expected - present)
    if CARD_FILE in missing:
        problems.append("its model card is missing")
        missing.remove(CARD_FILE)
    if missing:
        problems.append(f"{len(missing)} of its logged files are missing ({', '.join(missing[:3])}"
                        + (", ..." if len(missing) > 3 else "") + ")")
    try:
        model_files = {a.path for a in mlflow.artifacts.list_artifacts(artifact_uri=mv.source)}
    except (mlflow.exceptions.MlflowException, OSError):  # gone: the model cannot be loaded
        model_files = set()
    if "MLmodel" not in model_files:
        problems.append("its model artifact is missing")
    return "; ".join(problems) or None


def require_complete(name: str, version: str, alias: str | None = None) -> None:
    """Raise IncompleteVersion (one line naming the version) unless `version_problem` finds nothing."""
    problem = version_problem(name, version)
    if problem == NOT_REGISTERED:
        raise RegistryError(f"no model {name} version {version} in the registry")
    if problem:
        held = f"{name}@{alias} is version {version}, which is" if alias else f"{name} version {version} is"
        then = "" if name == "uplift" else " and promote the new version"
        raise IncompleteVersion(f"{held} incomplete ({problem}); not loading it: {_retrain_hint(name)}{then}")


def load_pyfunc(name: str, alias: str):
    """`models:/<name>@<alias>` as a pyfunc model; refuses an incomplete version (IncompleteVersion)."""
    info = alias_version(name, alias)
    if info is None:
        raise RegistryError(f"no model {name}@{alias} in the registry; train (and promote) it first")
    return load_pyfunc_version(name, str(info["version"]), alias)


def load_pyfunc_version(name: str, version: str, alias: str | None = None):
    """`models:/<name>/<version>` as a pyfunc model (a run's lineage names versions, not aliases).

    Refuses an incomplete version (IncompleteVersion; naming `alias` when it was read
    from one).
    """
    require_complete(name, version, alias)
    return _load_version(name, version)


def _load_version(name: str, version: str):
    mlflow = _mlflow()
    try:
        return mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    except mlflow.exceptions.MlflowException as e:
        raise RegistryError(f"no model {name} version {version} in the registry ({str(e).splitlines()[0]})") from None


def alias_version(name: str, alias: str) -> dict[str, Any] | None:
    """Version number, run id and tags of `name@alias`, or None when the alias is unset."""
    mlflow = _mlflow()
    client = mlflow.MlflowClient()
    try:
        mv = client.get_model_version_by_alias(name, alias)
    except mlflow.exceptions.MlflowException:
        return None
    return {"version": mv.version, "run_id": mv.run_id, "tags": dict(mv.tags)}


def run_tags_metrics(run_id: str) -> tuple[dict[str, str], dict[str, float]]:
    """Tags and metrics of a run."""
    run = _mlflow().MlflowClient().get_run(run_id)
    return dict(run.data.tags), dict(run.data.metrics)


def run_data(run_id: str) -> tuple[dict[str, str], dict[str, float]]:
    """Parameters and metrics of a run."""
    run = _mlflow().MlflowClient().get_run(run_id)
    return dict(run.data.params), dict(run.data.metrics)


def set_champion(name: str, version: str, record: dict[str, Any]) -> None:
    """Point `champion` at `version` and record why on the version and the model."""
    client = _mlflow().MlflowClient()
    client.set_registered_model_alias(name, CHAMPION, version)
    for k, v in record.items():
        client.set_model_version_tag(name, version, f"promotion.{k}", str(v))
    client.update_registered_model(name, description=f"champion = version {version}: {json.dumps(record, default=str)}")


def record_refusal(name: str, version: str, record: dict[str, Any]) -> None:
    """Record on the challenger version that promotion was refused, and why."""
    client = _mlflow().MlflowClient()
    for k, v in record.items():
        client.set_model_version_tag(name, version, f"promotion.{k}", str(v))


def download_run_artifacts(run_id: str, folder: Path) -> Path:
    """Every top-level artifact file of a run, downloaded into `folder`."""
    mlflow = _mlflow()
    client = mlflow.MlflowClient()
    for item in client.list_artifacts(run_id):
        if not item.is_dir:
            client.download_artifacts(run_id, item.path, str(folder))
    return folder


def version_json(name: str, version: str, path: str) -> dict | None:
    """A JSON artifact of a registered version's run (None when the run did not log it)."""
    mlflow = _mlflow()
    client = mlflow.MlflowClient()
    run_id = version_record(name, version)["run_id"]
    if path not in {a.path for a in client.list_artifacts(run_id)}:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        local = client.download_artifacts(run_id, path, tmp)
        return json.loads(Path(local).read_text())


def version_metrics(name: str, version: str) -> dict[str, float]:
    """The metrics logged with a registered version's run (its out-of-time test half's, unprefixed)."""
    mlflow = _mlflow()
    run_id = version_record(name, version)["run_id"]
    return dict(mlflow.MlflowClient().get_run(run_id).data.metrics)


def version_record(name: str, version: str) -> dict[str, Any]:
    """A registered version: run id, creation time, tags and the aliases pointing at it."""
    mlflow = _mlflow()
    client = mlflow.MlflowClient()
    try:
        mv = client.get_model_version(name, version)
    except mlflow.exceptions.MlflowException:
        raise RegistryError(f"no version {version} of model {name!r} in the registry") from None
    return {
        "run_id": mv.run_id,
        "created_at": mv.creation_timestamp,
        "tags": dict(mv.tags),
        "aliases": list(getattr(mv, "aliases", []) or []),
    }


def resolve_version(name: str, ref: str) -> str:
    """A version number from '3', 'champion' or 'challenger'."""
    if ref.isdigit():
        return ref
    info = alias_version(name, ref)
    if info is None:
        raise RegistryError(f"no {name}@{ref} in the registry; train (and promote) it first")
    return str(info["version"])

"""Every MLflow call of the project: tracking store, runs, the pyfunc model, the registry.

The store is a sqlite database with artifacts in a folder, both under `mlruns/` by
default (a plain file store is in maintenance mode in MLflow 3). Models are registered
under their model name (`churn`, `response`, `value`); aliases `challenger` and
`champion` point at versions. Nothing here runs at import time.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from propensity.config import MlflowConfig
from training.models import LgbmModel

CHALLENGER = "challenger"
CHAMPION = "champion"


class RegistryError(ValueError):
    """A registry request the user can fix (unknown model, no challenger, ...)."""


def _mlflow():
    import mlflow

    return mlflow


def configure(cfg: MlflowConfig, experiment: str) -> str:
    """Point MLflow at the local store and return the experiment id (created if new)."""
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
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    if exp is not None:
        return exp.experiment_id
    location = Path(cfg.artifact_location).resolve()
    location.mkdir(parents=True, exist_ok=True)
    return client.create_experiment(experiment, artifact_location=location.as_uri())


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
) -> LoggedVersion:
    """Log one training run: parameters, metrics, artifacts, the pyfunc model; register it.

    Args:
        name: registered model name (churn, response, value).
        model: the fitted model.
        example: a few rows of model input (numbers as float, categories as text).
        params, metrics, tags: logged as they are.
        artifacts: file name -> matplotlib Figure, DataFrame (CSV), dict/list (JSON) or text.
        experiment_id: from `configure`.
        parent_run_id: nest the run under this one.

    Returns:
        The registered version; alias `challenger` now points at it.
    """
    mlflow = _mlflow()
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"train-{name}", nested=parent_run_id is not None,
                          parent_run_id=parent_run_id) as run:
        mlflow.log_params(params)
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)})
        mlflow.set_tags(tags)
        with tempfile.TemporaryDirectory() as tmp:
            for fname, obj in artifacts.items():
                _log_artifact(Path(tmp), fname, obj)
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
        client = mlflow.MlflowClient()
        if not client.search_registered_models(filter_string=f"name = '{name}'"):
            client.create_registered_model(name, description=f"propensity {name} model")
        version = str(client.create_model_version(name, source=info.model_uri, run_id=run.info.run_id).version)
        client.set_registered_model_alias(name, CHALLENGER, version)
        for k, v in tags.items():
            client.set_model_version_tag(name, version, k, v)
        return LoggedVersion(name, version, run.info.run_id)


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
    elif isinstance(obj, pd.DataFrame):
        obj.to_csv(path, index=False)
    elif isinstance(obj, (dict, list)):
        path.write_text(json.dumps(obj, indent=1, default=str))
    else:
        path.write_text(str(obj))
    mlflow.log_artifact(str(path))


def start_parent_run(experiment_id: str, name: str):
    """A run that groups nested runs (tuning trials); use as a context manager."""
    return _mlflow().start_run(experiment_id=experiment_id, run_name=name)


def log_trial(experiment_id: str, parent_run_id: str, number: int, params: dict, metrics: dict) -> None:
    """One tuning trial as a nested run."""
    mlflow = _mlflow()
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"trial-{number}", nested=True, parent_run_id=parent_run_id):
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)


# -- registry --------------------------------------------------------------------------
def load_pyfunc(name: str, alias: str):
    """`models:/<name>@<alias>` as a pyfunc model."""
    mlflow = _mlflow()
    try:
        return mlflow.pyfunc.load_model(f"models:/{name}@{alias}")
    except mlflow.exceptions.MlflowException as e:
        raise RegistryError(f"no model {name}@{alias} in the registry ({str(e).splitlines()[0]})") from None


def load_pyfunc_version(name: str, version: str):
    """`models:/<name>/<version>` as a pyfunc model (a run's lineage names versions, not aliases)."""
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


def log_run_artifacts(run_id: str, artifacts: dict[str, Any]) -> None:
    """Add artifacts to a finished run (explanations and the model card come after registration)."""
    mlflow = _mlflow()
    with mlflow.start_run(run_id=run_id):
        with tempfile.TemporaryDirectory() as tmp:
            for fname, obj in artifacts.items():
                _log_artifact(Path(tmp), fname, obj)


def download_run_artifacts(run_id: str, folder: Path) -> Path:
    """Every top-level artifact file of a run, downloaded into `folder`."""
    mlflow = _mlflow()
    client = mlflow.MlflowClient()
    for item in client.list_artifacts(run_id):
        if not item.is_dir:
            client.download_artifacts(run_id, item.path, str(folder))
    return folder


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

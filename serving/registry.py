"""The champion models, loaded by alias from the MLflow registry (never "latest")."""

from __future__ import annotations

from propensity.config import Config
from training.customer_reasons import registered_model
from training.models import LgbmModel, free_cores
from training.track import CHAMPION, configure

MODEL_NAMES = ("churn", "response", "value")


def champions(cfg: Config, alias: str = CHAMPION) -> dict[str, tuple[LgbmModel, str]]:
    """name -> (model, version) of `name@alias` for churn, response and value.

    Raises:
        RegistryError: a model has no such alias (train and promote it first).
    """
    configure(cfg.mlflow, cfg.training.experiment)
    threads = free_cores(cfg.lightgbm.num_threads)
    out = {}
    for name in MODEL_NAMES:
        model, version = registered_model(name, alias)
        model.num_threads = threads
        out[name] = (model, version)
    return out

"""The champion models, loaded by alias from the MLflow registry (never "latest")."""

from __future__ import annotations

from propensity.config import Config
from training.customer_reasons import registered_model
from training.models import LgbmModel, free_cores
from training.track import CHALLENGER, CHAMPION, IncompleteVersion, RegistryError, alias_version, configure

MODEL_NAMES = ("churn", "response", "value")

# Why a model may have no champion, and what to do about it (shown in scoring_runs).
_MISSING_HINT = {
    "churn": "train and promote it: `propensity train churn && propensity promote churn`",
    "response": "it needs campaigns and contacts tables; import them, then `propensity train response` "
                "and `propensity promote response`",
    "value": "train and promote it: `propensity train value && propensity promote value`",
}


def champions(cfg: Config, alias: str = CHAMPION) -> dict[str, tuple[LgbmModel, str]]:
    """name -> (model, version) of `name@alias` for every one of churn, response and value that exists.

    A version whose training did not finish is never loaded: when one holds the alias
    (it cannot get there through the promotion gate), scoring is refused, naming it.

    Raises:
        IncompleteVersion: `name@alias` is an incomplete version (one line naming it).
        RegistryError: none of the three has that alias (train and promote one first).
    """
    configure(cfg.mlflow, cfg.training.experiment)
    threads = free_cores(cfg.lightgbm.num_threads)
    out = {}
    for name in MODEL_NAMES:
        try:
            model, version = registered_model(name, alias)
        except IncompleteVersion:
            raise
        except RegistryError:
            continue
        model.num_threads = threads
        out[name] = (model, version)
    if not out:
        raise RegistryError(f"no model has a @{alias} yet; train and promote at least one "
                            "(`propensity train all && propensity promote all`)")
    return out


def missing_reasons(available: set[str] | dict, alias: str = CHAMPION) -> dict[str, str]:
    """name -> one line saying why it is not scored, for each model without `alias`.

    A challenger that the promotion gate refused is named with the gate's reason.
    """
    out = {}
    for name in MODEL_NAMES:
        if name in available:
            continue
        challenger = alias_version(name, CHALLENGER)
        refused = (challenger or {}).get("tags", {}).get("promotion.reason")
        if refused:
            out[name] = (f"no {name}@{alias}: the promotion gate refused {name} version {challenger['version']} "
                         f"({refused.removesuffix(' (use --force to promote anyway)')})")
        else:
            out[name] = f"no {name}@{alias} in the registry; {_MISSING_HINT[name]}"
    return out

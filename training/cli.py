"""`propensity train` and `propensity promote`: thin commands over training/*."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Literal

import typer

from propensity.config import Config, ConfigError, load_config
from propensity.console import App, ConfigOption, friendly, say
from propensity.progress import Progress

explain_app = App(help="Explain models (model cards) and single customers (reason codes).", no_args_is_help=True)


class Target(str, Enum):
    churn = "churn"
    response = "response"
    value = "value"
    all = "all"


def _names(target: Target) -> list[str]:
    return ["churn", "response", "value"] if target is Target.all else [target.value]


class TrainTarget(str, Enum):
    churn = "churn"
    response = "response"
    value = "value"
    uplift = "uplift"
    all = "all"


def register(app: typer.Typer) -> None:
    """Add the training commands to the main app."""
    app.command("train")(friendly(train))
    app.command("promote")(friendly(promote))
    explain_app.command("model")(friendly(explain_model))
    app.add_typer(explain_app, name="explain")


FailOtherHosts = Annotated[bool, typer.Option(
    "--fail-other-hosts",
    help="Also mark MLflow runs left RUNNING by other hosts as FAILED (processes there cannot be checked from "
         "here: only when they are known to be gone). Runs of dead processes of this host are always marked.")]


def _recover(cfg: Config, other_hosts: bool) -> None:
    """Mark runs left RUNNING by processes that no longer exist as FAILED, saying so in one line."""
    from training.track import recover_abandoned_runs

    line = recover_abandoned_runs(cfg.mlflow, other_hosts=other_hosts)
    if line:
        say(line)


def train(
    model: Annotated[TrainTarget, typer.Argument(help="Which model to train: churn, response, value, all (the three), or uplift (needs --kind).")],
    tune: Annotated[int, typer.Option("--tune", min=0, help="Optuna trials before the final fit (0: use the config's parameters). Trials are scored on the out-of-time tune half and logged as nested runs.")] = 0,
    kind: Annotated[str | None, typer.Option(metavar="KIND", help="uplift: the campaign kind whose treatment and control contacts it learns from.")] = None,
    learner: Annotated[Literal["auto", "two_model", "x_learner"], typer.Option(help="uplift: auto (the better on the tune half by Qini), two_model or x_learner.")] = "auto",
    fail_other_hosts: FailOtherHosts = False,
    config: ConfigOption = None,
) -> None:
    """Train LightGBM models and their baselines on an out-of-time split; log and register them.

    Each model is registered in MLflow under its name with the alias `challenger`;
    `propensity promote NAME` decides whether it becomes the `champion`. The uplift
    model (`propensity train uplift --kind email`) learns P(response | contacted) -
    P(response | not contacted) from campaigns with control groups; the first one is
    also made `champion`, and `propensity target` uses it for that kind.

    A version is registered only after its run has logged everything (model, metrics,
    charts, explanations, model card) and is tagged complete last, so a killed training
    leaves no version the gate or the scorer accepts. Runs left RUNNING by a killed
    process are marked FAILED by the next command.
    """
    from features.load import Warehouse
    from training import pipeline

    cfg = load_config(config)
    _recover(cfg, fail_other_hosts)
    if model is TrainTarget.uplift:
        from training.uplift import train_uplift

        if not kind:
            raise ConfigError("propensity train uplift needs --kind KIND (a campaign kind with control groups)")
        if learner not in ("auto", "two_model", "x_learner"):
            raise ConfigError(f"--learner {learner!r}: use auto, two_model or x_learner")
        with Warehouse.of(cfg.warehouse, read_only=True, on_wait=say) as wh, Progress() as progress:
            outcome = train_uplift(wh, cfg, kind, learner=learner, progress=progress.say)
        say(outcome.report())
        return
    if kind is not None:
        raise ConfigError("--kind is for `propensity train uplift`")

    names = _names(Target(model.value))
    skipped: dict[str, str] = {}
    with Warehouse.of(cfg.warehouse, read_only=True, on_wait=say) as wh, Progress() as progress:
        outcomes = pipeline.train_and_log(names, wh, cfg, tune_trials=tune, progress=progress.say,
                                          on_skip=skipped.__setitem__)
    for out in outcomes:
        say("")
        say(out.report())
    _report_skipped(skipped)
    if not outcomes:
        raise typer.Exit(1)
    trained = " ".join(o.result.name for o in outcomes)
    say(f"\nregistered as @challenger in {cfg.mlflow.tracking_uri}; next: propensity promote "
        + ("all" if len(outcomes) > 1 else trained))


def _report_skipped(skipped: dict[str, str]) -> None:
    """One line per model that could not be done, saying why (stderr)."""
    if skipped:
        say("")
    for name, reason in skipped.items():
        say(f"skipped {name}: {reason}")


def promote(
    model: Annotated[Target, typer.Argument(help="Which model to promote: churn, response, value or all.")],
    margin: Annotated[float | None, typer.Option(help="Required improvement over the champion's primary metric (default: \\[training] promotion_margin in propensity.toml).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Promote even when the challenger is not ahead of the best baseline or its test half is below \\[training] min_test_rows / min_test_positives (recorded on the version).")] = False,
    fail_other_hosts: FailOtherHosts = False,
    config: ConfigOption = None,
) -> None:
    """Move `champion` to the challenger only if it beats the champion on the same out-of-time data.

    The challenger must also be ahead of the best baseline (RFM score, logistic or
    two-part regression, BTYD) on the same out-of-time test half, and that test half must
    be large enough to judge it (\\[training] min_test_rows, min_test_positives); --force
    overrides these two checks. The first version of a model is promoted by this same
    command. The decision and its numbers are recorded on the model version either way.
    An incomplete challenger (its training was killed: no completeness tag, a missing
    model card or model, a run that did not finish) is refused in one line, --force or not.
    Exits 1 when no model could be promoted or judged.
    """
    from features.load import Warehouse
    from training import pipeline

    cfg: Config = load_config(config)
    _recover(cfg, fail_other_hosts)
    skipped: dict[str, str] = {}
    with Warehouse.of(cfg.warehouse, read_only=True, on_wait=say) as wh, Progress() as progress:
        decisions = pipeline.promote_models(
            _names(model), wh, cfg, cfg.training.promotion_margin if margin is None else margin,
            progress=progress.say, force=force, on_skip=skipped.__setitem__,
        )
    for d in decisions:
        say(d.line())
    _report_skipped(skipped)
    if not decisions:
        raise typer.Exit(1)


def explain_model(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="NAME\\[@ALIAS or @VERSION], e.g. churn, churn@challenger, value@3 (default alias: champion).")],
    out: Annotated[Path, typer.Option(help="Where to write the self-contained HTML model card.")] = Path("model_card.html"),
    config: ConfigOption = None,
) -> None:
    """Write the model card of a registered version: purpose, data, metrics against baselines,
    calibration, global SHAP, performance by segment and band, limitations, lineage."""
    from training.cards import render_card
    from training.track import configure

    cfg = load_config(config)
    name, _, ref = model.partition("@")
    if name not in ("churn", "response", "value"):
        raise ConfigError(f"unknown model {name!r}; use churn, response or value (optionally @alias or @version)")
    configure(cfg.mlflow, cfg.training.experiment)
    html = render_card(name, ref or "champion")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html)
    say(f"model card of {name}@{ref or 'champion'} -> {out} ({len(html) / 1024:,.0f} KiB)")

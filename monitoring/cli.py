"""`propensity monitor`: drift of a scoring run against its models' reference profiles."""

from __future__ import annotations

from typing import Annotated

import typer

from propensity.config import load_config
from propensity.console import ConfigOption, friendly, say

ALERT_EXIT = 3  # for schedulers: 0 no alert, 1 an error, 3 an alert


def register(app: typer.Typer) -> None:
    """Add `monitor` to the main app."""
    app.command("monitor")(friendly(monitor))


def monitor(
    run: Annotated[str | None, typer.Option("--run", help="Scoring run id (default: the latest successful run; `propensity runs` lists them).")] = None,
    config: ConfigOption = None,
) -> None:
    """How far a scoring run has moved from what its models were trained on.

    For each model that scored the run: PSI of every feature it reads (rebuilt from the
    run's snapshot as the scorer built it) and of its scores, against the reference
    profile logged with the model (its out-of-time test half). Prints one screen and
    exits 3 when a PSI reaches monitoring.feature_psi_alert or
    monitoring.prediction_psi_alert in propensity.toml (0 otherwise), so a scheduler
    can act on it.
    """
    from features.load import Warehouse
    from monitoring.run import monitor_run, summary_lines
    from training.track import configure

    cfg = load_config(config)
    configure(cfg.mlflow, cfg.training.experiment, recover=False)
    with Warehouse.of(cfg.warehouse, read_only=True, on_wait=say) as wh:
        drift = monitor_run(wh, run)
    for line in summary_lines(drift, cfg.monitoring):
        say(line)
    if drift.alerts(cfg.monitoring):
        raise typer.Exit(ALERT_EXIT)

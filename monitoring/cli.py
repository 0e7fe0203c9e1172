"""`propensity monitor`: drift, attribution drift and performance of a scoring run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from propensity.config import load_config
from propensity.console import ConfigOption, friendly, say

ALERT_EXIT = 3  # for schedulers: 0 no alert, 1 an error, 3 an alert


def register(app: typer.Typer) -> None:
    """Add `monitor` to the main app."""
    app.command("monitor")(friendly(monitor))


def monitor(
    run: Annotated[str | None, typer.Option("--run", metavar="RUN_ID", help="Scoring run id (default: the latest successful run; `propensity runs` lists them).")] = None,
    report: Annotated[Path | None, typer.Option("--report", help="Write the HTML report here (default: <features.output_dir>/monitoring/<run id>.html).")] = None,
    write: Annotated[bool, typer.Option("--write/--no-write", help="Write the monitoring tables (monitoring_features, monitoring_predictions, monitoring_attributions, run_performance) and the report; --no-write only prints.")] = True,
    config: ConfigOption = None,
) -> None:
    """How far a scoring run has moved from what its models were trained
    on, and how well its scores turned out.

    Against the reference profile logged with each model (its out-of-time
    test half):

    - feature drift: PSI of every feature the model reads, over all
      customers and inside each segment (one level of a categorical input);
      missing shares, new levels;
    - prediction drift: PSI and mean of the scores;
    - attribution drift: the shares of mean |SHAP| per feature (importance)
      and the mean signed contributions (direction), as the scorer
      accumulated them, against the reference's;
    - performance: AUC estimated from the scores alone (churn, response)
      and, once a run's horizon has passed, the realised AUC, PR-AUC and
      calibration error or Gini (value), overall and per RFMW segment,
      beside the model card's numbers.

    Prints one screen, writes the monitoring tables and a self-contained
    HTML report, and exits 3 when an alert line of \\[monitoring] in
    propensity.toml is reached (0 otherwise), for schedulers.
    """
    from features.load import Warehouse
    from training.track import configure

    cfg = load_config(config)
    configure(cfg.mlflow, cfg.training.experiment, recover=False)
    with Warehouse.of(cfg.warehouse, read_only=not write, on_wait=say) as wh:
        drift, _ = monitor_and_record(wh, cfg, run, report if write else None, write=write, progress=say)
    if drift.alerts(cfg.monitoring):
        raise typer.Exit(ALERT_EXIT)


def monitor_and_record(wh, cfg, run: str | None = None, report: Path | None = None, write: bool = True,
                       progress=say):
    """Monitor a run, print its summary, and (with `write`) record the tables and write the report.

    Returns:
        (the run's `RunDrift`, the report's path or None).
    """
    from monitoring import record
    from monitoring.run import monitor_run, performance_history, summary_lines

    horizon = cfg.features.horizon_days
    drift = monitor_run(wh, run, horizon_days=horizon, settings=cfg.monitoring)
    for line in summary_lines(drift, cfg.monitoring):
        progress(line)
    if not write:
        return drift, None
    history = performance_history(wh, horizon, skip=drift.run_id)
    history[drift.run_id] = drift.performance
    record.write(wh, drift, cfg.monitoring, history)
    from monitoring.report import write_report

    path = report or Path(cfg.features.output_dir) / "monitoring" / f"{drift.run_id}.html"
    write_report(wh, drift.run_id, path, cfg.monitoring)
    progress(f"wrote the monitoring tables ({len(history)} run(s) with performance rows) and the report {path}")
    return drift, path

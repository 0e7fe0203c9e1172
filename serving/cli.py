"""`propensity score`: a thin command over serving.batch."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from propensity.config import load_config
from propensity.console import ConfigOption, friendly, parse_date, say


def register(app: typer.Typer) -> None:
    """Add the serving commands to the main app."""
    app.command("score")(friendly(score))


def score(
    as_of: Annotated[str, typer.Option("--as-of", help="Scoring date YYYY-MM-DD: features use rows strictly before it.")],
    margin: Annotated[float, typer.Option(help="Margin on predicted value, for expected profit.")] = 0.3,
    contact_cost: Annotated[float, typer.Option(help="Cost of one contact, for expected profit.")] = 1.0,
    chunk_size: Annotated[int, typer.Option(min=1000, help="Customers scored and explained at a time (bounds memory).")] = 50_000,
    config: ConfigOption = None,
) -> None:
    """Score every customer with the champion models; write scores, segments and reasons.

    Writes scoring_runs, customer_scores, customer_segments and score_reasons in one
    publishing transaction; the current_* views show the latest successful run.
    """
    from features.load import Warehouse
    from serving.batch import run_scoring
    from training.track import configure

    cfg = load_config(config)
    cutoff = parse_date(as_of, "--as-of")
    configure(cfg.mlflow, cfg.training.experiment)
    start = time.perf_counter()
    with Warehouse(cfg.warehouse.url) as wh:
        summary = run_scoring(
            wh, cfg, cutoff,
            progress=lambda m: say(f"  [{time.perf_counter() - start:6.1f}s] {m}"),
            margin=margin, contact_cost=contact_cost, chunk_size=chunk_size,
        )
    say(summary.report())

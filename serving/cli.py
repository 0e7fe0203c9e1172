"""`propensity score`, `propensity runs` and `propensity explain customer`: thin commands over serving/*."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Literal

import typer

from propensity.config import ConfigError, load_config
from propensity.console import ConfigOption, friendly, parse_date, say
from propensity.progress import Progress
from training.cli import Target, explain_app


RankBy = Literal["auto", "uplift", "expected_profit", "value_at_risk", "value", "churn"]


class Engine(str, Enum):
    duckdb = "duckdb"
    spark = "spark"


def register(app: typer.Typer) -> None:
    """Add the serving commands to the main app (and `customer` to `propensity explain`)."""
    app.command("score")(friendly(score))
    app.command("runs")(friendly(runs))
    app.command("target")(friendly(target))
    explain_app.command("customer")(friendly(explain_customer))
    from serving.api_cli import register as register_api

    register_api(app)


def score(
    as_of: Annotated[str, typer.Option("--as-of", metavar="YYYY-MM-DD", help="Scoring date YYYY-MM-DD: features use rows strictly before it.")],
    margin: Annotated[float | None, typer.Option(help="Margin on predicted value, for expected profit (default: \\[serving] margin in propensity.toml).")] = None,
    contact_cost: Annotated[float | None, typer.Option(help="Cost of one contact, for expected profit (default: \\[serving] contact_cost in propensity.toml).")] = None,
    chunk_size: Annotated[int | None, typer.Option(min=1, help="Customers scored and explained at a time; bounds memory (default: \\[serving] chunk_size in propensity.toml).")] = None,
    engine: Annotated[Engine, typer.Option(help="duckdb: the warehouse in propensity.toml (DuckDB or PostgreSQL). spark: Parquet in, Parquet out (--input, --output).")] = Engine.duckdb,
    input_dir: Annotated[Path | None, typer.Option("--input", help="--engine spark: folder of canonical tables as Parquet (`propensity data export-parquet`).")] = None,
    output_dir: Annotated[Path | None, typer.Option("--output", help="--engine spark: folder for the Parquet segment tables.")] = None,
    break_lock: Annotated[bool, typer.Option("--break-lock", help="Take over the scoring lock held by a process on another host that is known to be gone.")] = False,
    any_date: Annotated[bool, typer.Option("--any-date", help="Score even when --as-of is before the first transaction or more than \\[features] horizon_days after the last one (refused by default: the scores would be extrapolation).")] = False,
    config: ConfigOption = None,
) -> None:
    """Score every customer with the champion models; write scores, segments and reasons.

    Features as of the date are written to a Parquet snapshot (kept, for lineage), scored
    and explained in chunks, staged, and published in one transaction to scoring_runs,
    customer_scores, customer_segments and score_reasons. The current_* views show the
    latest successful run. A re-run with the same date and model versions replaces its
    rows; a second run on the same warehouse is refused while one is running.
    """
    cfg = load_config(config)
    cutoff = parse_date(as_of, "--as-of")
    _check_money(margin, contact_cost)
    if engine is Engine.spark:
        if input_dir is None or output_dir is None:
            raise ConfigError("--engine spark needs --input DIR (Parquet tables) and --output DIR")
        from serving.spark_engine import run_spark_scoring

        with Progress() as progress:
            summary = run_spark_scoring(
                cfg, cutoff, input_dir, output_dir, progress=progress.say,
                margin=cfg.serving.margin if margin is None else margin,
                contact_cost=cfg.serving.contact_cost if contact_cost is None else contact_cost,
            )
        say(summary.report())
        return
    if input_dir is not None or output_dir is not None:
        raise ConfigError("--input and --output are for --engine spark; the duckdb engine uses [warehouse] url")

    from features.load import Warehouse
    from serving.batch import run_scoring

    with Warehouse.of(cfg.warehouse, on_wait=say) as wh, Progress() as progress:
        summary = run_scoring(wh, cfg, cutoff, progress=progress.say, margin=margin, contact_cost=contact_cost,
                              chunk_size=chunk_size, break_lock=break_lock,
                              counter=progress.counter("scoring", "customers"), any_date=any_date)
    say(summary.report())
    say("read the results: current_customer_scores, current_customer_segments, current_score_reasons "
        f"in {cfg.warehouse.url}")


def _check_money(margin: float | None, contact_cost: float | None) -> None:
    """--margin in [0, 1] and --contact-cost a finite number >= 0 (inf, nan and 1e400 are refused in one line)."""
    import math

    if margin is not None and not (math.isfinite(margin) and 0 <= margin <= 1):
        raise ConfigError(f"--margin {margin}: give the share of value that is profit, between 0 and 1")
    if contact_cost is not None and not (math.isfinite(contact_cost) and 0 <= contact_cost <= 1e9):
        raise ConfigError(f"--contact-cost {contact_cost}: give the cost of one contact, a number from 0 to 1e9")


def target(
    campaign: Annotated[str, typer.Argument(metavar="CAMPAIGN", help="A campaign id from the campaigns table, or a campaign kind (e.g. email); any name for the list when the warehouse has no campaigns table.")],
    budget: Annotated[float | None, typer.Option(help="Money for contacts: contacts = budget / cost (the control group costs nothing).")] = None,
    top: Annotated[int | None, typer.Option(help="Number of customers to contact instead of a budget (the control group is on top).")] = None,
    cost: Annotated[float | None, typer.Option(help="Cost of one contact (default: \\[serving] contact_cost in propensity.toml).")] = None,
    margin: Annotated[float | None, typer.Option(help="Share of the value per response that is profit (default: \\[serving] margin in propensity.toml).")] = None,
    control: Annotated[float, typer.Option(help="Share of the selected customers held out as a random control group, on top of the contacts.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed of the control group draw.")] = 0,
    rank_by: Annotated[RankBy, typer.Option(help="auto (uplift when an uplift model for the kind is registered, else expected_profit, else without response scores or campaigns value_at_risk, value or churn), uplift, expected_profit, value_at_risk (churn risk x predicted value), value, or churn.")] = "auto",
    out: Annotated[Path | None, typer.Option(help="Folder for the CSV (default: <features output_dir>/targets).")] = None,
    config: ConfigOption = None,
) -> None:
    """Choose whom to contact: rank the current scoring run's customers and cut by budget.

    Ranks by expected profit (P(response) x value per response x margin - cost; value per
    response = average order value x k, k measured on the kind's past responses), or,
    when an uplift model for the campaign's kind is registered, by incremental profit
    (uplift x value per response x margin - cost). Without response scores or a campaigns
    table it ranks by value at risk (churn risk x predicted value), value or churn, with
    no profit estimate. Stops at the budget (or --top) and, for profit, at the first
    customer whose profit is not positive; holds out a random control group on top of the
    contacts; writes target_lists and a CSV, and prints what the list is expected to bring.
    """
    from features.load import Warehouse
    from serving.target import build_target_list, check_request, save_target_list

    cfg = load_config(config)
    check_request(budget=budget, top=top, cost=cfg.serving.contact_cost if cost is None else cost,
                  margin=cfg.serving.margin if margin is None else margin, control=control, rank_by=rank_by)
    folder = out or Path(cfg.features.output_dir) / "targets"
    with Warehouse.of(cfg.warehouse, on_wait=say) as wh, Progress() as progress:
        progress.stage(f"target list for {campaign}")
        result = build_target_list(wh, cfg, campaign, budget=budget, top=top, cost=cost, margin=margin,
                                   control=control, seed=seed, rank_by=rank_by)
        list_id = save_target_list(wh, result, csv_dir=folder)
    say(result.report())
    say(f"  written: table target_lists (list_id {list_id}) and {folder / (list_id + '.csv')}")


def runs(
    limit: Annotated[int, typer.Option(min=1, help="How many of the latest attempts to show.")] = 20,
    config: ConfigOption = None,
) -> None:
    """List scoring runs (latest first): status, as-of date, model versions, customers."""
    from features.load import Warehouse
    from serving import sink

    cfg = load_config(config)
    with Warehouse.of(cfg.warehouse, read_only=cfg.warehouse.url.startswith("duckdb"), on_wait=say) as wh:
        if not wh.has(sink.RUNS):
            say("no scoring runs yet; run `propensity score --as-of DATE`")
            return
        frame = wh.native_query(
            f"select run_id, attempt, as_of, status, churn_version, response_version, value_version, customers, "
            f"started_at, finished_at from {sink.RUNS} order by started_at desc limit ?", [limit])
    for line in runs_table(frame):
        typer.echo(line)


RUNS_HEADER = ("run id", "attempt", "as of", "status", "churn", "response", "value", "customers", "started", "took")


def runs_table(frame) -> list[str]:
    """scoring_runs rows as a header line and one aligned line per run (`-` for what a run has not got).

    Args:
        frame: rows of scoring_runs (run_id, attempt, as_of, status, the three model versions,
            customers, started_at, finished_at), in the order to show.
    Returns:
        The lines, header first; numbers right-aligned.
    """
    from serving import sink

    def text(value, fmt: str = "{}") -> str:
        return "-" if sink.is_null(value) else fmt.format(value)

    rows = [RUNS_HEADER]
    for r in frame.itertuples():
        took = ("-" if sink.is_null(r.finished_at) or sink.is_null(r.started_at)
                else f"{(r.finished_at - r.started_at).total_seconds():.0f}s")
        rows.append((r.run_id, str(r.attempt), text(r.as_of, "{:%Y-%m-%d}"), r.status,
                     *("-" if sink.is_null(v) else f"v{int(v)}"
                       for v in (r.churn_version, r.response_version, r.value_version)),
                     "-" if sink.is_null(r.customers) else f"{int(r.customers):,}",
                     text(r.started_at, "{:%Y-%m-%d %H:%M:%S}"), took))
    widths = [max(len(row[i]) for row in rows) for i in range(len(RUNS_HEADER))]
    right = {1, 7, 9}  # attempt, customers, took
    return ["  ".join(cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))).rstrip()
            for row in rows]


def check_customer(wh, customer_id: str, *, run: str | None = None, as_of=None) -> None:
    """Refuse, in one line, a customer the run did not score (with `run`) or with no transaction before `as_of`.

    Raises:
        WarehouseError: no such published run.
        UnknownCustomer: the customer is not there; the message shows an id that is.
    """
    from serving import sink
    from training.customer_reasons import UnknownCustomer

    if run is not None:
        sink.run_row(wh, run)  # the run itself first: "no scoring run 'X'"
        where, params, place = "run_id = ?", [run], f"in run {run}"
        table, fix = sink.SCORES, "check the id"
    else:
        if not wh.has("transactions"):
            return  # nothing to look in: the feature build says what is missing
        where, params, place = "ts < ?", [as_of], f"with transactions before {as_of}"
        table, fix = "transactions", "check the id or choose a later --as-of"
    found = wh.native_query(f"select count(*) as n from {table} where {where} and customer_id = ?",
                            [*params, customer_id])["n"][0]
    if found:
        return
    known = wh.native_query(f"select count(distinct customer_id) as n, min(customer_id) as example "
                            f"from {table} where {where}", params).iloc[0]
    n = int(known["n"])
    have = f"{n:,} customer{'s' if n != 1 else ''}, e.g. {known['example']!r}" if n else "no customers"
    raise UnknownCustomer(f"no customer {customer_id!r} {place} ({have}); {fix}")


def explain_customer(
    customer_id: Annotated[str, typer.Argument(metavar="CUSTOMER_ID", help="The customer's id, as in the warehouse.")],
    as_of: Annotated[str | None, typer.Option("--as-of", metavar="YYYY-MM-DD", help="Date YYYY-MM-DD: explain with today's registered models on features as of this date.")] = None,
    run: Annotated[str | None, typer.Option("--run", metavar="RUN_ID", help="A scoring run id: recompute exactly the reasons that run stored, from its model versions and feature snapshot.")] = None,
    model: Annotated[Target, typer.Option(help="Which model's reasons: churn, response, value or all (with --as-of).")] = Target.all,
    alias: Annotated[str, typer.Option(metavar="ALIAS", help="Registry alias of the models to use (with --as-of).")] = "champion",
    top: Annotated[int, typer.Option(min=1, max=50, help="Reasons per model (with --as-of).")] = 5,
    campaign_kind: Annotated[str | None, typer.Option(metavar="KIND", help="Campaign kind for the response model (default: the first kind it was trained on).")] = None,
    config: ConfigOption = None,
) -> None:
    """Print a customer's scores and the top reasons (SHAP contributions) for each model.

    With --as-of: the models registered under --alias, on features as of that date.
    With --run: what a scoring run computed, recomputed from its lineage (model versions
    and the feature snapshot it kept) and compared with the reasons it stored.
    Contributions are in the model's raw scale (log-odds for churn and response, log of
    the amount for value); the effect is the approximate change in the probability or
    amount that the feature accounts for.
    """
    from features.load import Warehouse

    cfg = load_config(config)
    if (as_of is None) == (run is None):
        raise ConfigError("give either --as-of DATE (current models) or --run RUN_ID (a scoring run's lineage)")
    if run is not None:
        from serving.lineage import explain_run_customer

        with Warehouse.of(cfg.warehouse, read_only=cfg.warehouse.url.startswith("duckdb"), on_wait=say) as wh:
            check_customer(wh, customer_id, run=run)  # an unknown id is the problem to report, not the models
            result = explain_run_customer(wh, cfg, run, customer_id)
        typer.echo("\n".join(result.lines()))
        return

    from training.cli import _names
    from training.customer_reasons import customer_row, explain_customer as explain, registered_model
    from training.track import configure

    cutoff = parse_date(as_of, "--as-of")
    with Warehouse.of(cfg.warehouse, read_only=True, on_wait=say) as wh:
        check_customer(wh, customer_id, as_of=cutoff)
    configure(cfg.mlflow, cfg.training.experiment)
    from training.track import RegistryError

    models, missing = {}, []
    for name in _names(model):
        try:
            models[name] = registered_model(name, alias)
        except RegistryError:
            if model is not Target.all:
                raise
            missing.append(name)
    if not models:
        raise RegistryError(f"no model has a @{alias}; train and promote one first")
    with Warehouse.of(cfg.warehouse, read_only=True, on_wait=say) as wh:
        row = customer_row(wh, cfg.features, customer_id, cutoff)
    typer.echo(f"customer {customer_id} as of {cutoff}")
    for name in missing:
        typer.echo(f"(no {name}@{alias} in the registry: not explained)")
    for exp in explain(row, models, k=top, campaign_kind=campaign_kind):
        typer.echo("")
        typer.echo("\n".join(exp.lines()))

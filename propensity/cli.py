"""The `propensity` command line: thin typed commands over the packages' functions.

User-caused problems (bad config, missing column, malformed file, missing table) end
with a one-line `error:` message and exit code 1; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from propensity.config import Config, ConfigError, load_config, write_default_config
from propensity.console import App, ConfigOption, friendly, parse_date, say
from propensity.progress import Progress

app = App(
    help="Churn risk, campaign response and future value for every customer, explained.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = App(help="Bring data into the warehouse: files, public data sets, the sample world.", no_args_is_help=True)
features_app = App(help="Build as-of RFMW, needs and segment features.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(features_app, name="features")


def _register_stages() -> None:
    from monitoring.cli import register as register_monitoring
    from serving.cli import register as register_serving
    from training.cli import register as register_training

    register_training(app)
    register_serving(app)
    register_monitoring(app)


def _open_warehouse(cfg: Config, read_only: bool = False):
    from features.load import Warehouse

    return Warehouse.of(cfg.warehouse, read_only=read_only, on_wait=say)


# -- init ---------------------------------------------------------------------------
@app.command()
@friendly
def init(
    folder: Annotated[Path, typer.Argument(help="Where to write propensity.toml.")] = Path("."),
) -> None:
    """Write a commented default propensity.toml (warehouse, MLflow store, mapping, windows)."""
    path = write_default_config(folder)
    say(f"wrote {path}; edit it, then import data with `propensity data import` or try `propensity data synth`")


# -- data ---------------------------------------------------------------------------
def _parse_maps(maps: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in maps:
        canonical, sep, source = item.partition("=")
        if not sep or not canonical or not source:
            raise ConfigError(f"--map {item!r}: write it as canonical=source, e.g. --map ts=InvoiceDate")
        out[canonical.strip()] = source.strip()
    return out


@data_app.command("import")
@friendly
def data_import(
    table: Annotated[str, typer.Argument(metavar="TABLE", help="Canonical table: transactions, customers, needs_evaluations, campaigns or contacts.")],
    file: Annotated[Path, typer.Argument(help="A .csv or .parquet file.")],
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", "-m", metavar="CANONICAL=SOURCE", help="canonical=source column name; repeat for each column that differs (adds to \\[mapping.TABLE] of the config). "
                 "A number column can be a product of source columns: --map amount=Quantity*UnitPrice."),
    ] = None,
    append: Annotated[bool, typer.Option(help="Add to the table instead of replacing it; rows already in the table are rejected.")] = False,
    allow_reimport: Annotated[
        bool, typer.Option(help="With --append: append the file even if the table already holds its content or some of its rows (they are then doubled).")
    ] = False,
    timestamp_format: Annotated[
        str | None,
        typer.Option(metavar="FORMAT", help="strftime format of the file's text timestamps, e.g. '%d/%m/%Y %H:%M' "
                     "(default: \\[import] timestamp_format in propensity.toml, else ISO 8601)."),
    ] = None,
    extracted_at: Annotated[
        str | None, typer.Option(metavar="YYYY-MM-DD[THH:MM]", help="When the file was extracted (YYYY-MM-DD[THH:MM]); rows dated later are rejected. Default: now.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Import one file into a canonical table; bad rows go to rejected_<TABLE> with a reason.

    The whole import is one transaction, recorded in the import_log table: a refused file
    (missing column, wrong date or number format, empty or unreadable, every row rejected,
    or appended again) leaves the warehouse exactly as it was.
    """
    from features.importer import import_file
    from features.schema import table as get_table

    cfg = load_config(config)
    try:
        spec = get_table(table)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    mapping = {**cfg.mapping.get(table, {}), **_parse_maps(map_ or [])}
    if timestamp_format is not None:
        from propensity.config import check_timestamp_format

        try:
            check_timestamp_format(timestamp_format)  # the check [import] timestamp_format gets
        except ValueError as e:
            raise ConfigError(f"--timestamp-format {timestamp_format!r}: {e}") from None
    when = None
    if extracted_at:
        try:
            when = datetime.fromisoformat(extracted_at)
        except ValueError:
            raise ConfigError(f"--extracted-at {extracted_at!r}: use a date like 2024-06-30") from None
    with _open_warehouse(cfg) as wh, Progress() as progress:
        progress.stage(f"importing {file} into {table}")
        result = import_file(
            wh, spec, file,
            mapping=mapping,
            timestamp_format=cfg.import_.timestamp_format if timestamp_format is None else timestamp_format,
            max_unparsable_share=cfg.import_.max_unparsable_share,
            delimiter=cfg.import_.csv_delimiter,
            extracted_at=when,
            append=append,
            allow_reimport=allow_reimport,
        )
    say(result.summary())
    for note in result.notes:
        say(f"  note: {note}")


@data_app.command("import-public")
@friendly
def data_import_public(
    name: Annotated[str, typer.Argument(metavar="DATASET", help="online_retail, cdnow, complete_journey, ifood, hillstrom or telco.")],
    path: Annotated[Path, typer.Argument(help="The data set's folder (e.g. ../shared/data/online_retail) or file.")],
    config: ConfigOption = None,
) -> None:
    """Import a public data set in place (read, never copied), with its quirks counted."""
    from features.sources import import_public

    cfg = load_config(config)
    with _open_warehouse(cfg) as wh, Progress() as progress:
        progress.stage(f"importing {name} from {path}")
        results = import_public(wh, name, path)
    for r in results:
        say(r.summary())
        for note in r.notes:
            say(f"  note: {note}")


@data_app.command("synth")
@friendly
def data_synth(
    customers: Annotated[int, typer.Option(min=100, help="Number of customers in the sample world.")] = 50_000,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same world.")] = 0,
    drift: Annotated[
        list[str] | None,
        typer.Option(
            "--drift",
            metavar="KIND[:key=value,...]",
            help="Inject a known shift from --drift-from on (repeatable): price-rise, category-mix or zero-feed; "
            "any of them takes start=YYYY-MM-DD. See above.",
        ),
    ] = None,
    drift_from: Annotated[
        str | None, typer.Option(metavar="YYYY-MM-DD", help="First day of the drift, YYYY-MM-DD. Default: 90 days before the world's end.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Generate the synthetic sample world (with known ground truth) into the warehouse.

    Fills the five canonical tables, `synth_truth` (each customer's true churn
    probability, churn driver and uplift) and `synth_drift` (the injected drift:
    kind, start, segment, parameters, expected_features). Rows dated before a
    drift's start are those of the world without it.

    \b
    Drift kinds, --drift KIND[:key=value,...] (each also takes start=YYYY-MM-DD):
      price-rise    price-oriented customers pay rise=0.25 more per line and
                    buy factor=0.5 times as often
                    e.g. --drift price-rise:rise=0.4,factor=0.6
      category-mix  share=0.8 of order lines move into=electronics
                    e.g. --drift category-mix:share=0.5,into=garden+baby
      zero-feed     a feed blanks or zeroes column=customers.income_band on
                    rows dated from the start; also customers.age_band,
                    customers.region, transactions.category,
                    transactions.quantity, transactions.amount (recent
                    orders stop counting as purchases),
                    needs_evaluations.complaint
                    e.g. --drift zero-feed:column=transactions.amount
    """
    from features.synth import SynthConfig

    cfg = load_config(config)
    world = SynthConfig(customers=customers, seed=seed)
    drifts = _parse_drifts(drift or [], drift_from, world.end - timedelta(days=90))
    with _open_warehouse(cfg) as wh, Progress() as progress:
        _synth_into(wh, customers, seed, progress, drifts)


def _parse_drifts(texts: list[str], drift_from: str | None, default: date) -> tuple:
    """The --drift options as `Drift`s; a user's mistake becomes a one-line ConfigError."""
    from features.synth import DriftError, parse_drift

    start = default if drift_from is None else parse_date(drift_from, "--drift-from")
    if drift_from is not None and not texts:
        raise ConfigError("--drift-from needs at least one --drift KIND, e.g. --drift price-rise")
    try:
        return tuple(parse_drift(text, start) for text in texts)
    except DriftError as e:
        raise ConfigError(f"--drift: {e}") from None


def _synth_into(wh, customers: int, seed: int, progress: Progress, drift: tuple = ()) -> None:
    from features.synth import DriftError, SynthConfig
    from features.synth_import import load_sample_world

    start = time.perf_counter()
    try:
        results = load_sample_world(wh, SynthConfig(customers=customers, seed=seed, drift=drift),
                                    progress=progress.say)
    except DriftError as e:  # a drift outside the world's dates, or given twice
        raise ConfigError(f"--drift: {e}") from None
    for r in results:
        say("  " + r.summary())
    for d in drift:
        say(f"  drift {d.kind} from {d.start} ({d.parameters}): expect {', '.join(d.expected_features) or 'no feature'} to move")
    say(f"sample world ({customers:,} customers, seed {seed}) loaded into {wh.url} in {time.perf_counter() - start:.1f}s")


@data_app.command("status")
@friendly
def data_status(config: ConfigOption = None) -> None:
    """Row counts of the warehouse tables, rejected rows included."""
    cfg = load_config(config)
    with _open_warehouse(cfg, read_only=True) as wh:
        for name in wh.tables():
            n = wh.native_query(f'select count(*) as n from "{name}"')["n"][0]
            typer.echo(f"{name:<28} {n:>12,}")


@data_app.command("export-parquet")
@friendly
def data_export_parquet(
    folder: Annotated[Path, typer.Argument(help="Folder for <table>.parquet files (created if missing).")],
    config: ConfigOption = None,
) -> None:
    """Write the canonical tables as Parquet files: the input of `propensity score --engine spark`."""
    cfg = load_config(config)
    with _open_warehouse(cfg, read_only=True) as wh, Progress() as progress:
        progress.stage(f"writing the canonical tables to {folder}")
        written = wh.export_parquet(folder)
    for name, path in written.items():
        say(f"  {name:<20} -> {path}")
    say(f"wrote {len(written)} tables to {folder}")


# -- features -----------------------------------------------------------------------
@features_app.command("build")
@friendly
def features_build(
    as_of: Annotated[str, typer.Option("--as-of", metavar="YYYY-MM-DD", help="Cutoff date YYYY-MM-DD: features use rows strictly before it.")],
    out: Annotated[Path | None, typer.Option(help="Parquet file to write (default: <output_dir>/features_<as-of>.parquet).")] = None,
    labels: Annotated[bool, typer.Option(help="Add labels from [as-of, as-of + horizon) when the data covers that window.")] = True,
    any_date: Annotated[bool, typer.Option("--any-date", help="Build even when --as-of is before the first transaction or more than \\[features] horizon_days after the last one.")] = False,
    config: ConfigOption = None,
) -> None:
    """Features for every customer with history before --as-of, one row each, to Parquet."""
    from features.btyd import add_btyd_features
    from features.snapshots import build_features, check_as_of, data_end
    from features.windows import Cutoff

    cfg = load_config(config)
    cutoff_date = parse_date(as_of, "--as-of")
    target = out or Path(cfg.features.output_dir) / f"features_{cutoff_date.isoformat()}.parquet"
    with _open_warehouse(cfg, read_only=True) as wh:
        if not any_date:
            check_as_of(wh, cutoff_date, cfg.features.horizon_days)
        end = data_end(wh)
        complete = Cutoff(cutoff_date, cfg.features.horizon_days).labels_complete(end)
        if labels and not complete:
            say(
                f"note: the data ends {end - timedelta(days=1)}, before the label window "
                f"[{cutoff_date}, +{cfg.features.horizon_days} days) is complete; labels are left out"
            )
        start = time.perf_counter()
        with Progress() as progress:
            progress.say(f"features as of {cutoff_date}")
            frame = build_features(wh, cutoff_date, cfg.features, with_labels=labels and complete)
            # BTYD columns fitted on this population: the file is what a registered model scores
            frame, _ = add_btyd_features(frame, cfg.features.horizon_days,
                                         window_days=cfg.features.frequency_window_days)
    target.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(target, index=False)
    say(
        f"{len(frame):,} customers x {frame.shape[1]} columns as of {cutoff_date} "
        f"in {time.perf_counter() - start:.1f}s -> {target}"
    )


@features_app.command("snapshots")
@friendly
def features_snapshots(
    out: Annotated[Path | None, typer.Option(help="Parquet file to write (default: <output_dir>/snapshots.parquet).")] = None,
    count: Annotated[int | None, typer.Option(min=1, help="Number of cutoffs (default: \\[features] snapshot_count in propensity.toml).")] = None,
    step_days: Annotated[int | None, typer.Option(min=1, help="Days between cutoffs (default: \\[features] snapshot_step_days in propensity.toml).")] = None,
    config: ConfigOption = None,
) -> None:
    """Features and labels stacked over the latest cutoffs whose label windows are complete."""
    from features.snapshots import build_snapshots, training_cutoffs
    from training.dataset import with_btyd_features

    cfg = load_config(config)
    fcfg = cfg.features.model_copy(
        update={k: v for k, v in {"snapshot_count": count, "snapshot_step_days": step_days}.items() if v}
    )
    target = out or Path(fcfg.output_dir) / "snapshots.parquet"
    with _open_warehouse(cfg, read_only=True) as wh, Progress() as progress:
        cutoffs = training_cutoffs(wh, fcfg, least=1, purge=False)  # every cutoff asked for
        number = {c: i for i, c in enumerate(cutoffs, 1)}
        frame = build_snapshots(wh, fcfg, cutoffs,
                                progress=lambda c: progress.say(f"as of {c} ({number[c]} of {len(cutoffs)})"))
        frame, _ = with_btyd_features(frame, fcfg)  # as the training frames: fitted per cutoff
    target.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(target, index=False)
    say(f"{len(frame):,} rows over {len(cutoffs)} cutoffs ({cutoffs[0]} .. {cutoffs[-1]}) -> {target}")


# -- demo ---------------------------------------------------------------------------
@app.command()
@friendly
def demo(
    customers: Annotated[int, typer.Option(min=100, help="Customers in the sample world.")] = 50_000,
    seed: Annotated[int, typer.Option(help="Random seed of the sample world.")] = 0,
    config: ConfigOption = None,
) -> None:
    """The main job end to end on the built-in sample world, then where to look.

    Sample world -> as-of features -> train churn, response and value (with baselines,
    logged to MLflow) -> promote through the gate -> score every customer (scores,
    segments, reasons into the segment tables) -> an uplift model and a target list for
    the latest campaign kind -> monitor the run (drift against the models' reference
    profiles, tables and an HTML report) -> model cards.
    """
    from features.snapshots import build_features, data_end
    from serving.batch import run_scoring
    from serving.target import build_target_list, campaign_choices, save_target_list
    from training.cards import render_card
    from training.uplift import train_uplift
    from training.pipeline import data_builder, promote_models, train_and_log

    cfg = load_config(config)
    start = time.perf_counter()
    with _open_warehouse(cfg) as wh, Progress() as p:
        progress = p.say
        progress("1/8 sample world")
        _synth_into(wh, customers, seed, p)
        end = data_end(wh)
        # The latest cutoff with a complete label window; scoring is as of the day after the data.
        labelled = end - timedelta(days=cfg.features.horizon_days)
        progress(f"2/8 features as of {labelled} (labelled)")
        out_dir = Path(cfg.features.output_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        frame = build_features(wh, labelled, cfg.features, with_labels=True)
        features_path = out_dir / f"features_{labelled.isoformat()}.parquet"
        frame.to_parquet(features_path, index=False)
        n_features = len(frame)
        del frame
        progress("3/8 training churn, response and value against their baselines")
        build = data_builder(wh, cfg, cutoff_progress=lambda c: progress(f"  features as of {c}"))
        outcomes = train_and_log(["churn", "response", "value"], wh, cfg, progress=progress, build=build)
        for out in outcomes:
            say("")
            say(out.report())
        say("")
        progress("4/8 promotion gate")
        decisions = promote_models(["churn", "response", "value"], wh, cfg, cfg.training.promotion_margin,
                                   build=build)
        for d in decisions:
            say("  " + d.line())
        progress(f"5/8 scoring every customer as of {end} with the champions")
        summary = run_scoring(wh, cfg, end, progress=progress, counter=p.counter("scoring", "customers"))
        say(summary.report())
        example, why = example_customer(wh, end)
        kind = next((c["kind"] for c in campaign_choices(wh) if c["has_control"]), None)
        targets = None
        if kind is not None:
            progress(f"6/8 uplift model for {kind!r} campaigns and a target list (budget 2,000, cost 1.0)")
            uplift = train_uplift(wh, cfg, kind, progress=progress)
            say(uplift.report())
            target_list = build_target_list(wh, cfg, kind, budget=2000.0, cost=1.0)
            save_target_list(wh, target_list, csv_dir=out_dir / "targets")
            say(target_list.report())
            targets = (kind, out_dir / "targets" / f"{target_list.summary['list_id']}.csv")
        progress("7/8 monitoring the run against the models' reference profiles")
        from monitoring.cli import monitor_and_record

        _, monitor_report = monitor_and_record(wh, cfg, summary.run_id, progress=say)
        progress("8/8 model cards")
        cards = []
        for name in summary.versions:  # the champions the run scored with
            card = out_dir / "model_cards" / f"{name}.html"
            card.parent.mkdir(parents=True, exist_ok=True)
            card.write_text(render_card(name, "champion"))
            cards.append(card)
    store = cfg.mlflow.tracking_uri
    say(f"\ndone in {time.perf_counter() - start:.0f}s. Where to look:")
    say(f"  tables      {cfg.warehouse.url}: current_customer_scores, current_customer_segments, "
        "current_score_reasons (latest successful run), scoring_runs")
    if cfg.warehouse.url.startswith("duckdb:///"):
        say(f"              .venv/bin/python -c \"import duckdb; print(duckdb.connect('{cfg.warehouse.url[10:]}', "
            "read_only=True).sql('select * from current_customer_scores order by expected_profit desc limit 10'))\"")
    say(f"  MLflow UI   .venv/bin/mlflow ui --backend-store-uri {store}   (then open http://127.0.0.1:5000)")
    for card in cards:
        say(f"  model card  {card}")
    say(f"  features    {features_path}  ({n_features:,} customers); the scored snapshot: {summary.snapshot}")
    say(f"  a customer  .venv/bin/propensity explain customer {example} --run {summary.run_id}")
    say(f"              (chosen: {why})")
    if targets is not None:
        say(f"  targets     {targets[1]} (table target_lists); another: .venv/bin/propensity target "
            f"{targets[0]} --budget 5000 --cost 1.5")
    say("  web page    .venv/bin/propensity tokens create --role admin --name me, then "
        ".venv/bin/propensity serve and open http://127.0.0.1:8000")
    say(f"  monitoring  {monitor_report} (tables monitoring_features, monitoring_predictions, "
        "monitoring_attributions, run_performance); again: .venv/bin/propensity monitor")
    say("  runs        .venv/bin/propensity runs;  all tables: .venv/bin/propensity data status")


def example_customer(wh, as_of: date, recent_days: int = 90) -> tuple[str, str]:
    """A customer of the current scoring run whose reasons teach something, and why it was chosen.

    First choice: of those who bought in the `recent_days` before `as_of`, the one at the
    highest churn risk: recency is not the whole story there, so the other reasons show;
    else the customer a contact is expected to earn most from; else the highest churn risk.

    Returns:
        (customer id, a short phrase saying why this one).
    """
    since = datetime.combine(as_of - timedelta(days=recent_days), datetime.min.time())
    until = datetime.combine(as_of, datetime.min.time())
    recent = wh.native_query(
        "select s.customer_id, s.churn_risk, s.churn_decile, max(t.ts) as last_purchase "
        "from current_customer_scores s join transactions t on t.customer_id = s.customer_id "
        "where s.churn_risk is not null and t.amount > 0 and t.ts >= ? and t.ts < ? "
        "group by s.customer_id, s.churn_risk, s.churn_decile order by s.churn_risk desc, s.customer_id limit 1",
        [since, until])
    if len(recent):
        r = recent.iloc[0]
        days = (as_of - _as_date(r["last_purchase"])).days
        return str(r["customer_id"]), (
            f"the highest churn risk ({r['churn_risk']:.0%}, decile {int(r['churn_decile'])} of 10) of those who "
            f"bought in the last {recent_days} days, {days} day{'s' if days != 1 else ''} ago: "
            "the reasons show what outweighs a recent purchase")
    best = wh.native_query("select customer_id, expected_profit from current_customer_scores "
                           "where expected_profit is not null order by expected_profit desc, customer_id limit 1")
    if len(best):
        return str(best["customer_id"][0]), f"the highest expected profit from a contact ({best['expected_profit'][0]:,.2f})"
    risky = wh.native_query("select customer_id from current_customer_scores "
                            "order by churn_risk desc nulls last, customer_id limit 1")
    return str(risky["customer_id"][0]), "the highest churn risk"


def _as_date(value) -> date:
    """A date from what a driver returns for a timestamp (datetime, pandas Timestamp or date)."""
    return value.date() if isinstance(value, datetime) else value


_register_stages()


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())

"""Drift injected into the sample world: untouched before its start, known shifts after it."""

from __future__ import annotations

import hashlib
from datetime import date

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.importer import write_imports
from features.load import Warehouse
from features.snapshots import build_features
from features.synth import Drift, SampleWorld, SynthConfig, generate, parse_drift
from features.synth_import import conform_world, load_sample_world
from monitoring.drift import psi
from propensity.cli import app
from propensity.config import Config
from training.profile import categorical_bins, numeric_bins, shares

START = date(2025, 4, 1)
LATE = date(2025, 6, 29)  # the last day of the default world's data
CUSTOMERS = 3_000
AGEING = {"tenure_days"}  # moves by ageing alone: PSI 1.01 between the two dates without drift
# Moved by the category mix, below the 0.4 of its headline features (measured: 0.29, 0.30).
CATEGORY_MIX_ALSO = {"spend_30d", "spend_90d"}


def _world(*drift: Drift) -> SampleWorld:
    return generate(SynthConfig(customers=CUSTOMERS, seed=0, drift=drift))


@pytest.fixture(scope="module")
def worlds() -> dict[str, SampleWorld]:
    """The drift-free world and one world per kind, all from 2025-04-01 (about 5 s)."""
    return {
        "none": _world(),
        "price-rise": _world(Drift("price-rise", START)),
        "category-mix": _world(Drift("category-mix", START)),
        "zero-feed": _world(Drift("zero-feed", START)),
    }


def _psi_by_feature(world: SampleWorld, folder) -> dict[str, float]:
    """PSI of every feature as of LATE against the features as of START (bins from START)."""
    wh = Warehouse(f"duckdb:///{folder / 'warehouse.duckdb'}")
    try:
        write_imports(wh, conform_world(world))
        cfg = Config().features
        before = build_features(wh, START, cfg, with_labels=False)
        after = build_features(wh, LATE, cfg, with_labels=False)
    finally:
        wh.close()
    out = {}
    for c in before.columns.drop(["customer_id", "as_of"]):
        numeric = pd.api.types.is_numeric_dtype(before[c]) and not pd.api.types.is_bool_dtype(before[c])
        bins = numeric_bins(before[c]) if numeric else categorical_bins(before[c])
        out[c] = psi(np.asarray(bins.reference), shares(bins, after[c]))
    return out


@pytest.fixture(scope="module")
def psis(worlds, tmp_path_factory) -> dict[str, dict[str, float]]:
    return {kind: _psi_by_feature(w, tmp_path_factory.mktemp(kind)) for kind, w in worlds.items()}


# --- no drift: today's world, bit for bit ----------------------------------------------

# sha256 of pandas' row hashes of each frame of SynthConfig(customers=4_000, seed=7), taken
# with the generator as it was before drift existed.
DIGESTS = {
    "transactions": "1f949a933f4351a9",
    "customers": "e285c24ca0d8eb05",
    "needs_evaluations": "c456eddd01b09a67",
    "campaigns": "b9ba3a187a35e9af",
    "contacts": "35ea87308eb47320",
    "truth": "60562e50bab2b4d7",
}


def test_no_drift_world_is_the_world_before_drift_existed() -> None:
    world = generate(SynthConfig(customers=4_000, seed=7, drift=()))
    frames = {**world.tables(), "truth": world.truth}
    got = {
        name: hashlib.sha256(pd.util.hash_pandas_object(f, index=True).values.tobytes()).hexdigest()[:16]
        for name, f in frames.items()
    }
    assert got == DIGESTS
    assert world.drift == () and world.drift_frame().empty


# --- rows before the start are the drift-free world's ----------------------------------


def _before(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    return frame[frame[column] < pd.Timestamp(START)].reset_index(drop=True)


@pytest.mark.parametrize("kind", ["price-rise", "category-mix", "zero-feed"])
def test_rows_before_the_start_are_untouched(worlds, kind: str) -> None:
    base, drifted = worlds["none"], worlds[kind]
    for name, column in [("transactions", "ts"), ("needs_evaluations", "evaluated_at"), ("customers", "first_seen")]:
        pd.testing.assert_frame_equal(_before(drifted.tables()[name], column), _before(base.tables()[name], column),
                                      check_exact=True, obj=f"{kind} {name}")
    pd.testing.assert_frame_equal(drifted.campaigns, base.campaigns, check_exact=True)
    # a contact is settled before the start when it was answered before it, or sent more
    # than the 13-day response window earlier
    def settled(c: pd.DataFrame) -> pd.DataFrame:
        start = pd.Timestamp(START)
        keep = (c.responded_at < start) | (c.contacted_at < start - pd.Timedelta(days=14))
        return c[keep].reset_index(drop=True)

    pd.testing.assert_frame_equal(settled(drifted.contacts), settled(base.contacts), check_exact=True)


@pytest.mark.parametrize("kind", ["price-rise", "category-mix"])
def test_rows_from_the_start_change(worlds, kind: str) -> None:
    late = lambda w: w.transactions[w.transactions.ts >= pd.Timestamp(START)]  # noqa: E731
    assert not late(worlds[kind]).reset_index(drop=True).equals(late(worlds["none"]).reset_index(drop=True))


def test_zero_feed_blanks_the_column_from_the_start(worlds) -> None:
    c = worlds["zero-feed"].customers
    new = c.first_seen >= pd.Timestamp(START)
    assert new.sum() > 150 and c.income_band[new].isna().all() and c.income_band[~new].notna().all()


# --- the price rise, by hand ------------------------------------------------------------


def _post_purchases(world: SampleWorld, customers: set[str]) -> tuple[int, float]:
    """Organic orders from the start (responses to campaigns excluded) and their mean line amount."""
    tx = world.transactions
    tx = tx[(tx.ts >= pd.Timestamp(START)) & tx.customer_id.isin(customers)]
    answers = world.contacts[world.contacts.responded]
    is_answer = pd.MultiIndex.from_frame(tx[["customer_id", "ts"]]).isin(
        pd.MultiIndex.from_frame(answers[["customer_id", "responded_at"]]))
    organic = tx[~is_answer & (tx.amount > 0)]
    return organic.order_id.nunique(), float(organic.amount.mean())


def test_price_rise_halves_the_segment_purchases_and_raises_its_prices(worlds) -> None:
    ev = worlds["none"].needs_evaluations
    price = set(ev.customer_id[ev.orientation == "price"])
    value = set(ev.customer_id[ev.orientation == "value"])
    n0, amount0 = _post_purchases(worlds["none"], price)
    n1, amount1 = _post_purchases(worlds["price-rise"], price)
    # The daily order probability is 1 - exp(-rate); halving a rate of r gives a bit more
    # than half of it (r / 2 + r^2 / 8 against r - r^2 / 2: +2 % at the mean rate 0.04,
    # more for the heaviest buyers), and about 1,300 orders leave a sampling error of
    # about 3 %: 0.5 within -0.05 / +0.1.
    assert 0.45 < n1 / n0 < 0.6, n1 / n0
    # Line amounts are lognormal around the category price (sd 0.35) over ~3,000 lines:
    # the mean ratio is 1.25 within 0.08.
    assert amount1 / amount0 == pytest.approx(1.25, abs=0.08)
    m0, value0 = _post_purchases(worlds["none"], value)
    m1, value1 = _post_purchases(worlds["price-rise"], value)
    assert m1 / m0 == pytest.approx(1.0, abs=0.08) and value1 / value0 == pytest.approx(1.0, abs=0.08)


# --- what the features see --------------------------------------------------------------


def test_without_drift_only_ageing_features_move(psis) -> None:
    moved = {c: round(v, 3) for c, v in psis["none"].items() if v >= 0.25}
    assert moved.keys() == AGEING, moved


@pytest.mark.parametrize("kind", ["category-mix", "zero-feed"])
def test_expected_features_move_and_the_rest_stay(worlds, psis, kind: str) -> None:
    (drift,) = worlds[kind].drift
    expected = set(drift.expected_features)
    assert expected and expected <= psis[kind].keys()
    assert {c: round(psis[kind][c], 3) for c in expected if psis[kind][c] < 0.4} == {}
    also = CATEGORY_MIX_ALSO if kind == "category-mix" else set()
    others = {c: round(v, 3) for c, v in psis[kind].items() if c not in expected | AGEING | also and v >= 0.25}
    assert others == {}
    assert all(0.25 <= psis[kind][c] < 0.4 for c in also)


def test_price_rise_moves_its_features_but_little_over_the_whole_population(worlds, psis) -> None:
    """Half the customers, and in three months only those still buying: PSI well under 0.4.

    Measured: recency_days 0.039, frequency_90d 0.028, monetary_avg_30d 0.025,
    monetary_avg_90d 0.021, frequency_30d 0.020, frequency_trend 0.021 (no drift: 0.045);
    even rise=3, factor=0.1 stays at 0.17. The hand check above is where it shows.
    """
    expected = set(worlds["price-rise"].drift[0].expected_features)
    assert expected <= psis["price-rise"].keys()
    others = {c: round(v, 3) for c, v in psis["price-rise"].items() if c not in AGEING and v >= 0.25}
    assert others == {}


def test_the_drift_is_recorded_in_the_warehouse(tmp_path) -> None:
    wh = Warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    try:
        load_sample_world(wh, SynthConfig(customers=1_000, seed=1, drift=(Drift("category-mix", START),)))
        row = wh.read("synth_drift").iloc[0]
        assert (row.kind, row.start, row.parameters) == ("category-mix", pd.Timestamp(START), "share=0.8,into=electronics")
        assert row.expected_features == "monetary_avg_90d,monetary_avg_30d,spend_trend"
        load_sample_world(wh, SynthConfig(customers=1_000, seed=1))  # no drift: the record is emptied
        assert wh.read("synth_drift").empty
    finally:
        wh.close()


# --- the command line -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("price-rise", Drift("price-rise", START)),
        ("price-rise:rise=0.4,factor=0.6", Drift("price-rise", START, rise=0.4, factor=0.6)),
        ("category-mix:into=garden+baby,start=2025-05-01", Drift("category-mix", date(2025, 5, 1), into=("garden", "baby"))),
        ("zero-feed:column=customers.region", Drift("zero-feed", START, column="customers.region")),
    ],
)
def test_parse_drift(text: str, expected: Drift) -> None:
    assert parse_drift(text, START) == expected


runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--drift", "price-drop"], "unknown drift kind 'price-drop'"),
        (["--drift", "price-rise:share=0.2"], "price-rise takes rise=..., factor=..., start=..."),
        (["--drift", "price-rise:factor=lots"], "factor='lots': use a number"),
        (["--drift", "category-mix:into=gadgets"], "name categories joined by '+'"),
        (["--drift", "zero-feed:column=needs_evaluations.urgency"], "use one of customers.income_band"),
        (["--drift", "zero-feed", "--drift-from", "2025-02-30"], "--drift-from '2025-02-30': use a date like"),
        (["--drift", "zero-feed:start=2026-01-01"], "outside the world's data"),
        (["--drift-from", "2025-04-01"], "needs at least one --drift"),
    ],
)
def test_cli_mistakes_are_one_line(tmp_path, monkeypatch, args: list[str], says: str) -> None:
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["data", "synth", "--customers", "100", *args])
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], res.output

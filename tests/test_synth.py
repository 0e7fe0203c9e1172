"""The synthetic sample world: contract, time consistency and agreement with its truth."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from features import schema
from features.synth import (
    CHURN_DRIVERS,
    PAIN_FIT_MAX,
    TRUTH_COLUMNS,
    UPLIFT_TYPES,
    SampleWorld,
    SynthConfig,
    generate,
)

CONFIG = SynthConfig(customers=4_000, seed=7)
TRUTH_AS_OF = pd.Timestamp(CONFIG.truth_as_of)
END = pd.Timestamp(CONFIG.end)
START = pd.Timestamp(CONFIG.start)

KIND_DTYPES = {
    "id": "str",
    "text": "str",
    "timestamp": "datetime64[us]",
    "integer": "int64",
    "bool": "bool",
}
NULLABLE = {("contacts", "responded_at"), ("contacts", "revenue")}


@pytest.fixture(scope="module")
def world() -> SampleWorld:
    """A 4,000-customer world (about half a second to build)."""
    return generate(CONFIG)


@pytest.fixture(scope="module")
def horizon_buyers(world: SampleWorld) -> set[str]:
    """Customers with an order of positive net amount in [truth_as_of, +horizon)."""
    tx = world.transactions
    window = tx[(tx.ts >= TRUTH_AS_OF) & (tx.ts < END)]
    net = window.groupby(["customer_id", "order_id"]).amount.sum()
    return set(net[net > 0].index.get_level_values("customer_id"))


@pytest.fixture(scope="module")
def alive(world: SampleWorld, horizon_buyers: set[str]) -> pd.DataFrame:
    """Truth rows of customers alive at truth_as_of, with the empirical churn label."""
    rows = world.truth[world.truth.alive_at_truth].copy()
    rows["churned_label"] = ~rows.customer_id.isin(horizon_buyers)
    return rows


def _frames(w: SampleWorld) -> dict[str, pd.DataFrame]:
    return {**w.tables(), "truth": w.truth}


# --- determinism ---------------------------------------------------------------------


def test_same_seed_gives_identical_frames(world: SampleWorld) -> None:
    again = generate(CONFIG)
    for name, frame in _frames(world).items():
        pd.testing.assert_frame_equal(frame, _frames(again)[name], check_exact=True, obj=name)


def test_different_seed_gives_different_data(world: SampleWorld) -> None:
    other = generate(SynthConfig(customers=CONFIG.customers, seed=CONFIG.seed + 1))
    assert not other.transactions.equals(world.transactions)
    assert not other.customers.first_seen.equals(world.customers.first_seen)
    assert not np.array_equal(
        other.truth.true_churn_prob.to_numpy(), world.truth.true_churn_prob.to_numpy()
    )


def test_progress_reports_each_stage_in_order() -> None:
    stages: list[str] = []
    generate(SynthConfig(customers=50, seed=1), progress=stages.append)
    assert stages == [
        "customers", "campaign plan", "daily simulation", "order lines", "truth", "tables",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        (SynthConfig(customers=5), "customers"),
        (SynthConfig(start=date(2025, 1, 1)), "240 days"),
        (SynthConfig(horizon_days=30), "horizon_days"),
        (SynthConfig(horizon_days=200), "horizon_days"),
    ],
)
def test_unusable_config_is_refused_with_a_message(config: SynthConfig, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        generate(config)


# --- the input contract ----------------------------------------------------------------


@pytest.mark.parametrize("name", list(schema.TABLES))
def test_table_matches_schema(world: SampleWorld, name: str) -> None:
    frame = world.tables()[name]
    table = schema.table(name)
    assert set(table.required) <= set(frame.columns)
    if not table.keep_extra_columns:
        assert set(frame.columns) <= set(table.names)
    for column in table.columns:
        if column.name not in frame.columns:
            continue
        values = frame[column.name]
        if (name, column.name) not in NULLABLE:
            assert values.notna().all(), column.name
        if column.kind in KIND_DTYPES:
            assert str(values.dtype) == KIND_DTYPES[column.kind], column.name
        else:  # number: float amounts, integer quantities
            assert pd.api.types.is_numeric_dtype(values), column.name
        if column.allowed is not None:
            assert set(values.unique()) <= set(column.allowed), column.name
        if column.value_range is not None:
            low, high = column.value_range
            assert values.between(low, high).all(), column.name


def test_transaction_columns_have_the_promised_values(world: SampleWorld) -> None:
    tx = world.transactions
    assert list(tx.columns) == [
        "customer_id", "order_id", "ts", "amount", "category", "quantity", "channel",
    ]  # fmt: skip
    assert 10 <= tx.category.nunique() <= 14
    assert set(tx.channel.unique()) == {"web", "store", "app"}
    assert tx.quantity.dtype == "int64" and (tx.quantity != 0).all()
    assert (np.sign(tx.quantity) == np.sign(tx.amount)).all()
    assert (tx.amount.round(2) == tx.amount).all()
    # Timestamps carry a time of day, not just dates.
    assert (tx.ts.dt.hour > 0).mean() > 0.9
    assert tx.customer_id.str.fullmatch(r"C\d{6}").all()


def test_customer_attributes(world: SampleWorld) -> None:
    cu = world.customers
    assert cu.customer_id.is_unique and len(cu) == CONFIG.customers
    assert set(cu.age_band) == {"18-24", "25-34", "35-44", "45-54", "55-64", "65+"}
    assert set(cu.income_band) == {"low", "middle", "high"}
    assert cu.region.nunique() == 5


def test_evaluations_cadence_and_fixed_traits(world: SampleWorld) -> None:
    ev = world.needs_evaluations.sort_values(["customer_id", "evaluated_at"])
    share = ev.customer_id.nunique() / CONFIG.customers
    assert 0.5 <= share <= 0.7
    gaps = ev.groupby("customer_id").evaluated_at.diff().dropna().dt.days
    assert gaps.between(119, 181).all()  # 120-180 days apart, times of day vary
    traits = ev.groupby("customer_id")[["orientation", "style"]].nunique()
    assert (traits == 1).all().all()
    assert set(ev.need_level) == set(schema.NEED_LEVELS)
    assert set(ev.dimension) == set(schema.DIMENSIONS)


def test_campaigns_before_and_inside_the_horizon(world: SampleWorld) -> None:
    camp = world.campaigns
    assert 6 <= len(camp) <= 8 and camp.campaign_id.is_unique
    before = camp[camp.end <= TRUTH_AS_OF]
    assert before.kind.value_counts().max() >= 2
    inside = camp[(camp.start >= TRUTH_AS_OF) & (camp.end < END)]
    assert len(inside) >= 1
    assert (camp.start < camp.end).all()


def test_contacts_groups_and_responses(world: SampleWorld) -> None:
    co = world.contacts
    assert not co.duplicated(["campaign_id", "customer_id"]).any()
    assert 0.17 <= (co.group == "control").mean() <= 0.23
    responded = co[co.responded]
    assert responded.responded_at.notna().all() and (responded.revenue > 0).all()
    assert (responded.responded_at >= responded.contacted_at).all()
    assert (responded.responded_at - responded.contacted_at).max() < pd.Timedelta(days=14)
    silent = co[~co.responded]
    assert silent.responded_at.isna().all() and silent.revenue.isna().all()
    window = world.campaigns.set_index("campaign_id")
    assert (responded.responded_at < responded.campaign_id.map(window.end)).all()


def test_every_response_is_an_order_with_that_revenue(world: SampleWorld) -> None:
    co = world.contacts[world.contacts.responded]
    orders = world.transactions.groupby(["customer_id", "order_id"], as_index=False).agg(
        ts=("ts", "first"), total=("amount", "sum")
    )
    matched = co.merge(
        orders, left_on=["customer_id", "responded_at"], right_on=["customer_id", "ts"]
    )
    assert len(matched) == len(co)
    np.testing.assert_allclose(matched.total, matched.revenue, atol=0.005)


# --- time consistency ----------------------------------------------------------------


def test_everything_happens_inside_the_window(world: SampleWorld) -> None:
    stamps = [
        world.transactions.ts,
        world.customers.first_seen,
        world.needs_evaluations.evaluated_at,
        world.contacts.contacted_at,
        world.contacts.responded_at.dropna(),
        world.campaigns.start,
    ]
    for s in stamps:
        assert s.min() >= START and s.max() < END
    assert (world.campaigns.end <= END).all()
    span = world.transactions.ts.max() - world.transactions.ts.min()
    assert span >= pd.Timedelta(days=730)


def test_nothing_before_first_seen(world: SampleWorld) -> None:
    first = world.customers.set_index("customer_id").first_seen
    tx = world.transactions
    assert (tx.ts >= tx.customer_id.map(first)).all()
    earliest = tx.groupby("customer_id").ts.min()
    assert (earliest.to_numpy() == first.loc[earliest.index].to_numpy()).all()
    ev = world.needs_evaluations
    assert (ev.evaluated_at > ev.customer_id.map(first)).all()
    co = world.contacts
    assert (co.contacted_at > co.customer_id.map(first)).all()


def test_nothing_after_churn(world: SampleWorld) -> None:
    churned = world.truth.set_index("customer_id").churned_at.dropna()
    assert len(churned) > 0.2 * CONFIG.customers
    for frame, column in ((world.transactions, "ts"), (world.needs_evaluations, "evaluated_at")):
        rows = frame[frame.customer_id.isin(churned.index)]
        assert (rows[column] < rows.customer_id.map(churned)).all(), column
    resp = world.contacts.dropna(subset=["responded_at"])
    resp = resp[resp.customer_id.isin(churned.index)]
    assert (resp.responded_at < resp.customer_id.map(churned)).all()


def test_orders_belong_to_one_customer_and_stay_purchases(world: SampleWorld) -> None:
    tx = world.transactions
    per_order = tx.groupby("order_id").agg(
        customers=("customer_id", "nunique"), times=("ts", "nunique"), net=("amount", "sum")
    )
    assert (per_order.customers == 1).all() and (per_order.times == 1).all()
    # Returns never turn an order into a non-purchase (labels count orders with net > 0).
    assert (per_order.net > 0).all()


def test_returns_are_a_few_percent_and_follow_a_purchase(world: SampleWorld) -> None:
    tx = world.transactions
    returns = tx[tx.amount < 0]
    assert 0.01 <= len(returns) / len(tx) <= 0.05
    # A return line sits on an order that also holds purchase lines (a later order).
    purchase_orders = set(tx.loc[tx.amount > 0, "order_id"])
    assert returns.order_id.isin(purchase_orders).all()
    earliest_purchase = tx[tx.amount > 0].groupby(["customer_id", "category"]).ts.min()
    key = pd.MultiIndex.from_frame(returns[["customer_id", "category"]])
    bought_day = earliest_purchase.reindex(key).dt.normalize().to_numpy()
    returned_day = returns.ts.dt.normalize().to_numpy()
    assert (returned_day - bought_day >= np.timedelta64(3, "D")).all()


def test_lines_per_customer_scale_to_two_million_at_default_size(world: SampleWorld) -> None:
    lines_per_customer = len(world.transactions) / CONFIG.customers
    assert lines_per_customer >= 40  # 50,000 customers -> at least 2M lines
    orders_per_customer = world.transactions.order_id.nunique() / CONFIG.customers
    assert 10 <= orders_per_customer <= 25


# --- the truth -----------------------------------------------------------------------


def test_truth_rows_and_values(world: SampleWorld) -> None:
    truth = world.truth
    assert tuple(truth.columns) == TRUTH_COLUMNS
    assert (truth.customer_id.to_numpy() == world.customers.customer_id.to_numpy()).all()
    assert (truth.truth_as_of == TRUTH_AS_OF).all()
    assert set(truth.churn_driver) <= set(CHURN_DRIVERS)
    assert set(truth.uplift_type) == set(UPLIFT_TYPES)
    assert truth.true_churn_prob.between(0, 1).all()
    uplift = truth.p_response_treated - truth.p_response_control
    np.testing.assert_allclose(truth.true_uplift, uplift)
    first = world.customers.first_seen.to_numpy()
    expected_alive = (first < TRUTH_AS_OF) & ~(truth.churned_at < TRUTH_AS_OF).to_numpy()
    assert (truth.alive_at_truth.to_numpy() == expected_alive).all()
    dead = truth[(truth.churned_at < TRUTH_AS_OF)]
    assert (dead.true_churn_prob == 1.0).all()
    joining_later = truth[first >= TRUTH_AS_OF]
    assert (joining_later.true_churn_prob == 0.0).all()


def test_truth_is_calibrated_overall(alive: pd.DataFrame) -> None:
    p = alive.true_churn_prob
    # Labels are independent Bernoulli(p_i) draws given the state at truth_as_of, so the
    # empirical share has standard error sqrt(sum p(1-p)) / n; allow 3 of them.
    se = np.sqrt((p * (1 - p)).sum()) / len(p)
    assert abs(alive.churned_label.mean() - p.mean()) <= 3 * se
    assert 0.1 <= p.mean() <= 0.4  # neither class is rare


def test_truth_is_calibrated_in_bins(alive: pd.DataFrame) -> None:
    bins = pd.qcut(alive.true_churn_prob, 5, labels=False)
    by_bin = alive.groupby(bins).agg(p=("true_churn_prob", "mean"), rate=("churned_label", "mean"))
    assert by_bin.rate.is_monotonic_increasing
    assert by_bin.rate.iloc[-1] - by_bin.rate.iloc[0] > 0.4
    # Each bin within 3 binomial standard errors of its mean truth (plus 0.01 for spread).
    n = alive.groupby(bins).size()
    se = np.sqrt(by_bin.p * (1 - by_bin.p) / n)
    assert ((by_bin.rate - by_bin.p).abs() <= 3 * se + 0.01).all()


def test_unresolved_pain_raises_churn(world: SampleWorld, alive: pd.DataFrame) -> None:
    ev = world.needs_evaluations
    ev = ev[ev.evaluated_at < TRUTH_AS_OF].sort_values("evaluated_at")
    latest = ev.groupby(["customer_id", "dimension"]).tail(1)
    open_pain = latest[(latest.need_level == "pain") & (latest.solution_fit <= PAIN_FIT_MAX)]
    has_pain = alive.customer_id.isin(open_pain.customer_id)
    with_pain, without = alive[has_pain].true_churn_prob, alive[~has_pain].true_churn_prob
    assert len(with_pain) >= 50
    difference = with_pain.mean() - without.mean()
    se = np.sqrt(with_pain.var() / len(with_pain) + without.var() / len(without))
    assert difference > max(0.03, 2 * se)
    # The stored driver agrees with the tables it was derived from.
    pain_driver = alive[alive.churn_driver == "unresolved_pain"]
    assert pain_driver.customer_id.isin(open_pain.customer_id).all()


def test_each_named_driver_occurs(alive: pd.DataFrame) -> None:
    shares = alive.churn_driver.value_counts(normalize=True)
    for driver in CHURN_DRIVERS:
        assert shares.get(driver, 0) > 0.03, driver


def test_uplift_types_show_in_the_contacts(world: SampleWorld) -> None:
    truth = world.truth.set_index("customer_id")
    co = world.contacts.join(truth[["uplift_type", "churned_at"]], on="customer_id")
    # Only customers alive when contacted can respond; the others dilute both groups.
    co = co[co.churned_at.isna() | (co.churned_at > co.contacted_at)]
    rates = co.groupby(["uplift_type", "group"]).responded.agg(["mean", "size"]).unstack()
    mean, size = rates["mean"], rates["size"]
    uplift = mean.treatment - mean.control
    se = np.sqrt(
        mean.treatment * (1 - mean.treatment) / size.treatment
        + mean.control * (1 - mean.control) / size.control
    )
    # Model: persuadables ~+0.23, do-not-disturbs ~-0.11; each group holds a few hundred
    # contacts here, so ask for a margin and two standard errors (one-sided 2.5 %).
    assert uplift["persuadable"] > max(0.1, 2 * se["persuadable"])
    assert uplift["do_not_disturb"] < -max(0.04, 2 * se["do_not_disturb"])
    assert mean.control["sure_thing"] - mean.control["lost_cause"] > 0.1
    assert (truth.loc[truth.uplift_type == "persuadable", "true_uplift"] > 0).all()
    assert truth.loc[truth.uplift_type == "do_not_disturb", "true_uplift"].mean() < -0.05


def test_uplift_type_depends_on_observable_attributes(world: SampleWorld) -> None:
    ev = world.needs_evaluations.drop_duplicates("customer_id").set_index("customer_id")
    truth = world.truth.set_index("customer_id").join(ev[["orientation", "style"]], how="inner")
    persuadable = truth.uplift_type == "persuadable"
    by_orientation = persuadable.groupby(truth.orientation).mean()
    assert by_orientation["price"] - by_orientation["value"] > 0.1
    dnd = truth.uplift_type == "do_not_disturb"
    by_style = dnd.groupby(truth["style"]).mean()
    assert by_style["dominant"] > 1.5 * by_style.drop("dominant").max()


def test_sample_world_passes_the_input_contract_without_rejects() -> None:
    from features.synth_import import conform_world

    results = conform_world(generate(SynthConfig(customers=3000, seed=9)))
    assert {r.table.name: len(r.rejected) for r in results} == dict.fromkeys(
        ["transactions", "customers", "needs_evaluations", "campaigns", "contacts"], 0
    )
    tx = next(r for r in results if r.table.name == "transactions").accepted
    assert len(tx) >= 40 * 3000

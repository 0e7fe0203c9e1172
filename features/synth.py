"""A seeded synthetic "sample world": the five canonical tables plus the ground truth.

The world is a small retail business observed day by day from `start` to
`truth_as_of + horizon_days` (exclusive). Everything is drawn from one seed, so the same
`SynthConfig` gives the same frames bit for bit.

Generative model
----------------
Customers
    Customer ids are numbered in order of joining. About a third of them form the
    existing base and join in the first weeks; the rest join uniformly over the whole
    window, so most join before `truth_as_of`. A customer's first order happens on the
    day they join, and `first_seen` is that order's timestamp. Each customer has fixed
    latent traits: a base purchase rate (gamma), a spend level (lognormal, higher for
    higher income), category preferences (Dirichlet with a per-customer concentration,
    so some buy from one or two categories and others from many), a channel preference
    (younger customers prefer the app), a seasonal amplitude (December peak, smaller
    summer bump), basket size, and for about 30 % a purchase rate that starts falling at
    a random point: ``rate * exp(-decline * days_since_decline_started)``.

Daily simulation (vectorised over customers, one loop over days)
    Each day, in this order, for every customer who joined earlier and is alive:

    1. death (churn, never buys again) with daily hazard
       ``base + unresolved_pain + poor_fit + falling_frequency + long_gap + dnd``:
       - unresolved_pain: `_H_PAIN` per open pain (at most 3). A pain is *open* when
         the latest evaluation of a dimension records need_level "pain" with
         solution_fit <= `PAIN_FIT_MAX`; a later evaluation of that dimension that
         records anything else resolves it;
       - poor_fit: grows as the customer's latent solution fit falls below 3 (the
         evaluations measure that fit with noise);
       - falling_frequency: proportional to how far the purchase rate has fallen;
       - long_gap: grows with days since the last order over the usual gap
         (1 / base rate) beyond `_GAP_FREE` usual gaps;
       - dnd: a decaying extra hazard after a "do-not-disturb" customer is contacted
         in a campaign's treatment group (not a named churn driver).
       ``churned_at`` is midnight at the start of that day.
    2. needs evaluation, for the ~60 % of customers the sales team follows: the first
       7-60 days after joining, then every 120-180 days while alive. The dimension is
       drawn from the customer's concern weights; "pain" is more likely when that
       dimension already has an open pain; solution_fit is a discretised normal around
       the latent fit (lower for pains). Orientation and style are fixed per customer.
    3. campaign contacts from a plan fixed in advance: a random share of the customers
       who joined before each campaign starts, 20 % of them held out as control. A
       customer alive at contact intends to respond with the probability of their
       group; the response comes a few days later (geometric lag, same campaign window)
       if they are still alive, as a real order whose total is the contact's revenue.
    4. an organic order with probability ``1 - exp(-rate_today)`` where
       ``rate_today = base_rate * decline(day) * (1 + amplitude * season(day)) * weekday
       * 0.7 ** open_pains`` (an unresolved pain also holds purchases back).

Campaign response types
    Each customer has a fixed type drawn from a softmax over observable attributes:
    persuadables lean price-oriented, social/amiable and young; sure things
    value-oriented, analytical and high-income; do-not-disturbs dominant and 55+; the
    rest lost causes. Per-type response probabilities (with per-customer noise) for
    treatment and control define the true uplift; do-not-disturbs respond less when
    treated and their hazard rises after a treatment contact.

Order lines and returns
    An order has ``1 + Poisson(basket)`` lines; each line draws a category from the
    customer's preferences, a quantity and a unit price (category price * spend level
    * noise). A few % of purchase lines are returned: the return is a line with negative
    amount and quantity on the customer's next organic order at least 3 and at most
    60 days later (no such order, no return), and never takes an order's net amount to
    zero or below, so every order stays a purchase.

Ground truth (`truth`, one row per customer)
    The state of every customer is recorded at the start of the `truth_as_of` day.
    ``true_churn_prob`` is the exact probability of no order in
    ``[truth_as_of, truth_as_of + horizon)``: on the no-purchase path every hazard term is
    known in advance (days since last order grow by one a day), so a forward recursion
    over the horizon days gives it, mixing the at most one evaluation that can fall in
    the horizon (its effect on the open-pain count: -1, 0, +1) and the response intent of
    a planned contact. It is 1.0 for customers dead before `truth_as_of` and 0.0 for
    customers who join inside the horizon (their first order is certain);
    ``alive_at_truth`` is True only for customers who joined before `truth_as_of` and
    had not churned. ``churn_driver`` is the largest named hazard term at
    `truth_as_of` ("none" when no term exceeds the base hazard); for customers who churned
    earlier it is the largest term on the day they churned. The horizon's data are
    simulated by the same loop, so the empirical churn label agrees with the truth on
    average.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

import numpy as np
import pandas as pd

from features import schema

CATEGORIES = (
    "grocery", "beauty", "electronics", "home", "fashion", "sports",
    "toys", "books", "health", "garden", "pets", "baby",
)  # fmt: skip
CHANNELS = ("web", "store", "app")
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
INCOME_BANDS = ("low", "middle", "high")
REGIONS = ("north", "south", "east", "west", "central")
UPLIFT_TYPES = ("persuadable", "sure_thing", "lost_cause", "do_not_disturb")
CHURN_DRIVERS = ("unresolved_pain", "poor_fit", "falling_frequency", "long_gap", "none")
PAIN_FIT_MAX = 2  # a pain recorded with solution_fit at or below this stays open
TRUTH_COLUMNS = (
    "customer_id", "truth_as_of", "alive_at_truth", "true_churn_prob", "churn_driver",
    "uplift_type", "p_response_treated", "p_response_control", "true_uplift", "churned_at",
)  # fmt: skip

# Categories: popularity, median unit price, mean extra units, return probability.
_CAT_POPULARITY = np.array([3.0, 1.2, 0.6, 1.0, 1.3, 0.8, 0.7, 0.8, 1.0, 0.6, 0.8, 0.6])
_CAT_PRICE = np.array([4.5, 16.0, 95.0, 28.0, 38.0, 32.0, 20.0, 13.0, 11.0, 22.0, 14.0, 18.0])
_CAT_EXTRA_UNITS = np.array([1.2, 0.3, 0.05, 0.3, 0.2, 0.15, 0.3, 0.1, 0.4, 0.3, 0.5, 0.4])
_CAT_RETURN = np.array([0.004, 0.03, 0.06, 0.04, 0.09, 0.05, 0.04, 0.02, 0.02, 0.03, 0.02, 0.04])

# Daily hazard terms (per day). The base alone loses ~12 % of customers a year.
_H_BASE = 0.00035
_H_FIT = 0.0025  # at latent fit 1; zero from fit 3 up
_H_PAIN = 0.0025  # per open pain
_MAX_PAINS = 3
_PAIN_RATE_FACTOR = 0.7  # purchase rate multiplier per open pain
_H_FALL = 0.0045  # times the share of the purchase rate that has been lost
_H_GAP = 0.0009  # per usual gap beyond _GAP_FREE, up to _GAP_CAP of them
_GAP_FREE = 2.0
_GAP_CAP = 3.0
_H_DND = 0.004  # right after a treatment contact of a do-not-disturb customer
_DND_DAYS = 45.0  # e-folding time of that extra hazard

_MEAN_RATE = 0.04  # mean base orders per day
_DECLINER_SHARE = 0.3
_EVALUATED_SHARE = 0.6
_EVAL_GAP_DAYS = (120, 180)
_CONTACT_SHARE = 0.4  # of the customers who joined before a campaign
_CONTROL_SHARE = 0.2
_CAMPAIGN_DAYS = 21
_CONTACT_SPREAD_DAYS = 7  # contacts go out in the first week
_RESPONSE_LAG_DECAY = 0.7  # P(lag = l) proportional to decay**l, l <= _MAX_RESPONSE_LAG
_MAX_RESPONSE_LAG = 13
_HORIZON_CAMPAIGN_OFFSET = 14  # days after truth_as_of
_PRE_TRUTH_KINDS = ("email", "discount", "email", "discount", "email", "discount")
_HORIZON_KIND = "email"

# Response probabilities per uplift type: (treated, control).
_TYPE_SHARPNESS = 2.5
_RESPONSE_P = np.array([[0.26, 0.04], [0.34, 0.30], [0.03, 0.02], [0.03, 0.14]])

_US_PER_DAY = 86_400_000_000
_US_PER_HOUR = 3_600_000_000
_NEVER = np.iinfo(np.int64).max // 4


DRIFT_KINDS = ("price-rise", "category-mix", "zero-feed")
# The parameters each kind takes (besides `start`), as written on the command line.
DRIFT_PARAMS: dict[str, tuple[str, ...]] = {
    "price-rise": ("rise", "factor"),
    "category-mix": ("share", "into"),
    "zero-feed": ("column",),
}
PRICE_RISE_SEGMENT = "price-oriented customers (needs-evaluation orientation 'price', a latent trait of every customer)"
# Columns a zero-feed drift can zero, with the features that read them. Only columns whose
# zero (or blank) still passes the input contract: a zeroed needs-evaluation urgency,
# importance or solution fit (1-5 in the contract) would be rejected at import, never
# reaching the features.
ZERO_FEED_COLUMNS: dict[str, tuple[str, ...]] = {
    "customers.income_band": ("attr_income_band",),
    "customers.age_band": ("attr_age_band",),
    "customers.region": ("attr_region",),
    "transactions.category": ("width_categories",),
    "transactions.quantity": (),  # no feature reads it: only an input check can see this one
    "needs_evaluations.complaint": ("needs_complaints_365d", "needs_complaints_total"),
    # a revenue feed that delivers 0: the lines stay, but no order counts as a purchase
    "transactions.amount": ("recency_days", "frequency_30d", "frequency_90d", "spend_30d", "spend_90d",
                            "monetary_avg_30d", "monetary_avg_90d", "frequency_trend", "spend_trend",
                            "overdue_ratio", "tenure_days"),
}
# The date that makes a row "from the start on", per table.
_ROW_DATE = {"customers": "first_seen", "transactions": "ts", "needs_evaluations": "evaluated_at"}
_DRIFT_SEED = 0xD1F7  # drift randomness: default_rng([seed, _DRIFT_SEED]), apart from the world's


class DriftError(ValueError):
    """A drift the sample world cannot apply; the message says what to change."""


@dataclass(frozen=True)
class Drift:
    """A known shift injected into the sample world from `start` on (rows before it are untouched).

    Kinds and their parameters:
        price-rise: the price-oriented customers pay `1 + rise` times as much per line and
            buy `factor` times as often (their usual gap between orders grows to match).
        category-mix: a `share` of order lines moves into the `into` categories (default the
            rare, big-ticket electronics, so the average order's value moves; width, a
            lifetime count of categories, barely moves: PSI 0.006 at the default).
        zero-feed: an upstream feed zeroes `column` (``table.column``; text becomes blank)
            on every row dated at or after `start` (customers: by `first_seen`).
    """

    kind: str
    start: date
    rise: float = 0.25
    factor: float = 0.5
    share: float = 0.8
    into: tuple[str, ...] = ("electronics",)
    column: str = "customers.income_band"

    def __post_init__(self) -> None:
        if self.kind not in DRIFT_KINDS:
            raise DriftError(f"unknown drift kind {self.kind!r}; use one of {', '.join(DRIFT_KINDS)}")
        if not 0.0 <= self.rise <= 10.0:
            raise DriftError(f"price-rise rise={self.rise}: use a share between 0 and 10 (0.25 = prices up 25 %)")
        if not 0.0 <= self.factor <= 1.0:
            raise DriftError(f"price-rise factor={self.factor}: use a purchase-rate multiplier between 0 and 1")
        if not 0.0 < self.share <= 1.0:
            raise DriftError(f"category-mix share={self.share}: use a share of lines above 0 and at most 1")
        unknown = [c for c in self.into if c not in CATEGORIES]
        if not self.into or unknown:
            raise DriftError(
                f"category-mix into={'+'.join(self.into)}: name categories joined by '+' from "
                f"{', '.join(CATEGORIES)}"
            )
        if self.column not in ZERO_FEED_COLUMNS:
            raise DriftError(
                f"zero-feed column={self.column}: use one of {', '.join(ZERO_FEED_COLUMNS)} (needs-evaluation "
                "scores are 1-5 in the input contract, so a zeroed one would be rejected at import)"
            )

    @property
    def parameters(self) -> str:
        """This kind's parameters as `key=value,...` (the command-line form)."""
        values = {"rise": self.rise, "factor": self.factor, "share": self.share,
                  "into": "+".join(self.into), "column": self.column}
        return ",".join(f"{key}={values[key]}" for key in DRIFT_PARAMS[self.kind])

    @property
    def segment(self) -> str:
        """Who or what the drift touches, in words."""
        if self.kind == "price-rise":
            return PRICE_RISE_SEGMENT
        if self.kind == "category-mix":
            return f"order lines of every customer ({self.share:.0%} moved into {', '.join(self.into)})"
        table, column = self.column.split(".")
        return f"{table} rows dated from the start on ({_ROW_DATE[table]}); {column} zeroed"

    @property
    def expected_features(self) -> tuple[str, ...]:
        """The feature columns this drift moves clearly (PSI >= 0.4 in the documented check)."""
        if self.kind == "price-rise":
            return PRICE_RISE_FEATURES
        if self.kind == "category-mix":
            if self.into == ("electronics",) and self.share >= 0.8:
                return CATEGORY_MIX_FEATURES
            return ()  # other mixes: measure them
        return ZERO_FEED_COLUMNS[self.column]


# What each drift moves (features.snapshots columns). Measured on 3,000 customers, seed 0,
# drift from 2025-04-01, features as of 2025-06-29 against 2025-04-01 (tests/test_synth_drift.py).
# The price rise touches about half of the customers and, in three months, only those who
# still buy: its PSI over the whole population stays near 0.1 at any magnitude (0.17 at
# rise=3, factor=0.1), so these are the features it moves, not ones that cross 0.4.
PRICE_RISE_FEATURES = (
    "frequency_30d", "frequency_90d", "monetary_avg_30d", "monetary_avg_90d", "frequency_trend", "recency_days",
)  # fmt: skip
# PSI >= 0.4 at the default (electronics, 0.8); spend_30d and spend_90d follow at about 0.3.
CATEGORY_MIX_FEATURES = ("monetary_avg_90d", "monetary_avg_30d", "spend_trend")


def parse_drift(text: str, default_start: date) -> Drift:
    """A drift from its command-line form `KIND[:key=value,...]`.

    Args:
        text: e.g. ``price-rise``, ``price-rise:rise=0.4,factor=0.6``,
            ``category-mix:into=garden+baby,start=2025-05-01``, ``zero-feed:column=customers.region``.
        default_start: the start when the text has no ``start=YYYY-MM-DD``.

    Raises:
        DriftError: unknown kind, key or value; the message says what to write.
    """
    kind, _, rest = text.strip().partition(":")
    kind = kind.strip()
    if kind not in DRIFT_KINDS:
        raise DriftError(f"unknown drift kind {kind!r} in {text!r}; use one of {', '.join(DRIFT_KINDS)}")
    allowed = (*DRIFT_PARAMS[kind], "start")
    values: dict[str, object] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = (x.strip() for x in item.partition("="))
        if not sep or key not in allowed or not value:
            raise DriftError(f"{kind} takes {', '.join(k + '=...' for k in allowed)}; got {item!r} in {text!r}")
        try:
            if key == "start":
                values[key] = date.fromisoformat(value)
            elif key == "into":
                values[key] = tuple(v.strip() for v in value.split("+"))
            elif key == "column":
                values[key] = value
            else:
                values[key] = float(value)
        except ValueError:
            what = "a date like 2025-04-01" if key == "start" else "a number"
            raise DriftError(f"{kind} {key}={value!r}: use {what}") from None
    start = values.pop("start", default_start)
    return Drift(kind, start, **values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class SynthConfig:
    """Size, seed, calendar and injected drift of a sample world."""

    customers: int = 50_000
    seed: int = 0
    start: date = date(2023, 1, 1)  # first day of history
    truth_as_of: date = date(2025, 4, 1)  # reference cutoff for the stored ground truth
    horizon_days: int = 90  # truth is about [truth_as_of, truth_as_of + horizon)
    drift: tuple[Drift, ...] = ()  # none: the world of this seed, bit for bit

    @property
    def end(self) -> date:
        """The first day after the data (exclusive end)."""
        return self.truth_as_of + timedelta(days=self.horizon_days)


@dataclass(frozen=True)
class SampleWorld:
    """The canonical tables of a synthetic world and its per-customer ground truth."""

    transactions: pd.DataFrame
    customers: pd.DataFrame
    needs_evaluations: pd.DataFrame
    campaigns: pd.DataFrame
    contacts: pd.DataFrame
    truth: pd.DataFrame
    drift: tuple[Drift, ...] = ()

    def drift_frame(self) -> pd.DataFrame:
        """The injected drift, one row per drift: the `synth_drift` table (empty without drift)."""
        return pd.DataFrame(
            {
                "kind": pd.array([d.kind for d in self.drift], dtype="str"),
                "start": pd.array([pd.Timestamp(d.start) for d in self.drift], dtype="datetime64[us]"),
                "segment": pd.array([d.segment for d in self.drift], dtype="str"),
                "parameters": pd.array([d.parameters for d in self.drift], dtype="str"),
                "expected_features": pd.array([",".join(d.expected_features) for d in self.drift], dtype="str"),
            }
        )

    def tables(self) -> dict[str, pd.DataFrame]:
        """The five canonical tables by name (the truth is not one of them)."""
        return {
            "transactions": self.transactions,
            "customers": self.customers,
            "needs_evaluations": self.needs_evaluations,
            "campaigns": self.campaigns,
            "contacts": self.contacts,
        }


@dataclass(frozen=True)
class _Calendar:
    """Day indices of the world and the per-day purchase multipliers."""

    start: np.datetime64  # day 0
    n_days: int
    truth_day: int
    horizon_days: int
    season: np.ndarray  # shape added to 1 (times a customer's amplitude)
    weekday: np.ndarray  # multiplier, mean 1


@dataclass(frozen=True)
class _Latent:
    """Fixed latent traits per customer (index = customer number - 1)."""

    join_day: np.ndarray
    rate: np.ndarray
    amplitude: np.ndarray
    decline_start: np.ndarray
    decline: np.ndarray
    spend: np.ndarray
    basket: np.ndarray
    category_cum: np.ndarray  # (n, categories) cumulative preference
    channel_cum: np.ndarray  # (n, channels)
    fit_term: np.ndarray  # poor-fit hazard
    fit_probs: np.ndarray  # (n, 2, 5): P(solution_fit = 1..5 | pain 0/1)
    pain_prone: np.ndarray
    dim_weights: np.ndarray  # (n, 4)
    first_eval: np.ndarray  # day, _NEVER when not followed by the sales team
    age: np.ndarray
    income: np.ndarray
    region: np.ndarray
    orientation: np.ndarray
    style: np.ndarray
    uplift_type: np.ndarray
    p_treated: np.ndarray
    p_control: np.ndarray
    # A price-rise drift: from `shift_day` on, the base rate is multiplied by `shift`.
    shift_day: int = _NEVER
    shift: np.ndarray | None = None


@dataclass(frozen=True)
class _Plan:
    """Campaigns and their contact plan (rows sorted by contact day)."""

    campaign_start: np.ndarray  # day
    campaign_kind: tuple[str, ...]
    campaign: np.ndarray  # per contact row
    customer: np.ndarray
    day: np.ndarray
    treated: np.ndarray


@dataclass(frozen=True)
class _History:
    """What the daily loop produced."""

    order_customer: np.ndarray
    order_day: np.ndarray
    order_contact: np.ndarray  # contact row of a response order, -1 for organic
    death_day: np.ndarray  # -1 while alive
    death_driver: np.ndarray  # index into CHURN_DRIVERS
    eval_customer: np.ndarray
    eval_day: np.ndarray
    eval_dimension: np.ndarray
    eval_pain: np.ndarray
    eval_fit: np.ndarray
    responded: np.ndarray  # per contact row
    response_lag: np.ndarray  # per contact row, days after contact
    # State at the start of the truth day.
    alive_t: np.ndarray
    last_order_t: np.ndarray
    pain_count_t: np.ndarray
    open_pain_t: np.ndarray
    next_eval_t: np.ndarray
    dnd_day_t: np.ndarray


def generate(config: SynthConfig, progress: Callable[[str], None] | None = None) -> SampleWorld:
    """Build the sample world described in the module docstring.

    Args:
        config: size, seed and calendar.
        progress: called with a short stage name as each stage starts.

    Returns:
        The five canonical tables and the per-customer ground truth.

    Raises:
        ValueError: when the config cannot hold the world (too few customers, too short
            a history, a horizon outside 45-120 days).
    """
    _validate(config)
    report = progress or (lambda _message: None)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(6)]
    rng_customers, rng_plan, rng_sim, rng_lines, rng_evals, rng_times = streams

    calendar = _calendar(config)
    report("customers")
    latent = _draw_customers(rng_customers, config.customers, calendar)
    report("campaign plan")
    plan = _plan_campaigns(rng_plan, latent, calendar)
    if config.drift:
        return _drifted(config, report, streams, calendar, latent, plan)
    report("daily simulation")
    history = _simulate(rng_sim, latent, plan, calendar)
    report("order lines")
    orders, transactions = _order_lines(rng_lines, latent, history, calendar)
    report("truth")
    truth = _truth(latent, plan, history, calendar)
    report("tables")
    ids = _customer_ids(config.customers)
    truth_frame = _truth_frame(ids, truth, history, latent, calendar)
    world = SampleWorld(
        transactions=_transactions_frame(ids, transactions, orders),
        customers=_customers_frame(ids, latent, orders),
        needs_evaluations=_evaluations_frame(rng_evals, ids, latent, history, calendar),
        campaigns=_campaigns_frame(plan, calendar),
        contacts=_contacts_frame(rng_times, ids, plan, history, orders, calendar),
        truth=truth_frame,
    )
    return world


def _drifted(
    config: SynthConfig,
    report: Callable[[str], None],
    streams: list[np.random.Generator],
    cal: _Calendar,
    lat: _Latent,
    plan: _Plan,
) -> SampleWorld:
    """The world with its drift: the drift-free world's rows before the drift, redrawn rows after.

    Everything dated before the earliest drift is the drift-free world's, bit for bit:
    the daily loop is the same until a price rise starts, and rows from the splice day on
    are drawn again from a generator of their own (so the world's streams draw exactly
    what they draw without drift). The truth is the drifted world's.
    """
    rng_sim, rng_lines, rng_evals, rng_times = streams[2], streams[3], streams[4], streams[5]
    drift_rng = np.random.default_rng([config.seed, _DRIFT_SEED])
    day_of = {d: (d.start - config.start).days for d in config.drift}
    rise = next((d for d in config.drift if d.kind == "price-rise"), None)
    mix = next((d for d in config.drift if d.kind == "category-mix"), None)
    shifted = lat
    segment = lat.orientation == schema.ORIENTATIONS.index("price")
    report("daily simulation")
    history = _simulate(copy.deepcopy(rng_sim) if rise else rng_sim, lat, plan, cal)
    base = history
    if rise is not None:
        shifted = replace(lat, shift_day=day_of[rise], shift=np.where(segment, rise.factor, 1.0))
        report("daily simulation with the price rise")
        history = _simulate(rng_sim, shifted, plan, cal)

    report("order lines")
    base_drawn = _draw_orders(rng_lines, lat, base, cal)
    moving = [day_of[d] for d in (rise, mix) if d is not None]
    if moving:
        splice = min(moving)
        effects = _LineEffects(
            price_day=day_of[rise] if rise else _NEVER,
            price_factor=np.where(segment, 1.0 + rise.rise, 1.0) if rise else None,
            mix_day=day_of[mix] if mix else _NEVER,
            mix_share=mix.share if mix else 0.0,
            mix_into=np.array([CATEGORIES.index(c) for c in mix.into]) if mix else np.zeros(0, np.int64),
        )
        after = _history_from(history, splice)
        drawn = _join_drawn(_drawn_before(base_drawn, splice), _draw_orders(drift_rng, lat, after, cal, effects))
    else:
        drawn = base_drawn
    orders, transactions = _attach_returns(drawn, cal)
    report("truth")
    truth = _truth(shifted, plan, history, cal)
    report("tables")
    ids = _customer_ids(config.customers)
    evaluations = _evaluations_frame(rng_evals, ids, lat, base, cal)
    if history is not base:  # evaluations after the price rise follow the drifted loop
        cut = cal.start + day_of[rise]
        later = _evaluations_frame(drift_rng, ids, lat, _history_from(history, day_of[rise]), cal)
        evaluations = pd.concat(
            [evaluations[evaluations.evaluated_at < cut], later], ignore_index=True
        )
    world = SampleWorld(
        transactions=_transactions_frame(ids, transactions, orders),
        customers=_customers_frame(ids, lat, orders),
        needs_evaluations=evaluations,
        campaigns=_campaigns_frame(plan, cal),
        contacts=_contacts_frame(rng_times, ids, plan, history, orders, cal),
        truth=_truth_frame(ids, truth, history, lat, cal),
        drift=config.drift,
    )
    for d in config.drift:
        if d.kind == "zero-feed":
            world = _zero_feed(world, d)
    return world


def _history_from(hist: _History, day: int) -> _History:
    """The orders and evaluations of `hist` on `day` or later (the rest unchanged)."""
    orders = hist.order_day >= day
    evals = hist.eval_day >= day
    return replace(
        hist,
        order_customer=hist.order_customer[orders],
        order_day=hist.order_day[orders],
        order_contact=hist.order_contact[orders],
        eval_customer=hist.eval_customer[evals],
        eval_day=hist.eval_day[evals],
        eval_dimension=hist.eval_dimension[evals],
        eval_pain=hist.eval_pain[evals],
        eval_fit=hist.eval_fit[evals],
    )


def _zero_feed(world: SampleWorld, drift: Drift) -> SampleWorld:
    """`drift.column` zeroed (text: blank) on the rows of its table dated from `drift.start` on."""
    table, column = drift.column.split(".")
    frame = world.tables()[table].copy()
    rows = frame[_ROW_DATE[table]] >= pd.Timestamp(drift.start)
    if frame[column].dtype == bool:
        frame.loc[rows, column] = False
    elif pd.api.types.is_numeric_dtype(frame[column]):
        frame.loc[rows, column] = 0
    else:
        frame[column] = frame[column].mask(rows)
    if table == "transactions":
        frame = _merge_identical_lines(frame)
    return replace(world, **{table: frame})


def _validate(config: SynthConfig) -> None:
    """Refuse configs the model cannot fill, with a message that says what to change."""
    if config.customers < 10:
        raise ValueError(f"customers must be at least 10, got {config.customers}")
    history = (config.truth_as_of - config.start).days
    if history < 240:
        raise ValueError(
            f"truth_as_of must be at least 240 days after start (got {history} days): "
            "the campaign history needs room"
        )
    if not 45 <= config.horizon_days <= 120:
        raise ValueError(
            f"horizon_days must be between 45 and 120, got {config.horizon_days}: a horizon "
            "holds one campaign and at most one needs evaluation per customer"
        )
    kinds = [d.kind for d in config.drift if d.kind != "zero-feed"]
    columns = [d.column for d in config.drift if d.kind == "zero-feed"]
    if len(set(kinds)) < len(kinds) or len(set(columns)) < len(columns):
        raise DriftError("give each drift kind once (zero-feed once per column)")
    for d in config.drift:
        if not config.start < d.start < config.end:
            raise DriftError(
                f"{d.kind} starts {d.start}, outside the world's data ({config.start} .. "
                f"{config.end - timedelta(days=1)}); start it inside, e.g. start={config.end - timedelta(days=90)}"
            )


def _calendar(config: SynthConfig) -> _Calendar:
    """Day grid, seasonal shape (December peak, summer bump) and weekday pattern."""
    start = np.datetime64(config.start, "D")
    n_days = (config.end - config.start).days
    days = start + np.arange(n_days)
    day_of_year = (days - days.astype("datetime64[Y]")).astype(np.int64)
    distance_dec = np.minimum(np.abs(day_of_year - 350), 365 - np.abs(day_of_year - 350))
    shape = np.exp(-0.5 * (distance_dec / 14.0) ** 2) + 0.3 * np.exp(
        -0.5 * ((day_of_year - 200) / 20.0) ** 2
    )
    # Centred on its yearly mean so the amplitude moves orders in time, not in total.
    shape = shape - shape[: min(n_days, 365)].mean()
    weekday = (days.astype(np.int64) + 3) % 7  # 0 = Monday
    multiplier = np.where(weekday >= 5, 1.2, 0.92)
    return _Calendar(
        start=start,
        n_days=n_days,
        truth_day=(config.truth_as_of - config.start).days,
        horizon_days=config.horizon_days,
        season=shape,
        weekday=multiplier / multiplier[: min(n_days, 7)].mean(),
    )


def _draw_customers(rng: np.random.Generator, n: int, cal: _Calendar) -> _Latent:
    """Draw every customer's fixed latent traits."""
    existing = rng.random(n) < 0.35
    join = np.where(
        existing, rng.integers(0, 45, n), rng.integers(0, cal.n_days - 1, n)
    ).astype(np.int64)
    join.sort()  # customer numbers follow the order of joining

    age = _categorical(rng, np.array([0.12, 0.2, 0.2, 0.18, 0.15, 0.15]), n)
    income = _categorical(rng, np.array([0.35, 0.45, 0.2]), n)
    region = _categorical(rng, np.array([0.24, 0.22, 0.18, 0.2, 0.16]), n)
    orientation = (rng.random(n) < np.array([0.35, 0.55, 0.75])[income]).astype(np.int64)
    style = _categorical(rng, np.array([0.22, 0.26, 0.28, 0.24]), n)

    rate = np.minimum(rng.gamma(1.3, _MEAN_RATE / 1.3, n), 0.5)
    amplitude = rng.uniform(0.2, 1.4, n)
    decliner = rng.random(n) < _DECLINER_SHARE
    decline_start = np.where(decliner, join + rng.integers(30, 400, n), _NEVER)
    decline = np.where(decliner, 1.0 / rng.uniform(120, 500, n), 0.0)
    spend = np.exp(rng.normal(np.array([-0.25, 0.0, 0.35])[income], 0.4))
    basket = rng.gamma(2.0, 1.0, n)

    concentration = np.exp(rng.normal(0.4, 0.9, n))
    prefs = rng.gamma(concentration[:, None] * _CAT_POPULARITY[None, :] / _CAT_POPULARITY.mean())
    prefs += 1e-9
    category_cum = np.cumsum(prefs / prefs.sum(1, keepdims=True), axis=1)
    young = (age <= 1).astype(float)[:, None]
    old = (age >= 4).astype(float)[:, None]
    channel_base = np.array([0.45, 0.4, 0.15]) + young * np.array([-0.05, -0.2, 0.25])
    channel_base = channel_base + old * np.array([-0.1, 0.2, -0.1])
    channels = rng.gamma(4.0 * channel_base)
    channels += 1e-9
    channel_cum = np.cumsum(channels / channels.sum(1, keepdims=True), axis=1)

    fit = np.clip(rng.normal(3.4, 0.9, n), 1.0, 5.0)
    fit_term = _H_FIT * np.clip((3.0 - fit) / 2.0, 0.0, 1.0)
    levels = np.arange(1, 6, dtype=float)
    centre = fit[:, None, None] - 0.8 * np.array([0.0, 1.0])[None, :, None]
    fit_probs = np.exp(-0.5 * ((levels[None, None, :] - centre) / 0.85) ** 2)
    fit_probs /= fit_probs.sum(2, keepdims=True)
    pain_prone = rng.beta(2.0, 6.0, n)
    dim_weights = rng.gamma(np.full((n, 4), 1.5))
    dim_weights[:, 1] *= np.where(orientation == 0, 2.0, 0.7)  # price-oriented: price concerns
    dim_weights /= dim_weights.sum(1, keepdims=True)
    evaluated = rng.random(n) < _EVALUATED_SHARE
    first_eval = np.where(evaluated, join + rng.integers(7, 61, n), _NEVER)

    # Uplift type from observable attributes (softmax over type scores).
    price, value = orientation == 0, orientation == 1
    scores = np.zeros((n, 4))
    scores[:, 0] = 0.9 * price + 0.6 * np.isin(style, (2, 3)) + 0.6 * (age <= 1) - 0.2
    scores[:, 1] = 0.9 * value + 0.7 * (style == 1) + 0.6 * (income == 2) - 0.5
    scores[:, 2] = 0.3 + 0.4 * (income == 0)
    scores[:, 3] = 1.3 * (style == 0) + 0.9 * (age >= 4) - 0.6
    # Sharpened so that the attributes a business records say a lot about the type
    # (an uplift or response model has something real to learn), without deciding it.
    probs = np.exp(_TYPE_SHARPNESS * scores)
    probs /= probs.sum(1, keepdims=True)
    uplift_type = (rng.random(n)[:, None] > np.cumsum(probs, axis=1)).sum(1)
    uplift_type = np.minimum(uplift_type, 3)
    noise = np.exp(rng.normal(0.0, 0.25, (n, 2)))
    p_treated = np.clip(_RESPONSE_P[uplift_type, 0] * noise[:, 0], 0.0, 0.95)
    p_control = np.clip(_RESPONSE_P[uplift_type, 1] * noise[:, 1], 0.0, 0.95)

    return _Latent(
        join_day=join,
        rate=rate,
        amplitude=amplitude,
        decline_start=decline_start,
        decline=decline,
        spend=spend,
        basket=basket,
        category_cum=category_cum,
        channel_cum=channel_cum,
        fit_term=fit_term,
        fit_probs=fit_probs,
        pain_prone=pain_prone,
        dim_weights=dim_weights,
        first_eval=first_eval,
        age=age,
        income=income,
        region=region,
        orientation=orientation,
        style=style,
        uplift_type=uplift_type,
        p_treated=p_treated,
        p_control=p_control,
    )


def _categorical(rng: np.random.Generator, probs: np.ndarray, n: int) -> np.ndarray:
    """Draw n indices from one probability vector."""
    drawn = np.searchsorted(np.cumsum(probs), rng.random(n), side="right")
    return np.minimum(drawn, len(probs) - 1)


def _pick(cum: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Index drawn per row of cumulative probabilities `cum` with uniforms `u`."""
    return np.minimum((u[:, None] > cum).sum(1), cum.shape[1] - 1)


def _plan_campaigns(rng: np.random.Generator, lat: _Latent, cal: _Calendar) -> _Plan:
    """Fix the campaigns and who each contacts (and holds out) before anything happens."""
    last_start = cal.truth_day - _CAMPAIGN_DAYS - 14
    starts = list(np.linspace(60, last_start, len(_PRE_TRUTH_KINDS)).round().astype(np.int64))
    starts.append(cal.truth_day + _HORIZON_CAMPAIGN_OFFSET)
    kinds = (*_PRE_TRUTH_KINDS, _HORIZON_KIND)
    campaign, customer, day, treated = [], [], [], []
    for k, first_day in enumerate(starts):
        eligible = np.flatnonzero(lat.join_day < first_day)
        chosen = eligible[rng.random(len(eligible)) < _CONTACT_SHARE]
        campaign.append(np.full(len(chosen), k))
        customer.append(chosen)
        day.append(first_day + rng.integers(0, _CONTACT_SPREAD_DAYS, len(chosen)))
        treated.append(rng.random(len(chosen)) >= _CONTROL_SHARE)
    day_all = np.concatenate(day)
    order = np.lexsort((np.concatenate(customer), day_all))
    return _Plan(
        campaign_start=np.array(starts, dtype=np.int64),
        campaign_kind=kinds,
        campaign=np.concatenate(campaign)[order],
        customer=np.concatenate(customer)[order],
        day=day_all[order],
        treated=np.concatenate(treated)[order],
    )


def _response_lag_probs() -> np.ndarray:
    """P(response lag = l days), l = 0 .. _MAX_RESPONSE_LAG."""
    p = _RESPONSE_LAG_DECAY ** np.arange(_MAX_RESPONSE_LAG + 1)
    return p / p.sum()


def _trend(lat: _Latent, idx: np.ndarray | slice, day: int) -> np.ndarray:
    """Share of the base purchase rate left on `day` (1 until a decline starts)."""
    elapsed = np.maximum(day - lat.decline_start[idx], 0)
    return np.exp(-lat.decline[idx] * elapsed)


def _base_rate(lat: _Latent, idx: np.ndarray | slice, day: int) -> np.ndarray:
    """Base purchase rate on `day`: the latent rate, times a price-rise's factor from its start."""
    if lat.shift is None or day < lat.shift_day:
        return lat.rate[idx]
    return lat.rate[idx] * lat.shift[idx]


def _rate(
    lat: _Latent, idx: np.ndarray | slice, day: int, cal: _Calendar, pain_count: np.ndarray
) -> np.ndarray:
    """Expected organic orders on `day` (open pains also hold purchases back)."""
    season = 1.0 + lat.amplitude[idx] * cal.season[day]
    pains = _PAIN_RATE_FACTOR ** np.minimum(pain_count, _MAX_PAINS)
    return _base_rate(lat, idx, day) * _trend(lat, idx, day) * season * cal.weekday[day] * pains


def _hazard_terms(
    lat: _Latent, idx: np.ndarray | slice, day: int, pain_count: np.ndarray, since_order: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Named daily hazard terms (pain, fit, falling frequency, long gap) on `day`."""
    pain = _H_PAIN * np.minimum(pain_count, _MAX_PAINS)
    fall = _H_FALL * (1.0 - _trend(lat, idx, day))
    # days since last order in usual gaps (a price rise lengthens the usual gap with the rate)
    overdue = since_order * _base_rate(lat, idx, day)
    gap = _H_GAP * np.clip(overdue - _GAP_FREE, 0.0, _GAP_CAP)
    return pain, lat.fit_term[idx], fall, gap


def _dnd_hazard(day: int, dnd_day: np.ndarray) -> np.ndarray:
    """Extra hazard after a do-not-disturb customer's treatment contact."""
    age = (day - dnd_day).astype(float)
    return np.where(age >= 1, _H_DND * np.exp(-np.maximum(age - 1, 0) / _DND_DAYS), 0.0)


def _driver(terms: tuple[np.ndarray, ...]) -> np.ndarray:
    """Index of the largest named hazard term, or of "none" when none exceeds the base."""
    stacked = np.stack(np.broadcast_arrays(*terms), axis=1)
    top = stacked.argmax(1)
    return np.where(stacked.max(1) > _H_BASE, top, len(CHURN_DRIVERS) - 1)


def _opens_after_eval(lat: _Latent, idx: np.ndarray, open_pain: np.ndarray) -> np.ndarray:
    """P(the evaluated dimension is open afterwards | dimension), shape (len(idx), 4)."""
    p_pain = np.minimum(lat.pain_prone[idx, None] + 0.35 * open_pain, 0.95)
    low_fit = lat.fit_probs[idx, 1, :PAIN_FIT_MAX].sum(1)
    return p_pain * low_fit[:, None]


def _simulate(rng: np.random.Generator, lat: _Latent, plan: _Plan, cal: _Calendar) -> _History:
    """Run the daily loop (deaths, evaluations, contacts, orders) for all customers."""
    n = len(lat.join_day)
    alive = np.zeros(n, dtype=bool)
    last_order = np.full(n, -1, dtype=np.int64)
    death_day = np.full(n, -1, dtype=np.int64)
    death_driver = np.full(n, len(CHURN_DRIVERS) - 1, dtype=np.int64)
    open_pain = np.zeros((n, 4), dtype=bool)
    pain_count = np.zeros(n, dtype=np.int64)
    next_eval = lat.first_eval.copy()
    response_day = np.full(n, -1, dtype=np.int64)
    response_row = np.full(n, -1, dtype=np.int64)
    dnd_day = np.full(n, -_NEVER, dtype=np.int64)
    responded = np.zeros(len(plan.day), dtype=bool)
    response_lag = np.full(len(plan.day), -1, dtype=np.int64)
    lag_cum = np.cumsum(_response_lag_probs())
    is_dnd = lat.uplift_type == UPLIFT_TYPES.index("do_not_disturb")
    p_contact = np.where(plan.treated, lat.p_treated[plan.customer], lat.p_control[plan.customer])

    join_bounds = np.searchsorted(lat.join_day, np.arange(cal.n_days + 1))
    contact_bounds = np.searchsorted(plan.day, np.arange(cal.n_days + 1))
    orders_c, orders_d, orders_r = [], [], []
    evals: list[tuple[np.ndarray, ...]] = []
    snapshot: dict[str, np.ndarray] = {}
    everyone = slice(None)

    for d in range(cal.n_days):
        if d == cal.truth_day:
            snapshot = {
                "alive": alive.copy(),
                "last_order": last_order.copy(),
                "pain_count": pain_count.copy(),
                "open_pain": open_pain.copy(),
                "next_eval": next_eval.copy(),
                "dnd_day": dnd_day.copy(),
            }
        u_death = rng.random(n)
        u_order = rng.random(n)

        # 1. deaths among customers who joined on an earlier day
        terms = _hazard_terms(lat, everyone, d, pain_count, d - last_order)
        hazard = _H_BASE + terms[0] + terms[1] + terms[2] + terms[3] + _dnd_hazard(d, dnd_day)
        dying = np.flatnonzero(alive & (u_death < hazard))
        if len(dying):
            alive[dying] = False
            death_day[dying] = d
            death_driver[dying] = _driver(tuple(t[dying] for t in terms))
        newcomers = np.arange(join_bounds[d], join_bounds[d + 1])
        alive[newcomers] = True

        # 2. needs evaluations
        ev = np.flatnonzero(alive & (next_eval == d))
        if len(ev):
            dim = _pick(np.cumsum(lat.dim_weights[ev], axis=1), rng.random(len(ev)))
            was_open = open_pain[ev, dim]
            p_pain = np.minimum(lat.pain_prone[ev] + 0.35 * was_open, 0.95)
            pain = rng.random(len(ev)) < p_pain
            fit_cum = np.cumsum(lat.fit_probs[ev, pain.astype(np.int64)], axis=1)
            fit = 1 + _pick(fit_cum, rng.random(len(ev)))
            now_open = pain & (fit <= PAIN_FIT_MAX)
            open_pain[ev, dim] = now_open
            pain_count[ev] += now_open.astype(np.int64) - was_open.astype(np.int64)
            next_eval[ev] = d + rng.integers(_EVAL_GAP_DAYS[0], _EVAL_GAP_DAYS[1] + 1, len(ev))
            evals.append((ev, np.full(len(ev), d), dim, pain, fit))

        # 3. campaign contacts planned for today
        rows = np.arange(contact_bounds[d], contact_bounds[d + 1])
        if len(rows):
            who = plan.customer[rows]
            intends = alive[who] & (rng.random(len(rows)) < p_contact[rows])
            lag = _pick(np.broadcast_to(lag_cum, (len(rows), len(lag_cum))), rng.random(len(rows)))
            response_day[who[intends]] = d + lag[intends]
            response_row[who[intends]] = rows[intends]
            annoyed = who[plan.treated[rows] & is_dnd[who]]
            dnd_day[annoyed] = d

        # 4. orders: organic (certain on the joining day) and campaign responses
        buying = alive & (u_order < -np.expm1(-_rate(lat, everyone, d, cal, pain_count)))
        buying[newcomers] = True
        bought = np.flatnonzero(buying)
        answering = np.flatnonzero(alive & (response_day == d))
        if len(answering):
            row = response_row[answering]
            responded[row] = True
            response_lag[row] = d - plan.day[row]
            orders_c.append(answering)
            orders_d.append(np.full(len(answering), d))
            orders_r.append(row)
        response_day[response_day == d] = -1
        orders_c.append(bought)
        orders_d.append(np.full(len(bought), d))
        orders_r.append(np.full(len(bought), -1))
        last_order[bought] = d
        last_order[answering] = d

    no_evals = [np.zeros(0, np.int64)] * 5
    ev_parts = [np.concatenate(part) for part in zip(*evals)] if evals else no_evals
    return _History(
        order_customer=np.concatenate(orders_c).astype(np.int64),
        order_day=np.concatenate(orders_d).astype(np.int64),
        order_contact=np.concatenate(orders_r).astype(np.int64),
        death_day=death_day,
        death_driver=death_driver,
        eval_customer=ev_parts[0].astype(np.int64),
        eval_day=ev_parts[1].astype(np.int64),
        eval_dimension=ev_parts[2].astype(np.int64),
        eval_pain=ev_parts[3].astype(bool),
        eval_fit=ev_parts[4].astype(np.int64),
        responded=responded,
        response_lag=response_lag,
        alive_t=snapshot["alive"],
        last_order_t=snapshot["last_order"],
        pain_count_t=snapshot["pain_count"],
        open_pain_t=snapshot["open_pain"],
        next_eval_t=snapshot["next_eval"],
        dnd_day_t=snapshot["dnd_day"],
    )


@dataclass(frozen=True)
class _Truth:
    """Per-customer truth arrays."""

    alive: np.ndarray
    churn_prob: np.ndarray
    driver: np.ndarray


def _truth(lat: _Latent, plan: _Plan, hist: _History, cal: _Calendar) -> _Truth:
    """Exact P(no order in the horizon) from each customer's state at the truth day."""
    n = len(lat.join_day)
    t, h_end = cal.truth_day, cal.truth_day + cal.horizon_days
    joined = lat.join_day < t
    alive = hist.alive_t & joined
    prob = np.where(joined, 1.0, 0.0)  # not yet joined: the joining order is certain
    idx = np.flatnonzero(alive)
    m = len(idx)

    # The at most one evaluation in the horizon moves the open-pain count by -1, 0 or +1.
    eval_day = hist.next_eval_t[idx]
    evaluated = eval_day < h_end
    open_pain = hist.open_pain_t[idx]
    opens = _opens_after_eval(lat, idx, open_pain)
    weights = lat.dim_weights[idx]
    p_up = (weights * ~open_pain * opens).sum(1)
    p_down = (weights * open_pain * (1.0 - opens)).sum(1)
    branch = np.stack([p_down, 1.0 - p_down - p_up, p_up], axis=1)
    branch[~evaluated] = (0.0, 1.0, 0.0)
    delta = np.array([-1, 0, 1])

    # A planned contact in the horizon: response intent (second axis) and its timing.
    contact_day = np.full(m, _NEVER, dtype=np.int64)
    p_intent = np.zeros(m)
    annoys = np.zeros(m, dtype=bool)
    pos = np.full(n, -1, dtype=np.int64)
    pos[idx] = np.arange(m)
    rows = np.flatnonzero((plan.day >= t) & (plan.day < h_end) & (pos[plan.customer] >= 0))
    at = pos[plan.customer[rows]]
    contact_day[at] = plan.day[rows]
    treated = plan.treated[rows]
    p_intent[at] = np.where(treated, lat.p_treated[idx[at]], lat.p_control[idx[at]])
    annoys[at] = treated & (lat.uplift_type[idx[at]] == UPLIFT_TYPES.index("do_not_disturb"))
    lag_p = _response_lag_probs()
    lag_hazard = lag_p / np.cumsum(lag_p[::-1])[::-1]  # P(lag = l | lag >= l)

    mass = branch[:, :, None] * np.stack([1.0 - p_intent, p_intent], axis=1)[:, None, :]
    dead = np.zeros(m)
    pain_now = hist.pain_count_t[idx]
    pain_after = pain_now[:, None] + delta[None, :]
    for d in range(t, h_end):
        pains = np.where((d > eval_day)[:, None], pain_after, pain_now[:, None])
        terms = _hazard_terms(lat, idx, d, pains, d - hist.last_order_t[idx])
        dnd = np.where(annoys & (d > contact_day), contact_day, hist.dnd_day_t[idx])
        shared = _H_BASE + terms[1] + terms[2] + terms[3] + _dnd_hazard(d, dnd)
        hazard = terms[0] + shared[:, None]  # (customers, pain branches)
        dead += (mass.sum(2) * hazard).sum(1)
        mass *= (1.0 - hazard)[:, :, None]
        no_order = np.exp(-_rate(lat, idx, d, cal, pains.T).T)  # (customers, pain branches)
        lag = d - contact_day
        waiting = (lag >= 0) & (lag <= _MAX_RESPONSE_LAG)
        no_response = 1.0 - np.where(waiting, lag_hazard[np.clip(lag, 0, _MAX_RESPONSE_LAG)], 0.0)
        mass[:, :, 0] *= no_order
        mass[:, :, 1] *= no_order * no_response[:, None]
    prob[idx] = mass.sum((1, 2)) + dead

    driver = hist.death_driver.copy()
    terms_t = _hazard_terms(lat, idx, t, hist.pain_count_t[idx], t - hist.last_order_t[idx])
    driver[idx] = _driver(terms_t)
    driver[~joined] = len(CHURN_DRIVERS) - 1
    return _Truth(alive=alive, churn_prob=np.clip(prob, 0.0, 1.0), driver=driver)


@dataclass(frozen=True)
class _Orders:
    """Orders sorted by timestamp; position = order number."""

    customer: np.ndarray
    day: np.ndarray
    ts: np.ndarray  # microseconds since the epoch
    channel: np.ndarray
    contact: np.ndarray
    total: np.ndarray  # sum of purchase lines
    ids: np.ndarray  # object array of str


@dataclass(frozen=True)
class _LineEffects:
    """What a drift changes in the order lines, each from its own day on."""

    price_day: int = _NEVER
    price_factor: np.ndarray | None = None  # per customer, times the unit price
    mix_day: int = _NEVER
    mix_share: float = 0.0
    mix_into: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


@dataclass(frozen=True)
class _Drawn:
    """Orders sorted by timestamp and their purchase lines, before returns are attached."""

    customer: np.ndarray
    day: np.ndarray
    ts: np.ndarray
    channel: np.ndarray
    contact: np.ndarray
    line_order: np.ndarray  # position of each line's order (sorted, so lines follow orders)
    category: np.ndarray
    quantity: np.ndarray
    amount: np.ndarray
    returns: np.ndarray  # bool per line: the line will be returned if a later order takes it


def _order_lines(
    rng: np.random.Generator, lat: _Latent, hist: _History, cal: _Calendar
) -> tuple[_Orders, dict[str, np.ndarray]]:
    """Give every order a time, channel and lines; attach returns to later orders."""
    return _attach_returns(_draw_orders(rng, lat, hist, cal), cal)


def _draw_orders(
    rng: np.random.Generator,
    lat: _Latent,
    hist: _History,
    cal: _Calendar,
    effects: _LineEffects | None = None,
) -> _Drawn:
    """Time, channel and purchase lines of every order of `hist` (and which lines go back)."""
    cust, day, contact = hist.order_customer, hist.order_day, hist.order_contact
    k = len(cust)
    channel = _pick(lat.channel_cum[cust], rng.random(k))
    # Stores open 09:00-20:00; web and app orders peak in the evening.
    online = np.mod(rng.normal(np.where(channel == 2, 19.0, 17.0), 4.0, k), 24.0)
    hour = np.where(channel == 1, rng.uniform(9.0, 20.0, k), online)
    hour = np.minimum(hour, 23.999)  # float mod can return exactly 24
    # A same-day response comes after the contact (sent 08:00-10:00, see _contacts_frame).
    answers = np.flatnonzero(contact >= 0)
    same_day = np.zeros(k, dtype=bool)
    same_day[answers] = hist.response_lag[contact[answers]] == 0
    hour = np.where(same_day, rng.uniform(10.5, 23.5, k), hour)
    day_us = (cal.start.astype("datetime64[us]").astype(np.int64)) + day * _US_PER_DAY
    ts = day_us + (hour * _US_PER_HOUR).astype(np.int64) // 1_000_000 * 1_000_000
    order = np.lexsort((cust, ts))
    cust, day, contact = cust[order], day[order], contact[order]
    channel, ts = channel[order], ts[order]

    n_lines = 1 + np.minimum(rng.poisson(lat.basket[cust]), 14)
    line_order = np.repeat(np.arange(k), n_lines)
    line_cust = cust[line_order]
    n = len(line_order)
    category = _pick(lat.category_cum[line_cust], rng.random(n))
    if effects is not None and len(effects.mix_into):  # drawn apart from the world's stream
        moved = (day[line_order] >= effects.mix_day) & (rng.random(n) < effects.mix_share)
        category[moved] = effects.mix_into[rng.integers(0, len(effects.mix_into), int(moved.sum()))]
    quantity = 1 + rng.poisson(_CAT_EXTRA_UNITS[category])
    unit = _CAT_PRICE[category] * lat.spend[line_cust] * np.exp(rng.normal(0.0, 0.35, n))
    if effects is not None and effects.price_factor is not None:
        risen = day[line_order] >= effects.price_day
        unit = np.where(risen, unit * effects.price_factor[line_cust], unit)
    amount = np.maximum(np.round(unit * quantity, 2), 0.01)
    returns = rng.random(n) < _CAT_RETURN[category]
    return _Drawn(
        customer=cust, day=day, ts=ts, channel=channel, contact=contact, line_order=line_order,
        category=category, quantity=quantity, amount=amount, returns=returns,
    )  # fmt: skip


def _drawn_before(drawn: _Drawn, day: int) -> _Drawn:
    """The orders (and their lines) of `drawn` on days before `day`: a prefix, orders being sorted."""
    m = int(np.searchsorted(drawn.day, day, side="left"))
    lines = drawn.line_order < m
    return _Drawn(
        customer=drawn.customer[:m], day=drawn.day[:m], ts=drawn.ts[:m], channel=drawn.channel[:m],
        contact=drawn.contact[:m], line_order=drawn.line_order[lines], category=drawn.category[lines],
        quantity=drawn.quantity[lines], amount=drawn.amount[lines], returns=drawn.returns[lines],
    )  # fmt: skip


def _join_drawn(first: _Drawn, then: _Drawn) -> _Drawn:
    """Orders of `first` followed by those of `then` (all later)."""
    k = len(first.customer)
    return _Drawn(
        **{
            name: np.concatenate([getattr(first, name), getattr(then, name) + (k if name == "line_order" else 0)])
            for name in _Drawn.__dataclass_fields__
        }
    )


def _attach_returns(drawn: _Drawn, cal: _Calendar) -> tuple[_Orders, dict[str, np.ndarray]]:
    """Orders with ids and totals; returns attached to the customers' later orders."""
    cust, day, contact = drawn.customer, drawn.day, drawn.contact
    line_order, category, quantity, amount = drawn.line_order, drawn.category, drawn.quantity, drawn.amount
    k, n = len(cust), len(line_order)
    line_cust = cust[line_order]
    total = np.bincount(line_order, weights=amount, minlength=k)

    # Returns go onto the customer's next organic order 3-60 days later, if one exists,
    # and never take that order's net to zero (every order stays a purchase).
    returned = np.flatnonzero(drawn.returns)
    organic = np.flatnonzero(contact < 0)
    span = cal.n_days + 1
    keys = cust[organic] * span + day[organic]
    key_order = np.argsort(keys, kind="stable")
    keys, organic = keys[key_order], organic[key_order]
    src_day = day[line_order[returned]]
    hit = np.searchsorted(keys, line_cust[returned] * span + src_day + 3)
    found = hit < len(keys)
    target = np.where(found, organic[np.minimum(hit, len(keys) - 1)], -1)
    ok = found & (cust[target] == line_cust[returned]) & (day[target] <= src_day + 60)
    returned, target = returned[ok], target[ok]
    by_target = np.lexsort((returned, target))
    returned, target = returned[by_target], target[by_target]
    running = np.cumsum(amount[returned])
    first = np.r_[True, target[1:] != target[:-1]]
    group_start = np.maximum.accumulate(np.where(first, np.arange(len(target)), 0))
    before = np.where(group_start > 0, running[group_start - 1], 0.0) if len(target) else running
    within = running - before
    keep = within < total[target] - 0.005
    returned, target = returned[keep], target[keep]

    width = max(8, len(str(k)))
    ids = np.array([f"O{i:0{width}d}" for i in range(1, k + 1)], dtype=object)
    orders = _Orders(
        customer=cust, day=day, ts=drawn.ts, channel=drawn.channel, contact=contact, total=total, ids=ids
    )
    lines = {
        "order": np.concatenate([line_order, target]),
        "seq": np.concatenate([np.zeros(n, np.int64), np.ones(len(target), np.int64)]),
        "amount": np.concatenate([amount, -amount[returned]]),
        "category": np.concatenate([category, category[returned]]),
        "quantity": np.concatenate([quantity, -quantity[returned]]).astype(np.int64),
    }
    return orders, lines


def _customer_ids(n: int) -> np.ndarray:
    """Customer ids C000001 ... in joining order."""
    width = max(6, len(str(n)))
    return np.array([f"C{i:0{width}d}" for i in range(1, n + 1)], dtype=object)


def _campaign_ids(k: int) -> np.ndarray:
    """Campaign ids CMP001 ... in order of start."""
    return np.array([f"CMP{i + 1:03d}" for i in range(k)], dtype=object)


def _timestamps(us: np.ndarray) -> np.ndarray:
    """Microseconds since the epoch as naive datetime64[us]."""
    return us.astype("datetime64[us]")


def _text(values: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """A pandas `str` column from an object array of Python strings."""
    return pd.array(values, dtype="str")


def _names(names: tuple[str, ...], index: np.ndarray) -> np.ndarray:
    """Map indices onto names as an object array."""
    return np.array(names, dtype=object)[index]


def _transactions_frame(
    ids: np.ndarray, lines: dict[str, np.ndarray], orders: _Orders
) -> pd.DataFrame:
    """One row per order line (purchases, then returns), in order-id order."""
    sort = np.lexsort((lines["seq"], lines["order"]))
    order = lines["order"][sort]
    frame = pd.DataFrame(
        {
            "customer_id": _text(ids[orders.customer[order]]),
            "order_id": _text(orders.ids[order]),
            "ts": _timestamps(orders.ts[order]),
            "amount": np.round(lines["amount"][sort], 2),
            "category": _text(_names(CATEGORIES, lines["category"][sort])),
            "quantity": lines["quantity"][sort],
            "channel": _text(_names(CHANNELS, orders.channel[order])),
        }
    )
    return _merge_identical_lines(frame)


def _merge_identical_lines(frame: pd.DataFrame) -> pd.DataFrame:
    """Merge lines identical in every column into one line with summed quantity and amount.

    The input contract quarantines exact duplicate rows; a till prints two identical
    items as one line with quantity 2, so the world does the same and loses nothing.
    """
    dup = frame.duplicated(keep=False).to_numpy()
    if not dup.any():
        return frame
    cols = list(frame.columns)
    merged = frame[dup].groupby(cols, sort=False).size().reset_index(name="n")
    merged["amount"] = np.round(merged["amount"] * merged["n"], 2)
    merged["quantity"] = merged["quantity"] * merged["n"]
    out = pd.concat([frame[~dup], merged[cols]], ignore_index=True)
    return out.sort_values("order_id", kind="stable", ignore_index=True)


def _customers_frame(ids: np.ndarray, lat: _Latent, orders: _Orders) -> pd.DataFrame:
    """One row per customer: first order time and attribute bands."""
    first = np.full(len(ids), np.iinfo(np.int64).max)
    np.minimum.at(first, orders.customer, orders.ts)
    return pd.DataFrame(
        {
            "customer_id": _text(ids),
            "first_seen": _timestamps(first),
            "age_band": _text(_names(AGE_BANDS, lat.age)),
            "income_band": _text(_names(INCOME_BANDS, lat.income)),
            "region": _text(_names(REGIONS, lat.region)),
        }
    )


def _evaluations_frame(
    rng: np.random.Generator, ids: np.ndarray, lat: _Latent, hist: _History, cal: _Calendar
) -> pd.DataFrame:
    """One row per needs evaluation, with the fields that do not feed back into the loop."""
    cust, pain = hist.eval_customer, hist.eval_pain
    k = len(cust)
    level = np.where(pain, 2, (rng.random(k) < 0.45).astype(np.int64))  # requirement / want
    urgency_mean = np.array([2.4, 3.0, 4.0])[level]
    urgency = np.clip(np.round(rng.normal(urgency_mean, 0.9)), 1, 5).astype(np.int64)
    weight = lat.dim_weights[cust, hist.eval_dimension]
    importance_mean = 1.8 + 4.0 * weight + 0.5 * pain
    importance = np.clip(np.round(rng.normal(importance_mean, 0.9)), 1, 5).astype(np.int64)
    complaint = rng.random(k) < 0.04 + 0.3 * pain + 0.1 * (hist.eval_fit <= PAIN_FIT_MAX)
    minutes = rng.integers(9 * 60, 18 * 60, k)
    us = cal.start.astype("datetime64[us]").astype(np.int64) + hist.eval_day * _US_PER_DAY
    us = us + minutes * 60_000_000
    order = np.lexsort((cust, us))
    return pd.DataFrame(
        {
            "customer_id": _text(ids[cust[order]]),
            "evaluated_at": _timestamps(us[order]),
            "need_level": _text(_names(schema.NEED_LEVELS, level[order])),
            "dimension": _text(_names(schema.DIMENSIONS, hist.eval_dimension[order])),
            "urgency": urgency[order],
            "importance": importance[order],
            "solution_fit": hist.eval_fit[order],
            "orientation": _text(_names(schema.ORIENTATIONS, lat.orientation[cust[order]])),
            "style": _text(_names(schema.STYLES, lat.style[cust[order]])),
            "complaint": complaint[order],
        }
    )


def _campaigns_frame(plan: _Plan, cal: _Calendar) -> pd.DataFrame:
    """One row per campaign."""
    k = len(plan.campaign_start)
    start = cal.start + plan.campaign_start
    names = [
        f"{kind.title()} campaign {i + 1} ({pd.Timestamp(s):%b %Y})"
        for i, (kind, s) in enumerate(zip(plan.campaign_kind, start))
    ]
    return pd.DataFrame(
        {
            "campaign_id": _text(_campaign_ids(k)),
            "name": _text(np.array(names, dtype=object)),
            "kind": _text(np.array(plan.campaign_kind, dtype=object)),
            "start": start.astype("datetime64[us]"),
            "end": (start + _CAMPAIGN_DAYS).astype("datetime64[us]"),
        }
    )


def _contacts_frame(
    rng: np.random.Generator,
    ids: np.ndarray,
    plan: _Plan,
    hist: _History,
    orders: _Orders,
    cal: _Calendar,
) -> pd.DataFrame:
    """One row per planned contact; a response points at its order's time and total."""
    k = len(plan.day)
    minutes = rng.integers(8 * 60, 10 * 60, k)
    contacted = cal.start.astype("datetime64[us]").astype(np.int64) + plan.day * _US_PER_DAY
    contacted = contacted + minutes * 60_000_000
    response_at = np.full(k, np.iinfo(np.int64).min)
    revenue = np.full(k, np.nan)
    answer = np.flatnonzero(orders.contact >= 0)
    response_at[orders.contact[answer]] = orders.ts[answer]
    revenue[orders.contact[answer]] = np.round(orders.total[answer], 2)
    campaign_ids = _campaign_ids(len(plan.campaign_start))
    order = np.lexsort((plan.customer, contacted, plan.campaign))
    responded_at = np.where(hist.responded[order], response_at[order], np.iinfo(np.int64).min)
    return pd.DataFrame(
        {
            "campaign_id": _text(campaign_ids[plan.campaign[order]]),
            "customer_id": _text(ids[plan.customer[order]]),
            "contacted_at": _timestamps(contacted[order]),
            "group": _text(_names(schema.GROUPS, (~plan.treated[order]).astype(np.int64))),
            "responded": hist.responded[order],
            "responded_at": responded_at.astype("datetime64[us]"),
            "revenue": revenue[order],
        }
    )


def _truth_frame(
    ids: np.ndarray, truth: _Truth, hist: _History, lat: _Latent, cal: _Calendar
) -> pd.DataFrame:
    """One row per customer: the state at truth_as_of and the response probabilities."""
    n = len(ids)
    dead_us = cal.start.astype("datetime64[us]").astype(np.int64) + hist.death_day * _US_PER_DAY
    churned = np.where(hist.death_day >= 0, dead_us, np.iinfo(np.int64).min)
    truth_at = np.full(n, (cal.start + cal.truth_day).astype("datetime64[us]"))
    return pd.DataFrame(
        {
            "customer_id": _text(ids),
            "truth_as_of": truth_at,
            "alive_at_truth": truth.alive,
            "true_churn_prob": truth.churn_prob,
            "churn_driver": _text(_names(CHURN_DRIVERS, truth.driver)),
            "uplift_type": _text(_names(UPLIFT_TYPES, lat.uplift_type)),
            "p_response_treated": lat.p_treated,
            "p_response_control": lat.p_control,
            "true_uplift": lat.p_treated - lat.p_control,
            "churned_at": churned.astype("datetime64[us]"),
        }
    )

"""The service API: scores, reasons, segments, target lists, model cards and run lineage.

`create_app(cfg, token_file)` builds a FastAPI app; nothing happens at import. Every
endpoint but `/health` and the web page needs `Authorization: Bearer <token>`; one
dependency (`_Access.require`) checks it: 401 for a missing or unknown token, 403 for a
token whose role may not call the endpoint. Admin tokens may call everything.

| endpoint                                   | roles (besides admin) |
|--------------------------------------------|-----------------------|
| GET  /health                               | none needed           |
| GET  /me                                   | any                   |
| GET  /customers?prefix=                    | auditor               |
| GET  /customers/{id}                       | auditor               |
| GET  /customers/{id}/segments              | marketer, auditor     |
| GET  /segments/summary                     | marketer              |
| GET  /campaigns, /targets/options          | marketer              |
| POST /targets, GET /targets/{list_id}.csv  | marketer              |
| POST /score                                | auditor               |
| GET  /models/{name}/card                   | auditor               |
| GET  /runs, /runs/{run_id}                 | auditor               |
| GET  /runs/{run_id}/customers/{id}/explain | auditor               |
| GET  /monitoring/runs                      | auditor               |
| GET  /monitoring/runs/{run_id}             | auditor               |
| GET  /monitoring/performance               | auditor               |
| GET  /monitoring/report                    | auditor               |

The warehouse is opened per request and closed after it: read-only for DuckDB, so the
API never blocks a scoring run for longer than one request, and a file locked by a
writer gives 503 with a one-line message instead of a traceback. Building a target
list writes (`target_lists`), so within this process a DuckDB write waits for the
reads in flight (DuckDB refuses a read-write and a read-only connection to one file
in the same process).

Errors are JSON `{"detail": "<one line>"}`; malformed input gives 422 with such a line
(and the validation `errors` list). Web page (no build step): `/` and `/static/*`.

A scoring run may lack a model (a business with sales data only has no campaigns, so no
response model; `scoring_runs.missing_models` says why). Every answer about such a run
then has the model's score columns null and a `missing` list: per absent model, the
recorded reason, a plain-words message for the page and the columns left null. Target
lists rank by what the run has (`GET /targets/options`); `POST /score` scores with the
champions that exist and lists the others; a model card of a model without that version
is 404 with one line.

Monitoring (`propensity monitor` writes the tables of `monitoring.tables`): the
monitored runs with each model's score PSI, alert and attribution shift; one run's
feature, prediction and attribution rows; the realised, estimated and card performance
rows; and the HTML report (`monitoring.report`, self-contained, served as a sandboxed
document). These read only the monitoring tables and scoring_runs; a run that was never
monitored is 404 with one line.
"""

import inspect
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

import numpy as np
import pandas as pd
import pyarrow.compute as pc
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from features.load import Warehouse, WarehouseError
from monitoring.report import NotMonitored
from propensity.config import CONFIG_FILE, ApiConfig, Config
from serving import security, sink
from serving.current import CurrentRun, RunCache, ServiceBusy, has_campaigns, latest_run, plain, quiet_collector
from serving.target import LABELS, MEASURES, PROFIT_RANKINGS, RANKING_NEEDS, RANKINGS, csv_text
from serving.tokens import Role, TokenInfo, TokenStore

WEB_DIR = Path(__file__).resolve().parent / "web"
MODEL_NAMES = sink.MODELS  # churn, response, value
# Columns a segment summary groups by: (view alias, column); s = scores, g = segments.
SUMMARY_GROUPS = [
    ("g", "rfmw_segment"), ("g", "value_tier"), ("g", "loyalty_tier"), ("g", "activity"), ("g", "risk_tier"),
    ("s", "churn_tier"), ("s", "response_tier"), ("s", "predicted_value_tier"), ("s", "profit_tier"),
]
SUMMARY_MEANS = ["churn_risk", "response_prob", "predicted_value", "expected_profit"]
# Published columns left null when a model is absent from a run (expected profit needs response).
NULL_COLUMNS = {
    name: [sink.DECILES[key] for key in keys] + [f"{key}_decile" for key in keys] + [sink.TIERS[key] for key in keys]
    for name, keys in {"churn": ("churn",), "response": ("response", "profit"), "value": ("value",)}.items()
}
# What a missing model takes away, in plain words.
MISSING_WHAT = {
    "churn": "there is no churn risk (and no value at risk)",
    "response": "there is no response probability and no expected profit",
    "value": "there is no predicted value (and no value at risk)",
}
# Target-list rankings: what each needs, how the page names it, what its gain curve adds up.
RANK_BY = RANKINGS
RankBy = Literal["auto", "uplift", "expected_profit", "value_at_risk", "value", "churn"]
RANKING_LABEL = LABELS
RANKING_MEASURE = MEASURES
GAIN_POINTS_MAX = 201
CUSTOMER_ID = Annotated[str, PathParam(min_length=1, max_length=200, description="The customer's id, as in the warehouse.")]
SECURITY_TEXT = ("Bearer token from `propensity tokens create --role ROLE --name NAME`. "
                 "Roles: marketer (segments, campaigns, target lists), auditor (scores, reasons, model cards, "
                 "run lineage), admin (everything).")


# -- settings ------------------------------------------------------------------------------

ApiSettings = ApiConfig  # the [api] section of propensity.toml


def api_settings(cfg: Config) -> ApiConfig:
    """The [api] section of the configuration."""
    return cfg.api


def token_file_path(settings: ApiSettings, config_file: Path | None) -> Path:
    """Where the token file is: as given when absolute, else beside the config file (or ./propensity.toml)."""
    path = Path(settings.token_file)
    if path.is_absolute():
        return path
    base = Path(config_file).resolve().parent if config_file is not None else Path(CONFIG_FILE).resolve().parent
    return base / path


# -- input and output models -------------------------------------------------------------

class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Health(_Out):
    status: str = Field(description="'ok' when the service answers.")
    warehouse: str = Field(description="'ready', 'no scoring run yet', or why it cannot be read now.")
    scoring_run: str | None = None
    as_of: date | None = None


class Me(_Out):
    name: str
    role: Role
    token_id: str


class MissingModel(_Out):
    """A model with no scores here (no champion when the run started, or none now for /score)."""

    model: str = Field(description="churn, response or value.")
    reason: str = Field(description="Why, as recorded in scoring_runs.missing_models (or from the registry).")
    message: str = Field(description="What is missing and what to do, in plain words (what the web page shows).")
    null_columns: list[str] = Field(description="Published score columns that are null because of it.")


class Reason(_Out):
    rank: int
    feature: str
    feature_value: str | None
    contribution: float = Field(description="SHAP contribution on the model's raw scale (see `scale`).")
    scale: str | None = Field(description="log-odds (churn, response) or log (value).")
    effect: float | None = Field(description="Score minus the score without this feature's contribution "
                                             "(probability or amount).")
    effect_text: str | None = Field(default=None, description=(
        "The contribution in words on both scales: what it multiplies the odds (or amount) by, and the score "
        "without it (as `propensity explain customer` prints it)."))
    text: str


class WaterfallStep(_Out):
    label: str = Field(description="The feature, or 'other features' for the rest.")
    text: str | None = None
    contribution: float = Field(description="Raw-scale contribution of this step (the bar's length on the page).")
    start: float = Field(description="Output before this step (probability or amount).")
    end: float = Field(description="Output after this step.")
    raw_start: float | None = Field(default=None, description="Raw score before this step (log-odds or log).")
    raw_end: float | None = Field(default=None, description="Raw score after this step.")


class ModelExplanation(_Out):
    model: str
    version: str | None
    score: float = Field(description="Probability (churn, response) or predicted amount (value).")
    base_value: float | None = Field(description=(
        "The model's output at its baseline raw score (TreeSHAP's expected value over the training rows): where "
        "the waterfall starts. Not the score of an average customer."))
    base_raw: float | None = Field(default=None, description="The baseline on the raw scale (log-odds or log).")
    raw_score: float | None = Field(default=None, description="The score on the raw scale: base_raw plus every "
                                                              "contribution.")
    scale: str | None = Field(default=None, description="The raw scale: log-odds (churn, response) or log (value).")
    scale_note: str | None = Field(default=None, description="The raw scale and its conversion to the score, in words.")
    reasons: list[Reason]
    waterfall: list[WaterfallStep] | None = Field(
        description="From base_raw through each reason (raw contributions added in rank order; `start` and `end` "
                    "are the running total on the output scale) and the remaining features, ending exactly at "
                    "the score.")
    card_url: str


class CustomerMatches(_Out):
    run_id: str
    prefix: str
    customers: list[str] = Field(description="Customer ids of the current run that start with the prefix "
                                             "(case-insensitive), sorted.")
    more: bool = Field(description="More ids match than were returned.")


class CustomerDetail(_Out):
    customer_id: str
    run_id: str
    as_of: date
    scores: dict[str, Any]
    segments: dict[str, Any]
    models: list[ModelExplanation] = Field(description="The models scored in the run (absent ones are in `missing`).")
    missing: list[MissingModel] = Field(description="Models the run has no scores of, and why.")
    lineage_url: str
    explain_url: str


class CustomerSegments(_Out):
    customer_id: str
    run_id: str
    as_of: date
    segments: dict[str, Any]


class SegmentGroup(_Out):
    value: str | None
    customers: int
    mean_churn_risk: float | None
    mean_response_prob: float | None
    mean_predicted_value: float | None
    mean_expected_profit: float | None


class SegmentSummary(_Out):
    run_id: str
    as_of: date
    customers: int
    by: dict[str, list[SegmentGroup]]
    missing: list[MissingModel] = Field(description="Models the run has no scores of: their means are null.")


class Campaign(_Out):
    campaign: str
    name: str
    kind: str
    has_control: bool


class TargetRequest(_In):
    """A target list to build: exactly one of budget and top."""

    campaign: str = Field(min_length=1, max_length=200,
                          description="A campaign id or kind (needed to rank by expected profit or uplift); any "
                                      "name for the list when the warehouse has no campaigns or when ranking by "
                                      "value_at_risk, value or churn.")
    rank_by: RankBy = Field(default="auto", description=(
        "auto (uplift, else expected profit, else value_at_risk, value or churn: what the run's models allow), "
        "or one of uplift, expected_profit, value_at_risk (churn risk x predicted value), value, churn. "
        "GET /targets/options lists the ones the current run allows."))
    budget: float | None = Field(default=None, gt=0, le=1e12, allow_inf_nan=False,
                                 description="Money for contacts (contacts = budget / cost, at most 1e9).")
    top: int | None = Field(default=None, ge=1, le=10_000_000, description="Number of customers to select.")
    cost: float | None = Field(default=None, ge=0, le=1e9, allow_inf_nan=False,
                               description="Cost of one contact (default: [serving] contact_cost).")
    margin: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False,
                                 description="Share of value that is profit (default: [serving] margin).")
    control: float = Field(default=0.1, ge=0, lt=1, allow_inf_nan=False,
                           description="Share of the selected customers held out as control.")
    seed: int = Field(default=0, ge=0, le=2**63 - 1, description="Seed of the random control group.")

    @field_validator("campaign")
    @classmethod
    def _a_name(cls, value: str) -> str:
        if "/" in value or "\\" in value or any(ord(c) < 32 for c in value):
            raise ValueError("a list or campaign name cannot contain '/', '\\' or control characters")
        return value

    @model_validator(mode="after")
    def _budget_or_top(self) -> "TargetRequest":
        if (self.budget is None) == (self.top is None):
            raise ValueError("give exactly one of budget (money for contacts) or top (number of customers)")
        return self


class GainPoint(_Out):
    share_contacted: float
    customers: int
    cumulative: float = Field(description="Sum of what was ranked (see `ranking.measure`) over the top share.")
    cumulative_random: float = Field(description="The same for a random order.")
    cumulative_profit: float | None = Field(description="= cumulative for a profit ranking; null for a score "
                                                        "ranking (no profit estimate without a response model).")
    cumulative_profit_random: float | None


class Ranking(_Out):
    method: str = Field(description="uplift, expected_profit, value_at_risk, value or churn.")
    label: str = Field(description="What the customers were ranked by, in words.")
    measure: str = Field(description="What the gain curve adds up, e.g. 'expected profit' or 'value at risk'.")
    axis: str = Field(description="The gain chart's vertical axis label.")
    has_profit: bool = Field(description="False for a score ranking: profit figures are null.")
    contacted_total: float | None = Field(description="`measure` summed over the contacted customers.")
    because: str | None = Field(default=None, description="Why this ranking (for rank_by auto).")


class TargetResponse(_Out):
    list_id: str
    campaign: str
    method: str
    ranking: Ranking
    summary: dict[str, Any]
    notes: list[str]
    gain: list[GainPoint]
    download_url: str
    missing: list[MissingModel] = Field(description="Models the run has no scores of, and why.")


class RankChoice(_Out):
    value: str = Field(description="What to send as rank_by.")
    label: str
    available: bool
    needs_campaign: bool = Field(description="The list must be for a campaign id or kind (profit rankings, or any "
                                             "ranking when the warehouse has a campaigns table).")
    has_profit: bool = Field(description="Gives expected profit (uses the margin; the list also stops at the first "
                                         "customer whose profit is not positive).")
    why_not: str | None = Field(description="Why it is not available for the current run.")


class TargetOptions(_Out):
    run_id: str
    as_of: date
    campaigns: list[Campaign]
    rank_by: list[RankChoice]
    default_rank_by: str
    free_name: bool = Field(description="Some available ranking takes any list name (no campaign needed).")
    missing: list[MissingModel]


class ScoreRequest(_In):
    """One customer to score with today's champion models."""

    customer_id: str = Field(min_length=1, max_length=200)
    as_of: date | None = Field(default=None, description="Features from rows strictly before this date (default: today).")
    reasons: int = Field(default=5, ge=1, le=20, description="Reasons per model.")
    campaign_kind: str | None = Field(default=None, max_length=100,
                                      description="Campaign kind for the response model (default: its first kind).")


class ScoreResponse(_Out):
    customer_id: str
    as_of: date
    alias: str
    models: list[ModelExplanation] = Field(description="One per model with a champion.")
    missing: list[MissingModel] = Field(description="Models without a champion, and why.")


class RunRow(BaseModel):
    """One attempt of a scoring run (the scoring_runs row; later columns pass through)."""

    model_config = ConfigDict(extra="allow")
    run_id: str
    attempt: int
    as_of: date
    status: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    churn_version: str | None = None
    response_version: str | None = None
    value_version: str | None = None
    customers: int | None = None
    data_fingerprint: str | None = None
    missing_models: str | None = None
    missing: list[MissingModel] = Field(default_factory=list,
                                        description="Models not scored in this attempt (parsed missing_models).")

    @field_validator("started_at", "finished_at")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        """Stored in UTC without a zone (serving.sink._now); sent with it, as an RFC 3339 date-time needs."""
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class RunDetail(_Out):
    run_id: str
    published_attempt: int | None
    missing: list[MissingModel] = Field(description="Models not scored in the published (else latest) attempt.")
    attempts: list[RunRow]


class RunExplanationOut(_Out):
    run_id: str
    attempt: int
    customer_id: str
    stored_rows: int
    mismatches: int = Field(description="Stored reason rows that differ from the recomputation (0 = exact).")
    verdict: str
    models: list[ModelExplanation]
    missing: list[MissingModel] = Field(description="Models not scored in the run, and why.")


# -- monitoring ------------------------------------------------------------------------------

def _utc(value: datetime | None) -> datetime | None:
    """Stored in UTC without a zone; sent with it, as an RFC 3339 date-time needs."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class MonitoredModel(_Out):
    """One model of a monitored run (its monitoring_predictions row, in short)."""

    model: str
    version: str | None
    psi: float | None = Field(description="PSI of the run's scores against the model's reference score bins.")
    alert: bool = Field(description="Some alert of this model fired (a feature or the score PSI at its alert line).")
    attribution_shift: float | None = Field(
        description="Importance: total variation distance between the run's and the reference's attribution "
                    "shares (0-1).")
    direction_shift: float | None = Field(
        default=None, description="Direction: sum of |mean signed contribution - the reference's| over the "
                                  "reference's total mean |contribution|.")
    features_alerted: int | None = Field(description="Features (or features within a segment) at "
                                                     "[monitoring] feature_psi_alert.")
    mean_score: float | None
    reference_mean_score: float | None
    note: str | None = Field(description="Why a model has no drift numbers (e.g. not scored, no reference profile).")


class MonitoredRun(_Out):
    run_id: str
    attempt: int
    as_of: date
    alert: bool = Field(description="Any model of the run alerted.")
    monitored_at: datetime | None = None
    models: list[MonitoredModel]

    @field_validator("monitored_at")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        return _utc(value)


class FeatureDriftRow(_Out):
    """A monitoring_features row: one feature of one model in the run."""

    model: str
    version: str | None
    segment: str = Field(default="all", description="'all' (every customer of the run) or one level of a "
                                                     "categorical input, e.g. 'needs_orientation=price'.")
    feature: str
    kind: str | None = Field(description="numeric or categorical.")
    psi: float | None
    rows: int | None = Field(default=None, description="The run's customers in the segment.")
    reference_rows: int | None = Field(default=None, description="The reference's customers in the segment.")
    missing_share: float | None
    reference_missing_share: float | None
    new_level_share: float | None = Field(description="Share of categorical levels the reference never saw.")
    absent: bool | None = Field(description="The run lacked the column (every row counts as missing).")
    alert: bool | None = Field(description="At the alert line (in a segment: only when the feature stays below it "
                                           "over all customers).")


class ScoreBins(_Out):
    labels: list[str]
    reference: list[float | None] = Field(description="Reference share per bin.")
    current: list[float | None] = Field(description="The run's share per bin.")


class PredictionDriftRow(_Out):
    """A monitoring_predictions row: one model in the run."""

    model: str
    version: str | None
    rows: int | None
    psi: float | None
    mean_score: float | None
    reference_mean_score: float | None
    score_bins: ScoreBins | None = Field(description="Shares per reference score bin, for charts.")
    attribution_shift: float | None
    direction_shift: float | None = None
    features_alerted: int | None
    alert: bool | None
    note: str | None


class AttributionRow(_Out):
    """A monitoring_attributions row: one feature's share of a model's mean |contribution|."""

    model: str
    version: str | None
    feature: str
    mean_abs_contribution: float | None
    reference_mean_abs_contribution: float | None
    share: float | None
    reference_share: float | None
    rank: int | None
    reference_rank: int | None
    mean_contribution: float | None = Field(default=None, description="Mean signed contribution over the run.")
    reference_mean_contribution: float | None = None
    scale: str | None


class CheckRow(_Out):
    """A monitoring_checks row: an alert line of `propensity monitor`, or a data check of the run."""

    check_name: str = Field(description="alert, customers_gained, customers_lost, customers_kept or rejected_share.")
    model: str | None
    subject: str | None = Field(description="The previous run (customers_*) or the table (rejected_share).")
    value: float | None
    message: str | None
    alert: bool | None


class MonitoredRunDetail(_Out):
    run_id: str
    attempt: int
    as_of: date
    features: list[FeatureDriftRow]
    predictions: list[PredictionDriftRow]
    attributions: list[AttributionRow]
    checks: list[CheckRow] = Field(default_factory=list, description="The alert lines, in order, and the data checks.")


class PerformanceRow(_Out):
    """A run_performance row: one run, model, source and segment."""

    run_id: str
    attempt: int
    as_of: date
    model: str
    version: str | None
    source: str = Field(description="realised (labels of the elapsed horizon), estimated (from the scores alone) "
                                    "or card (the model card's out-of-time numbers).")
    segment: str = Field(description="'all', or an RFMW segment.")
    horizon_end: date | None
    customers: int | None
    positives: float | None
    mean_score: float | None
    mean_actual: float | None
    auc: float | None
    pr_auc: float | None
    ece: float | None
    gini: float | None
    computed_at: datetime | None = None

    @field_validator("computed_at")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        return _utc(value)


def _monitoring_rows(model: type[BaseModel], frame: pd.DataFrame) -> list[Any]:
    """A monitoring table's rows as `model`s (its fields only; missing values None)."""
    names = [n for n in model.model_fields if n in frame.columns]
    out = []
    for r in frame[names].to_dict("records"):
        row = {k: plain(v) for k, v in r.items()}
        if "score_bins" in row:
            row["score_bins"] = _score_bins(row["score_bins"])
        for key in ("as_of", "horizon_end"):
            if isinstance(row.get(key), datetime):
                row[key] = row[key].date()
        out.append(model(**row))
    return out


def _score_bins(text: Any) -> ScoreBins | None:
    """monitoring_predictions.score_bins (JSON) as ScoreBins, None when absent or unreadable."""
    import json

    if text is None:
        return None
    try:
        data = json.loads(text)
        return ScoreBins(labels=[str(v) for v in data["labels"]],
                         reference=[None if v is None or not math.isfinite(v) else float(v) for v in data["reference"]],
                         current=[None if v is None or not math.isfinite(v) else float(v) for v in data["current"]])
    except (ValueError, KeyError, TypeError):
        return None


# -- errors --------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _validation_message(errors: list[dict]) -> str:
    parts = []
    for e in errors[:3]:
        loc = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body",)) or "body"
        msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return _one_line("invalid input: " + "; ".join(parts) + more)


def _install_error_handlers(app: FastAPI) -> None:
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from serving.target import TargetingError
    from training.customer_reasons import UnknownCustomer
    from training.track import RegistryError

    def reply(status: int, message: str) -> JSONResponse:
        return JSONResponse({"detail": _one_line(message)}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> Response:
        """Ours and Starlette's (unknown path 404, 405): JSON with a one-line detail, headers kept."""
        if exc.status_code in (204, 304):
            return Response(status_code=exc.status_code, headers=exc.headers)
        return JSONResponse({"detail": _one_line(str(exc.detail))}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
        return JSONResponse({"detail": _validation_message(errors), "errors": errors}, status_code=422)

    @app.exception_handler(UnknownCustomer)
    async def _unknown_customer(_request: Request, exc: UnknownCustomer) -> JSONResponse:
        return reply(404, str(exc))

    @app.exception_handler(RegistryError)
    async def _registry(_request: Request, exc: RegistryError) -> JSONResponse:
        return reply(404, str(exc))

    @app.exception_handler(TargetingError)
    async def _targeting(_request: Request, exc: TargetingError) -> JSONResponse:
        return reply(422, str(exc))

    @app.exception_handler(ServiceBusy)
    async def _busy(_request: Request, exc: ServiceBusy) -> JSONResponse:
        return JSONResponse({"detail": _one_line(str(exc))}, status_code=503, headers={"Retry-After": "30"})

    @app.exception_handler(NotMonitored)
    async def _not_monitored(_request: Request, exc: NotMonitored) -> JSONResponse:
        return reply(404, str(exc))

    @app.exception_handler(WarehouseError)
    async def _warehouse(_request: Request, exc: WarehouseError) -> JSONResponse:
        return JSONResponse({"detail": _one_line(str(exc))}, status_code=503, headers={"Retry-After": "30"})


# -- access ---------------------------------------------------------------------------------

class _Access:
    """The one place that turns a bearer token into a role and allows or refuses a call."""

    def __init__(self, store: TokenStore) -> None:
        self.store = store
        self.bearer = HTTPBearer(auto_error=False, scheme_name="token", description=SECURITY_TEXT)

    def require(self, *roles: Role | None) -> Callable[..., TokenInfo]:
        """A dependency admitting admin and `roles` (None: any valid token)."""
        allowed = None if roles == (None,) else {Role.admin, *roles}
        bearer = self.bearer

        # async: a hash and a stat of the token file, cheaper than a hop to the thread pool
        async def check(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> TokenInfo:
            if credentials is None or credentials.scheme.lower() != "bearer":
                raise HTTPException(401, "missing token: send the header 'Authorization: Bearer <token>'",
                                    headers={"WWW-Authenticate": "Bearer"})
            info = self.store.verify(credentials.credentials)
            if info is None:
                raise HTTPException(401, "unknown or revoked token", headers={"WWW-Authenticate": "Bearer"})
            if allowed is not None and info.role not in allowed:
                names = ", ".join(sorted(r.value for r in allowed))
                raise HTTPException(403, f"the {info.role.value} token {info.name!r} may not do this "
                                         f"(allowed roles: {names})")
            return info

        return check


def _roles_note(*roles: Role) -> dict[str, Any]:
    """OpenAPI extras that say which roles may call an endpoint."""
    names = [r.value for r in roles] + [Role.admin.value]
    return {"x-roles": names}


# -- the warehouse, per request ---------------------------------------------------------------

class _WarehouseGate:
    """Opens the warehouse for one request: read-only for DuckDB; a writer waits for readers.

    DuckDB refuses, within one process, a read-write connection to a file that has
    read-only ones open (and the reverse): reads share, the one write is exclusive. A
    DuckDB file is opened per request and closed after it (another process, e.g. a
    scoring run, may need it); a PostgreSQL warehouse keeps one connection pool.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.duckdb = url.startswith("duckdb")
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._shared: Warehouse | None = None if self.duckdb else Warehouse(url)

    @contextmanager
    def _slot(self, write: bool) -> Iterator[None]:
        if not self.duckdb:
            yield
            return
        with self._cond:
            if write:
                self._cond.wait_for(lambda: not self._writing and self._readers == 0)
                self._writing = True
            else:
                self._cond.wait_for(lambda: not self._writing)
                self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                if write:
                    self._writing = False
                else:
                    self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def open(self, write: bool = False) -> Iterator[Warehouse]:
        """The warehouse, opened and reachable, or ServiceBusy with the reason."""
        with self._slot(write):
            wh = self._shared or Warehouse(self.url, read_only=not write)
            try:
                try:
                    wh.tables()
                except WarehouseError as e:
                    raise ServiceBusy(f"the warehouse cannot be read now: {e}") from None
                except Exception as e:  # duckdb's own connection errors, e.g. another open mode
                    if type(e).__module__.startswith(("duckdb", "_duckdb")):
                        raise ServiceBusy(f"the warehouse is busy: {_one_line(str(e))}") from None
                    raise
                yield wh
            finally:
                if wh is not self._shared:
                    wh.close()

    def close(self) -> None:
        if self._shared is not None:
            self._shared.close()


def _current_run(wh: Warehouse) -> dict:
    """The latest successful scoring run (what the current_* views show), or ServiceBusy."""
    if not wh.has(sink.RUNS) or not wh.has(sink.VIEWS[sink.SCORES]):
        raise ServiceBusy("no scoring run yet; run `propensity score --as-of DATE` first")
    run = latest_run(wh)
    if run is None:
        raise ServiceBusy("no successful scoring run yet; run `propensity score --as-of DATE` first")
    return run


# -- models a run lacks -------------------------------------------------------------------------

def missing_model(name: str, reason: str, has_campaigns: bool, where: str = "in this run") -> MissingModel:
    """What the page says about an absent model: what is missing, then the recorded reason."""
    reason = _one_line(reason).rstrip(". ")
    if name == "response" and not has_campaigns:
        head = f"No response model: this business has no campaign history yet, so {MISSING_WHAT[name]}"
    else:
        head = f"No {name} model {where}, so {MISSING_WHAT[name]}"
    return MissingModel(model=name, reason=reason, message=f"{head}. {reason[:1].upper()}{reason[1:]}.",
                        null_columns=NULL_COLUMNS[name])


def run_missing(run: dict, has_campaigns: bool) -> list[MissingModel]:
    """The models a scoring run (a scoring_runs row) has no version of, with the recorded reasons."""
    recorded = sink.parse_missing(run.get("missing_models"))
    out = []
    for name in MODEL_NAMES:
        if plain(run.get(f"{name}_version")) is not None:
            continue
        reason = recorded.get(name) or f"scoring run {run.get('run_id')} recorded no {name} model version"
        out.append(missing_model(name, reason, has_campaigns))
    return out


# -- values ---------------------------------------------------------------------------------

def _as_date(value: Any) -> date:
    return pd.Timestamp(value).date()


def segment_groups(scores: pd.DataFrame, segments: pd.DataFrame) -> dict[str, list[SegmentGroup]]:
    """Customers and mean scores per value of each segment and tier column (scores joined to segments).

    As SQL's `group by` would give them: a null value is a group of its own, sorted last;
    means skip nulls and are null when every score of a group is.
    """
    keep = ["customer_id"] + [c for c in SUMMARY_MEANS]
    tiers = [c for a, c in SUMMARY_GROUPS if a == "s"]
    joined = scores[keep + tiers].merge(segments.drop(columns=["run_id", "as_of"], errors="ignore"),
                                        on="customer_id", how="inner")
    by: dict[str, list[SegmentGroup]] = {}
    for _alias, column in SUMMARY_GROUPS:
        grouped = joined.groupby(joined[column], dropna=False, sort=False)
        table = grouped[SUMMARY_MEANS].mean()
        counts = grouped.size()
        groups = []
        for value in sorted(counts.index, key=lambda v: (plain(v) is None, "" if plain(v) is None else str(v))):
            means = {f"mean_{c}": plain(table.at[value, c]) for c in SUMMARY_MEANS}
            groups.append(SegmentGroup(value=None if plain(value) is None else str(value),
                                       customers=int(counts[value]), **means))
        by[column] = groups
    return by


class _PerRun:
    """One computed answer per published run (kept for the run held in memory only)."""

    def __init__(self) -> None:
        self._held: CurrentRun | None = None
        self._value: Any = None

    def get(self, held: CurrentRun) -> Any:
        return self._value if self._held is held else None

    def put(self, held: CurrentRun, value: Any) -> Any:
        self._held, self._value = held, value
        return value


# -- explanations -----------------------------------------------------------------------------

class _Models:
    """LightGBM models by (name, version) from the registry, loaded once per process."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._lock = threading.Lock()
        self._models: dict[tuple[str, str], Any] = {}
        self._base: dict[tuple[str, str], float] = {}

    def registry(self) -> None:
        """Point MLflow at this project's store (cheap; other code in the process may have moved it)."""
        from training.track import configure

        configure(self.cfg.mlflow, self.cfg.training.experiment)

    def holds(self, name: str, version: Any) -> bool:
        """Is this version loaded, with its base value (so explaining it needs no I/O)?"""
        key = (name, str(version))
        return key in self._models and key in self._base

    def get(self, name: str, version: str) -> Any:
        key = (name, str(version))
        with self._lock:
            if key not in self._models:
                from training.customer_reasons import versioned_model

                self.registry()
                self._models[key] = versioned_model(name, str(version))
                quiet_collector()
            return self._models[key]

    def champion(self, name: str) -> tuple[Any, str]:
        from training.track import RegistryError, alias_version

        self.registry()
        info = alias_version(name, "champion")
        if info is None:
            raise RegistryError(f"no {name}@champion in the registry; train and promote it first")
        version = str(info["version"])
        return self.get(name, version), version

    def uplift_kind(self) -> str | None:
        """The campaign kind the registered uplift champion was trained for, or None without one."""
        from training.track import alias_version

        self.registry()
        info = alias_version("uplift", "champion")
        return None if info is None else (info["tags"].get("campaign_kind") or None)

    def base_raw(self, name: str, version: str, model: Any = None) -> float:
        """The model's expected raw score (TreeSHAP's base value), constant per version."""
        key = (name, str(version))
        if key not in self._base:
            from training.explain import contributions

            model = model if model is not None else self.get(name, version)
            self._base[key] = contributions(model, pd.DataFrame()).base_value
        return self._base[key]


def _raw_of(model: Any, score: float) -> float | None:
    """The raw score behind an output (inverse of `transform_raw`); None where it has none."""
    if model.kind == "tweedie":  # score = exp(raw + log c), c the level factor
        return math.log(score) - math.log(model.level_factor_) if score > 0 else None
    p = min(max(score, 1e-15), 1 - 1e-15)
    logit = math.log(p / (1 - p))
    if model.calibration_ is None:
        return logit
    a, b = model.calibration_
    return (logit - b) / a if a else None


def waterfall(model: Any, base_raw: float, score: float,
              reasons: list[dict[str, Any]]) -> tuple[float, list[WaterfallStep]] | None:
    """From the base value through each reason to the score, on the output scale.

    Contributions add up on the raw scale (log-odds, log), so the steps add them there in
    rank order and show each running total transformed to a probability or amount; the
    remaining features make the last step, which ends exactly at the score.
    """
    raw_score = _raw_of(model, score)
    if raw_score is None:
        return None

    ordered = sorted(reasons, key=lambda r: r["rank"])
    # running raw totals: base, base + reason 1, ..., then all of them on the output scale at once
    raw = [base_raw]
    for r in ordered:
        raw.append(raw[-1] + float(r["contribution"]))
    shown = model.output(np.array(raw)).tolist()
    steps = [WaterfallStep(label=str(r["feature"]), text=str(r["text"]), contribution=float(r["contribution"]),
                           start=shown[i], end=shown[i + 1], raw_start=raw[i], raw_end=raw[i + 1])
             for i, r in enumerate(ordered)]
    steps.append(WaterfallStep(label="other features", text="all features not listed above",
                               contribution=raw_score - raw[-1], start=shown[-1], end=float(score),
                               raw_start=raw[-1], raw_end=raw_score))
    return shown[0], steps


def scale_note(model: Any, base_raw: float, raw_score: float, base: float, score: float) -> str:
    """How the raw scale of a waterfall turns into the score, in words (the page shows it under the chart)."""
    from training.explain import share_text

    if model.kind == "tweedie":
        factor = float(model.level_factor_)
        level = f" x {factor:.4g} (the level factor)" if factor != 1.0 else ""
        return (f"Bars are contributions on the model's raw scale, the log of the amount, where they add up "
                f"exactly: baseline {base_raw:.3f} + contributions = raw score {raw_score:.3f}. The amount is "
                f"e^raw{level}: baseline {base:,.2f}, score {score:,.2f}. A bar of +x multiplies the amount by e^x "
                f"(+0.693 doubles it). The baseline is the model's output at its average raw score over the "
                f"training rows, not the value of an average customer.")
    calibrated = " after the model's calibration (a x raw + b)" if model.calibration_ is not None else ""
    return (f"Bars are contributions on the model's raw scale, log-odds, where they add up exactly: baseline "
            f"{base_raw:.3f} + contributions = raw score {raw_score:.3f}. The probability is 1 / (1 + e^-raw)"
            f"{calibrated}: baseline {share_text(base)}, score {share_text(score)}. A bar of +x multiplies the "
            f"odds by e^x (+0.693 doubles them); near 0% or 100% even a long bar moves the probability little. "
            f"The baseline is the model's output at its average raw score over the training rows, not the risk "
            f"of an average customer.")


def _reasons(rows: list[dict[str, Any]], model_name: str | None = None, score: float | None = None) -> list[Reason]:
    from training.explain import effect_words

    out = []
    for r in sorted(rows, key=lambda r: r["rank"]):
        effect = plain(r.get("effect"))
        words = (effect_words(model_name, float(r["contribution"]), float(score), float(effect))
                 if model_name is not None and score is not None and effect is not None else None)
        out.append(Reason(rank=int(r["rank"]), feature=str(r["feature"]), feature_value=plain(r.get("feature_value")),
                          contribution=float(r["contribution"]), scale=plain(r.get("scale")), effect=effect,
                          effect_text=words, text=str(r["text"])))
    return out


def _explained(models: _Models, name: str, version: str | None, score: float,
               reasons: pd.DataFrame | list[dict[str, Any]], model: Any = None) -> ModelExplanation:
    """One model's score, reasons (a frame or rows) and waterfall (none when the version cannot be loaded)."""
    from training.track import RegistryError

    if isinstance(reasons, pd.DataFrame):
        reasons = reasons.to_dict("records")
    steps, base, raw = None, None, {}
    if version is not None and score is not None:
        try:
            model = model if model is not None else models.get(name, version)
            base_raw = models.base_raw(name, version, model)
            drawn = waterfall(model, base_raw, float(score), reasons)
            if drawn is not None:
                base, steps = drawn
                raw = {"base_raw": base_raw, "raw_score": steps[-1].raw_end,
                       "scale": "log" if model.kind == "tweedie" else "log-odds",
                       "scale_note": scale_note(model, base_raw, steps[-1].raw_end, base, float(score))}
        except RegistryError:
            pass
    card = f"/models/{name}/card" + (f"?version={version}" if version is not None else "")
    return ModelExplanation(model=name, version=version, score=float(score), base_value=base, **raw,
                            reasons=_reasons(reasons, name, score), waterfall=steps, card_url=card)


# -- the app ----------------------------------------------------------------------------------

def create_app(cfg: Config, token_file: Path) -> FastAPI:
    """The API and web page over the warehouse and registry named in `cfg`.

    Args:
        cfg: the project configuration (warehouse URL, MLflow store, [serving] defaults).
        token_file: the hashed token store (`propensity tokens create` writes it).
    """
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        release = package_version("propensity")
    except PackageNotFoundError:
        release = "0"
    store = TokenStore(token_file)
    access = _Access(store)
    gate = _WarehouseGate(cfg.warehouse.url)
    current = RunCache(cfg.warehouse.url, gate.open)
    summaries = _PerRun()
    models = _Models(cfg)
    app = FastAPI(
        title="propensity",
        version=release,
        summary="Churn, response and value scores per customer, their reasons, segments and campaign target lists.",
        description=(SECURITY_TEXT + " Errors are JSON objects with a one-line `detail`: 401 missing or unknown "
                     "token, 403 role not allowed, 404 unknown customer, run, list or model, 422 malformed input, "
                     "503 warehouse busy (a scoring run is writing) or not scored yet."),
        docs_url=None,  # security.install serves /docs from local files (no CDN); ReDoc is CDN-only: off
        redoc_url=None,
    )
    _install_error_handlers(app)
    security.install(app)  # security headers, offline /docs, errors in the schema, tokens out of the access log

    marketing = (Role.marketer,)
    audit = (Role.auditor,)
    any_role = access.require(None)

    def route(method: str, path: str, roles: tuple[Role, ...], **kwargs: Any) -> Callable[[Callable], Callable]:
        """Register an endpoint that admin and `roles` may call (the roles appear in the OpenAPI docs)."""
        names = ", ".join([r.value for r in roles] + ["admin"])

        def register(fn: Callable) -> Callable:
            doc = inspect.cleandoc(fn.__doc__ or "")
            return getattr(app, method)(
                path, dependencies=[Depends(access.require(*roles))], openapi_extra=_roles_note(*roles),
                description=f"{doc}\n\nRoles: {names}.", **kwargs)(fn)

        return register

    # -- open endpoints ------------------------------------------------------------------
    @app.get("/health", response_model=Health, tags=["service"])
    def health() -> Health:
        """Is the service up, and can it read the warehouse now? No token needed.

        `warehouse` is 'ready', or why the warehouse cannot be read now (e.g. locked by a
        scoring run); reads are then answered from the run held in memory, named in
        `scoring_run`, if any.
        """
        held, problem = current.status()
        return Health(status="ok", warehouse="ready" if problem is None else _one_line(problem),
                      scoring_run=held.run_id if held else None,
                      as_of=_as_date(held.run["as_of"]) if held else None)

    @app.get("/me", response_model=Me, tags=["service"], openapi_extra={"x-roles": [r.value for r in Role]})
    def me(info: Annotated[TokenInfo, Depends(any_role)]) -> Me:
        """The calling token's name and role (the web page uses it to log in)."""
        return Me(name=info.name, role=info.role, token_id=info.token_id)

    # -- customers -----------------------------------------------------------------------
    def _customer_rows(customer_id: str, held: CurrentRun | None = None) -> tuple[CurrentRun, dict, dict]:
        held = held or current.get()
        scores = held.score(customer_id)
        if scores is None:
            raise HTTPException(404, f"customer {customer_id!r} is not in the current scoring run "
                                     f"{held.run_id} (as of {_as_date(held.run['as_of'])}); check the id")
        return held, scores, held.segment(customer_id) or {}

    def _ready() -> CurrentRun | None:
        """The run in memory when answering from it needs no I/O (no look at the warehouse due, models
        loaded): then a read is answered on the event loop, else in the thread pool."""
        held = current.fresh()
        if held is None:
            return None
        versions = [(n, held.run.get(f"{n}_version")) for n in MODEL_NAMES]
        return held if all(models.holds(n, v) for n, v in versions if v is not None) else None

    def _json(answer: BaseModel) -> Response:
        """An answer serialised once (FastAPI would validate the model a second time)."""
        return Response(answer.model_dump_json(), media_type="application/json")

    @route("get", "/customers", audit, response_model=CustomerMatches, tags=["customers"])
    def customer_search(prefix: Annotated[str, Query(min_length=1, max_length=200,
                                                     description="The start of a customer id (case-insensitive).")],
                        limit: Annotated[int, Query(ge=1, le=100)] = 20) -> CustomerMatches:
        """Customer ids of the current run that start with `prefix` (for the page's search box), sorted."""
        held = current.get()
        ids = held.scores.column("customer_id").cast("string")
        hits = pc.filter(ids, pc.starts_with(pc.utf8_lower(ids), prefix.lower()))
        found = sorted(hits.to_pylist())
        return CustomerMatches(run_id=held.run_id, prefix=prefix, customers=found[:limit], more=len(found) > limit)

    @route("get", "/customers/{customer_id}", audit, response_model=CustomerDetail, tags=["customers"])
    async def customer(customer_id: CUSTOMER_ID) -> Response:
        """A customer's scores, segments and stored reasons (with a waterfall per model) in the current run."""
        held = _ready()
        if held is None:
            return _json(await run_in_threadpool(_customer_detail, customer_id, None))
        return _json(_customer_detail(customer_id, held))

    def _customer_detail(customer_id: str, held: CurrentRun | None) -> CustomerDetail:
        held, scores, segments = _customer_rows(customer_id, held)
        run, run_id, reasons = held.run, held.run_id, held.reasons_of(customer_id)
        score_row = {k: v for k, v in scores.items() if k not in ("run_id", "customer_id", "as_of")}
        missing = run_missing(run, held.has_campaigns)
        explained = []
        for name in MODEL_NAMES:
            version, score = run.get(f"{name}_version"), score_row.get(sink.SCORE_COLUMN[name])
            if version is None:
                continue  # in `missing`
            if score is None:
                missing.append(missing_model(name, f"customer {customer_id!r} has no {name} score in scoring run "
                                                   f"{run_id}", held.has_campaigns))
                continue
            explained.append(_explained(models, name, str(version), score, [r for r in reasons if r["model"] == name]))
        return CustomerDetail(
            customer_id=customer_id, run_id=run_id, as_of=_as_date(run["as_of"]), scores=score_row,
            segments={k: v for k, v in segments.items() if k not in ("run_id", "customer_id", "as_of")},
            models=explained, missing=missing, lineage_url=f"/runs/{run_id}",
            explain_url=f"/runs/{run_id}/customers/{customer_id}/explain")

    @route("get", "/customers/{customer_id}/segments", (Role.marketer, Role.auditor),
           response_model=CustomerSegments, tags=["customers"])
    async def customer_segments(customer_id: CUSTOMER_ID) -> Response:
        """A customer's RFMW scores, segment and tiers in the current run."""
        held = current.fresh() or await run_in_threadpool(current.get)
        held, _scores, segments = _customer_rows(customer_id, held)
        return _json(CustomerSegments(
            customer_id=customer_id, run_id=held.run_id, as_of=_as_date(held.run["as_of"]),
            segments={k: v for k, v in segments.items() if k not in ("run_id", "customer_id", "as_of")}))

    @route("get", "/segments/summary", marketing, response_model=SegmentSummary, tags=["segments"])
    def segment_summary() -> SegmentSummary:
        """Customers and mean scores per RFMW segment and per tier, in the current run."""
        held = current.get()
        by = summaries.get(held)
        if by is None:
            by = summaries.put(held, segment_groups(held.scores_frame(), held.segments_frame()))
        return SegmentSummary(run_id=held.run_id, as_of=_as_date(held.run["as_of"]), customers=held.customers,
                              by=by, missing=run_missing(held.run, held.has_campaigns))

    # -- campaigns and target lists ------------------------------------------------------
    @route("get", "/campaigns", marketing, response_model=list[Campaign], tags=["targeting"])
    def campaigns() -> list[Campaign]:
        """Campaigns (and their kinds) a target list can be built for."""
        from serving.target import campaign_choices

        with gate.open() as wh:
            return [Campaign(**c) for c in campaign_choices(wh)]

    @route("get", "/targets/options", marketing, response_model=TargetOptions, tags=["targeting"])
    def target_options() -> TargetOptions:
        """What a target list can be built from on the current run: campaigns, the rankings its models allow.

        Without a response model (or without campaigns) the profit rankings are not
        available, each with the reason, and lists rank by value at risk, value or churn
        under any list name.
        """
        from serving.target import campaign_choices

        with gate.open() as wh:
            run = _current_run(wh)
            choices = [Campaign(**c) for c in campaign_choices(wh)]
            campaigns_table = wh.has("campaigns")
            missing = run_missing(run, bool(choices))
        have = {name for name in MODEL_NAMES if plain(run.get(f"{name}_version")) is not None}
        uplift_kind = models.uplift_kind() if choices else None
        kinds = {c.kind for c in choices}
        rank = []
        for method in RANK_BY[1:]:
            lacking = [n for n in RANKING_NEEDS[method] if n not in have]
            if lacking:
                why_not = f"needs {' and '.join(lacking)} scores, which this run does not have"
            elif method in PROFIT_RANKINGS and not choices:
                why_not = "needs a campaign: the warehouse has no campaigns (import campaigns and contacts)"
            elif method == "uplift" and uplift_kind not in kinds:
                why_not = ("no uplift model is registered for a campaign kind in the warehouse; train one with "
                           "`propensity train uplift --kind KIND`")
            else:
                why_not = None
            rank.append(RankChoice(value=method, label=RANKING_LABEL[method], available=why_not is None,
                                   needs_campaign=method in PROFIT_RANKINGS or campaigns_table,
                                   has_profit=method in PROFIT_RANKINGS, why_not=why_not))
        usable = [r for r in rank if r.available]
        profit = any(r.value in PROFIT_RANKINGS for r in usable)
        if profit:
            auto_label = "automatic: uplift where a model fits the campaign's kind, else expected profit"
        elif usable:
            auto_label = f"automatic: {usable[0].label}"
        else:
            auto_label = "automatic"
        auto = RankChoice(value="auto", label=auto_label, available=bool(usable),
                          needs_campaign=profit or campaigns_table, has_profit=profit,
                          why_not=None if usable else "the run has no scores a list can be ranked by")
        rank.insert(0, auto)
        return TargetOptions(run_id=str(run["run_id"]), as_of=_as_date(run["as_of"]), campaigns=choices,
                             rank_by=rank, default_rank_by="auto",
                             free_name=any(r.available and not r.needs_campaign for r in rank), missing=missing)

    @route("post", "/targets", marketing, response_model=TargetResponse, tags=["targeting"])
    def create_target(body: TargetRequest) -> TargetResponse:
        """Rank the current run's customers for a campaign or list, cut by budget or count, hold out a control group, save.

        Ranked by `rank_by` (auto: uplift, else expected profit, else value at risk,
        value or churn: what the run's models allow). Returns the list's summary
        (contacted, control, expected responders and profit where a response model
        exists), what was ranked, the gain curve (the cumulative ranked measure by share
        contacted, against a random order) and where to download the list as CSV.
        """
        from serving.target import build_target_list, save_target_list

        models.registry()
        with gate.open(write=True) as wh:
            target = build_target_list(wh, cfg, body.campaign, budget=body.budget, top=body.top, cost=body.cost,
                                       margin=body.margin, control=body.control, seed=body.seed,
                                       rank_by=body.rank_by)
            list_id = save_target_list(wh, target)
            missing = run_missing(_current_run(wh), has_campaigns(wh))
        method = str(target.method)
        has_profit = method in PROFIT_RANKINGS
        gain = target.gain
        measure = (str(gain["measure"].iloc[0]) if "measure" in gain and len(gain)
                   else RANKING_MEASURE.get(method, method.replace("_", " ")))
        if len(gain) > GAIN_POINTS_MAX:  # enough for a chart; keeps the answer small
            keep = np.unique(np.linspace(0, len(gain) - 1, GAIN_POINTS_MAX).round().astype(int))
            gain = gain.iloc[keep]
        points = []
        for r in gain.to_dict("records"):
            total, random = float(r["cumulative_profit"]), float(r["cumulative_profit_random"])
            points.append(GainPoint(share_contacted=float(r["share_contacted"]), customers=int(r["customers"]),
                                    cumulative=total, cumulative_random=random,
                                    cumulative_profit=total if has_profit else None,
                                    cumulative_profit_random=random if has_profit else None))
        frame = target.frame
        treated = frame[frame["group"] == "treatment"] if "group" in frame else frame
        contacted_total = float(treated["score_used"].sum()) if "score_used" in treated else None
        axis = f"cumulative {measure}" + (" (expected churners)" if method == "churn" else "")
        ranking = Ranking(method=method, label=RANKING_LABEL.get(method, str(target.summary.get("ranked_by") or method)),
                          measure=measure, axis=axis, has_profit=has_profit, contacted_total=contacted_total,
                          because=plain(target.summary.get("ranked_because")))
        return TargetResponse(
            list_id=list_id, campaign=target.campaign, method=method, ranking=ranking,
            summary={k: plain(v) for k, v in target.summary.items()}, notes=list(getattr(target, "notes", [])),
            gain=points, download_url=f"/targets/{quote(list_id, safe='')}.csv", missing=missing)

    @route("get", "/targets/{list_id}.csv", marketing, tags=["targeting"], response_class=Response,
           responses={200: {"content": {"text/csv": {}}, "description": "The list, by rank."}})
    def target_csv(list_id: Annotated[str, PathParam(min_length=1, max_length=300)]) -> Response:
        """A saved target list as CSV (treatment and control rows, by rank)."""
        from serving.target import TARGETS

        with gate.open() as wh:
            frame = (wh.native_query(f"select * from {TARGETS} where list_id = ? order by rank", [list_id])
                     if wh.has(TARGETS) else pd.DataFrame())
        if frame.empty:
            raise HTTPException(404, f"no target list {list_id!r}; build one with POST /targets")
        text = csv_text(frame)  # spreadsheet formulas neutralised (serving.target.spreadsheet_safe)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in list_id)
        return Response(text, media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="target-{safe}.csv"'})

    # -- scoring on demand ---------------------------------------------------------------
    @route("post", "/score", audit, response_model=ScoreResponse, tags=["customers"])
    def score(body: ScoreRequest) -> ScoreResponse:
        """Score and explain one customer with the champion models, on features as of today (or `as_of`).

        Models without a champion are listed in `missing` with the reason; 404 when none has one.
        """
        from serving.registry import missing_reasons
        from training.customer_reasons import customer_row, explain_customer
        from training.track import RegistryError

        as_of = body.as_of or date.today()
        if as_of > date.today():
            raise HTTPException(422, f"as_of {as_of} is in the future; give today or an earlier date")
        loaded = {}
        for name in MODEL_NAMES:
            try:
                loaded[name] = models.champion(name)
            except RegistryError:
                continue
        if not loaded:
            raise RegistryError("no model has a champion yet; train and promote at least one "
                                "(`propensity train all && propensity promote all`)")
        why = missing_reasons(set(loaded))
        with gate.open() as wh:
            row = customer_row(wh, cfg.features, body.customer_id, as_of)
            campaigns_known = has_campaigns(wh)
        out = []
        for exp in explain_customer(row, loaded, k=body.reasons, campaign_kind=body.campaign_kind):
            out.append(_explained(models, exp.model, exp.version, exp.score, exp.reasons, loaded[exp.model][0]))
        missing = [missing_model(name, why[name], campaigns_known, where="registered")
                   for name in MODEL_NAMES if name in why]
        return ScoreResponse(customer_id=body.customer_id, as_of=as_of, alias="champion", models=out, missing=missing)

    # -- model cards and lineage ---------------------------------------------------------
    @route("get", "/models/{name}/card", audit, response_class=HTMLResponse, tags=["models"],
           responses={200: {"content": {"text/html": {}}, "description": "The model card."}})
    def model_card(
        name: Annotated[str, PathParam(max_length=50, description="churn, response or value.")],
        version: Annotated[str, Query(pattern=r"^(\d{1,9}|champion|challenger)$",
                                      description="A version number, or the alias champion or challenger.")] = "champion",
    ) -> HTMLResponse:
        """The HTML model card of a registered version: purpose, data, metrics, explanations, limitations."""
        from training.cards import render_card

        if name not in MODEL_NAMES:
            raise HTTPException(404, f"unknown model {name!r}; use one of {', '.join(MODEL_NAMES)}")
        models.registry()
        if not version.isdigit():
            from serving.registry import missing_reasons
            from training.track import alias_version

            if alias_version(name, version) is None:
                why = missing_reasons({n for n in MODEL_NAMES if n != name}, alias=version)[name]
                raise HTTPException(404, f"no {name} model card: {why}")
        return HTMLResponse(render_card(name, version))

    def _runs_frame(wh: Warehouse, sql: str, params: list) -> list[RunRow]:
        if not wh.has(sink.RUNS):
            return []
        frame = wh.native_query(sql, params)
        campaigns_known = has_campaigns(wh)
        out = []
        for r in frame.to_dict("records"):
            row = {k: plain(v) for k, v in r.items() if k != "missing"}
            out.append(RunRow(**row, missing=run_missing(row, campaigns_known)))
        return out

    @route("get", "/runs", audit, response_model=list[RunRow], tags=["lineage"])
    def runs(limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[RunRow]:
        """Scoring-run attempts, latest first: status, as-of date, model versions, counts, fingerprints."""
        with gate.open() as wh:
            return _runs_frame(wh, f"select * from {sink.RUNS} order by started_at desc limit ?", [limit])

    @route("get", "/runs/{run_id}", audit, response_model=RunDetail, tags=["lineage"])
    def run(run_id: Annotated[str, PathParam(min_length=1, max_length=100)]) -> RunDetail:
        """A scoring run's lineage: every attempt's row (model versions, snapshot hash, data fingerprint)."""
        with gate.open() as wh:
            rows = _runs_frame(wh, f"select * from {sink.RUNS} where run_id = ? order by attempt", [run_id])
        if not rows:
            raise HTTPException(404, f"no scoring run {run_id!r}; list runs with GET /runs")
        published = [r for r in rows if r.status == "succeeded"]
        shown = published[-1] if published else rows[-1]
        return RunDetail(run_id=run_id, published_attempt=published[-1].attempt if published else None,
                         missing=shown.missing, attempts=rows)

    @route("get", "/runs/{run_id}/customers/{customer_id}/explain", audit, response_model=RunExplanationOut,
           tags=["lineage"])
    def explain_from_run(run_id: Annotated[str, PathParam(min_length=1, max_length=100)],
                         customer_id: CUSTOMER_ID) -> RunExplanationOut:
        """Recompute a customer's reasons from a run's lineage (model versions + feature snapshot) and compare."""
        from serving.lineage import explain_run_customer

        models.registry()
        with gate.open() as wh:
            published = (wh.native_query(f"select attempt from {sink.RUNS} where run_id = ? and status = 'succeeded'",
                                         [run_id]) if wh.has(sink.RUNS) else pd.DataFrame())
            if published.empty:
                raise HTTPException(404, f"no published scoring run {run_id!r}; list runs with GET /runs")
            try:
                result = explain_run_customer(wh, cfg, run_id, customer_id)
            except WarehouseError as e:  # snapshot missing or changed: the lineage is broken, not the service
                raise HTTPException(409, _one_line(str(e))) from None
            missing = run_missing({k: plain(v) for k, v in result.run.items()}, has_campaigns(wh))
        run_row = result.run
        out = []
        for exp in result.explanations:
            out.append(_explained(models, exp.model, exp.version, exp.score, exp.reasons))
        lines = result.lines()
        return RunExplanationOut(run_id=run_id, attempt=int(run_row["attempt"]), customer_id=customer_id,
                                 stored_rows=len(result.stored), mismatches=result.mismatches, verdict=lines[-1],
                                 models=out, missing=missing)

    # -- monitoring ----------------------------------------------------------------------
    @route("get", "/monitoring/runs", audit, response_model=list[MonitoredRun], tags=["monitoring"])
    def monitoring_runs(limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[MonitoredRun]:
        """Monitored scoring runs, latest as-of first: per model the score PSI, alert and attribution shift."""
        from monitoring.report import MODEL_ORDER, monitored_runs

        with gate.open() as wh:
            frame = monitored_runs(wh)
        out = []
        for (run_id, attempt, as_of), part in frame.groupby(["run_id", "attempt", "as_of"], sort=False):
            part = part.assign(_order=part["model"].map(lambda m: MODEL_ORDER.index(m) if m in MODEL_ORDER else 99))
            found = _monitoring_rows(MonitoredModel, part.sort_values(["_order", "model"]))
            when = [plain(v) for v in part["monitored_at"]]
            out.append(MonitoredRun(run_id=str(run_id), attempt=int(attempt), as_of=_as_date(as_of),
                                    alert=any(m.alert for m in found),
                                    monitored_at=max((w for w in when if w is not None), default=None),
                                    models=found))
            if len(out) == limit:
                break
        return out

    @route("get", "/monitoring/runs/{run_id}", audit, response_model=MonitoredRunDetail, tags=["monitoring"])
    def monitoring_run(run_id: Annotated[str, PathParam(min_length=1, max_length=100)]) -> MonitoredRunDetail:
        """One monitored run's rows: feature drift, prediction drift (with score bins), attribution shares, and
        its alert lines and data checks."""
        from monitoring.report import run_tables

        with gate.open() as wh:
            rows = run_tables(wh, run_id)  # NotMonitored: 404
        first = rows["predictions"] if len(rows["predictions"]) else rows["features"]
        return MonitoredRunDetail(
            run_id=run_id, attempt=int(first["attempt"].iloc[0]), as_of=_as_date(first["as_of"].iloc[0]),
            features=_monitoring_rows(FeatureDriftRow, rows["features"]),
            predictions=_monitoring_rows(PredictionDriftRow, rows["predictions"]),
            attributions=_monitoring_rows(AttributionRow, rows["attributions"]),
            checks=_monitoring_rows(CheckRow, rows["checks"]))

    @route("get", "/monitoring/performance", audit, response_model=list[PerformanceRow], tags=["monitoring"])
    def monitoring_performance(
        model: Annotated[Literal["churn", "response", "value"] | None, Query(description="Only this model's rows.")] = None,
        run_id: Annotated[str | None, Query(min_length=1, max_length=100, description="Only this run's rows.")] = None,
    ) -> list[PerformanceRow]:
        """Realised, estimated and model-card performance per run, model and segment (by as-of)."""
        from monitoring.report import performance_rows

        with gate.open() as wh:
            return _monitoring_rows(PerformanceRow, performance_rows(wh, model, run_id))

    @route("get", "/monitoring/report", audit, response_class=HTMLResponse, tags=["monitoring"],
           responses={200: {"content": {"text/html": {}}, "description": "The monitoring report."}})
    def monitoring_report(
        run_id: Annotated[str | None, Query(min_length=1, max_length=100,
                                            description="A monitored run (default: the latest monitored one).")] = None,
    ) -> HTMLResponse:
        """The monitoring report of a run: one self-contained HTML page (inline SVG charts, no script)."""
        from monitoring.report import report_html

        with gate.open() as wh:
            return HTMLResponse(report_html(wh, run_id, cfg.monitoring))

    # -- the web page --------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", headers=_PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    return app


# The page loads nothing from elsewhere; model cards are shown in a sandboxed frame.
# Its Content-Security-Policy and the other security headers: serving/security.py (every response).
_PAGE_HEADERS = {"Cache-Control": "no-store"}

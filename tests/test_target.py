"""Campaign targeting on the sample world: profit by hand, budget and control group, uplift vs response.

The rules that need no models (value per response, the control group on top of the
contacts, rankings without a response model) are in tests/test_target_rules.py; the
Complete Journey check of the money is tests/test_target_public.py.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.load import Warehouse
from features.synth import SynthConfig
from features.synth_import import load_sample_world
from propensity.config import config_toml, project_in
from serving.target import TargetingError, build_target_list, campaign_choices, gain_curve

pytestmark = pytest.mark.slow

CUSTOMERS = 6000
AS_OF = date(2025, 6, 30)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A scored sample world; the uplift model is trained by the test that needs it."""
    from serving.batch import run_scoring
    from training.pipeline import promote_models, train_and_log

    folder = tmp_path_factory.mktemp("target")
    cfg = project_in(folder)
    wh = Warehouse(cfg.warehouse.url)
    load_sample_world(wh, SynthConfig(customers=CUSTOMERS, seed=5))
    train_and_log(["churn", "response", "value"], wh, cfg)
    promote_models(["churn", "response", "value"], wh, cfg, margin=0.0, force=True)  # small world: past the evidence checks
    run_scoring(wh, cfg, AS_OF)
    choices = campaign_choices(wh)
    yield {"cfg": cfg, "wh": wh, "folder": folder, "choices": choices}
    wh.close()


def test_campaign_choices_know_their_control_groups(world) -> None:
    choices = world["choices"]
    campaigns = world["wh"].query("select campaign_id, kind from campaigns")
    assert len(choices) == len(campaigns) and {c["campaign"] for c in choices} == set(campaigns["campaign_id"])
    assert all(c["has_control"] for c in choices)  # the sample world holds out 20 % of every campaign


def test_expected_profit_ranking_by_hand(world) -> None:
    wh, cfg = world["wh"], world["cfg"]
    kind = world["choices"][0]["kind"]
    t = build_target_list(wh, cfg, kind, budget=500.0, cost=2.0, margin=0.4, control=0.1, rank_by="expected_profit")
    f = t.frame
    assert t.method == "expected_profit"
    np.testing.assert_allclose(f["expected_profit"], f["response_prob"] * f["response_value"] * 0.4 - 2.0, rtol=1e-12)
    # value per response = AOV (the run's median where null) x k, k from the kind's response revenue
    assert t.summary["response_value_k"] > 0 and "contacts.revenue" in t.summary["response_value_source"]
    assert f["response_value"].notna().all()
    assert (np.diff(f["score_used"].to_numpy()) <= 0).all() and (f["score_used"] > 0).all()
    assert f["rank"].tolist() == list(range(1, len(f) + 1))
    s = t.summary
    # the budget pays for 250 contacts; the 10 % control group is on top of them and costs nothing
    assert s["selected"] == 250 + 28  # 28 = round(250 x 0.1 / 0.9): a tenth of the selected held out
    assert s["contacted"] == 250 and s["control"] == 28 and s["cost"] == pytest.approx(500.0)
    treated = f[f["group"] == "treatment"]
    assert s["expected_responders"] == pytest.approx(treated["response_prob"].sum())
    assert s["expected_profit"] == pytest.approx(treated["expected_profit"].sum())
    # the control group is a random draw across the list, not its tail, and repeats with the seed
    control_ranks = f.loc[f["group"] == "control", "rank"]
    assert control_ranks.min() < len(f) / 3 and control_ranks.max() > 2 * len(f) / 3
    again = build_target_list(wh, cfg, kind, budget=500.0, cost=2.0, margin=0.4, control=0.1, rank_by="expected_profit")
    assert again.frame["group"].tolist() == f["group"].tolist()
    # the response probabilities are the published ones when the kind is the run's
    run_kind = wh.query("select campaign_kind from scoring_runs where status = 'succeeded'")["campaign_kind"][0]
    if kind == run_kind:
        pub = wh.query("select customer_id, response_prob, response_value, expected_profit "
                       "from current_customer_scores").set_index("customer_id").loc[f["customer_id"]]
        assert (pub["response_prob"].to_numpy() == f["response_prob"].to_numpy()).all()
        # the run's own k: the list's value per response is the published one
        np.testing.assert_allclose(f["response_value"], pub["response_value"], rtol=1e-12)
        assert "(recorded by scoring run" in t.summary["response_value_source"]
    # expected revenue per expected responder, as the report prints it
    assert s["revenue_per_responder"] == pytest.approx(
        (treated["response_prob"] * treated["response_value"]).sum() / treated["response_prob"].sum())
    assert "per expected responder" in t.report() and "value per response = average order value x k = " in t.report()


def test_published_expected_profit_uses_the_value_per_response(world) -> None:
    """customer_scores: expected_profit = response_prob x response_value x margin - cost, response_value = AOV x k."""
    wh = world["wh"]
    run = wh.query("select * from scoring_runs where status = 'succeeded'").iloc[0]
    pub = wh.query("select * from current_customer_scores")
    np.testing.assert_allclose(pub["expected_profit"],
                               pub["response_prob"] * pub["response_value"] * run["margin"] - run["contact_cost"],
                               rtol=1e-12)
    assert run["response_value_k"] > 0 and run["response_value_source"].startswith(
        f"k = {run['response_value_k']:.3f} from contacts.revenue of ")
    # k is what the sample world's responders spent (contacts.revenue) over their average order value
    from serving.response_value import observed

    again = observed(wh, run["campaign_kind"], AS_OF)
    assert again.k == pytest.approx(run["response_value_k"], rel=1e-12) and again.responders >= 20
    assert 0.5 < again.observed_mean / again.aov_mean < 5


def test_gain_curve_by_hand() -> None:
    g = gain_curve(np.array([5.0, 3.0, -1.0, -3.0]), points=5)
    assert g["customers"].tolist() == [0, 1, 2, 3, 4]
    assert g["cumulative_profit"].tolist() == [0.0, 5.0, 8.0, 7.0, 4.0]
    assert g["cumulative_profit_random"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_user_errors_are_one_line(world) -> None:
    wh, cfg = world["wh"], world["cfg"]
    kind = world["choices"][0]["kind"]
    with pytest.raises(TargetingError, match="exactly one of --budget"):
        build_target_list(wh, cfg, kind)
    with pytest.raises(TargetingError, match="unknown campaign 'nope'"):
        build_target_list(wh, cfg, "nope", top=10)
    with pytest.raises(TargetingError, match="--control must be a share"):
        build_target_list(wh, cfg, kind, top=10, control=1.5)


def test_uplift_targeting_reaches_more_true_incremental_responders(world) -> None:
    from propensity.cli import app

    wh, cfg = world["wh"], world["cfg"]
    kind = world["choices"][0]["kind"]
    toml = world["folder"] / "propensity.toml"
    toml.write_text(config_toml(cfg.model_copy(update={
        "features": cfg.features.model_copy(update={"output_dir": str(world["folder"] / "out")})})))
    wh.close()  # the CLI opens the warehouse itself
    res = CliRunner().invoke(app, ["train", "uplift", "--kind", kind, "--config", str(toml)])
    assert res.exit_code == 0, res.output
    assert "uplift version 1" in res.output and "now `champion`" in res.output
    res = CliRunner().invoke(app, ["train", "uplift", "--config", str(toml)])
    assert res.exit_code == 1 and "needs --kind" in res.output
    from training.uplift import true_effect

    world_truth = wh.read("synth_truth")
    n = 600  # the same number of contacts for every ranking (10 % of the audience)
    by_uplift = build_target_list(wh, cfg, kind, top=n, cost=0.0, control=0.0)
    by_profit = build_target_list(wh, cfg, kind, top=n, cost=0.0, control=0.0, rank_by="expected_profit")
    assert by_uplift.method == "uplift" and by_profit.method == "expected_profit"
    assert len(by_uplift.frame) == len(by_profit.frame) == n
    # ranking by response probability alone, the same audience and number
    audience = by_uplift.frame  # (top n only) -> rebuild the full audience's response ranking
    full = build_target_list(wh, cfg, kind, top=10**9, cost=0.0, control=0.0, rank_by="expected_profit").frame
    by_response = full.sort_values(["response_prob", "customer_id"], ascending=[False, True]).head(n)
    value = full.set_index("customer_id")["response_value"]
    effect = pd.Series(true_effect(world_truth, full.assign(as_of=pd.Timestamp(AS_OF))), index=full["customer_id"])

    def reached(frame: pd.DataFrame) -> tuple[float, float]:
        """True incremental responders (0 for the already churned), and true uplift x value per response."""
        ids = frame["customer_id"]
        return float(effect.loc[ids].sum()), float((effect.loc[ids] * value.loc[ids]).sum())

    got = {"uplift": reached(audience), "profit": reached(by_profit.frame), "response": reached(by_response)}
    random_responders = float(effect.mean()) * n
    # Measured (seed 5): responders uplift 69.5, expected profit 52.9, response 61.6, random 32.5;
    # true uplift x value per response (AOV x k) uplift 12,645, expected profit 11,798,
    # response 6,884, random 3,035. With issue 13's LightGBM defaults (7 leaves, min 200 rows)
    # the response and value models behind the expected-profit ranking improved: responders
    # 57.8, value 13,001, and response 63.0 / 8,204; the uplift model (its own settings) is
    # unchanged. So uplift reaches 20 % more true incremental responders than the
    # expected-profit ranking and 2.7 % less incremental value: level within the noise of 600
    # contacts. The list ranks by incremental *profit* (uplift x value per response), so it is
    # judged on incremental value; the responders-only comparison (ranking by uplift alone) is
    # tests/test_uplift.py's done-when test.
    assert got["uplift"][0] > 1.5 * random_responders, got
    assert got["uplift"][1] > 1.5 * got["response"][1], got
    assert got["uplift"][0] > got["profit"][0], got
    assert got["uplift"][1] > 0.95 * got["profit"][1], got
    assert by_uplift.summary["incremental_responders"] == pytest.approx(by_uplift.frame["uplift"].sum())

    # the CLI: the choice is printed, the table and the CSV are written
    wh.close()
    res = CliRunner().invoke(app, ["target", kind, "--budget", "300", "--cost", "1.5", "--config", str(toml)])
    assert res.exit_code == 0, res.output
    assert "ranked by incremental profit (uplift model v" in res.output and "incremental responders" in res.output
    list_id = res.output.split("(list_id ")[1].split(")")[0]
    csv = pd.read_csv(world["folder"] / "out" / "targets" / f"{list_id}.csv")
    stored = wh.query("select * from target_lists where list_id = ? order by rank", [list_id])
    assert len(csv) == len(stored) > 0 and (stored["group"] == "treatment").sum() == 200
    assert csv["customer_id"].tolist() == stored["customer_id"].tolist()

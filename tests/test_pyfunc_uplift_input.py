"""The registered uplift pyfunc reads the feature file as `propensity features build` writes it.

The same case as tests/test_pyfunc_input.py, for `uplift`: counts and days come out of
the feature SQL as int64 (nullable Int64 where they can be missing) and MLflow's schema
check refused int64 where the inferred signature said double. The uplift pyfunc now
casts its input itself and is logged without an input schema.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.load import Warehouse
from features.snapshots import write_features
from features.synth import SynthConfig
from features.synth_import import load_sample_world
from propensity.cli import app
from propensity.config import Config
from training.feature_sets import model_input

SCORE_AS_OF = date(2025, 4, 1)
# The smallest sample world (seed 1) whose email campaigns give every part of the uplift
# split both groups and both outcomes (400 customers leave the tune control rows without
# a responder); small trees and few rounds keep the fit to about a second.
CUSTOMERS = 1000
TINY = {"num_leaves": 4, "min_child_samples": 10, "max_rounds": 30}


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A tiny uplift model trained, logged and registered by `train_uplift`, and two feature files."""
    import mlflow

    from training.uplift import train_uplift

    folder = tmp_path_factory.mktemp("pyfunc_uplift")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)  # the CLI below reads the default config: warehouse and MLflow store here
        cfg = Config(lightgbm={"num_threads": 1})
        wh = Warehouse(cfg.warehouse.url)
        load_sample_world(wh, SynthConfig(customers=CUSTOMERS, seed=1))
        outcome = train_uplift(wh, cfg, "email", overrides=TINY)
        write_features(wh, SCORE_AS_OF, cfg.features, folder / "snapshot.parquet")  # the scorer's file
        wh.close()
        res = CliRunner().invoke(app, ["features", "build", "--as-of", SCORE_AS_OF.isoformat(),
                                       "--out", "features.parquet"])
        assert res.exit_code == 0, res.output
        pyfunc = mlflow.pyfunc.load_model(f"models:/uplift/{outcome.version.version}")
        yield {"model": outcome.result.model, "pyfunc": pyfunc, "folder": folder}


@pytest.mark.parametrize("file", ["features.parquet", "snapshot.parquet"])
def test_uplift_pyfunc_scores_the_feature_file_as_written(logged, file: str) -> None:
    model, pyfunc = logged["model"], logged["pyfunc"]
    frame = pd.read_parquet(logged["folder"] / file)
    dtypes = {c: str(frame[c].dtype) for c in model.numeric}
    # the case at issue: integer columns, as the feature SQL types them
    assert {"recency_days", "tenure_days"} <= {c for c, t in dtypes.items() if t == "int64"}
    if file == "features.parquet":  # pandas keeps nullable integers through its own Parquet
        assert "Int64" in dtypes.values()
    assert all(str(frame[c].dtype) == "str" for c in model.categorical)
    assert "customer_id" in frame.columns  # extra columns are ignored

    via_pyfunc = np.asarray(pyfunc.predict(frame))
    floats = model_input(frame, model.numeric, model.categorical)
    assert (floats.dtypes[model.numeric] == "float64").all()
    native = model.predict_uplift(floats)  # the model fitted in this process, on the float frame
    assert via_pyfunc.shape == (len(frame),) and np.unique(native).size > 10
    assert np.array_equal(via_pyfunc, native)
    # the float frame (what training logs as its example) still works, in any column order
    assert np.array_equal(np.asarray(pyfunc.predict(floats[floats.columns[::-1]])), native)


def test_uplift_pyfunc_refuses_missing_features_and_text_numbers(logged) -> None:
    pyfunc = logged["pyfunc"]
    frame = pd.read_parquet(logged["folder"] / "features.parquet").head(20)
    with pytest.raises(ValueError, match="lacks columns: recency_days"):
        pyfunc.predict(frame.drop(columns=["recency_days"]))
    bad = frame.assign(tenure_days=frame["tenure_days"].astype(str).where(frame.index != 3, "long"))
    with pytest.raises(ValueError, match="not numbers: tenure_days"):
        pyfunc.predict(bad)
    # numbers sent as text are numbers
    as_text = frame.assign(tenure_days=frame["tenure_days"].astype(str))
    assert np.array_equal(np.asarray(pyfunc.predict(as_text)), np.asarray(pyfunc.predict(frame)))


def test_uplift_logged_signature_has_no_input_schema(logged) -> None:
    meta = logged["pyfunc"].metadata
    assert meta.get_input_schema() is None  # MLflow would refuse int64 where it says double
    assert meta.get_output_schema() is not None
    assert meta.metadata["features"] == {"numeric": logged["model"].numeric,
                                         "categorical": logged["model"].categorical}

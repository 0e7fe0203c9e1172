"""The registered pyfunc reads the feature file as `propensity features build` writes it.

Counts and days come out of the feature SQL as int64 (nullable Int64 where they can be
missing) and categories as text; MLflow's schema check refused int64 where the signature
said double. The pyfunc now casts its input itself (numbers to float64, categories to
text, in the model's order) and is logged without an input schema.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.load import Warehouse
from features.snapshots import build_features, write_features
from features.synth import SynthConfig
from features.synth_import import load_sample_world
from propensity.cli import app
from propensity.config import Config
from training.feature_sets import feature_lists, model_input
from training.models import LgbmModel, LgbmParams
from training.track import configure, log_model_run

TRAIN_AS_OF, TUNE_AS_OF, SCORE_AS_OF = date(2024, 10, 1), date(2025, 1, 1), date(2025, 4, 1)


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A tiny value model logged and registered as training does, and two feature files."""
    import mlflow

    folder = tmp_path_factory.mktemp("pyfunc")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)  # the CLI below reads the default config: warehouse and MLflow store here
        cfg = Config(lightgbm={"num_threads": 1})
        wh = Warehouse(cfg.warehouse.url)
        load_sample_world(wh, SynthConfig(customers=400, seed=1))
        train = build_features(wh, TRAIN_AS_OF, cfg.features)
        tune = build_features(wh, TUNE_AS_OF, cfg.features)
        write_features(wh, SCORE_AS_OF, cfg.features, folder / "snapshot.parquet")  # the scorer's file
        wh.close()
        numeric, categorical = feature_lists("value", train)
        model = LgbmModel("tweedie", numeric, categorical, LgbmParams(max_rounds=30, min_child_samples=10),
                          num_threads=1, seed=7)
        model.fit(train, train["label_value"].to_numpy(), tune, tune["label_value"].to_numpy())
        experiment = configure(cfg.mlflow, cfg.training.experiment)
        example = model_input(train.head(5), numeric, categorical)  # as training.pipeline logs it
        version = log_model_run("value", model, example, {"rows": len(train)}, {}, {}, {}, experiment)
        res = CliRunner().invoke(app, ["features", "build", "--as-of", SCORE_AS_OF.isoformat(),
                                       "--out", "features.parquet"])
        assert res.exit_code == 0, res.output
        pyfunc = mlflow.pyfunc.load_model(f"models:/value/{version.version}")
        yield {"model": model, "pyfunc": pyfunc, "folder": folder}


@pytest.mark.parametrize("file", ["features.parquet", "snapshot.parquet"])
def test_pyfunc_scores_the_feature_file_as_written(logged, file: str) -> None:
    model, pyfunc = logged["model"], logged["pyfunc"]
    frame = pd.read_parquet(logged["folder"] / file)
    dtypes = {c: str(frame[c].dtype) for c in model.numeric}
    # the case at issue: integer columns, as the feature SQL types them
    assert {"recency_days", "frequency_365d", "tenure_days"} <= {c for c, t in dtypes.items() if t == "int64"}
    if file == "features.parquet":  # pandas keeps nullable integers through its own Parquet
        assert "Int64" in dtypes.values()
    assert all(str(frame[c].dtype) == "str" for c in model.categorical)
    assert "customer_id" in frame.columns  # extra columns are ignored

    via_pyfunc = np.asarray(pyfunc.predict(frame))
    floats = model_input(frame, model.numeric, model.categorical)
    assert (floats.dtypes[model.numeric] == "float64").all()
    native = model.predict(floats)  # the model fitted in this process, on the float frame
    assert via_pyfunc.shape == (len(frame),) and np.unique(native).size > 10
    assert np.array_equal(via_pyfunc, native)
    # the float frame (what training logs as its example) still works, in any column order
    assert np.array_equal(np.asarray(pyfunc.predict(floats[floats.columns[::-1]])), native)


def test_pyfunc_refuses_missing_features_and_text_numbers(logged) -> None:
    model, pyfunc = logged["model"], logged["pyfunc"]
    frame = pd.read_parquet(logged["folder"] / "features.parquet").head(20)
    with pytest.raises(ValueError, match="lacks columns: recency_days"):
        pyfunc.predict(frame.drop(columns=["recency_days"]))
    bad = frame.assign(frequency_365d=frame["frequency_365d"].astype(str).where(frame.index != 3, "many"))
    with pytest.raises(ValueError, match="not numbers: frequency_365d"):
        pyfunc.predict(bad)
    # numbers sent as text are numbers
    as_text = frame.assign(frequency_365d=frame["frequency_365d"].astype(str))
    assert np.array_equal(np.asarray(pyfunc.predict(as_text)), np.asarray(pyfunc.predict(frame)))


def test_logged_signature_has_no_input_schema(logged) -> None:
    meta = logged["pyfunc"].metadata
    assert meta.get_input_schema() is None  # MLflow would refuse int64 where it says double
    assert meta.get_output_schema() is not None
    assert meta.metadata["features"] == {"numeric": logged["model"].numeric,
                                         "categorical": logged["model"].categorical}

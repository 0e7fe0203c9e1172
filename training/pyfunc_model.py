"""The logged MLflow model, as code: booster + category maps + feature order + calibration.

MLflow loads this file when a registered model is opened (`models:/churn@champion`); it
is never imported by the project itself. Logging the model as code, rather than as a
pickled object, keeps what is stored readable and free of pickled code.

Input: the feature frame exactly as `propensity features build` (or a scoring snapshot)
writes it, with integer columns as int64 / int32 or nullable Int64 and categories as
text, or the same columns already as `training.feature_sets.model_input` shapes them.
`predict` (`training.feature_sets.checked_model_input`) picks the model's features in its
own order (extra columns are ignored), casts numbers to float64 and categories to text,
and refuses a missing feature or text that is not a number in a numeric column. MLflow cannot do this check for us: its schema check
refuses int64 where a signature says double, so the model is logged with an output-only
signature (`training.track.log_model_run`) and the check lives here.
"""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
import pandas as pd

from training.feature_sets import checked_model_input
from training.models import LgbmModel


class PropensityModel(mlflow.pyfunc.PythonModel):
    """Returns calibrated probabilities (churn, response) or expected values (value)."""

    def load_context(self, context: Any) -> None:
        self.model = LgbmModel.load(context.artifacts["booster"], context.artifacts["meta"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        return self.model.predict(checked_model_input(model_input, self.model.numeric, self.model.categorical))


mlflow.models.set_model(PropensityModel())

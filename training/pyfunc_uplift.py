"""The logged MLflow uplift model, as code: returns P(resp | treated) - P(resp | control).

MLflow loads this file when `models:/uplift@champion` is opened; the project never
imports it (see training/pyfunc_model.py for why models are logged as code).

Input: the feature file exactly as `propensity features build` (or a scoring snapshot)
writes it, with integer columns as int64 / int32 or nullable Int64 and categories as
text, or the same columns already as `training.feature_sets.model_input` shapes them.
`predict` (`training.feature_sets.checked_model_input`, as in training/pyfunc_model.py) picks the model's features in its own order
(extra columns are ignored), casts numbers to float64 and categories to text, and
refuses a missing feature or text that is not a number in a numeric column; MLflow's
schema check would refuse int64 where a signature says double, so the model is logged
with an output-only signature (`training.uplift._log_and_register`).
"""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
import pandas as pd

from training.feature_sets import checked_model_input
from training.uplift import UpliftModel


class UpliftPyfunc(mlflow.pyfunc.PythonModel):
    """The uplift of each row, from the sub-models stored under the `uplift` artifact."""

    def load_context(self, context: Any) -> None:
        self.model = UpliftModel.load(context.artifacts["uplift"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        return self.model.predict_uplift(checked_model_input(model_input, self.model.numeric, self.model.categorical))


mlflow.models.set_model(UpliftPyfunc())

"""The logged MLflow uplift model, as code: returns P(resp | treated) - P(resp | control).

MLflow loads this file when `models:/uplift@champion` is opened; the project never
imports it (see training/pyfunc_model.py for why models are logged as code).
"""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
import pandas as pd

from training.uplift import UpliftModel


class UpliftPyfunc(mlflow.pyfunc.PythonModel):
    """The uplift of each row, from the sub-models stored under the `uplift` artifact."""

    def load_context(self, context: Any) -> None:
        self.model = UpliftModel.load(context.artifacts["uplift"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        return self.model.predict_uplift(model_input)


mlflow.models.set_model(UpliftPyfunc())

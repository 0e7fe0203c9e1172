"""The logged MLflow model, as code: booster + category maps + feature order + calibration.

MLflow loads this file when a registered model is opened (`models:/churn@champion`); it
is never imported by the project itself. Logging the model as code, rather than as a
pickled object, keeps what is stored readable and free of pickled code.
"""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
import pandas as pd

from training.models import LgbmModel


class PropensityModel(mlflow.pyfunc.PythonModel):
    """Returns calibrated probabilities (churn, response) or expected values (value)."""

    def load_context(self, context: Any) -> None:
        self.model = LgbmModel.load(context.artifacts["booster"], context.artifacts["meta"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        return self.model.predict(model_input)


mlflow.models.set_model(PropensityModel())

"""Population stability: how far a run's distribution of one feature (or score) has moved
from the reference saved at training time.

Bins come from the reference only (`training.profile`), so a later run is always measured
on the same cut.

PSI = sum over bins of (a - e) * ln(a / e), with e and a the reference and current
shares; a share of 0 is raised to `SHARE_FLOOR` first, so a bin that empties or appears
adds a large but finite term. Common reading: below 0.1 stable, 0.1-0.25 a moderate
shift, above 0.25 a large one (the thresholds are settings of `[monitoring]`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.profile import Bins, shares

SHARE_FLOOR = 1e-4


def psi(expected: np.ndarray, actual: np.ndarray, floor: float = SHARE_FLOOR) -> float:
    """Population stability index of two share vectors over the same bins (0: identical)."""
    e = np.maximum(np.asarray(expected, dtype=float), floor)
    a = np.maximum(np.asarray(actual, dtype=float), floor)
    if e.shape != a.shape:
        raise ValueError(f"{e.size} reference bins against {a.size} current bins")
    return float(np.sum((a - e) * np.log(a / e)))


def column_psi(bins: Bins, values: pd.Series | np.ndarray) -> float:
    """PSI of `values` against the reference shares stored in `bins`."""
    return psi(np.asarray(bins.reference), shares(bins, values))

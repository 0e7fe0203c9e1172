"""Fault injection for the crash and concurrency tests, shared by every stage.

`PROPENSITY_FAILPOINT=<name>` makes the process SIGKILL itself when it reaches
`failpoint("<name>")` (a real kill, at a known moment); `<name>:stop` makes it SIGSTOP
itself there (holding whatever it holds) until sent SIGCONT. Unset in normal use, where a
failpoint costs one environment lookup.

Named points:
- scoring (serving.sink, serving.batch): `publish:<table>`, `publish:before-commit`,
  `staged-chunk`.
- training (training.track): `train:run-started` (the MLflow run exists, nothing logged
  yet), `train:model-logged` (the model is logged, the card is not),
  `train:card-logged` (every artifact is logged, the run is still open),
  `train:run-finished` (the run is FINISHED, no version registered yet),
  `train:registered` (the version exists and is `challenger`, not yet tagged complete).
"""

from __future__ import annotations

import os
import signal

FAILPOINT_ENV = "PROPENSITY_FAILPOINT"


def failpoint(name: str) -> None:
    """Die (SIGKILL) or stop (SIGSTOP) here when the environment asks for it (tests only)."""
    wanted = os.environ.get(FAILPOINT_ENV, "")
    if wanted == name:
        os.kill(os.getpid(), signal.SIGKILL)
    elif wanted == f"{name}:stop":
        os.kill(os.getpid(), signal.SIGSTOP)

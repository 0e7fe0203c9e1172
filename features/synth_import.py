"""Load the generated sample world into a warehouse, checked like any other source."""

from __future__ import annotations

from collections.abc import Callable

from features.importer import Conformed, conform, write_imports
from features.load import Warehouse
from features.schema import TABLES
from features.synth import SampleWorld, SynthConfig, generate


def conform_world(world: SampleWorld) -> list[Conformed]:
    """Conform each of the world's five tables (the world lies in the past: no row is future)."""
    return [conform(frame, TABLES[name], source="sample world") for name, frame in world.tables().items()]


def load_sample_world(
    warehouse: Warehouse, config: SynthConfig, progress: Callable[[str], None] | None = None
) -> list[Conformed]:
    """Generate the world, check it against the contract and write it with its truth.

    Args:
        warehouse: the target; the five canonical tables, `synth_truth` and `synth_drift`
            (the injected drift, empty without) are replaced.
        config: size, seed, dates and drift of the world.
        progress: called with a short message at each stage.

    Returns:
        The conformed tables (their summaries say what was loaded).
    """
    world = generate(config, progress=progress)
    if progress is not None:
        progress("checking the tables against the input contract")
    results = conform_world(world)
    write_imports(warehouse, results)
    with warehouse.transaction() as tx:
        tx.replace("synth_truth", world.truth)
        tx.replace("synth_drift", world.drift_frame())
    return results

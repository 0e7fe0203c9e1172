"""Check the generated sample world against the input contract, like any other source."""

from __future__ import annotations

from features.importer import Conformed, conform
from features.schema import TABLES
from features.synth import SampleWorld


def conform_world(world: SampleWorld) -> list[Conformed]:
    """Conform each of the world's five tables (the world lies in the past: no row is future)."""
    return [conform(frame, TABLES[name], source="sample world") for name, frame in world.tables().items()]

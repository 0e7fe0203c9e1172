"""Adapters for the public data sets in ../shared/data, read in place (never copied).

Each adapter module maps one publisher's files onto the canonical tables and documents
what it maps and what is lost; `import_public` runs one and writes all its tables in
one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from features.importer import Conformed, ImportRefused, write_imports
from features.load import Warehouse
from features.sources import cdnow, complete_journey, hillstrom, ifood, online_retail, telco

log = logging.getLogger(__name__)

ADAPTERS: dict[str, Callable[[Path], list[Conformed]]] = {
    "online_retail": online_retail.load,
    "cdnow": cdnow.load,
    "complete_journey": complete_journey.load,
    "ifood": ifood.load,
    "hillstrom": hillstrom.load,
    "telco": telco.load,
}

# adapter name -> the folder it ships in under ../shared/data, for messages
FOLDERS: dict[str, str] = {
    "online_retail": online_retail.FOLDER,
    "cdnow": cdnow.FOLDER,
    "complete_journey": complete_journey.FOLDER,
    "ifood": ifood.FOLDER,
    "hillstrom": hillstrom.FOLDER,
    "telco": telco.FOLDER,
}


def import_public(warehouse: Warehouse, name: str, path: Path) -> list[Conformed]:
    """Read public data set `name` from `path` and write all its tables in one transaction.

    Args:
        warehouse: the target warehouse; the set's tables (and their `rejected_*`
            tables) replace any that exist.
        name: one of `ADAPTERS`.
        path: the data set's folder (e.g. ../shared/data/online_retail) or, where the
            adapter allows, one of its files.

    Returns:
        The conformed tables, as written.

    Raises:
        ImportRefused: unknown name, or a path that does not hold the set's files
            (nothing is written).
    """
    adapter = ADAPTERS.get(name)
    if adapter is None:
        raise ImportRefused(
            f"unknown public data set {name!r}; choose one of: {', '.join(ADAPTERS)}"
        )
    path = Path(path)
    if not path.exists():
        raise ImportRefused(
            f"{name}: {path} does not exist; pass the {FOLDERS[name]} folder of the public data"
        )
    results = adapter(path)  # refuses a path without the set's files before reading data
    write_imports(warehouse, results)
    for r in results:
        log.info("%s", r.summary())
        for note in r.notes:
            log.info("%s: %s", r.table.name, note)
    return results

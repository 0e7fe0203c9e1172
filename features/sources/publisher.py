"""A publisher's files, read in place: find them, read them, check their columns.

Shared by the adapters of this package; nothing here knows about one data set. Every
problem a user can cause (wrong folder, wrong file, a file without the publisher's
columns) is an `ImportRefused` with a one-line message that says what to pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time
from pathlib import Path

import numpy as np
import pandas as pd

from features.importer import ImportRefused, read_source


def find_file(path: Path, *, data_set: str, folder: str, files: Sequence[str]) -> Path:
    """The publisher's file: `path/files[0]` for a folder, or `path` if it is one of `files`.

    Args:
        path: what the user passed: the data set's folder or one of its files.
        data_set: the adapter's name, for messages.
        folder: the folder name the data set ships in, for messages.
        files: the file names this adapter reads; the first is the folder's default.

    Returns:
        The file to read.
    """
    path = Path(path)
    if path.is_dir():
        default = path / files[0]
        if default.is_file():
            return default
        raise ImportRefused(
            f"{data_set}: {path} holds no {files[0]}; pass the {folder} folder "
            f"or one of its files ({', '.join(files)})"
        )
    if path.is_file() and path.name in files:
        return path
    what = "does not exist" if not path.exists() else "is not one of the data set's files"
    raise ImportRefused(
        f"{data_set}: {path} {what}; pass the {folder} folder or one of its files "
        f"({', '.join(files)})"
    )


def find_folder(path: Path, *, data_set: str, folder: str, files: Sequence[str]) -> dict[str, Path]:
    """The publisher's files in the folder `path`, by file name; refuse if any is missing.

    Args:
        path: the data set's folder (a file inside it is refused: the set needs all files).
        data_set: the adapter's name, for messages.
        folder: the folder name the data set ships in, for messages.
        files: the file names this adapter reads.

    Returns:
        file name -> path.
    """
    path = Path(path)
    if not path.is_dir():
        raise ImportRefused(
            f"{data_set}: {path} is not a folder; pass the {folder} folder "
            f"(it must hold {', '.join(files)})"
        )
    missing = [f for f in files if not (path / f).is_file()]
    if missing:
        raise ImportRefused(f"{data_set}: {path} lacks {', '.join(missing)}; pass the {folder} folder")
    return {f: path / f for f in files}


def read_publisher_file(path: Path, columns: Sequence[str], *, data_set: str) -> pd.DataFrame:
    """Read one of the publisher's files as it is and check that it has `columns`.

    Args:
        path: the file.
        columns: the publisher's column names the adapter needs.
        data_set: the adapter's name, for messages.

    Returns:
        The rows as read, every column the file has, in the file's order.
    """
    frame = read_source(path)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ImportRefused(
            f"{data_set}: {path} has no column {', '.join(map(repr, missing))}; "
            f"pass the publisher's file (columns {', '.join(columns)})"
        )
    return frame


def source_label(path: Path) -> str:
    """`folder/file`: readable in reports and in the `source_file` of rejected rows."""
    return f"{path.parent.name}/{path.name}"


def row_identity(frame: pd.DataFrame) -> pd.Series:
    """One integer per distinct row, equal for rows that agree in every column (nulls too).

    Passed to `conform(duplicate_key=...)` so that exact duplicates are judged on the
    publisher's row as read, not on the frame with derived columns.
    """
    if frame.empty:
        return pd.Series(np.zeros(0, dtype="int64"), index=frame.index)
    return frame.groupby(list(frame.columns), dropna=False, sort=False).ngroup()


def end_of_day(day: date) -> datetime:
    """The last microsecond of `day`: a period that ends on a date includes that day."""
    return datetime.combine(day, time.max)

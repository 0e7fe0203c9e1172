"""Bring source rows into the canonical tables, quarantining rows that break the contract.

Three steps, each a plain function:
1. `read_source`: a CSV or Parquet file as it is (CSV: every value as text).
2. `conform`: map columns, parse values, decide per row: accepted, or rejected with a
   reason. A column that mostly fails to parse means a wrong file or format: the whole
   file is refused (`ImportRefused`) instead of quarantining most of it.
3. `write_imports`: accepted rows to `<table>`, rejected rows (as read, plus the reason)
   to `rejected_<table>`, every table of one import in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from features.load import Warehouse
from features.schema import Column, Table

_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n"}


_REJECT_META = ("reject_reason", "source_row", "source_file")


class ImportRefused(ValueError):
    """The whole file cannot be imported; the message says what to change."""


@dataclass
class Conformed:
    """The outcome of checking one source frame against one canonical table."""

    table: Table
    accepted: pd.DataFrame
    rejected: pd.DataFrame  # source columns as text + reject_reason + source_row
    rows_read: int
    source: str
    notes: list[str] = field(default_factory=list)

    @property
    def reject_counts(self) -> dict[str, int]:
        if self.rejected.empty:
            return {}
        return {str(k): int(v) for k, v in self.rejected["reject_reason"].value_counts().items()}

    def summary(self) -> str:
        """One line: rows read, loaded, rejected by reason."""
        line = (
            f"{self.table.name}: {self.rows_read:,} rows read from {self.source}, "
            f"{len(self.accepted):,} loaded, {len(self.rejected):,} rejected"
        )
        if self.reject_counts:
            parts = ", ".join(f"{k} {v:,}" for k, v in sorted(self.reject_counts.items()))
            line += f" ({parts}) -> rejected_{self.table.name}"
        if "customer_id" in self.accepted.columns:
            line += f"; {self.accepted['customer_id'].nunique():,} customers"
        return line


# -- 1. reading ------------------------------------------------------------------------
def read_source(path: Path, delimiter: str = ",") -> pd.DataFrame:
    """Read a CSV (all values as text) or Parquet file; refuse empty or unreadable files.

    Args:
        path: the file.
        delimiter: the CSV field separator.

    Returns:
        The rows as read.
    """
    if not path.exists():
        raise ImportRefused(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise ImportRefused(f"{path}: the file is empty")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif suffix in {".csv", ".txt", ".tsv"}:
            frame = pd.read_csv(
                path,
                dtype=str,
                keep_default_na=False,
                na_values=[""],
                sep="\t" if suffix == ".tsv" else delimiter,
            )
        else:
            raise ImportRefused(f"{path}: unknown file type {suffix!r}; use .csv or .parquet")
    except ImportRefused:
        raise
    except pd.errors.EmptyDataError:
        raise ImportRefused(f"{path}: the file is empty") from None
    except Exception as e:  # noqa: BLE001 - any parser failure is the file's fault here
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ImportRefused(f"{path}: cannot read the file ({first})") from None
    if frame.empty:
        raise ImportRefused(f"{path}: the file has a header but no rows")
    return frame


# -- 2. conforming ---------------------------------------------------------------------
def _parse_timestamp(values: pd.Series, fmt: str | None) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(values):
        out = values
        if getattr(out.dt, "tz", None) is not None:
            out = out.dt.tz_convert("UTC").dt.tz_localize(None)
        return out.astype("datetime64[us]")
    text = values.astype("string").str.strip()
    parsed = pd.to_datetime(text, format=fmt or "ISO8601", errors="coerce")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed.astype("datetime64[us]")


def _parse_number(values: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.astype("float64")
    return pd.to_numeric(values.astype("string").str.strip(), errors="coerce").astype("float64")


def _parse_bool(values: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(values):
        return values.astype("boolean")
    text = values.astype("string").str.strip().str.lower()
    out = pd.Series(pd.NA, index=values.index, dtype="boolean")
    out[text.isin(_TRUE).fillna(False)] = True
    out[text.isin(_FALSE).fillna(False)] = False
    return out


def _parse_id(values: pd.Series) -> pd.Series:
    if pd.api.types.is_float_dtype(values):
        # ids that went through a float (12345.0) are still the integer id
        whole = values.notna() & (values == np.floor(values))
        text = values.astype("string")
        text[whole] = values[whole].astype("int64").astype("string")
        values = text
    text = values.astype("string").str.strip()
    return text.mask(text == "")


def _conform_column(
    col: Column, raw: pd.Series, fmt: str | None
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Parse one column; return (values, missing mask, unparsable mask)."""
    present = raw.notna()
    if raw.dtype == object or pd.api.types.is_string_dtype(raw):
        present &= raw.astype("string").str.strip().fillna("") != ""
    if col.kind == "id":
        values = _parse_id(raw)
        bad = pd.Series(False, index=raw.index)
    elif col.kind == "timestamp":
        values = _parse_timestamp(raw, fmt)
        bad = present & values.isna()
    elif col.kind in ("number", "integer"):
        values = _parse_number(raw)
        bad = present & values.isna()
        if col.kind == "integer":
            fractional = values.notna() & (values != np.floor(values))
            bad |= fractional
            if col.value_range is not None:
                lo, hi = col.value_range
                bad |= values.notna() & ((values < lo) | (values > hi))
    elif col.kind == "bool":
        values = _parse_bool(raw)
        bad = present & values.isna()
    else:  # text
        values = raw.astype("string").str.strip()
        values = values.mask(values == "")
        if col.allowed is not None:
            values = values.str.lower()
            bad = present & ~values.isin(col.allowed).fillna(False)
        else:
            bad = pd.Series(False, index=raw.index)
    missing = ~present
    return values, missing, bad.fillna(False).astype(bool)


def _resolve_mapping(
    table: Table, source_columns: list[str], mapping: Mapping[str, str], source: str
) -> dict[str, str]:
    """canonical name -> source column, checking that every required column is there."""
    for canonical, src in mapping.items():
        if canonical not in table.names and not table.keep_extra_columns:
            raise ImportRefused(
                f"{source}: --map {canonical}={src}: {table.name} has no column {canonical!r} "
                f"(columns: {', '.join(table.names)})"
            )
        if src not in source_columns:
            raise ImportRefused(
                f"{source}: --map {canonical}={src}: the file has no column {src!r} "
                f"(it has: {', '.join(source_columns)})"
            )
    resolved: dict[str, str] = {}
    for col in table.columns:
        src = mapping.get(col.name, col.name)
        if src in source_columns:
            resolved[col.name] = src
        elif col.required:
            raise ImportRefused(
                f"{source}: required column {col.name!r} is missing from {table.name}; "
                f"add it or map it with --map {col.name}=YOUR_COLUMN "
                f"(the file has: {', '.join(source_columns)})"
            )
    return resolved


def conform(
    raw: pd.DataFrame,
    table: Table,
    *,
    mapping: Mapping[str, str] | None = None,
    source: str = "frame",
    timestamp_format: str | None = None,
    max_unparsable_share: float = 0.05,
    extracted_at: datetime | None = None,
    duplicate_key: pd.Series | pd.DataFrame | None = None,
) -> Conformed:
    """Check `raw` against `table`: canonical columns and types, rows accepted or rejected.

    Args:
        raw: the source rows as read (its columns are the source's names).
        table: the canonical table to fill.
        mapping: canonical column -> source column, for names that differ.
        source: a label for messages (usually the file name).
        timestamp_format: strftime format of text timestamps; None means ISO 8601.
        max_unparsable_share: refuse the file when more than this share of a column's
            non-empty values cannot be parsed (a wrong format rather than bad rows).
        extracted_at: the end of the file; rows dated after it are rejected. None: now.
        duplicate_key: optional per-row key used instead of the whole row to judge exact
            duplicates (adapters that read several source tables pass the source row).

    Returns:
        Accepted rows in canonical form and rejected rows as read, with reasons.
    """
    mapping = dict(mapping or {})
    cols = _resolve_mapping(table, list(raw.columns), mapping, source)
    if extracted_at is None:
        extracted_at = datetime.now(timezone.utc).replace(tzinfo=None)
    n = len(raw)
    reason = pd.Series(pd.NA, index=raw.index, dtype="string")
    out: dict[str, pd.Series] = {}

    def flag(mask: pd.Series, why: str) -> None:
        fresh = mask & reason.isna()
        reason[fresh] = why

    for col in table.columns:
        if col.name not in cols:
            continue
        values, missing, bad = _conform_column(col, raw[cols[col.name]], timestamp_format)
        present = int((~missing).sum())
        if present and bad.sum() / present > max_unparsable_share:
            example = raw.loc[bad, cols[col.name]].iloc[0]
            what = {
                "timestamp": "timestamps" + (f" in format {timestamp_format!r}" if timestamp_format else " (ISO 8601)"),
                "number": "numbers",
                "integer": "whole numbers" + (f" in {col.value_range[0]}-{col.value_range[1]}" if col.value_range else ""),
                "bool": "true/false values",
                "text": f"one of {', '.join(col.allowed or ())}",
            }[col.kind]
            hint = "set [import] timestamp_format, " if col.kind == "timestamp" else ""
            raise ImportRefused(
                f"{source}: {int(bad.sum()):,} of {present:,} values in column "
                f"{cols[col.name]!r} ({table.name}.{col.name}) are not {what}, "
                f"e.g. {str(example)!r}; fix the file, {hint}or map another column"
            )
        if col.fill is not None:
            values = values.fillna(col.fill)
        elif col.required:
            flag(missing, f"missing {col.name}")
        flag(bad, f"bad {col.name}")
        out[col.name] = values

    for name in table.timestamp_columns_checked_for_future:
        if name in out:
            flag(out[name] > pd.Timestamp(extracted_at), f"{name} after file end")

    key = duplicate_key if duplicate_key is not None else raw
    flag(key.duplicated(keep="first"), "exact duplicate")

    accepted_mask = reason.isna().to_numpy()
    frame = pd.DataFrame(index=raw.index)
    for col in table.columns:
        if col.name in out:
            frame[col.name] = out[col.name]
        else:
            frame[col.name] = _empty_like(col, n, raw.index)
    if table.keep_extra_columns:
        used = set(cols.values())
        for src in raw.columns:
            if src not in used and src not in frame.columns:
                frame[src] = raw[src].astype("string")
    accepted = frame.loc[accepted_mask].reset_index(drop=True)
    accepted = _finish_types(accepted, table)

    rejected = raw.loc[~accepted_mask].astype("string")
    # A source column may carry one of our bookkeeping names: keep it, renamed.
    rejected = rejected.rename(columns={c: f"source_{c}" for c in _REJECT_META if c in rejected.columns})
    rejected.insert(0, "reject_reason", reason[~accepted_mask].astype("string"))
    rejected.insert(1, "source_row", (np.flatnonzero(~accepted_mask) + 1).astype("int64"))
    rejected.insert(2, "source_file", source)
    rejected = rejected.reset_index(drop=True)
    return Conformed(table, accepted, rejected, n, source)


def _empty_like(col: Column, n: int, index: pd.Index) -> pd.Series:
    """An all-null column of the right type for an optional column the source lacks."""
    dtype = {
        "id": "string",
        "text": "string",
        "timestamp": "datetime64[us]",
        "number": "float64",
        "integer": "Int64",
        "bool": "boolean",
    }[col.kind]
    return pd.Series(None, index=index, dtype=dtype)


def _finish_types(frame: pd.DataFrame, table: Table) -> pd.DataFrame:
    for col in table.columns:
        s = frame[col.name]
        if col.kind == "integer" and col.required:
            frame[col.name] = s.astype("int64")
        elif col.kind == "integer":
            frame[col.name] = s.astype("Int64")
        elif col.kind == "bool" and col.required:
            frame[col.name] = s.astype(bool)
        elif col.kind in ("id", "text"):
            frame[col.name] = s.astype("string")
    if table.name == "transactions":
        # Without order ids an order is a customer-day.
        no_order = frame["order_id"].isna()
        if no_order.any():
            day = frame.loc[no_order, "ts"].dt.strftime("%Y-%m-%d")
            frame.loc[no_order, "order_id"] = frame.loc[no_order, "customer_id"] + "@" + day
    return frame


# -- 3. writing ------------------------------------------------------------------------
def write_imports(warehouse: Warehouse, results: list[Conformed], append: bool = False) -> None:
    """Write accepted and rejected rows of every result in one transaction.

    Args:
        warehouse: the target warehouse.
        results: the conformed tables.
        append: add to the existing tables instead of replacing them.
    """
    with warehouse.transaction() as tx:
        for r in results:
            write = tx.append if append else tx.replace
            write(r.table.name, r.accepted)
            write(f"rejected_{r.table.name}", r.rejected)


def import_file(
    warehouse: Warehouse,
    table: Table,
    path: Path,
    *,
    mapping: Mapping[str, str] | None = None,
    timestamp_format: str | None = None,
    max_unparsable_share: float = 0.05,
    delimiter: str = ",",
    extracted_at: datetime | None = None,
    append: bool = False,
) -> Conformed:
    """Read, check and load one file into `table`; nothing is written if anything fails."""
    raw = read_source(path, delimiter)
    result = conform(
        raw,
        table,
        mapping=mapping,
        source=path.name,
        timestamp_format=timestamp_format,
        max_unparsable_share=max_unparsable_share,
        extracted_at=extracted_at,
    )
    write_imports(warehouse, [result], append=append)
    return result

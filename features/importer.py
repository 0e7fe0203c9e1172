"""Bring source rows into the canonical tables, quarantining rows that break the contract.

Four steps, each a plain function:
1. `probe_source`: cheap checks before any parsing: the path is a readable regular file,
   its type and encoding, and its header (at most `MAX_COLUMNS` columns, no name twice).
2. `read_source`: the probed file as it is (CSV: every value as text).
3. `conform`: map columns, parse values, decide per row: accepted, or rejected with a
   reason. A column that mostly fails to parse means a wrong file or format: the whole
   file is refused (`ImportRefused`) instead of quarantining most of it.
4. `write_imports`: accepted rows to `<table>`, rejected rows (as read, plus the reason)
   to `rejected_<table>` and one row per table to `import_log`, all in one transaction.

`import_file` runs them for one user file and adds the checks that need the warehouse:
a file already imported into the table is refused with --append, rows already in the
table go to `rejected_<table>`, and a file none of whose rows would load is refused.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import errno
import hashlib
import os
import re
import stat
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from features.load import TableWriter, Warehouse
from features.schema import Column, Table

_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n"}

_REJECT_META = ("reject_reason", "source_row", "source_file")

MAX_COLUMNS = 2_000  # a wider file is refused from its header, before its rows are parsed
_HEAD_BYTES = 1 << 20  # the header line must end within the first MiB
_LISTED = 20  # messages name at most this many columns
_CONTROL = r"[\x00-\x1f\x7f]"  # control characters: never part of an id or a label
IN_TABLE = "duplicate of a row already in the table"

IMPORT_LOG = "import_log"
IMPORT_LOG_COLUMNS = {  # name -> pandas dtype; one row per table written by one import
    "imported_at": "datetime64[us]",  # UTC, the same for every table of one import
    "table_name": "string",
    "mode": "string",  # replace | append
    "source_file": "string",  # file name (or source label), as in rejected_<table>.source_file
    "file_sha256": "string",  # null for sources that are not one file
    "file_bytes": "Int64",
    "rows_read": "int64",
    "rows_loaded": "int64",
    "rows_rejected": "int64",
}

# File signatures that are not CSV text, and what to do about them.
_MAGIC = (
    (b"\x1f\x8b", "gzip-compressed; decompress it first (gunzip)"),
    (b"PK\x03\x04", "a ZIP archive or an Excel workbook; unzip it, or export the sheet as CSV"),
    (b"PAR1", "a Parquet file; give it the .parquet extension"),
    (b"\xd0\xcf\x11\xe0", "an old Excel/Office file; export the sheet as CSV"),
    (b"\xfd7zXZ\x00", "xz-compressed; decompress it first (unxz)"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed; decompress it first (unzstd)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive; extract it first"),
    (b"%PDF-", "a PDF document; export the data as CSV"),
)
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_EXCEL = {".xlsx", ".xls", ".xlsm", ".ods"}
_COMPRESSED = {".gz", ".zip", ".bz2", ".xz", ".zst", ".7z"}


class ImportRefused(ValueError):
    """The whole file cannot be imported; the message says what to change."""


def _short(value: object, width: int = 60) -> str:
    text = str(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _names(names: Sequence[object], limit: int = _LISTED, width: int = 40) -> str:
    """`a, b, c` for messages: at most `limit` names (each cut to `width`), then `and N more`."""
    shown = ", ".join(_short(n, width) for n in names[:limit])
    rest = len(names) - limit
    return shown + (f" and {rest:,} more" if rest > 0 else "")


@dataclass(frozen=True)
class SourceFile:
    """The file an import read: recorded in `import_log` to recognise a re-import."""

    name: str
    sha256: str
    size: int


@dataclass
class Conformed:
    """The outcome of checking one source frame against one canonical table."""

    table: Table
    accepted: pd.DataFrame
    rejected: pd.DataFrame  # source columns as text + reject_reason + source_row
    rows_read: int
    source: str
    notes: list[str] = field(default_factory=list)
    accepted_positions: np.ndarray | None = None  # where each accepted row is in the source frame
    file: SourceFile | None = None  # set for file imports: the import log records its hash

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


# -- 1. probing ------------------------------------------------------------------------
@dataclass(frozen=True)
class Probe:
    """What the cheap checks learned about a file: its kind, size and column names."""

    path: Path
    kind: str  # "csv" | "parquet"
    size: int
    columns: list[str]
    delimiter: str


def probe_source(path: Path, delimiter: str = ",") -> Probe:
    """Check a file without parsing its rows; refuse it in one line if it cannot be imported.

    Looks at the path (a readable regular file: not a folder, FIFO, device, symlink loop),
    the first bytes (compressed, binary, UTF-16) and the header line or Parquet schema
    (at most `MAX_COLUMNS` columns, no name twice, a plausible delimiter). Never blocks on
    a FIFO and never reads more than the first MiB of a CSV.

    Args:
        path: the file.
        delimiter: the CSV field separator (a .tsv file is always tab-separated).

    Returns:
        The file's kind, size and column names.
    """
    path = Path(path)
    size = _regular_file_size(path)
    suffix = path.suffix.lower()
    if suffix not in {".csv", ".txt", ".tsv", ".parquet"}:
        hint = ("export the sheet as CSV" if suffix in _EXCEL
                else "decompress it first" if suffix in _COMPRESSED else "use .csv or .parquet")
        raise ImportRefused(f"{path}: unknown file type {_short(suffix, 20)!r}; {hint}")
    if size == 0:
        raise ImportRefused(f"{path}: the file is empty")
    head = _read_head(path)
    if suffix == ".parquet":
        columns = _parquet_columns(path, head)
        sep = delimiter
    else:
        sep = "\t" if suffix == ".tsv" else delimiter
        columns = _csv_header(path, head, sep, size)
    _check_columns(path, columns, suffix == ".parquet")
    return Probe(path, "parquet" if suffix == ".parquet" else "csv", size, columns, sep)


def _regular_file_size(path: Path) -> int:
    """The size of `path` if it is a regular file (symlinks followed); refuse anything else."""
    try:
        st = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise ImportRefused(
                f"{path}: broken symlink (it points to {_short(os.readlink(path))}, which does not exist)"
            ) from None
        raise ImportRefused(f"{path}: file not found") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ImportRefused(f"{path}: symlink loop (the link leads back to itself); pass the real file") from None
        if e.errno == errno.EACCES:
            raise ImportRefused(f"{path}: permission denied on a folder of the path") from None
        if e.errno == errno.ENOTDIR:
            raise ImportRefused(f"{path}: file not found (a part of the path is a file, not a folder)") from None
        raise ImportRefused(f"{path}: cannot access the file ({e.strerror or e})") from None
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        raise ImportRefused(f"{path}: is a folder, not a file; pass one .csv or .parquet file")
    if stat.S_ISFIFO(mode):
        raise ImportRefused(f"{path}: is a FIFO (named pipe), not a regular file; write the data to a file first")
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        raise ImportRefused(f"{path}: is a device, not a regular file; pass a .csv or .parquet file")
    if stat.S_ISSOCK(mode):
        raise ImportRefused(f"{path}: is a socket, not a regular file; pass a .csv or .parquet file")
    if not stat.S_ISREG(mode):
        raise ImportRefused(f"{path}: is not a regular file; pass a .csv or .parquet file")
    return st.st_size


def _read_head(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(_HEAD_BYTES)
    except PermissionError:
        raise ImportRefused(f"{path}: cannot read the file: permission denied; check its permissions") from None
    except OSError as e:
        raise ImportRefused(f"{path}: cannot read the file ({e.strerror or e})") from None


def _not_csv_text(path: Path, head: bytes) -> None:
    """Refuse compressed, binary and UTF-16 content, whatever the file is called."""
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise ImportRefused(f"{path}: the file is {what}")
    if head.startswith(_UTF16_BOMS):
        raise ImportRefused(f"{path}: the file is UTF-16 text; save it as UTF-8 (e.g. iconv -f UTF-16 -t UTF-8)")


def _csv_header(path: Path, head: bytes, sep: str, size: int) -> list[str]:
    """The column names of a CSV's header line, read from the first MiB only."""
    _not_csv_text(path, head)
    body = head.removeprefix(codecs.BOM_UTF8)
    text = body.lstrip(b"\r\n")  # the parser skips leading blank lines too
    number = 1 + body[: len(body) - len(text)].count(b"\n")  # the header's line number
    if not text.strip():
        if size <= len(head):
            raise ImportRefused(f"{path}: the file holds only blank lines")
        raise ImportRefused(f"{path}: the first MiB of the file is blank; a CSV starts with a header line")
    end = text.find(b"\n")
    if end < 0 and size > len(head):  # no line break in the first MiB
        seen = text.count(sep.encode()) + 1
        if seen > MAX_COLUMNS:
            raise ImportRefused(
                f"{path}: the header has {seen:,} columns in its first MiB alone; "
                f"an import reads at most {MAX_COLUMNS:,}: is this the right file?"
            )
        raise ImportRefused(
            f"{path}: the first line is longer than 1 MiB; a CSV starts with a header line of column names"
        )
    line = text[: end if end >= 0 else len(text)].rstrip(b"\r")
    if b"\x00" in line:
        if max(line[0::2].count(0), line[1::2].count(0)) > len(line) // 4:
            raise ImportRefused(f"{path}: the file looks UTF-16 encoded; save it as UTF-8")
        raise ImportRefused(f"{path}: the file holds binary data (NUL bytes in its first line), not CSV text")
    control = re.search(rb"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]", line)
    if control:
        raise ImportRefused(
            f"{path}: the file holds binary data (byte 0x{control.group()[0]:02x} in its first line), not CSV text"
        )
    try:
        decoded = line.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ImportRefused(_not_utf8(path, number, line[e.start])) from None
    try:
        if len(sep) == 1:
            names = next(csv.reader([decoded], delimiter=sep), [])
        else:
            names = decoded.split(sep)
    except csv.Error as e:
        raise ImportRefused(f"{path}: cannot read the header line ({_short(e, 100)})") from None
    if len(names) == 1:
        for other, label in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe"), (",", "comma")):
            if other != sep and other in names[0]:
                raise ImportRefused(
                    f"{path}: the header is one column {_short(names[0])!r}; the file looks {label}-separated: "
                    f"set csv_delimiter = {other!r} under [import] in propensity.toml"
                )
    return names


def _parquet_columns(path: Path, head: bytes) -> list[str]:
    """The column names from a Parquet file's footer (no row is read)."""
    import pyarrow.parquet as pq

    if not head.startswith(b"PAR1"):
        _not_csv_text(path, head)
        looks_text = not re.search(rb"[\x00-\x08\x0e-\x1f]", head[:4096])
        hint = "it looks like text: if it is a CSV, give it the .csv extension" if looks_text else "export it again"
        raise ImportRefused(f"{path}: not a Parquet file (it does not start with PAR1); {hint}")
    try:
        schema = pq.read_schema(path)
    except Exception as e:  # noqa: BLE001 - any footer problem is the file's fault
        raise ImportRefused(f"{path}: the Parquet file is truncated or corrupt ({_first_line(e)}); export it again") from None
    return list(schema.names)


def _check_columns(path: Path, columns: list[str], parquet: bool) -> None:
    if len(columns) > MAX_COLUMNS:
        raise ImportRefused(
            f"{path}: the file has {len(columns):,} columns; an import reads at most {MAX_COLUMNS:,}: "
            f"is this the right file{'' if parquet else ' (and the right delimiter)'}?"
        )
    # empty names (a trailing delimiter in the header) are numbered by the parser instead
    counts = Counter(name for name in columns if str(name).strip())
    twice = [f"{_short(name, 40)!r} ({n} times)" for name, n in counts.items() if n > 1]
    if twice:
        raise ImportRefused(
            f"{path}: duplicated column names: {_names(twice, width=60)}; rename or drop the copies"
        )


def _not_utf8(path: Path, line: int, byte: int) -> str:
    where = f"line {line:,} is" if line else "the file is"
    return (f"{path}: {where} not UTF-8 text (byte 0x{byte:02x}); save the file as UTF-8 "
            "(e.g. iconv -f latin1 -t utf-8 for Latin-1/Windows-1252 files)")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return _short(text.splitlines()[0] if text else type(error).__name__, 160)


# -- 2. reading ------------------------------------------------------------------------
def read_source(path: Path, delimiter: str = ",") -> pd.DataFrame:
    """Read a CSV (all values as text) or Parquet file; refuse empty or unreadable files.

    Args:
        path: the file.
        delimiter: the CSV field separator.

    Returns:
        The rows as read.
    """
    return _read(probe_source(path, delimiter))


def _read(probe: Probe) -> pd.DataFrame:
    """Parse a probed file; every parser failure becomes a one-line `ImportRefused`."""
    path = probe.path
    try:
        if probe.kind == "parquet":
            frame = pd.read_parquet(path)
        else:
            with warnings.catch_warnings():
                # a first row with more fields than the header: an error, not lost fields
                warnings.simplefilter("error", pd.errors.ParserWarning)
                frame = pd.read_csv(
                    path,
                    dtype=str,
                    keep_default_na=False,
                    na_values=[""],
                    sep=probe.delimiter,
                    index_col=False,
                    encoding="utf-8",
                    engine="c" if len(probe.delimiter) == 1 else "python",
                )
    except pd.errors.EmptyDataError:
        raise ImportRefused(f"{path}: the file is empty") from None
    except UnicodeDecodeError as e:
        line, byte = _first_invalid_utf8(path) or (0, e.object[e.start])
        raise ImportRefused(_not_utf8(path, line, byte)) from None
    except pd.errors.ParserWarning:
        raise ImportRefused(
            f"{path}: the first data line has more fields than the header's {len(probe.columns):,}; "
            f"quote values that contain {probe.delimiter!r}, or check [import] csv_delimiter"
        ) from None
    except Exception as e:  # noqa: BLE001 - any parser failure is the file's fault here
        raise ImportRefused(f"{path}: {_parser_message(e, probe)}") from None
    if frame.empty:
        raise ImportRefused(f"{path}: the file has {'no rows' if probe.kind == 'parquet' else 'a header but no rows'}")
    return frame


def _parser_message(error: Exception, probe: Probe) -> str:
    text = str(error)
    fields = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if fields:
        want, line, saw = (int(g) for g in fields.groups())
        return (f"line {line:,} has {saw:,} fields but the header has {want:,}; quote values that "
                f"contain {probe.delimiter!r}, or check [import] csv_delimiter")
    quote = re.search(r"EOF inside string starting at row (\d+)", text)
    if quote:
        return (f"a quoted value starting on line {int(quote.group(1)) + 1:,} is never closed "
                "(a \" without its closing \"); fix the quoting")
    what = "the Parquet file" if probe.kind == "parquet" else "the file"
    return f"cannot read {what} ({_first_line(error)})"


def _first_invalid_utf8(path: Path) -> tuple[int, int] | None:
    """(line number, byte) of the first byte that is not UTF-8; read only after a decode error."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as e:
                return number, line[e.start]
    return None


# -- 3. conforming ---------------------------------------------------------------------
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


def _has_control(values: pd.Series) -> pd.Series:
    """True where a text value holds a control character (NUL, tab, newline, ...)."""
    return values.str.contains(_CONTROL, regex=True).fillna(False).astype(bool)


def _conform_column(
    col: Column, raw: pd.Series, fmt: str | None
) -> tuple[pd.Series, pd.Series, list[tuple[str, pd.Series]]]:
    """Parse one column; return (values, missing mask, [(reject reason, mask), ...]).

    The masks mark present values that break the contract, most specific reason first;
    values under a mask are not to be loaded.
    """
    present = raw.notna()
    if raw.dtype == object or pd.api.types.is_string_dtype(raw):
        present &= raw.astype("string").str.strip().fillna("") != ""
    problems: list[tuple[str, pd.Series]] = []
    if col.kind == "id":
        values = _parse_id(raw)
        problems.append((f"control character in {col.name}", _has_control(values)))
    elif col.kind == "timestamp":
        values = _parse_timestamp(raw, fmt)
        problems.append((f"bad {col.name}", present & values.isna()))
    elif col.kind in ("number", "integer"):
        values = _parse_number(raw)
        infinite = pd.Series(np.isinf(values.to_numpy()), index=raw.index)
        values = values.mask(infinite)
        bad = present & values.isna() & ~infinite
        if col.kind == "integer":
            bad |= values.notna() & (values != np.floor(values))
            if col.value_range is not None:
                lo, hi = col.value_range
                bad |= values.notna() & ((values < lo) | (values > hi))
        problems += [(f"infinite {col.name}", infinite), (f"bad {col.name}", bad)]
    elif col.kind == "bool":
        values = _parse_bool(raw)
        problems.append((f"bad {col.name}", present & values.isna()))
    else:  # text
        values = raw.astype("string").str.strip()
        values = values.mask(values == "")
        problems.append((f"control character in {col.name}", _has_control(values)))
        if col.allowed is not None:
            values = values.str.lower()
            problems.append((f"bad {col.name}", present & ~values.isin(col.allowed).fillna(False)))
    missing = ~present
    return values, missing, [(why, mask.fillna(False).astype(bool)) for why, mask in problems]


def _with_products(
    raw: pd.DataFrame, table: Table, mapping: Mapping[str, str], source: str
) -> pd.DataFrame:
    """`raw` plus a column for each mapping that multiplies source columns (amount=Quantity*UnitPrice).

    The new column is named as the mapping reads it and holds the product where every factor is
    a number, nothing where a factor is empty, and the factors' text ('x*2.5') where one is not
    a number, so the number check rejects that row (or refuses the file) as for any column. A
    mapped name that is a column of the file is that column, even with a `*` in it.

    Raises:
        ImportRefused: a product for a column that is not a number, or a factor the file lacks.
    """
    products = {c: src for c, src in mapping.items() if "*" in src and src not in raw.columns}
    if not products:
        return raw
    kinds = {col.name: col.kind for col in table.columns}
    added: dict[str, pd.Series] = {}
    for canonical, expr in products.items():
        factors = [f.strip() for f in expr.split("*")]
        where = f"--map {canonical}={_short(expr, 40)}"
        if kinds.get(canonical) not in ("number", "integer"):
            raise ImportRefused(
                f"{source}: {where}: only a number column can be a product of columns; "
                f"{table.name}.{_short(canonical, 40)} is not one"
            )
        if len(factors) < 2 or not all(factors):
            raise ImportRefused(f"{source}: {where}: write a product as COLUMN*COLUMN, e.g. amount=Quantity*UnitPrice")
        for f in factors:
            if f not in raw.columns:
                raise ImportRefused(
                    f"{source}: {where}: the file has no column {_short(f, 40)!r} (it has: {_names(list(raw.columns))})"
                )
        texts = [raw[f].astype("string").str.strip().mask(lambda t: t == "") for f in factors]
        numbers = [_parse_number(raw[f]) for f in factors]
        product = numbers[0].copy()
        for n in numbers[1:]:
            product = product * n
        empty = np.logical_or.reduce([t.isna().to_numpy() for t in texts])
        not_number = ~empty & np.logical_or.reduce([n.isna().to_numpy() for n in numbers])
        out = product.astype(object).where(~empty, None)
        if not_number.any():
            joined = texts[0].fillna("")
            for t in texts[1:]:
                joined = joined + "*" + t.fillna("")
            out[not_number] = joined[not_number].astype(object)
        added[expr] = out
    return raw.assign(**added)


def _resolve_mapping(
    table: Table, source_columns: list[str], mapping: Mapping[str, str], source: str
) -> dict[str, str]:
    """canonical name -> source column, checking that every required column is there."""
    for canonical, src in mapping.items():
        if canonical not in table.names and not table.keep_extra_columns:
            raise ImportRefused(
                f"{source}: --map {canonical}={_short(src, 40)}: {table.name} has no column {_short(canonical, 40)!r} "
                f"(columns: {_names(table.names)})"
            )
        if src not in source_columns:
            raise ImportRefused(
                f"{source}: --map {canonical}={_short(src, 40)}: the file has no column {_short(src, 40)!r} "
                f"(it has: {_names(source_columns)})"
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
                f"(the file has: {_names(source_columns)})"
            )
    read_by: dict[str, str] = {}
    for canonical, src in resolved.items():
        if src in read_by:
            raise ImportRefused(
                f"{source}: {read_by[src]} and {canonical} would both be read from column {_short(src, 40)!r}; "
                f"map each canonical column to a column of its own"
            )
        read_by[src] = canonical
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
    source_rows = raw  # as read: what rejected rows and duplicates are judged on
    raw = _with_products(raw, table, mapping, source)
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
        values, missing, problems = _conform_column(col, raw[cols[col.name]], timestamp_format)
        present = int((~missing).sum())
        if n and not present and col.required and col.fill is None:
            raise ImportRefused(
                f"{source}: column {_short(cols[col.name], 40)!r} ({table.name}.{col.name}) is empty in every row; "
                f"map the column that holds {col.name} with --map {col.name}=YOUR_COLUMN"
            )
        bad = np.logical_or.reduce([mask.to_numpy() for _, mask in problems])
        if present and bad.sum() / present > max_unparsable_share:
            example = raw.loc[bad, cols[col.name]].iloc[0]
            what = {
                "id": "ids without control characters",
                "timestamp": "timestamps" + (f" in format {timestamp_format!r}" if timestamp_format else " (ISO 8601)"),
                "number": "numbers",
                "integer": "whole numbers" + (f" in {col.value_range[0]}-{col.value_range[1]}" if col.value_range else ""),
                "bool": "true/false values",
                "text": (f"one of {', '.join(col.allowed)}" if col.allowed else "text") + " without control characters",
            }[col.kind]
            if col.kind in ("number", "integer") and problems[0][1].any():
                what = f"finite {what}"  # inf, -inf, 1e309
            hint = "pass --timestamp-format or set [import] timestamp_format, " if col.kind == "timestamp" else ""
            raise ImportRefused(
                f"{source}: {int(bad.sum()):,} of {present:,} values in column "
                f"{_short(cols[col.name], 40)!r} ({table.name}.{col.name}) are not {what}, "
                f"e.g. {_short(example)!r}; fix the file, {hint}or map another column"
            )
        if col.fill is not None:
            values = values.fillna(col.fill)
        elif col.required:
            flag(missing, f"missing {col.name}")
        for why, mask in problems:
            flag(mask, why)
        out[col.name] = values

    for name in table.timestamp_columns_checked_for_future:
        if name in out:
            flag(out[name] > pd.Timestamp(extracted_at), f"{name} after file end")

    key = duplicate_key if duplicate_key is not None else source_rows
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
    positions = np.flatnonzero(~accepted_mask)
    rejected = _rejected_rows(source_rows, positions, reason.iloc[positions], source)
    return Conformed(table, accepted, rejected, n, source, accepted_positions=np.flatnonzero(accepted_mask))


def _rejected_rows(raw: pd.DataFrame, positions: np.ndarray, reasons: pd.Series | str, source: str) -> pd.DataFrame:
    """The source rows at `positions`, as text, after reject_reason, source_row and source_file."""
    rejected = raw.iloc[positions].astype("string")
    # A source column may carry one of our bookkeeping names: keep it, renamed.
    rejected = rejected.rename(columns={c: f"source_{c}" for c in _REJECT_META if c in rejected.columns})
    why = reasons.astype("string").to_numpy() if isinstance(reasons, pd.Series) else reasons
    rejected.insert(0, "reject_reason", pd.array(np.broadcast_to(why, len(positions)), dtype="string"))
    rejected.insert(1, "source_row", (positions + 1).astype("int64"))
    rejected.insert(2, "source_file", source)
    return rejected.reset_index(drop=True)


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


# -- 4. writing ------------------------------------------------------------------------
def write_imports(warehouse: Warehouse, results: list[Conformed], append: bool = False) -> None:
    """Write accepted and rejected rows of every result, and the import log, in one transaction.

    Args:
        warehouse: the target warehouse.
        results: the conformed tables.
        append: add to the existing tables instead of replacing them.
    """
    log = _log_rows(results, "append" if append else "replace")
    with warehouse.transaction() as tx:
        for r in results:
            for name, frame in ((r.table.name, r.accepted), (f"rejected_{r.table.name}", r.rejected)):
                if append:
                    _append(warehouse, tx, name, frame)
                else:
                    tx.replace(name, frame)
        tx.append(IMPORT_LOG, log)


def _append(warehouse: Warehouse, tx: TableWriter, name: str, frame: pd.DataFrame) -> None:
    """Append `frame` to `name`; a table lacking some of its columns is rewritten with them.

    Rejected rows keep the source's own columns, and customer attributes are whatever
    the file has: a file laid out differently from earlier ones adds columns.
    """
    if warehouse.has(name):
        stored = warehouse.native_query(f'select * from "{name}" where 1 = 0').columns
        if not set(frame.columns) <= set(stored):
            tx.replace(name, pd.concat([warehouse.read(name), frame], ignore_index=True))
            return
    tx.append(name, frame)


def _log_rows(results: list[Conformed], mode: str) -> pd.DataFrame:
    """One `import_log` row per result, all stamped with the same UTC time."""
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    rows = [
        {
            "imported_at": now,
            "table_name": r.table.name,
            "mode": mode,
            "source_file": r.file.name if r.file else r.source,
            "file_sha256": r.file.sha256 if r.file else None,
            "file_bytes": r.file.size if r.file else None,
            "rows_read": r.rows_read,
            "rows_loaded": len(r.accepted),
            "rows_rejected": len(r.rejected),
        }
        for r in results
    ]
    frame = pd.DataFrame(rows, columns=list(IMPORT_LOG_COLUMNS))
    return frame.astype(IMPORT_LOG_COLUMNS)


def _fingerprint(path: Path) -> SourceFile:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return SourceFile(path.name, digest.hexdigest(), path.stat().st_size)


def _imports_in_table(warehouse: Warehouse, table: str, sha256: str) -> pd.DataFrame:
    """Logged imports of this content that the table still holds (since its last replace)."""
    if not (warehouse.has(IMPORT_LOG) and warehouse.has(table)):
        return pd.DataFrame(columns=list(IMPORT_LOG_COLUMNS))
    log = warehouse.native_query(
        f"select * from {IMPORT_LOG} where table_name = ? order by imported_at", [table]
    )
    replaced = np.flatnonzero(log["mode"].to_numpy() == "replace")
    if len(replaced):
        log = log.iloc[replaced[-1]:]
    return log[log["file_sha256"] == sha256]


def _rows_in_table(warehouse: Warehouse, table: str, accepted: pd.DataFrame) -> np.ndarray:
    """True for each accepted row equal, in every column, to a row the table already holds."""
    if accepted.empty or not warehouse.has(table):
        return np.zeros(len(accepted), dtype=bool)
    con = warehouse.duck()
    stored = {d[0] for d in con.execute(f'select * from "{table}" limit 0').description}
    if not set(accepted.columns) <= stored:  # a column the table lacks: no row can be equal
        return np.zeros(len(accepted), dtype=bool)
    same = " and ".join(
        'i."{0}" is not distinct from t."{0}"'.format(c.replace('"', '""')) for c in accepted.columns
    )
    con.register("_incoming_rows", accepted.assign(_position=np.arange(len(accepted))))
    try:
        found = con.execute(
            f'select i._position from _incoming_rows i where exists (select 1 from "{table}" t where {same})'
        ).fetchnumpy()["_position"]
    finally:
        con.unregister("_incoming_rows")
    mask = np.zeros(len(accepted), dtype=bool)
    mask[np.asarray(found, dtype="int64")] = True
    return mask


def _reject_accepted(result: Conformed, raw: pd.DataFrame, mask: np.ndarray, why: str) -> Conformed:
    """Move the accepted rows under `mask` to the rejected rows with reason `why`."""
    if not mask.any():
        return result
    positions = result.accepted_positions
    moved = _rejected_rows(raw, positions[mask], why, result.source)
    rejected = moved if result.rejected.empty else pd.concat([result.rejected, moved], ignore_index=True)
    rejected = rejected.sort_values("source_row", kind="stable", ignore_index=True)
    return dataclasses.replace(
        result,
        accepted=result.accepted.loc[~mask].reset_index(drop=True),
        rejected=rejected,
        accepted_positions=positions[~mask],
    )


def _refuse_if_nothing_loads(result: Conformed) -> None:
    if len(result.accepted) or not result.rows_read:
        return
    top = sorted(result.reject_counts.items(), key=lambda kv: (-kv[1], kv[0]))
    reasons = ", ".join(f"{why} {n:,}" for why, n in top[:3]) + (", ..." if len(top) > 3 else "")
    if top[0][0] == IN_TABLE:
        hint = "nothing new to append (--allow-reimport appends the rows again)"
    elif top[0][0].endswith("after file end"):
        hint = "set --extracted-at to the date the file was extracted"
    else:
        hint = "fix the file or its column mapping"
    raise ImportRefused(
        f"{result.source}: all {result.rows_read:,} rows would be rejected ({reasons}); "
        f"nothing was imported into {result.table.name}: {hint}"
    )


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
    allow_reimport: bool = False,
) -> Conformed:
    """Read, check and load one file into `table`; nothing is written if anything fails.

    Besides the file's own checks (`probe_source`, `conform`), refuses a file none of whose
    rows would load. With `append`, refuses a file whose content the import log says the
    table already holds, and rejects rows equal to a row already in the table as
    `IN_TABLE`; `allow_reimport` skips both (the user wants the rows twice). A replace
    import of the same content again is allowed, as any replace: the table then holds
    this file's rows only (a note says so).
    """
    path = Path(path)
    probe = probe_source(path, delimiter)
    file = _fingerprint(path)
    earlier = _imports_in_table(warehouse, table.name, file.sha256)
    if append and not allow_reimport and not earlier.empty:
        first = earlier.iloc[0]
        raise ImportRefused(
            f"{path.name}: the same content was already imported into {table.name} on "
            f"{pd.Timestamp(first['imported_at']):%Y-%m-%d %H:%M} UTC (as {_short(first['source_file'], 60)}); "
            "appending it again would double its rows; pass --allow-reimport to append it anyway"
        )
    raw = _read(probe)
    result = conform(
        raw,
        table,
        mapping=mapping,
        source=path.name,
        timestamp_format=timestamp_format,
        max_unparsable_share=max_unparsable_share,
        extracted_at=extracted_at,
    )
    if append and not allow_reimport:
        result = _reject_accepted(result, raw, _rows_in_table(warehouse, table.name, result.accepted), IN_TABLE)
    _refuse_if_nothing_loads(result)
    result = dataclasses.replace(result, file=file)
    if not earlier.empty and not append:
        when = pd.Timestamp(earlier.iloc[-1]["imported_at"])
        result.notes.append(f"the same content was already imported on {when:%Y-%m-%d %H:%M} UTC; "
                            f"{table.name} was replaced by it again and now holds this file's rows only")
    write_imports(warehouse, [result], append=append)
    return result

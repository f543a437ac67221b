"""Read MentalChat16K-shaped files (csv / json / jsonl / parquet, local or from the hub) into validated rows.

Every row keeps its source (interview / synthetic) and its row number, so any problem is reported as
``file, row, column``. The hub's default config merges both files without a source column, so each file
is fetched on its own (``hf_hub_download``, served from the local cache under ``HF_HUB_OFFLINE=1``) and
read by the same code as a local file: a local mirror with the hub's file names behaves identically.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mc16k.data.config import DataConfig, OnBadRow, OnMissingMarker
from mc16k.errors import BadInputError
from mc16k.jsonl import JsonlLineError, read_jsonl

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("instruction", "input", "output")
SUPPORTED_SUFFIXES = (".csv", ".json", ".jsonl", ".parquet")
MISSING_MARKERS = {"nan", "null", "none"}  # compared lower-cased, as the whole cell's text
_CSV_FIELD_LIMIT = 1 << 30  # the csv module's default (128 KiB) is too small for long transcripts


class DataValidationError(BadInputError):
    """A data file that cannot be used as configured; the message names file, row and column."""


@dataclass(frozen=True)
class Row:
    """One validated conversation pair."""

    source: str
    row: int  # 1-based data row in its file (header excluded; jsonl: line number)
    instruction: str
    input: str
    output: str


@dataclass(frozen=True)
class BadRow:
    file: str
    row: int
    column: str
    problem: str

    def describe(self) -> str:
        return f"{self.file}: row {self.row}, column {self.column!r}: {self.problem}"


@dataclass
class SourceRows:
    """What one file gave: its valid rows and the bad rows skipped (``on_bad_row=skip``)."""

    source: str
    file: str
    rows: list[Row] = field(default_factory=list)
    skipped: list[BadRow] = field(default_factory=list)


def resolve_files(cfg: DataConfig) -> dict[str, Path]:
    """Local path of each configured source's file: under ``cfg.root``, else fetched from ``cfg.hub_repo``."""
    unknown = [source for source in cfg.sources if source not in cfg.files]
    if unknown:
        raise DataValidationError(
            f"data.sources names {unknown} but data.files only maps {sorted(cfg.files)} to file names"
        )
    if cfg.root is not None:
        return {source: Path(cfg.root) / cfg.files[source] for source in cfg.sources}
    if cfg.hub_repo is None:
        raise DataValidationError("set data.root (a local dir) or data.hub_repo (a hub dataset id)")
    return {source: _hub_file(cfg, cfg.files[source]) for source in cfg.sources}


def _hub_file(cfg: DataConfig, filename: str) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(
            hf_hub_download(
                repo_id=cfg.hub_repo,
                filename=filename,
                repo_type="dataset",
                revision=cfg.hub_revision,
                cache_dir=cfg.hub_cache_dir,
            )
        )
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as err:
        raise DataValidationError(
            f"hub dataset {cfg.hub_repo}, file {filename}: cannot be fetched ({type(err).__name__}: {err}); "
            "offline, it must already be in the Hugging Face cache; or point data.root at a local copy, "
            "or use data=sample for the bundled sample"
        ) from err


def load_source(
    path: Path,
    source: str,
    on_bad_row: OnBadRow | str = OnBadRow.error,
    on_missing_marker: OnMissingMarker | str = OnMissingMarker.warn,
) -> SourceRows:
    """Validated rows of one file. A bad row raises, or with ``on_bad_row=skip`` is counted and skipped. A cell
    reading ``nan`` / ``null`` / ``None`` is warned about, kept, or made a bad row (``on_missing_marker``)."""
    result = SourceRows(source=source, file=str(path))
    marker_policy = OnMissingMarker(on_missing_marker)
    markers: list[BadRow] = []
    for row_number, record in _read_records(path):
        cells, problems = {}, []
        for column in REQUIRED_COLUMNS:
            value, problem = _check_cell(record, column)
            if problem is None and value.lower() in MISSING_MARKERS and marker_policy is not OnMissingMarker.keep:
                marker = BadRow(str(path), row_number, column, f"the cell reads {value!r}, a missing-value marker")
                if marker_policy is OnMissingMarker.bad_row:
                    problem = marker.problem
                else:
                    markers.append(marker)
            if problem is None:
                cells[column] = value
            else:
                problems.append(BadRow(str(path), row_number, column, problem))
        if not problems:
            result.rows.append(Row(source=source, row=row_number, **cells))
        elif OnBadRow(on_bad_row) is OnBadRow.skip:
            result.skipped.extend(problems[:1])
        else:
            raise DataValidationError(
                problems[0].describe() + " (set data.on_bad_row=skip to drop such rows and count them)"
            )
    if markers:
        log.warning(
            "%s: %d cells read like a missing-value marker and were kept as text, first: %s "
            "(data.on_missing_marker=bad_row treats them as bad rows, =keep keeps them silently)",
            path, len(markers), markers[0].describe(),
        )
    if result.skipped:
        log.warning(
            "%s: skipped %d bad rows, first: %s", path, len(result.skipped), result.skipped[0].describe()
        )
    if not result.rows:
        raise DataValidationError(f"{path}: no usable rows (source {source!r})")
    return result


def _check_cell(record: dict[str, Any], column: str) -> tuple[str, str | None]:
    """(stripped text, None) for a good cell, else ('', what is wrong with it)."""
    if column not in record or record[column] is None:
        return "", "missing value"
    value = record[column]
    if not isinstance(value, str):
        if isinstance(value, float) and value != value:  # NaN from parquet / pandas
            return "", "missing value"
        return "", f"not text (a {type(value).__name__}: {str(value)[:40]!r})"
    bad_bytes = [ch for ch in value if "\udc80" <= ch <= "\udcff"]
    if bad_bytes:
        raw = bytes(ord(ch) - 0xDC00 for ch in bad_bytes[:4])
        return "", f"undecodable bytes (not UTF-8): {raw!r}"
    if not value.strip():
        return "", "empty"
    return value.strip(), None


def _read_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number, record) pairs; file-level problems (missing, unreadable, no such column) raise."""
    if not path.is_file():
        raise DataValidationError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DataValidationError(
            f"{path}: unsupported file type {suffix!r}; use one of {SUPPORTED_SUFFIXES}"
        )
    if suffix == ".parquet":
        yield from _parquet_records(path)
        return
    if suffix == ".jsonl":
        yield from _jsonl_records(path)
        return
    # Undecodable bytes survive decoding as lone surrogates, so they are found per cell with row and column.
    text = path.read_bytes().decode("utf-8-sig", errors="surrogateescape")
    if suffix == ".csv":
        yield from _csv_records(path, text)
    else:
        yield from _json_records(path, text)


def _require_columns(path: Path, columns: list[str], where: str) -> None:
    for column in REQUIRED_COLUMNS:
        if column not in columns:
            raise DataValidationError(
                f"{path}: {where}, column {column!r}: missing (found columns {columns})"
            )


def _csv_records(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    reader = csv.DictReader(io.StringIO(text, newline=""))
    _require_columns(path, list(reader.fieldnames or []), "header (row 0)")
    yield from enumerate(reader, start=1)


def _jsonl_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        rows = read_jsonl(path).rows
    except JsonlLineError as err:
        raise DataValidationError(f"{path}: row {err.line}, column -: {err.problem}") from err
    for line_number, record in rows:
        if not isinstance(record, dict):
            raise DataValidationError(f"{path}: row {line_number}, column -: expected a JSON object")
        yield line_number, record


def _json_records(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    records = _parse_json(path, None, text)
    if not isinstance(records, list):
        raise DataValidationError(f"{path}: row -, column -: expected a JSON list of objects")
    for row_number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise DataValidationError(f"{path}: row {row_number}, column -: expected an object")
        yield row_number, record


def _parse_json(path: Path, row: int | None, text: str) -> Any:
    """``json.loads`` whose error names the file and the row (``None``: a whole file, named by its line)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        where = f"row {row}" if row is not None else f"line {err.lineno}"
        raise DataValidationError(f"{path}: {where}, column -: not valid JSON ({err.msg})") from err


def _parquet_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several unrelated types for corrupt files
        raise DataValidationError(f"{path}: row -, column -: not a readable parquet file ({err})") from err
    _require_columns(path, table.column_names, "schema")
    yield from enumerate(table.to_pylist(), start=1)

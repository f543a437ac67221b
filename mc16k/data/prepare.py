"""From configured files to a seeded train/validation split, with every dropped row counted.

Order: load and validate each source → minimum-word filter → exact-duplicate removal (first copy kept,
across sources) → seeded split per row. For each source, ``read = skipped + too_short + duplicates +
train + val`` holds and is checked, so no row is lost silently (the authors' unseeded split dropped some).

Whether a row is held out for validation is a seeded function of that row alone (its source and content),
never of which other rows or sources are loaded: the validation set of ``data=both`` is the union of those
of ``data=synthetic`` and ``data=interview``, so validation losses compare across the three splits.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from mc16k.data.config import DataConfig
from mc16k.data.loading import DataValidationError, Row, load_source, resolve_files

log = logging.getLogger(__name__)


def word_count(text: str) -> int:
    return len(text.split())


def _normalized(text: str) -> str:
    return " ".join(text.split())


@dataclass
class SourceReport:
    """Row accounting and Table-1 statistics of one source."""

    source: str
    file: str
    read: int = 0  # data rows in the file
    skipped: int = 0  # bad rows dropped by on_bad_row=skip
    too_short: int = 0  # below data.min_words (input + output words)
    duplicates: int = 0  # exact (input, output) repeats
    instruction_differs: int = 0  # rows whose instruction is not prompt.system (whitespace-normalized)
    train: int = 0
    val: int = 0
    avg_input_words: float = 0.0  # over kept rows
    avg_output_words: float = 0.0

    @property
    def kept(self) -> int:
        return self.train + self.val


@dataclass
class PreparedData:
    train: list[Row]
    val: list[Row]
    reports: dict[str, SourceReport] = field(default_factory=dict)

    def split_record(self) -> dict[str, list[dict[str, object]]]:
        """What ``data_split.json`` holds: each validation row's source, 1-based data row and content hash."""
        return {
            "validation": [
                {"source": row.source, "row": row.row, "content_hash": content_hash(row)} for row in self.val
            ]
        }


def prepare_rows(cfg: DataConfig, system: str, files: dict[str, Path] | None = None) -> PreparedData:
    """Load, filter, deduplicate and split the configured sources (``files`` defaults to resolve_files)."""
    if not 0.0 <= cfg.val_fraction < 1.0:
        raise DataValidationError(f"data.val_fraction must be in [0, 1), got {cfg.val_fraction}")
    files = resolve_files(cfg) if files is None else files
    seen: set[tuple[str, str]] = set()
    prepared = PreparedData(train=[], val=[])
    for source in cfg.sources:
        loaded = load_source(files[source], source, cfg.on_bad_row, cfg.on_missing_marker)
        report = SourceReport(source=source, file=str(files[source]))
        report.read = len(loaded.rows) + len(loaded.skipped)
        report.skipped = len(loaded.skipped)
        min_words = cfg.min_words.get(source, 0)
        kept: list[Row] = []
        for row in loaded.rows:
            if _normalized(row.instruction) != _normalized(system):
                report.instruction_differs += 1
            if word_count(row.input) + word_count(row.output) < min_words:
                report.too_short += 1
                continue
            key = (row.input, row.output)
            if cfg.dedupe and key in seen:
                report.duplicates += 1
                continue
            seen.add(key)
            kept.append(row)
        held_out = validation_rows(kept, cfg.val_fraction, cfg.seed)
        prepared.val.extend(row for row in kept if id(row) in held_out)
        prepared.train.extend(row for row in kept if id(row) not in held_out)
        report.val, report.train = len(held_out), len(kept) - len(held_out)
        if kept:
            report.avg_input_words = sum(word_count(r.input) for r in kept) / len(kept)
            report.avg_output_words = sum(word_count(r.output) for r in kept) / len(kept)
        accounted = report.skipped + report.too_short + report.duplicates + report.kept
        if accounted != report.read:  # a bug here would silently lose rows: refuse to continue
            raise AssertionError(f"{source}: {report.read} rows read but {accounted} accounted for")
        prepared.reports[source] = report
        log.info(
            "data %s (%s): read %d, skipped %d bad, %d under %d words, %d duplicates -> train %d, val %d; "
            "instruction differs from prompt.system in %d rows",
            source,
            report.file,
            report.read,
            report.skipped,
            report.too_short,
            min_words,
            report.duplicates,
            report.train,
            report.val,
            report.instruction_differs,
        )
    return prepared


def content_hash(row: Row) -> str:
    """SHA-256 of a row's conversation (input and output): names the row's content in ``data_split.json``."""
    return hashlib.sha256(f"{row.input}\0{row.output}".encode()).hexdigest()


def validation_draw(row: Row, seed: int) -> float:
    """A uniform number in [0, 1) fixed by (seed, source, content): the row is held out when it is below
    ``data.val_fraction``. Row order, the other rows and the other sources play no part."""
    digest = hashlib.sha256(f"{seed}\0{row.source}\0{content_hash(row)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def validation_rows(rows: list[Row], fraction: float, seed: int) -> set[int]:
    """``id()`` of the rows held out: each row whose draw is below ``fraction``. About ``fraction`` of the
    rows, not exactly; a source with two rows or more and none drawn gives its lowest draw, so that a small
    file still has a validation row."""
    if fraction == 0.0 or len(rows) < 2:
        return set()
    draws = {id(row): validation_draw(row, seed) for row in rows}
    held_out = {key for key, draw in draws.items() if draw < fraction}
    if not held_out:
        held_out = {min(draws, key=draws.__getitem__)}
    if len(held_out) == len(rows):  # keep at least one training row
        held_out.discard(max(draws, key=draws.__getitem__))
    return held_out

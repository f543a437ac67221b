"""From configured files to a seeded train/validation split, with every dropped row counted.

Order: load and validate each source → minimum-word filter → exact-duplicate removal (first copy kept,
across sources) → seeded split per source. For each source, ``read = skipped + too_short + duplicates +
train + val`` holds and is checked, so no row is lost silently (the authors' unseeded split dropped some).
"""

from __future__ import annotations

import logging
import random
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


def prepare_rows(cfg: DataConfig, system: str, files: dict[str, Path] | None = None) -> PreparedData:
    """Load, filter, deduplicate and split the configured sources (``files`` defaults to resolve_files)."""
    if not 0.0 <= cfg.val_fraction < 1.0:
        raise DataValidationError(f"data.val_fraction must be in [0, 1), got {cfg.val_fraction}")
    files = resolve_files(cfg) if files is None else files
    seen: set[tuple[str, str]] = set()
    rng = random.Random(cfg.seed)
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
        rng.shuffle(kept)
        n_val = _validation_size(len(kept), cfg.val_fraction)
        prepared.val.extend(kept[:n_val])
        prepared.train.extend(kept[n_val:])
        report.val, report.train = n_val, len(kept) - n_val
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


def _validation_size(n_rows: int, fraction: float) -> int:
    """Rounded share, at least one row when a split is asked for and there are two rows to split."""
    if fraction == 0.0 or n_rows < 2:
        return 0
    return min(n_rows - 1, max(1, round(n_rows * fraction)))

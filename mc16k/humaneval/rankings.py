"""The rankings file shared by the ranking app, imports from elsewhere, the agreement app and evaluate.py.

``rankings.csv`` has one row per (rater, question, model): ``rater,question_id,model_id,rank,submitted_at``.
Rank 1 is the best answer. Each rater gives each question's k models the ranks 1..k exactly once; a file
that breaks this is refused with an error that names the file and the row (line numbers count the header
as line 1).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from mc16k.atomic_io import write_text_atomically

COLUMNS = ("rater", "question_id", "model_id", "rank", "submitted_at")


@dataclass(frozen=True)
class RankRow:
    """One model's rank from one rater on one question."""

    rater: str
    question_id: str
    model_id: str
    rank: int
    submitted_at: str  # ISO 8601, may be empty for rankings imported from elsewhere


def _parse_row(raw: dict[str, str | None], where: str) -> RankRow:
    values = {}
    for column in COLUMNS:
        value = raw.get(column)
        if value is None:
            raise ValueError(f"{where}: missing field {column!r}")
        values[column] = value.strip()
        if column != "submitted_at" and not values[column]:
            raise ValueError(f"{where}: field {column!r} is empty")
    try:
        rank = int(values["rank"])
    except ValueError:
        raise ValueError(f"{where}: field 'rank' must be an integer, got {values['rank']!r}") from None
    if values["submitted_at"]:
        try:
            datetime.fromisoformat(values["submitted_at"])
        except ValueError:
            raise ValueError(
                f"{where}: field 'submitted_at' must be an ISO 8601 time, got {values['submitted_at']!r}"
            ) from None
    return RankRow(values["rater"], values["question_id"], values["model_id"], rank, values["submitted_at"])


def validate_rows(
    rows: list[RankRow],
    source: str,
    expected_models: dict[str, set[str]] | None = None,
    line_of: list[int] | None = None,
) -> None:
    """Each rater ranks each question's models 1..k exactly once; with ``expected_models`` (question id ->
    model ids), a question's models must be exactly those. Errors name ``source`` and the offending row."""
    line_of = line_of or [i + 2 for i in range(len(rows))]
    models_of: dict[str, set[str]] = {}
    for row in rows:
        models_of.setdefault(row.question_id, set()).add(row.model_id)
    groups: dict[tuple[str, str], list[int]] = {}
    seen: dict[tuple[str, str, str], int] = {}
    for index, row in enumerate(rows):
        where = f"{source}:{line_of[index]}"
        if expected_models is not None:
            if row.question_id not in expected_models:
                raise ValueError(f"{where}: question_id {row.question_id!r} is not one of the questions being ranked")
            if row.model_id not in expected_models[row.question_id]:
                raise ValueError(f"{where}: model_id {row.model_id!r} is not one of question "
                                 f"{row.question_id!r}'s answer sets")
        key = (row.rater, row.question_id, row.model_id)
        if key in seen:
            raise ValueError(f"{where}: rater {row.rater!r} ranks model {row.model_id!r} on question "
                             f"{row.question_id!r} twice (first at line {seen[key]})")
        seen[key] = line_of[index]
        groups.setdefault((row.rater, row.question_id), []).append(index)
    for (rater, question_id), members in groups.items():
        models = expected_models[question_id] if expected_models is not None else models_of[question_id]
        k = len(models)
        ranked = {rows[i].model_id for i in members}
        if ranked != models:
            missing = ", ".join(sorted(models - ranked))
            raise ValueError(f"{source}:{line_of[members[0]]}: rater {rater!r} did not rank {missing} on question "
                             f"{question_id!r} (each rater ranks all {k} models of a question)")
        ranks_seen: dict[int, int] = {}
        for i in members:
            where = f"{source}:{line_of[i]}"
            rank = rows[i].rank
            if not 1 <= rank <= k:
                raise ValueError(f"{where}: rank {rank} is outside 1..{k} (question {question_id!r} has {k} models)")
            if rank in ranks_seen:
                raise ValueError(f"{where}: rater {rater!r} gives rank {rank} twice on question {question_id!r} "
                                 f"(also at line {ranks_seen[rank]})")
            ranks_seen[rank] = line_of[i]


def read_rankings(path: str | Path, expected_models: dict[str, set[str]] | None = None) -> list[RankRow]:
    """Parse and validate a rankings CSV (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"rankings file not found: {path}")
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise ValueError(f"{path}:1: missing column(s) {', '.join(missing)}; expected {','.join(COLUMNS)}")
        rows, lines = [], []
        for raw in reader:
            where = f"{path}:{reader.line_num}"
            if None in raw:
                raise ValueError(f"{where}: more fields than the header's {len(header)}")
            rows.append(_parse_row(raw, where))
            lines.append(reader.line_num)
    if not rows:
        raise ValueError(f"{path}: no rankings")
    validate_rows(rows, str(path), expected_models, lines)
    return rows


def write_rankings(path: str | Path, rows: Iterable[RankRow]) -> Path:
    """Write rows (sorted by rater, question, rank) atomically in the rankings format."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in sorted(rows, key=lambda r: (r.rater, r.question_id, r.rank)):
        writer.writerow([row.rater, row.question_id, row.model_id, row.rank, row.submitted_at])
    path = Path(path)
    write_text_atomically(path, buffer.getvalue())
    return path


def rankings_frame(rows: list[RankRow]) -> pd.DataFrame:
    """The rows as a frame (question ids as strings, ranks as ints)."""
    return pd.DataFrame([row.__dict__ for row in rows], columns=list(COLUMNS))

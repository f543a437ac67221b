"""Benchmark questions in FastChat's ``question.jsonl`` format, and the seeded subset the paper drew."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from mc16k.errors import BadInputError, MissingInputError
from mc16k.inference.config import BenchmarkConfig
from mc16k.jsonl import read_jsonl


@dataclass(frozen=True)
class Question:
    question_id: int | str
    category: str
    text: str  # the first (only) turn: the benchmark is single-turn


def read_questions(path: str | Path) -> list[Question]:
    """Parse and validate a question file; errors name the file, line and field."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"benchmark question file not found: {path} (set benchmark.path)")
    questions: list[Question] = []
    seen: set[int | str] = set()
    for line_no, row in read_jsonl(path).rows:
        where = f"{path}:{line_no}"
        if not isinstance(row, dict):
            raise BadInputError(f"{where}: expected a JSON object, got {type(row).__name__}")
        qid = row.get("question_id")
        if not isinstance(qid, (int, str)) or isinstance(qid, bool):
            raise BadInputError(f"{where}: field 'question_id' missing or not an int/str")
        if qid in seen:
            raise BadInputError(f"{where}: duplicate question_id {qid!r}")
        turns = row.get("turns")
        if not isinstance(turns, list) or not turns or not isinstance(turns[0], str) or not turns[0].strip():
            raise BadInputError(f"{where}: field 'turns' must be a non-empty list whose first item is text")
        seen.add(qid)
        questions.append(Question(qid, str(row.get("category", "")), turns[0]))
    if not questions:
        raise BadInputError(f"{path}: no questions")
    return questions


def select_subset(questions: list[Question], n: int | None, seed: int) -> list[Question]:
    """``n`` questions drawn with ``random.Random(seed)`` (file order kept); all of them when ``n`` is null."""
    if n is None or n >= len(questions):
        return list(questions)
    if n <= 0:
        raise BadInputError(f"benchmark.n must be positive or null, got {n}")
    chosen = set(random.Random(seed).sample(range(len(questions)), n))
    return [q for i, q in enumerate(questions) if i in chosen]


def load_benchmark(cfg: BenchmarkConfig) -> list[Question]:
    """The questions ``cfg`` selects: the whole file, or its seeded subset of ``cfg.n``."""
    return select_subset(read_questions(cfg.path), cfg.n, cfg.seed)

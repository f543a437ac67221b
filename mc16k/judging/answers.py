"""Answer files (written by infer.py) joined with their benchmark questions: what the judges score."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mc16k.errors import BadInputError, MissingInputError
from mc16k.inference.benchmark import load_benchmark
from mc16k.inference.config import BenchmarkConfig
from mc16k.inference.store import read_answers

log = logging.getLogger(__name__)

ROUND_FILE = re.compile(r"round-(\d+)\.jsonl")


@dataclass(frozen=True)
class AnswerItem:
    """One answer of one model in one round, with its question's text."""

    model_id: str
    round: int
    question_id: Any
    question: str
    answer: str
    kind: str | None  # base | finetuned | baseline
    base_model: str | None
    data_split: str | None


def _answer_text(row: dict, where: str) -> str:
    choices = row.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise BadInputError(f"{where}: field 'choices' must be a non-empty list of objects")
    turns = choices[0].get("turns")
    if not isinstance(turns, list) or not turns or not all(isinstance(t, str) for t in turns):
        raise BadInputError(f"{where}: field 'choices[0].turns' must be a non-empty list of strings")
    return "\n".join(turns)


def load_answer_items(
    answers_dir: str | Path,
    benchmark: BenchmarkConfig,
    models: list[str] | None = None,
    rounds: list[int] | None = None,
) -> list[AnswerItem]:
    """Every answer under ``<answers_dir>/<benchmark.name>/<model_id>/round-<k>.jsonl`` to a selected question."""
    questions = {q.question_id: q for q in load_benchmark(benchmark)}
    root = Path(answers_dir) / benchmark.name
    files = sorted(root.glob("*/round-*.jsonl"))
    if not files:
        others = sorted(p.parent.parent.name for p in Path(answers_dir).glob("*/*/round-*.jsonl"))
        found = f" (answers exist for benchmark={', '.join(dict.fromkeys(others))})" if others else ""
        raise MissingInputError(
            f"no answer files under {root}/<model_id>/round-<k>.jsonl{found}\n"
            f"Run infer.py with benchmark={benchmark.name} first, or pass the benchmark the answers were made for"
        )
    items: list[AnswerItem] = []
    unknown = 0
    for path in files:
        model_id, round_index = path.parent.name, int(ROUND_FILE.fullmatch(path.name).group(1))
        if (models is not None and model_id not in models) or (rounds is not None and round_index not in rounds):
            continue
        for qid, row in read_answers(path).items():
            question = questions.get(qid)
            if question is None:
                unknown += 1
                continue
            where = f"{path}: question_id {qid!r}"
            items.append(
                AnswerItem(
                    model_id=str(row.get("model_id", model_id)),
                    round=int(row.get("round", round_index)),
                    question_id=qid,
                    question=question.text,
                    answer=_answer_text(row, where),
                    kind=row.get("kind"),
                    base_model=row.get("base_model"),
                    data_split=row.get("data_split"),
                )
            )
    if unknown:
        log.info("%d answers are to questions outside the selected benchmark subset; not judged", unknown)
    if not items:
        raise BadInputError(f"no answers under {root} match evaluate.models={models} / evaluate.rounds={rounds}")
    return items

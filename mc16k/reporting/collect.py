"""Join answers with the judgment stores into the long table the statistics and reports read."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from mc16k.judging.answers import AnswerItem
from mc16k.judging.rubric import Rubric
from mc16k.judging.store import read_judgments

log = logging.getLogger(__name__)

COLUMNS = [
    "judge", "model_id", "kind", "base_model", "data_split", "round", "question_id", "metric", "score",
    "status", "reason", "answer_words",
]  # fmt: skip


def judgments_frame(
    items: list[AnswerItem], judgments_dir: str | Path, rubric: Rubric, judges: list[str] | None = None
) -> pd.DataFrame:
    """One row per judge x answer x metric; answers a judge has not judged yet are left out (and logged)."""
    judgments = read_judgments(judgments_dir, rubric.version, judges)
    rows = []
    not_judged = 0
    for item in items:
        per_judge = judgments.for_answer(item.question, item.answer)
        not_judged += len(judgments.labels) - len(per_judge)
        for label, metrics in per_judge.items():
            for metric in rubric.metrics:
                result = metrics.get(metric.key)
                if result is None:  # per-metric mode, this metric not judged yet
                    not_judged += 1
                    continue
                rows.append(
                    {
                        "judge": label,
                        "model_id": item.model_id,
                        "kind": item.kind,
                        "base_model": item.base_model,
                        "data_split": item.data_split,
                        "round": item.round,
                        "question_id": item.question_id,
                        "metric": metric.key,
                        "score": result.score_or_nan,
                        "status": result.status,
                        "reason": result.reason,
                        "answer_words": len(item.answer.split()),
                    }
                )
    if not_judged:
        log.warning("%d (answer, judge[, metric]) judgments do not exist yet; they are not in the report", not_judged)
    return pd.DataFrame(rows, columns=COLUMNS)

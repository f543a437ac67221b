"""Join answers with the judgment stores into the long table the statistics and reports read."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from mc16k.judging.answers import AnswerItem
from mc16k.judging.judge import STATUS_OK, text_sha
from mc16k.judging.rubric import Rubric
from mc16k.llm.store import JsonlStore

log = logging.getLogger(__name__)

COLUMNS = [
    "judge", "model_id", "kind", "base_model", "data_split", "round", "question_id", "metric", "score",
    "status", "reason", "answer_words",
]


def judge_label(record: dict) -> str:
    """A judge configuration's label in tables and plots: its name, its model and (if not ``all``) its metric
    mode. Judgments of two models (or modes) stored under one judge name are two judges in every report,
    never one mean over both. (Only the current prompt version is read, so the version needs no label.)"""
    model = record["judge_model"].split(":", 1)[-1]
    mode = "" if record["mode"] == "all" else ", per-metric"
    return f"{record['judge']} ({model}{mode})"


def load_judgments(judgments_dir: str | Path, rubric: Rubric, judges: list[str] | None) -> dict:
    """(judge label, question sha, answer sha) -> {metric: result}, for the current prompt version only."""
    found: dict[tuple[str, str, str], dict[str, dict]] = {}
    stores = sorted(Path(judgments_dir).glob("*/judgments.jsonl"))
    for path in stores:
        if judges is not None and path.parent.name not in judges:
            continue
        with JsonlStore(path) as store:
            for record in store:
                if record["prompt_version"] != rubric.version:
                    continue
                key = (judge_label(record), record["question_sha"], record["answer_sha"])
                found.setdefault(key, {}).update(record["metrics"])
    return found


def judgments_frame(
    items: list[AnswerItem], judgments_dir: str | Path, rubric: Rubric, judges: list[str] | None = None
) -> pd.DataFrame:
    """One row per judge x answer x metric; answers a judge has not judged yet are left out (and logged)."""
    judgments = load_judgments(judgments_dir, rubric, judges)
    labels = sorted({label for label, _, _ in judgments})
    by_answer = {(q, a): {} for _, q, a in judgments}
    for (label, q, a), metrics in judgments.items():
        by_answer[(q, a)][label] = metrics
    rows = []
    not_judged = 0
    for item in items:
        per_judge = by_answer.get((text_sha(item.question), text_sha(item.answer)), {})
        not_judged += len(labels) - len(per_judge)
        for label, metrics in per_judge.items():
            for metric in rubric.metrics:
                result = metrics.get(metric.key)
                if result is None:  # per-metric mode, this metric not judged yet
                    not_judged += 1
                    continue
                ok = result["status"] == STATUS_OK
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
                        "score": float(result["score"]) if ok else float("nan"),
                        "status": result["status"],
                        "reason": "" if ok else result.get("reason", ""),
                        "answer_words": len(item.answer.split()),
                    }
                )
    if not_judged:
        log.warning("%d (answer, judge[, metric]) judgments do not exist yet; they are not in the report", not_judged)
    return pd.DataFrame(rows, columns=COLUMNS)

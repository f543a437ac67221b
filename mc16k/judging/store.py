"""The judgment store: one keyed jsonl file per judge, and the one way other stages read it.

``judge.py`` writes a record per judging unit (all metrics of one answer, or one metric of it) into
``<judgments_dir>/<judge name>/judgments.jsonl``; reports read those records through ``read_judgments``,
matched to answers by the hashes of their question and answer texts.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mc16k.llm.store import JsonlStore, read_records

STATUS_OK = "ok"
STATUS_FAILED = "failed"
STORE_FILE = "judgments.jsonl"


def text_sha(text: str) -> str:
    """The hash a unit key holds for a question or an answer text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def store_path(judgments_dir: str | Path, judge_name: str) -> Path:
    """``<judgments_dir>/<judge name>/judgments.jsonl``: one store per judge."""
    return Path(judgments_dir) / judge_name / STORE_FILE


def open_store(judgments_dir: str | Path, judge_name: str) -> JsonlStore:
    """The judge's store, opened for appending (a torn last line is cut off)."""
    return JsonlStore(store_path(judgments_dir, judge_name))


def stored_units(judgments_dir: str | Path, judge_name: str) -> dict[str, dict[str, Any]]:
    """The judge's stored records by unit key, read only (empty when the judge has no store yet)."""
    return read_records(store_path(judgments_dir, judge_name))


def judge_label(record: dict[str, Any]) -> str:
    """A judge configuration's label in tables and plots: its name, its model and (if not ``all``) its metric
    mode. Judgments of two models (or modes) stored under one judge name are two judges in every report,
    never one mean over both. (Only one prompt version is read at a time, so the version needs no label.)"""
    model = record["judge_model"].split(":", 1)[-1]
    mode = "" if record["mode"] == "all" else ", per-metric"
    return f"{record['judge']} ({model}{mode})"


@dataclass(frozen=True)
class MetricJudgment:
    """One metric's stored result: a score, or a failure with its reason (never a number)."""

    status: str
    score: float | None
    reason: str

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    @classmethod
    def from_record(cls, result: dict[str, Any]) -> MetricJudgment:
        ok = result["status"] == STATUS_OK
        return cls(
            status=result["status"],
            score=float(result["score"]) if ok else None,
            reason="" if ok else str(result.get("reason", "")),
        )

    @property
    def score_or_nan(self) -> float:
        return self.score if self.score is not None else math.nan


class JudgmentIndex:
    """Stored judgments of one prompt version, found by the (question, answer) texts they judged."""

    def __init__(self, by_answer: dict[tuple[str, str], dict[str, dict[str, MetricJudgment]]], labels: list[str]):
        self._by_answer = by_answer
        self.labels = labels  # every judge label with at least one judgment

    def for_answer(self, question: str, answer: str) -> dict[str, dict[str, MetricJudgment]]:
        """judge label -> metric key -> judgment, for the judges that judged this answer (maybe partly)."""
        return self._by_answer.get((text_sha(question), text_sha(answer)), {})


def read_judgments(judgments_dir: str | Path, prompt_version: str, judges: list[str] | None = None) -> JudgmentIndex:
    """Every judge's store under ``judgments_dir`` (or those named in ``judges``), this prompt version only."""
    by_answer: dict[tuple[str, str], dict[str, dict[str, MetricJudgment]]] = {}
    labels: set[str] = set()
    for path in sorted(Path(judgments_dir).glob(f"*/{STORE_FILE}")):
        if judges is not None and path.parent.name not in judges:
            continue
        for record in read_records(path).values():
            if record["prompt_version"] != prompt_version:
                continue
            label = judge_label(record)
            labels.add(label)
            metrics = by_answer.setdefault((record["question_sha"], record["answer_sha"]), {}).setdefault(label, {})
            metrics.update({key: MetricJudgment.from_record(r) for key, r in record["metrics"].items()})
    return JudgmentIndex(by_answer, sorted(labels))

"""Typed configs for judges (conf/judge) and for evaluate.py (judging + reports)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from mc16k.llm.config import LLMConfig, RunnerConfig


class MetricMode(str, Enum):
    all = "all"  # all 7 metrics in one call (paper-compatible)
    per_metric = "per_metric"  # one call per metric


@dataclass
class JudgeConfig:
    """One judge: an LLM, how it is driven, and which rubric it applies."""

    name: str = "???"  # label in tables and the store's file name
    llm: LLMConfig = field(default_factory=LLMConfig)
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    rubric_dir: str = "???"  # a versioned prompt directory, e.g. ${mc16k_resource:prompts/judge/v1}
    mode: MetricMode = MetricMode.all
    max_reasks: int = 2  # re-asks of metrics whose reply could not be read (remote judges)
    # units started but not yet stored, at most (null: 2 x runner.concurrency). Bounds the work a kill can
    # waste: a started unit's retries and re-asks go before new units' first calls, and no more than this many
    # units wait on backoff at once.
    max_units_in_progress: int | None = None


@dataclass
class EvaluateConfig:
    """Which answers are judged, by which judge, and where the reports go (W&B: the shared ``logger`` group)."""

    judge: JudgeConfig = field(default_factory=JudgeConfig)  # conf/judge, packaged at evaluate.judge
    report_dir: str = "???"
    models: list[str] | None = None  # model ids under <answers_dir>/<benchmark>/; null: every model found
    rounds: list[int] | None = None  # null: every round found
    dry_run: bool = False  # print the number of calls and a token/cost estimate, then stop
    judge_answers: bool = True  # false: only rebuild the reports from the judgment store
    retry_failed: bool = False  # judge again items whose stored judgment is a failure
    report_judges: list[str] | None = None  # judges (store names) in the report; null: every judge in the store

"""Typed configs for judges (conf/judge) and for evaluate.py (judging + reports)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import List, Optional

from mc16k.llm.config import LLMConfig, RunnerConfig


class MetricMode(str, Enum):
    all = "all"  # all 7 metrics in one call (paper-compatible)
    per_metric = "per_metric"  # one call per metric


class WandbMode(str, Enum):
    offline = "offline"
    online = "online"
    disabled = "disabled"


@dataclass
class JudgeConfig:
    """One judge: an LLM, how it is driven, and which rubric it applies."""

    name: str = "???"  # label in tables and the store's file name
    llm: LLMConfig = field(default_factory=LLMConfig)
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    rubric_dir: str = "???"  # a versioned prompt directory, e.g. ${mc16k_resource:prompts/judge/v1}
    mode: MetricMode = MetricMode.all
    max_reasks: int = 2  # re-asks of metrics whose reply could not be read (remote judges)


@dataclass
class EvaluateConfig:
    """Which answers are judged and what is reported."""

    models: Optional[List[str]] = None  # model ids under <answers_dir>/<benchmark>/; null: every model found
    rounds: Optional[List[int]] = None  # null: every round found
    dry_run: bool = False  # print the number of calls and a token/cost estimate, then stop
    judge_answers: bool = True  # false: only rebuild the reports from the judgment store
    retry_failed: bool = False  # judge again items whose stored judgment is a failure
    report_judges: Optional[List[str]] = None  # judges (store names) in the report; null: every judge in the store
    wandb_mode: WandbMode = WandbMode.offline
    wandb_project: str = "mc16k"

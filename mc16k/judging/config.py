"""Typed configs for judges (conf/judge) and for evaluate.py (judging + reports)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Optional

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


class SignificanceTest(str, Enum):
    """Fine-tuned vs its base, per judge x metric (mc16k.stats.significance)."""

    paper = "paper"  # the paper's: two-sample t-test on per-round means (5 vs 5), pairing ignored
    welch = "welch"  # Welch's unequal-variance t-test on per-round means
    paired_t = "paired_t"  # paired t-test on per-question means over rounds (both answer the same questions)
    wilcoxon = "wilcoxon"  # Wilcoxon signed-rank test on the same per-question pairs


class Correction(str, Enum):
    """Multiple-testing correction across metrics x models, per judge (statsmodels multipletests)."""

    holm = "holm"  # family-wise error rate
    fdr_bh = "fdr_bh"  # Benjamini-Hochberg false discovery rate
    none = "none"


@dataclass
class StatsConfig:
    """evaluate.stats: which test and correction mark Table 3's cells, at which level."""

    test: SignificanceTest = SignificanceTest.paired_t
    correction: Correction = Correction.holm
    alpha: float = 0.05


@dataclass
class HumanReportConfig:
    """evaluate.human: human rankings (rankings.csv from mc16k.humaneval) joined into the reports."""

    rankings: Optional[str] = None  # null: no Human Rank column, no Table 5
    n_resamples: int = 1000  # bootstrap over questions for rank and agreement intervals
    seed: int = 42


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
    stats: StatsConfig = field(default_factory=StatsConfig)
    human: HumanReportConfig = field(default_factory=HumanReportConfig)
    compare_to_paper: bool = False  # add paper_comparison.md/.csv: every cell beside the paper's published one

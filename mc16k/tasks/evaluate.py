"""What evaluate.py runs: judge the selected answers with one judge, then report every judge in the store."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mc16k.config import register_configs
from mc16k.errors import BadInputError
from mc16k.inference.config import BenchmarkConfig
from mc16k.judging.answers import load_answer_items
from mc16k.judging.config import EvaluateConfig
from mc16k.judging.judge import (
    JudgingStopped,
    JudgingSummary,
    build_units,
    estimate,
    judge_model_id,
    pending_units,
    run_judge,
)
from mc16k.judging.rubric import load_rubric
from mc16k.judging.store import stored_units
from mc16k.llm.clients import read_api_key
from mc16k.reporting.collect import judgments_frame
from mc16k.reporting.plots import plot_scores
from mc16k.reporting.tables import write_tables
from mc16k.reporting.tracking import log_to_wandb
from mc16k.stats.summary import (
    failure_counts,
    judge_agreement,
    length_bias,
    paper_average,
    significance,
    summarize,
)
from mc16k.tasks.cli import run_task

__all__ = ["JudgingStopped", "register_configs", "run_evaluation", "run_task"]  # evaluate.py imports only its task

log = logging.getLogger(__name__)


def print_summary(done: JudgingSummary) -> None:
    """What the judging run did and paid: every request sent (failed ones too) and every billed token."""
    print(f"judged {done.units_judged} new / {done.units_cached} cached units in {done.seconds}s"
          f"{f', {done.units_unfinished} left unjudged' if done.units_unfinished else ''}; "
          f"{done.usage.calls} calls, {done.usage.input_tokens}+{done.usage.output_tokens} tokens, "
          f"${done.cost_usd}; {done.metrics_failed} metric judgments failed; retries {done.retries or 'none'}")


def run_evaluation(cfg: DictConfig) -> dict[str, Any]:
    """Judge, then write results.csv, table3.md/.tex, agreement, failures and PNG plots; returns a summary."""
    ev: EvaluateConfig = OmegaConf.to_object(cfg.evaluate)  # typed by the root schema
    benchmark: BenchmarkConfig = OmegaConf.to_object(cfg.benchmark)
    if ev.judge_answers or ev.dry_run:
        read_api_key(ev.judge.llm)  # a missing key stops the job before anything else, the dry run too
    items = load_answer_items(cfg.paths.answers_dir, benchmark, ev.models, ev.rounds)
    pairs = list({(i.question_id, i.question, i.answer): None for i in items})
    rubric = load_rubric(ev.judge.rubric_dir)
    print(f"{len(items)} answers from {len({i.model_id for i in items})} models; judge {ev.judge.name} "
          f"({judge_model_id(ev.judge)}), prompt {rubric.version}, mode {ev.judge.mode.value}")
    if ev.dry_run:
        units = build_units(ev.judge, rubric, pairs)
        stored = stored_units(cfg.paths.judgments_dir, ev.judge.name)
        plan = estimate(ev.judge, rubric, pending_units(units, stored, ev.retry_failed))
        print(f"dry run: {plan['calls']} calls ({len(units) - plan['calls']} of {len(units)} judgments already "
              f"stored), ~{plan['input_tokens']} input tokens, <= {plan['max_output_tokens']} output tokens, "
              f"<= ${plan['max_cost_usd']} before re-asks and retries; nothing was sent")
        return {"dry_run": plan}
    result: dict[str, Any] = {}
    if ev.judge_answers:
        try:
            done = run_judge(ev.judge, pairs, cfg.paths.judgments_dir, ev.retry_failed, cfg.paths.cache_dir)
        except JudgingStopped as stopped:
            if stopped.summary is not None:
                print_summary(stopped.summary)
            raise
        result["judging"] = asdict(done)
        print_summary(done)
    frame = judgments_frame(items, cfg.paths.judgments_dir, rubric, ev.report_judges)
    if frame.empty:
        raise BadInputError(f"no judgments in {cfg.paths.judgments_dir} for these answers and prompt {rubric.version}")
    summary = summarize(frame)
    average = paper_average(summary)
    tests = significance(frame)
    out_dir = Path(ev.report_dir)
    paths = write_tables(
        out_dir, summary, average, tests, judge_agreement(frame), length_bias(frame), failure_counts(frame), rubric
    )
    plots = plot_scores(summary, rubric, out_dir)
    frame.to_csv(out_dir / "judgments.csv", index=False)
    log_to_wandb(cfg, out_dir, frame, summary, average, plots)
    print((out_dir / "table3.md").read_text(encoding="utf-8"))
    print(f"reports in {out_dir}: " + ", ".join(sorted(p.name for p in [*paths.values(), *plots])))
    result.update({"report_dir": str(out_dir), "plots": [str(p) for p in plots], "average": average})
    return result

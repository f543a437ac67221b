"""What infer.py runs: answer the benchmark with every target the config names, tracked, with a summary.

    python infer.py model=mistral-7b
    python infer.py infer.from_runs=multirun/paper infer.baselines='[samantha-1.11-7b]'
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from mc16k.config import register_configs
from mc16k.inference.benchmark import load_benchmark
from mc16k.inference.runner import MetricsLogger, TargetReport, answer_target
from mc16k.inference.sampling import round_seeds
from mc16k.inference.targets import resolve_targets
from mc16k.runs.tracking import LoggerKind, logger_config, stage_run
from mc16k.tasks.cli import run_task

__all__ = ["infer", "register_configs", "run_inference", "run_task", "tracker_metrics"]  # infer.py imports only its task

log = logging.getLogger(__name__)


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[tokens_per_s]:.1f} tok/s"),
        disable=not enabled,
    )




def summary_table(reports: list[TargetReport]) -> Table:
    table = Table(title="answers")
    for column in ("model_id", "kind", "answered", "already done", "truncated prompts", "tok/s"):
        table.add_column(column)
    for r in reports:
        table.add_row(
            r.model_id,
            r.kind,
            str(r.answered),
            str(r.already_done),
            str(r.truncated),
            f"{r.tokens_per_s:.1f}",
        )
    return table


@contextmanager
def _no_metrics() -> Iterator[MetricsLogger]:
    yield lambda metrics: None


def run_inference(cfg: DictConfig, metrics_logger=_no_metrics) -> list[TargetReport]:
    """Answer ``cfg.benchmark`` with every target the config names; return one report per target."""
    questions = load_benchmark(cfg.benchmark)
    round_seeds(cfg.seed, cfg.infer.rounds, cfg.infer.round_seeds)  # bad seeds fail before any model loads
    if cfg.infer.rounds > 1 and not cfg.infer.generation.do_sample:
        log.warning(
            "greedy decoding (do_sample=false): all %d rounds will hold the same answers", cfg.infer.rounds
        )
    targets = resolve_targets(cfg)
    log.info(
        "answering %d question(s) x %d round(s) of %s with %d target(s): %s",
        len(questions),
        cfg.infer.rounds,
        cfg.benchmark.name,
        len(targets),
        [t.model_id for t in targets],
    )
    reports = []
    with metrics_logger() as log_metrics, _progress(cfg.infer.show_progress) as progress:
        for target in targets:
            reports.append(answer_target(target, questions, cfg, progress, log_metrics))
    Console(stderr=True).print(summary_table(reports))
    return reports


@contextmanager
def tracker_metrics(cfg: DictConfig) -> Iterator[MetricsLogger]:
    """A metrics logger writing to ``cfg.logger`` (wandb or csv) for this infer job; a no-op for none."""
    if logger_config(cfg.logger).kind is LoggerKind.none:
        yield lambda metrics: None
        return
    output_dir = Path(cfg.paths.output_dir)
    with stage_run(cfg, "infer", output_dir, name=f"infer {cfg.benchmark.name}", tags=["infer", cfg.benchmark.name]) as logger:
        step = 0

        def log_metrics(metrics: dict[str, float]) -> None:
            nonlocal step
            logger.log_metrics(metrics, step=step)
            step += 1

        yield log_metrics


def infer(cfg: DictConfig) -> list[TargetReport]:
    """infer.py's job: answer, track throughput, log one line per target."""
    reports = run_inference(cfg, metrics_logger=lambda: tracker_metrics(cfg))
    for report in reports:
        log.info(
            "%s (%s): %d answered, %d already done, %d truncated prompt(s); files: %s",
            report.model_id,
            report.kind,
            report.answered,
            report.already_done,
            report.truncated,
            report.files,
        )
    return reports

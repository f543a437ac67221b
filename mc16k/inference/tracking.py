"""Inference throughput to the job's tracker, through the shared run wrapper (W&B offline by default)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mc16k.inference.runner import MetricsLogger
from mc16k.runs.identity import directory_run_id
from mc16k.runs.tracking import LoggerKind, RunLabels, logger_config, tracked_run


@contextmanager
def tracker_metrics(cfg: DictConfig) -> Iterator[MetricsLogger]:
    """A metrics logger writing to ``cfg.logger`` (wandb or csv) for this infer job; a no-op for none."""
    logger_cfg = logger_config(cfg.logger)
    if logger_cfg.kind is LoggerKind.none:
        yield lambda metrics: None
        return
    output_dir = Path(cfg.paths.output_dir)
    labels = RunLabels(
        run_id=directory_run_id("infer", output_dir),
        name=f"infer {cfg.benchmark.name}",
        group="infer",
        tags=["infer", cfg.benchmark.name],
    )
    config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    with tracked_run(logger_cfg, labels, config, output_dir, is_rank_zero=True) as logger:
        step = 0

        def log_metrics(metrics: dict[str, float]) -> None:
            nonlocal step
            logger.log_metrics(metrics, step=step)
            step += 1

        yield log_metrics

"""Throughput to W&B: offline unless WANDB_MODE says otherwise, always finished, run dir logged."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from omegaconf import DictConfig, OmegaConf

from mc16k.inference.runner import MetricsLogger

log = logging.getLogger(__name__)


@contextmanager
def wandb_metrics(cfg: DictConfig) -> Iterator[MetricsLogger]:
    """A W&B run for this infer job (none when ``infer.wandb_project`` is null); yields a metrics logger."""
    if not cfg.infer.wandb_project:
        yield lambda metrics: None
        return
    import wandb

    run = wandb.init(
        project=cfg.infer.wandb_project,
        job_type="infer",
        mode=os.environ.get("WANDB_MODE", "offline"),
        dir=cfg.paths.output_dir,
        config=OmegaConf.to_container(cfg, resolve=True),
    )
    log.info("W&B run %s in %s", run.id, run.dir)
    try:
        yield run.log
    finally:
        run.finish()

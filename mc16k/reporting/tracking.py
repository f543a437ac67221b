"""Judgments and per-model summaries to W&B through the shared run wrapper (offline by default, always closed)."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from mc16k.runs.identity import directory_run_id
from mc16k.runs.tracking import LoggerKind, RunLabels, logger_config, tracked_run

log = logging.getLogger(__name__)


def log_to_wandb(
    cfg: DictConfig, save_dir: Path, frame: pd.DataFrame, summary: pd.DataFrame, average: pd.DataFrame,
    plots: list[Path],
) -> None:
    """A W&B run holding the judgment table, the summary table, the averages and the plots (if logger=wandb)."""
    logger_cfg = logger_config(cfg.logger)
    if logger_cfg.kind is not LoggerKind.wandb:
        return
    import wandb

    config = OmegaConf.to_container(cfg, resolve=True)
    labels = RunLabels(run_id=directory_run_id("evaluate", save_dir), name=f"evaluate {save_dir.name}", group="evaluate", tags=["evaluate"])
    with tracked_run(logger_cfg, labels, config, save_dir, is_rank_zero=True) as logger:
        run = logger.experiment
        run.log(
            {
                "judgments": wandb.Table(dataframe=frame),
                "summary": wandb.Table(dataframe=summary),
                "paper_average": wandb.Table(dataframe=average),
                **{f"plot/{p.stem}": wandb.Image(str(p)) for p in plots},
            }
        )
        for row in average.itertuples():
            run.summary[f"average/{row.model_id}"] = row.average

"""Judgments and per-model summaries to W&B through the shared run wrapper (offline by default, always closed)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from mc16k.runs.tracking import LoggerKind, logger_config, stage_run


def log_to_wandb(
    cfg: DictConfig, save_dir: Path, frame: pd.DataFrame, summary: pd.DataFrame, average: pd.DataFrame,
    plots: list[Path], extra_tables: dict[str, pd.DataFrame] | None = None,
) -> None:  # fmt: skip
    """A W&B run holding the judgment table, the summary table, the averages, the plots and any extra tables
    (human ranks, rater agreement, Table 5) (if logger=wandb)."""
    if logger_config(cfg.logger).kind is not LoggerKind.wandb:
        return
    import wandb

    with stage_run(cfg, "evaluate", save_dir, name=f"evaluate {save_dir.name}", tags=["evaluate"]) as logger:
        run = logger.experiment
        run.log(
            {
                "judgments": wandb.Table(dataframe=frame),
                "summary": wandb.Table(dataframe=summary),
                "paper_average": wandb.Table(dataframe=average),
                **{f"plot/{p.stem}": wandb.Image(str(p)) for p in plots},
                **{name: wandb.Table(dataframe=table) for name, table in (extra_tables or {}).items()},
            }
        )
        for row in average.itertuples():
            run.summary[f"average/{row.model_id}"] = row.average

"""Experiment tracking for one job: W&B (offline by default), CSV, or nothing; always closed.

The one tracking wrapper of every stage. A training job gets one W&B run, id = the run id (a resumed job
continues its run), group = ``train.group``, tags = model and data split, the resolved config as its
config. A job that trains nothing (infer, evaluate) gets ``stage_run``: id from its output dir, group =
the stage. The run is finished even when the job fails, so a crashed sweep leaves no dangling runs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Optional

from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf

from mc16k.errors import BadInputError
from mc16k.runs.identity import directory_run_id

log = logging.getLogger(__name__)

# Credentials hidden from W&B's process while it starts (it inherits the environment): the judges' keys
# always, its own key when offline (nothing to upload).
OTHER_SECRET_ENV_VARS = ("OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY")
WANDB_KEY_ENV_VAR = "WANDB_API_KEY"


class LoggerKind(str, Enum):
    wandb = "wandb"
    csv = "csv"
    none = "none"


class WandbMode(str, Enum):
    offline = "offline"  # written under the run dir; upload later with `wandb sync <dir>`
    online = "online"
    disabled = "disabled"


@dataclass
class LoggerConfig:
    """conf/logger: which tracker a training job writes to."""

    kind: LoggerKind = LoggerKind.none
    project: str = "mc16k"
    entity: Optional[str] = None  # noqa: UP045 (OmegaConf 2.3 reads Optional, not X | None)
    mode: WandbMode = WandbMode.offline
    tags: list[str] = field(default_factory=list)  # added to the model and data tags


@dataclass(frozen=True)
class RunLabels:
    """How a job is named and grouped in the tracker."""

    run_id: str
    name: str
    group: str
    tags: list[str]


def logger_config(raw: Any) -> LoggerConfig:
    """Validate ``cfg.logger`` (null means no logger); unknown keys and bad values name ``logger.<key>``."""
    schema = OmegaConf.structured(LoggerConfig)
    if raw is None:
        return OmegaConf.to_object(schema)
    try:
        return OmegaConf.to_object(OmegaConf.merge(schema, raw))
    except Exception as err:  # omegaconf raises several types; all mean a bad logger config
        raise BadInputError(f"bad logger config: {err}".replace("full_key: ", "full_key: logger.")) from err


@contextmanager
def _without(names: tuple[str, ...]) -> Iterator[None]:
    """Remove environment variables while W&B starts its service, then put them back."""
    hidden = {name: os.environ.pop(name) for name in names if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(hidden)


@contextmanager
def tracked_run(
    logger_cfg: LoggerConfig, labels: RunLabels, config: dict[str, Any], save_dir: Path, is_rank_zero: bool
) -> Iterator[Logger | None]:
    """The Lightning logger for this job (None for no logger or non-zero ranks), closed on exit."""
    if logger_cfg.kind is LoggerKind.none or not is_rank_zero:
        yield None
        return
    if logger_cfg.kind is LoggerKind.csv:
        yield CSVLogger(save_dir=str(save_dir), name="csv", version="")
        return
    import wandb

    online = logger_cfg.mode is WandbMode.online
    with _without(OTHER_SECRET_ENV_VARS if online else (*OTHER_SECRET_ENV_VARS, WANDB_KEY_ENV_VAR)):
        run = wandb.init(
            project=logger_cfg.project,
            entity=logger_cfg.entity,
            mode=logger_cfg.mode.value,
            id=labels.run_id,
            resume="allow",
            name=labels.name,
            group=labels.group,
            tags=[*labels.tags, *logger_cfg.tags],
            config=config,
            dir=str(save_dir),
            settings=wandb.Settings(save_code=False, disable_code=True, disable_job_creation=True, console="off"),
        )
    exit_code = 1
    try:
        yield WandbLogger(experiment=run)
        exit_code = 0
    finally:
        run.finish(exit_code=exit_code)
        log.info("W&B run %s (%s) finished with exit code %d", labels.run_id, logger_cfg.mode.value, exit_code)


@contextmanager
def stage_run(cfg: DictConfig, stage: str, save_dir: Path, name: str, tags: list[str]) -> Iterator[Logger | None]:
    """``tracked_run`` for a job that trains nothing (``stage``: infer, evaluate): run id from ``save_dir``,
    group = ``stage``, the resolved config as its config; None when ``cfg.logger`` is none."""
    logger_cfg = logger_config(cfg.logger)
    labels = RunLabels(run_id=directory_run_id(stage, save_dir), name=name, group=stage, tags=tags)
    config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    with tracked_run(logger_cfg, labels, config, save_dir, is_rank_zero=True) as logger:
        yield logger

"""A run id derived from what a run trains (not from time), so a relaunched sweep recognises its jobs.

The id hashes the resolved config sections that change the trained adapter; paths, loggers, progress
bars, checkpoint cadence and other stages' settings are left out, so moving outputs or switching W&B on
does not orphan a finished run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

IDENTITY_SECTIONS = ("model", "data", "prompt", "lora", "quant", "seed", "train", "trainer")
# Keys inside those sections that do not change the trained weights.
OPERATIONAL_KEYS = {
    "data": {"num_workers"},
    "train": {"group", "skip_finished", "checkpoint_every_n_steps", "validate_base"},
    "trainer": {
        "enable_progress_bar",
        "enable_model_summary",
        "log_every_n_steps",
        "check_val_every_n_epoch",
        "val_check_interval",
        "num_sanity_val_steps",
        "limit_val_batches",
        "default_root_dir",
    },
}


def run_identity(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config sections that define what a run trains."""
    identity: dict[str, Any] = {}
    for section in IDENTITY_SECTIONS:
        value = OmegaConf.select(cfg, section)
        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value, resolve=True, enum_to_str=True)
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in OPERATIONAL_KEYS.get(section, set())}
        identity[section] = value
    return identity


def run_id(cfg: DictConfig) -> str:
    """12 hex digits of the SHA-256 of the canonical JSON of ``run_identity(cfg)``."""
    canonical = json.dumps(run_identity(cfg), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def directory_run_id(stage: str, directory: Path) -> str:
    """``<stage>-<12 hex>`` from a job's output dir: the tracker run id of a stage that trains nothing
    (infer, evaluate), stable when the same dir is written again."""
    return f"{stage}-" + hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:12]

"""Shared pieces of the training-loop tests: ``train()`` as train.py runs it, with test callbacks added."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from mc16k.config import register_configs
from mc16k.tasks import train as training

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
BUILD_TRAINER = training.build_trainer


class Crash(Exception):
    """Stands in for the process dying."""


class CrashAfterStep(L.Callback):
    """Dies right after the checkpoint of optimizer step ``step`` is written (ModelCheckpoint runs first)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step:
            raise Crash


def compose_run(tmp: Path, tiny_model_dir: Path, overrides: list[str]) -> DictConfig:
    """The train config of a job in ``tmp / 'run'`` on the tiny model."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=[
            *overrides, f"model.name_or_path={tiny_model_dir}",
            f"paths.root_dir={tmp}", f"paths.output_dir={tmp / 'run'}", f"paths.work_dir={tmp}",
        ])  # fmt: skip


def run_training(
    tmp: Path,
    tiny_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    overrides: list[str],
    *callbacks: L.Callback,
) -> float | None:
    """``train()`` as train.py runs it, with test callbacks appended after the trainer's own."""

    def build_with_callbacks(cfg: Any, run_dir: Path, logger: Any) -> L.Trainer:
        trainer = BUILD_TRAINER(cfg, run_dir, logger)
        trainer.callbacks.extend(callbacks)
        return trainer

    monkeypatch.setattr(training, "build_trainer", build_with_callbacks)
    return training.train(compose_run(tmp, tiny_model_dir, overrides))

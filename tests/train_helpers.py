"""Shared pieces of the training-loop tests: ``train()`` as train.py runs it, with test callbacks added."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
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


MODEL_KEYS = ("input_ids", "labels", "position_ids", "attention_mask")


def as_one_batch(micro_batches: list[dict[str, torch.Tensor]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Every row of ``micro_batches`` in one batch: rows right-padded to the widest, each padding run its own
    position block with ignored labels (how a packed row keeps examples apart), no attention mask."""
    rows = []
    for batch in micro_batches:
        for r in range(batch["input_ids"].shape[0]):
            width = int(batch["attention_mask"][r].sum()) if "attention_mask" in batch else batch["input_ids"].shape[1]
            positions = batch["position_ids"][r] if "position_ids" in batch else torch.arange(width)
            rows.append((batch["input_ids"][r, :width], batch["labels"][r, :width], positions[:width]))
    width = max(len(ids) for ids, _, _ in rows)
    one = {
        "input_ids": torch.full((len(rows), width), pad_token_id, dtype=torch.long),
        "labels": torch.full((len(rows), width), -100, dtype=torch.long),
        "position_ids": torch.zeros((len(rows), width), dtype=torch.long),
    }
    for r, (ids, labels, positions) in enumerate(rows):
        n = len(ids)
        one["input_ids"][r, :n], one["labels"][r, :n] = ids, labels
        one["position_ids"][r, :n], one["position_ids"][r, n:] = positions, torch.arange(width - n)
    return one


class CompareStepGradients(L.Callback):
    """At every optimizer step, the gradient the loop accumulated (after DDP's reduction) against that of
    one plain forward and backward of a copy of the model over all the step's micro-batches of every
    process as one batch, with the model's own mean over target tokens. Keeps the largest difference and
    the examples of each step (rank 0)."""

    def __init__(self) -> None:
        self.window: list[dict[str, torch.Tensor]] = []
        self.max_difference: list[float] = []
        self.largest_gradient: list[float] = []
        self.micro_batches: list[int] = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        self.window.append({key: batch[key].detach().clone() for key in MODEL_KEYS if key in batch})

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any) -> None:
        window, self.window = self.window, []
        if trainer.world_size > 1:
            gathered: list[Any] = [None] * trainer.world_size
            torch.distributed.all_gather_object(gathered, window)
            window = [batch for process in gathered for batch in process]
        if trainer.global_rank != 0:
            return
        reference = copy.deepcopy(pl_module.model)
        reference.zero_grad(set_to_none=True)
        reference(**as_one_batch(window, pl_module.pad_token_id), use_cache=False).loss.backward()
        expected = {name: p.grad for name, p in reference.named_parameters() if p.requires_grad}
        actual = {name: p.grad for name, p in pl_module.model.named_parameters() if p.requires_grad}
        assert expected.keys() == actual.keys()
        self.max_difference.append(max(float((actual[k] - expected[k]).abs().max()) for k in actual))
        self.largest_gradient.append(max(float(g.abs().max()) for g in expected.values()))
        self.micro_batches.append(len(window))

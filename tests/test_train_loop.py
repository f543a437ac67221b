"""The optimisation loop against what the paper states, through ``train()`` on the tiny model: the warm-up
schedule, what the throughput figure times."""

from __future__ import annotations

from typing import Any

import lightning as L
import pytest
from train_helpers import run_training

# The tiny model, full precision, no 4-bit (the loop is what is tested here), no base validation
FAST = ["experiment=smoke", "logger=none", "quant.enabled=false", "train.validate_base=false"]


class RecordLearningRate(L.Callback):
    """The learning rate each optimizer step runs at."""

    def __init__(self) -> None:
        self.rates: list[float] = []

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any) -> None:
        self.rates.append(optimizer.param_groups[0]["lr"])


def test_warmup_of_a_40_step_run_starts_at_zero_and_rises_linearly_to_the_constant_rate(
    tmp_path, tiny_model_dir, monkeypatch
):
    recorder = RecordLearningRate()
    overrides = [*FAST, "train.effective_batch_size=2", "data.micro_batch_size=2", "train.accumulate_grad_batches=1",
                 "trainer.max_steps=40", "trainer.max_epochs=100", "train.checkpoint_every_n_steps=100"]  # fmt: skip
    run_training(tmp_path, tiny_model_dir, monkeypatch, overrides, recorder)
    lr = 2e-4  # the paper's constant rate; 3 % of 40 steps is 1.2, rounded up to 2 warm-up steps
    assert recorder.rates == pytest.approx([0.0, lr / 2] + [lr] * 38, rel=1e-12, abs=0.0)

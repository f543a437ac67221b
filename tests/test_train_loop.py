"""The optimisation loop against what the paper states, through ``train()`` on the tiny model: examples per
optimizer step, the step's loss as one token mean (accumulation, processes, the last partial window), the
warm-up schedule, what the throughput figure times, a bit-exact resume."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from safetensors.torch import load_file
from train_helpers import CompareStepGradients, Crash, CrashAfterStep, compose_run, run_training

from mc16k.data.tokenizer import load_tokenizer
from mc16k.models.module import real_token_count

HERE = Path(__file__).resolve().parent

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


# One example per micro-batch has 1 token more or less than another: loss means per micro-batch would differ
# from the step's token mean. Dropout off (a one-batch run would draw other masks); no clipping.
EXACT = [*FAST, "lora.dropout=0.0", "trainer.gradient_clip_val=null", "trainer.max_steps=-1", "trainer.max_epochs=1",
         "train.checkpoint_every_n_steps=1000"]  # fmt: skip


@pytest.mark.parametrize("batching", ["packing", "length_grouped"])
def test_gradient_of_4_accumulated_micro_batches_equals_one_batch_of_the_same_examples(
    tmp_path, tiny_model_dir, monkeypatch, batching
):
    compare = CompareStepGradients()
    overrides = [*EXACT, f"data.batching={batching}", "data.micro_batch_size=2", "train.effective_batch_size=8"]
    run_training(tmp_path, tiny_model_dir, monkeypatch, overrides, compare)
    # 79 training examples: 40 micro-batches, 10 steps of 4, the last with 7 examples (one micro-batch of 1)
    assert compare.micro_batches == [4] * 10
    assert max(compare.max_difference) < 1e-5 < min(compare.largest_gradient)


def test_partial_last_accumulation_window_is_not_scaled_down(tmp_path, tiny_model_dir, monkeypatch):
    compare = CompareStepGradients()
    overrides = [*EXACT, "data.micro_batch_size=2", "train.effective_batch_size=6"]  # 40 micro-batches: 13 x 3 + 1
    run_training(tmp_path, tiny_model_dir, monkeypatch, overrides, compare)
    assert compare.micro_batches == [3] * 13 + [1]
    assert max(compare.max_difference) < 1e-5 < min(compare.largest_gradient)


def test_gradient_of_2_gloo_processes_with_accumulation_equals_one_batch(tmp_path, tiny_model_dir):
    result = tmp_path / "result.json"
    overrides = [*EXACT, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true",
                 "data.micro_batch_size=2", "train.effective_batch_size=12"]  # 40 micro-batches: 6 x (2 x 3) + 4
    subprocess.run([sys.executable, str(HERE / "ddp_step_gradients.py"), str(result), str(tiny_model_dir), str(tmp_path),
                    *overrides], cwd=HERE.parent, check=True, timeout=600)  # fmt: skip
    compare = json.loads(result.read_text())
    assert compare["micro_batches"] == [6] * 6 + [4]  # the last step: 2 micro-batches per process
    assert max(compare["max_difference"]) < 1e-5 < min(compare["largest_gradient"])


@pytest.mark.parametrize("batching", ["packing", "length_grouped"])
def test_effective_batch_counts_examples_whatever_the_layout(tmp_path, tiny_model_dir, monkeypatch, batching):
    overrides = [*FAST, f"data.batching={batching}", "data.micro_batch_size=4", "train.effective_batch_size=8",
                 "trainer.max_steps=-1", "trainer.max_epochs=2", "train.checkpoint_every_n_steps=1000"]  # fmt: skip
    run_training(tmp_path, tiny_model_dir, monkeypatch, overrides)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    # 79 training examples per epoch: 9 steps of 8 and a last one of 7, twice
    assert (metrics["steps_per_epoch"], metrics["optimizer_steps"]) == (10, 20)
    assert (metrics["examples_per_step_min"], metrics["examples_per_step_max"]) == (7, 8)
    assert metrics["examples_per_step_mean"] == pytest.approx(79 / 10)
    assert metrics["effective_batch_size"] == 8 and metrics["tokens_per_step_mean"] > 0


class SlowOptimizerStepClock(L.Callback):
    """Half a second between backward and the optimizer step, and each step's (real tokens, wall time from
    its start to after the optimizer step), one micro-batch per step. Callbacks run before the module's own
    hooks, so a clock in the module that covers the whole step spans at least this one."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id
        self.steps: list[tuple[int, float]] = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        self.started, self.tokens = time.perf_counter(), real_token_count(batch, self.pad_token_id)

    def on_before_optimizer_step(self, *args: Any) -> None:
        time.sleep(0.5)

    def on_train_batch_end(self, *args: Any) -> None:
        self.steps.append((self.tokens, time.perf_counter() - self.started))


def test_tokens_per_second_times_the_whole_step_backward_and_optimizer_included(tmp_path, tiny_model_dir, monkeypatch):
    overrides = [*FAST, "logger=csv", "data.micro_batch_size=2", "train.effective_batch_size=2", "trainer.max_steps=3"]
    clock = SlowOptimizerStepClock(pad_token_id=load_tokenizer(compose_run(tmp_path, tiny_model_dir, overrides).model).pad_token_id)
    run_training(tmp_path, tiny_model_dir, monkeypatch, overrides, clock)
    with (tmp_path / "run" / "csv" / "metrics.csv").open() as handle:
        rates = [float(row["train/tokens_per_s"]) for row in csv.DictReader(handle) if row.get("train/tokens_per_s")]
    assert len(rates) == len(clock.steps) == 3
    for rate, (tokens, seconds) in zip(rates, clock.steps, strict=True):
        assert rate <= tokens / seconds * 1.01  # at most the rate over the whole step, sleep included


def adapter_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "adapter" / "adapter_model.safetensors")


def test_run_killed_after_step_3_and_resumed_ends_with_the_uninterrupted_adapter_bit_for_bit(
    tmp_path, tiny_model_dir, monkeypatch
):
    # smoke: 4-bit tiny model, LoRA dropout 0.1; a checkpoint after every optimizer step
    overrides = ["experiment=smoke", "logger=none", "train.validate_base=false", "train.checkpoint_every_n_steps=1",
                 "trainer.max_steps=6"]  # fmt: skip
    run_training(tmp_path / "uninterrupted", tiny_model_dir, monkeypatch, overrides)
    with pytest.raises(Crash):
        run_training(tmp_path / "killed", tiny_model_dir, monkeypatch, overrides, CrashAfterStep(3))
    run_training(tmp_path / "killed", tiny_model_dir, monkeypatch, overrides)
    expected, resumed = adapter_weights(tmp_path / "uninterrupted" / "run"), adapter_weights(tmp_path / "killed" / "run")
    assert expected.keys() == resumed.keys() and expected
    assert all(torch.equal(expected[key], resumed[key]) for key in expected)

"""A training run killed after a checkpoint and resumed trains on exactly the batches an uninterrupted run
would have trained on from that point: the rest of the interrupted epoch, then the next ones, in order."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import lightning as L
import pytest
from hydra import compose, initialize_config_dir

from mc16k.config import register_configs
from mc16k.tasks import train as training

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
BUILD_TRAINER = training.build_trainer

# 10 planned batches per epoch (micro-batches of 8 packed rows), 2 per optimizer step, 2 epochs
SETTINGS = [
    "experiment=smoke", "logger=none", "quant.enabled=false", "train.validate_base=false",
    "data.micro_batch_size=8", "train.accumulate_grad_batches=2", "train.checkpoint_every_n_steps=1",
    "trainer.max_epochs=2", "trainer.max_steps=-1",
]  # fmt: skip
BATCHES_PER_EPOCH = 10


class Crash(Exception):
    """Stands in for the process dying."""


class RecordBatches(L.Callback):
    """(epoch, content hash) of each batch a training step receives."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, str]] = []

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        digest = hashlib.sha256(batch["input_ids"].numpy().tobytes() + batch["labels"].numpy().tobytes())
        self.seen.append((trainer.current_epoch, digest.hexdigest()[:16]))


class CrashAfterStep(L.Callback):
    """Dies right after the checkpoint of optimizer step ``step`` is written (ModelCheckpoint runs first)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step:
            raise Crash


class CrashAtEpochStart(L.Callback):
    """Dies as epoch ``epoch`` starts, after the previous epoch's end-of-epoch checkpoint."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            raise Crash


def run(
    tmp: Path,
    tiny_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    overrides: list[str],
    *callbacks: L.Callback,
) -> None:
    """``train()`` as train.py runs it, with test callbacks appended after the trainer's own."""

    def build_with_callbacks(cfg: Any, run_dir: Path, logger: Any) -> L.Trainer:
        trainer = BUILD_TRAINER(cfg, run_dir, logger)
        trainer.callbacks.extend(callbacks)
        return trainer

    monkeypatch.setattr(training, "build_trainer", build_with_callbacks)
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[
            *SETTINGS, *overrides, f"model.name_or_path={tiny_model_dir}",
            f"paths.root_dir={tmp}", f"paths.output_dir={tmp / 'run'}", f"paths.work_dir={tmp}",
        ])  # fmt: skip
    training.train(cfg)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> list[tuple[int, str]]:
    recorder = RecordBatches()
    with pytest.MonkeyPatch.context() as monkeypatch:
        run(tmp_path_factory.mktemp("uninterrupted"), tiny_model_dir, monkeypatch, [], recorder)
    return recorder.seen


def test_epoch_order_is_a_fresh_permutation_per_epoch(uninterrupted):
    epochs = [[digest for epoch, digest in uninterrupted if epoch == e] for e in (0, 1)]
    assert [len(set(batches)) for batches in epochs] == [BATCHES_PER_EPOCH] * 2
    assert set(epochs[0]) == set(epochs[1]) and epochs[0] != epochs[1]


@pytest.mark.parametrize(
    ("overrides", "crash", "trained_before_crash"),
    [
        pytest.param([], CrashAfterStep(2), 4, id="mid-epoch-0"),
        pytest.param([], CrashAtEpochStart(1), 10, id="after-end-of-epoch-checkpoint"),
        pytest.param(["trainer.max_steps=10"], CrashAfterStep(5), 10, id="last-batch-of-epoch-0-step-based"),
        pytest.param(["data.num_workers=1"], CrashAfterStep(7), 14, id="mid-epoch-1-one-worker"),
    ],
)
def test_resumed_run_trains_on_the_batches_the_uninterrupted_run_had_left(
    tmp_path, tiny_model_dir, monkeypatch, uninterrupted, overrides, crash, trained_before_crash
):
    before, after = RecordBatches(), RecordBatches()
    with pytest.raises(Crash):
        run(tmp_path, tiny_model_dir, monkeypatch, overrides, before, crash)
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    run(tmp_path, tiny_model_dir, monkeypatch, overrides, after)
    assert before.seen == uninterrupted[:trained_before_crash]
    assert after.seen == uninterrupted[trained_before_crash:]
    assert (tmp_path / "run" / "done.json").is_file()

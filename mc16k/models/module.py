"""The LightningModule: plain cross-entropy on response tokens over a (4-bit) base with LoRA adapters.

Labels come from the data layer with -100 on everything but the response, so the model's own loss is the
loss on response tokens only. Checkpoints keep the trainable (LoRA) weights and never the frozen base.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torchmetrics import MeanMetric

from mc16k.errors import BadInputError
from mc16k.schema import IGNORE_INDEX

log = logging.getLogger(__name__)

# bitsandbytes' CPU 4-bit kernel has no registered autograd kernel and torch warns on every backward; the
# gradients are exact all the same (tests/test_models_training.py compares them with a dequantized copy).
warnings.filterwarnings("ignore", message=r"bitsandbytes::gemv_4bit: an autograd kernel was not registered")

MODEL_INPUTS = ("input_ids", "attention_mask", "position_ids", "labels")
OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., Any]


def real_token_count(batch: dict[str, torch.Tensor], pad_token_id: int) -> int:
    """Tokens that are not padding: the attention mask when there is one, else ids other than pad."""
    if "attention_mask" in batch:
        return int(batch["attention_mask"].sum())
    return int((batch["input_ids"] != pad_token_id).sum())


def target_token_count(labels: torch.Tensor) -> int:
    """Tokens the loss is taken on (labels are shifted by one inside the model)."""
    return int((labels[:, 1:] != IGNORE_INDEX).sum())


class CausalLMFineTuner(L.LightningModule):
    """Fine-tunes the trainable parameters of ``model``; logs loss, perplexity, lr, tokens/s, efficiency."""

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer_factory: OptimizerFactory,
        scheduler_factory: SchedulerFactory,
        pad_token_id: int,
    ) -> None:
        super().__init__()
        self.model = model
        self.optimizer_factory = optimizer_factory
        self.scheduler_factory = scheduler_factory
        self.pad_token_id = pad_token_id
        self.strict_loading = False  # checkpoints hold the adapter only; the base comes from its own files
        self.val_loss = MeanMetric()
        self._batch_started = 0.0

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {key: batch[key] for key in MODEL_INPUTS if key in batch}
        # No KV cache: with one, transformers ignores the per-example position ids of packed rows and the
        # packed examples attend to each other.
        return self.model(**inputs, use_cache=False).loss

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self._batch_started = time.perf_counter()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self(batch)
        real = real_token_count(batch, self.pad_token_id)
        seconds = max(time.perf_counter() - self._batch_started, 1e-9)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=1, sync_dist=True)
        self.log("train/tokens_per_s", real / seconds, prog_bar=True, on_step=True, batch_size=1)
        self.log("train/token_efficiency", real / batch["input_ids"].numel(), on_step=True, batch_size=1)
        if torch.cuda.is_available() and self.device.type == "cuda":
            peak_gib = torch.cuda.max_memory_allocated(self.device) / 2**30
            self.log("train/peak_gpu_mem_gib", peak_gib, on_step=True, batch_size=1)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.val_loss.update(self(batch), weight=target_token_count(batch["labels"]))

    def on_validation_epoch_end(self) -> None:
        loss = self.val_loss.compute()
        self.val_loss.reset()
        # compute() already reduced over processes; sync_dist averages equal values (and keeps Lightning quiet)
        self.log("val/loss", loss, prog_bar=True, sync_dist=True)
        self.log("val/perplexity", torch.exp(loss.clamp(max=50.0)), sync_dist=True)

    def configure_optimizers(self) -> dict[str, Any]:
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        if not trainable:
            raise ValueError("the model has no trainable parameters (was LoRA applied?)")
        optimizer = self.optimizer_factory(trainable)
        total_steps = self.trainer.estimated_stepping_batches
        if not math.isfinite(total_steps):
            raise BadInputError("set trainer.max_epochs or trainer.max_steps: the warm-up needs the total step count")
        scheduler = self.scheduler_factory(optimizer, total_steps=int(total_steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The module's state restricted to trainable parameters (what a checkpoint must hold)."""
        trainable = {name for name, p in self.named_parameters() if p.requires_grad}
        return {key: value for key, value in self.state_dict().items() if key in trainable}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["state_dict"] = self.trainable_state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # strict_loading=False lets the frozen base be absent; the trainable (LoRA) keys must match exactly
        expected, found = set(self.trainable_state_dict()), set(checkpoint.get("state_dict", {}))
        if expected != found:
            missing, unexpected = sorted(expected - found), sorted(found - expected)
            raise RuntimeError(
                f"checkpoint does not hold this model's adapter: {len(missing)} LoRA keys missing "
                f"(e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]})"
            )
        log.info("resuming at optimizer step %d (epoch %d)", checkpoint["global_step"], checkpoint["epoch"])

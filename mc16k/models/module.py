"""The LightningModule: plain cross-entropy on response tokens over a (4-bit) base with LoRA adapters.

Labels come from the data layer with -100 on everything but the response, so the model's own loss is the
loss on response tokens only. Checkpoints keep the trainable (LoRA) weights and never the frozen base.
"""

from __future__ import annotations

import logging
import math
import random
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lightning as L
import numpy as np
import torch

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


STEP_STATS_KEY = "mc16k_step_stats"
RNG_STATES_KEY = "mc16k_rng_states"  # one entry per process (global rank)


def rng_states(device: torch.device) -> dict[str, Any]:
    """This process's random generators: torch (CPU, and CUDA of its device), numpy, Python."""
    name, keys, position, has_gauss, gauss = np.random.get_state(legacy=True)
    states: dict[str, Any] = {  # plain types and tensors only: Lightning loads checkpoints weights_only
        "torch": torch.get_rng_state(),
        "numpy": [name, keys.tolist(), int(position), int(has_gauss), float(gauss)],
        "python": random.getstate(),
    }
    if device.type == "cuda":
        states["torch.cuda"] = torch.cuda.get_rng_state(device)
    return states


def set_rng_states(states: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(states["torch"])
    name, keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), position, has_gauss, gauss))
    random.setstate(states["python"])
    if "torch.cuda" in states and device.type == "cuda":
        torch.cuda.set_rng_state(states["torch.cuda"], device)


@dataclass
class StepWindow:
    """What this process has accumulated of the optimizer step under way."""

    started: float  # perf_counter at the step's first micro-batch
    step_target_tokens: int  # the planned divisor of the step's loss (all processes)
    examples: int = 0
    real_tokens: int = 0
    target_tokens: int = 0
    loss: float = 0.0  # this process's share of the step's token-mean loss
    step_real_tokens: int | None = None  # all processes' real tokens, set at the optimizer step

    def add(self, examples: int, real_tokens: int, target_tokens: int, loss: float) -> None:
        self.examples += examples
        self.real_tokens += real_tokens
        self.target_tokens += target_tokens
        self.loss += loss


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
        self._val_sums: list[float] = [0.0, 0]  # summed token loss, target tokens (this process)
        self.step_stats: list[dict[str, int]] = []  # per optimizer step, all processes: examples, tokens
        self._window: StepWindow | None = None  # the optimizer step being accumulated
        self._saved_rng_states: list[dict[str, Any]] | None = None  # from a checkpoint, set at the next step

    def forward(self, batch: dict[str, torch.Tensor], num_items_in_batch: torch.Tensor | None = None) -> torch.Tensor:
        """The model's cross-entropy: the mean over the batch's target tokens, or with ``num_items_in_batch``
        their sum divided by it (transformers' own loss, as its Trainer calls it)."""
        inputs = {key: batch[key] for key in MODEL_INPUTS if key in batch}
        extra = {} if num_items_in_batch is None else {"num_items_in_batch": num_items_in_batch}
        # No KV cache: with one, transformers ignores the per-example position ids of packed rows and the
        # packed examples attend to each other.
        return self.model(**inputs, use_cache=False, **extra).loss

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if self._saved_rng_states is not None:  # the first step after a resume: continue the saved draws
            states, self._saved_rng_states = self._saved_rng_states, None
            if len(states) == self.trainer.world_size:
                set_rng_states(states[self.trainer.global_rank], self.device)
            else:
                log.warning("the checkpoint was written by %d processes, this run has %d: random generator "
                            "states not restored", len(states), self.trainer.world_size)  # fmt: skip
        if self._window is None:  # the first micro-batch of an optimizer step: its clock starts here
            self._window = StepWindow(started=time.perf_counter(), step_target_tokens=int(batch["step_target_tokens"]))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """The summed token loss of this micro-batch over the target tokens of its whole optimizer step.

        Lightning divides what this returns by the accumulation count (the last, partial window of an epoch
        too) and DDP / FSDP average the gradients over processes, so it is multiplied by both: the step's
        gradient is then that of the token mean over every example of the step, whatever the layout."""
        assert self._window is not None
        loss = self(batch, num_items_in_batch=batch["step_target_tokens"])
        real = real_token_count(batch, self.pad_token_id)
        self._window.add(
            examples=int(batch["examples"]), real_tokens=real,
            target_tokens=target_token_count(batch["labels"]), loss=float(loss.detach()),
        )  # fmt: skip
        self.log("train/token_efficiency", real / batch["input_ids"].numel(), on_step=True, batch_size=1)
        return loss * (self.trainer.accumulate_grad_batches * self.trainer.world_size)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Sum the step's counts over processes, check them against the plan, log and keep them."""
        window = self._window
        assert window is not None
        totals = torch.tensor(
            [window.examples, window.real_tokens, window.target_tokens, window.loss], dtype=torch.float64
        )
        examples, real_tokens, target_tokens, loss = self.trainer.strategy.reduce(totals.to(self.device), reduce_op="sum").tolist()
        if int(target_tokens) != window.step_target_tokens:
            raise RuntimeError(
                f"optimizer step {self.trainer.global_step}: the loss was divided by {window.step_target_tokens} "
                f"planned target tokens but the processes' micro-batches held {int(target_tokens)}"
            )
        self.step_stats.append({"examples": int(examples), "tokens": int(real_tokens), "target_tokens": int(target_tokens)})
        window.step_real_tokens = int(real_tokens)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=1)
        self.log("train/examples_per_step", examples, on_step=True, batch_size=1)
        if torch.cuda.is_available() and self.device.type == "cuda":
            peak_gib = torch.cuda.max_memory_allocated(self.device) / 2**30
            self.log("train/peak_gpu_mem_gib", peak_gib, on_step=True, batch_size=1)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """After the optimizer step: the throughput of the whole step (forward, backward and optimizer)."""
        window = self._window
        if window is None or window.step_real_tokens is None:
            return  # an accumulation micro-batch: the step goes on
        seconds = max(time.perf_counter() - window.started, 1e-9)
        self.log("train/tokens_per_s", window.step_real_tokens / seconds, prog_bar=True, on_step=True, batch_size=1)
        self._window = None

    def step_summary(self) -> dict[str, float | int]:
        """Per-run figures of the optimizer steps taken (a resumed run's included): examples and tokens."""
        examples = [step["examples"] for step in self.step_stats]
        if not examples:
            return {"optimizer_steps": 0}
        return {
            "optimizer_steps": len(examples),
            "examples_per_step_mean": sum(examples) / len(examples),
            "examples_per_step_min": min(examples),
            "examples_per_step_max": max(examples),
            "tokens_per_step_mean": sum(step["tokens"] for step in self.step_stats) / len(examples),
            "target_tokens_per_step_mean": sum(step["target_tokens"] for step in self.step_stats) / len(examples),
        }

    def on_validation_epoch_start(self) -> None:
        self._val_sums = [0.0, 0]

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        one = torch.ones((), device=self.device)  # divides by 1: the summed token loss
        self._val_sums[0] += float(self(batch, num_items_in_batch=one))
        self._val_sums[1] += target_token_count(batch["labels"])

    def on_validation_epoch_end(self) -> None:
        """The token mean over every validation example of every process. Plain sums, reduced here: a
        metric object's state made under ``trainer.validate``'s inference mode cannot be updated by the
        validation inside ``fit`` (which runs without inference mode)."""
        sums = torch.tensor(self._val_sums, dtype=torch.float64, device=self.device)
        total, tokens = self.trainer.strategy.reduce(sums, reduce_op="sum").tolist()
        loss = torch.tensor(total / max(tokens, 1.0))
        self.log("val/loss", loss, prog_bar=True)
        self.log("val/perplexity", torch.exp(loss.clamp(max=50.0)))

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
        checkpoint[STEP_STATS_KEY] = list(self.step_stats)
        # Every process's generators (Lightning calls this hook on every process, rank 0 writes the file), so
        # that a resumed run draws the dropout masks the uninterrupted one would have drawn.
        states = rng_states(self.device)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, states)
            checkpoint[RNG_STATES_KEY] = gathered
        else:
            checkpoint[RNG_STATES_KEY] = [states]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.step_stats = list(checkpoint.get(STEP_STATS_KEY, []))
        self._saved_rng_states = checkpoint.get(RNG_STATES_KEY)
        if self._saved_rng_states is None:
            log.warning("the checkpoint holds no random generator states: dropout masks will differ from an "
                        "uninterrupted run")  # fmt: skip
        # strict_loading=False lets the frozen base be absent; the trainable (LoRA) keys must match exactly
        expected, found = set(self.trainable_state_dict()), set(checkpoint.get("state_dict", {}))
        if expected != found:
            missing, unexpected = sorted(expected - found), sorted(found - expected)
            raise RuntimeError(
                f"checkpoint does not hold this model's adapter: {len(missing)} LoRA keys missing "
                f"(e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]})"
            )
        log.info("resuming at optimizer step %d (epoch %d)", checkpoint["global_step"], checkpoint["epoch"])

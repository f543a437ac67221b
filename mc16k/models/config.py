"""Typed configs for LoRA, quantization, baselines and training (conf/lora, conf/quant, conf/baseline, conf/optim).

The base model's own config (``ModelConfig``) lives in ``mc16k.schema``: the data stage reads it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from mc16k.dtypes import DType
from mc16k.schema import ModelConfig


@dataclass
class LoraConfig:
    """LoRA adapter settings (paper: r=64, alpha=16, dropout=0.1 on all linear layers but lm_head)."""

    r: int = 64
    alpha: int = 16
    dropout: float = 0.1
    target_modules: Any = "all-linear"  # "all-linear" or an explicit list of module names
    bias: str = "none"


@dataclass
class QuantConfig:
    """bitsandbytes 4-bit quantization of the frozen base; ``enabled=false`` is plain LoRA."""

    enabled: bool = True
    quant_type: str = "nf4"
    double_quant: bool = True
    compute_dtype: DType = DType.bfloat16
    quant_storage: DType = DType.uint8  # FSDP needs this equal to the compute dtype


@dataclass
class BaselineConfig(ModelConfig):
    """A model answered with but never fine-tuned."""


@dataclass
class TrainConfig:
    """One fine-tuning job: the optimisation recipe, checkpoints and run identity (conf/optim, train.yaml).

    ``optimizer`` and ``scheduler`` are ``_partial_`` Hydra targets: the module calls them with the
    trainable parameters, and with the optimizer and the total optimizer steps.
    """

    group: str = "default"  # names the sweep dir (multirun/<group>/) and the W&B group
    optimizer: Any = None
    scheduler: Any = None
    effective_batch_size: int = 64  # paper: 64 = micro-batch x accumulation x processes
    accumulate_grad_batches: Optional[int] = None  # null: effective_batch_size / (data.micro_batch_size x processes)
    gradient_checkpointing: bool = True  # use_reentrant=False; off for the tiny/demo CPU runs
    checkpoint_every_n_steps: int = 50  # optimizer steps between adapter-only checkpoints (plus one per epoch)
    validate_base: bool = True  # validation loss of the untouched base first, printed beside the adapter's
    skip_finished: bool = True  # a job whose dir holds done.json with the same run id returns at once

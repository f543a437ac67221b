"""Typed configs for base models, LoRA and quantization (conf/model, conf/baseline, conf/lora, conf/quant)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Optional

from mc16k.dtypes import DType


class PromptFormat(str, Enum):
    """How a conversation becomes text: the tokenizer's own chat template, or a template file of ours."""

    chat_template = "chat_template"
    alpaca = "alpaca"
    vicuna = "vicuna"


@dataclass
class ModelConfig:
    """A base model (or baseline) and what differs between models."""

    name: str = "???"  # short id used in run dirs and answer files
    name_or_path: str = "???"  # hub id or local dir
    gguf_file: Optional[str] = None  # load a GGUF file inside name_or_path (dequantized by transformers)
    revision: Optional[str] = None
    prompt_format: PromptFormat = PromptFormat.alpaca
    system_in_user: bool = False  # chat templates without a system role (Mistral-Instruct): prepend it to the user turn
    pad_token: Optional[str] = None  # null: add a dedicated pad token when the tokenizer has none / has pad == eos
    max_context: int = 4096
    dtype: DType = DType.bfloat16  # weights dtype when not quantized
    trust_remote_code: bool = False
    base_model: Optional[str] = None  # baselines: what they were tuned from (documentation only)


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

"""LoRA on a loaded base: k-bit preparation, gradient checkpointing, seeded adapter initialisation."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from omegaconf import OmegaConf
from peft import LoraConfig as PeftLoraConfig
from peft import PeftModel, get_peft_model, prepare_model_for_kbit_training
from transformers import PreTrainedModel

from mc16k.models.config import LoraConfig

log = logging.getLogger(__name__)

CHECKPOINTING_KWARGS = {"use_reentrant": False}


@dataclass(frozen=True)
class TrainableShare:
    """Trainable parameters as PEFT counts them, and as the paper's QLoRA script printed them.

    ``four_bit`` is how many of the ``total`` weights are stored in 4 bits. PEFT counts each at full size
    (2.26 % on Mistral-7B at r=64). The authors' script (qlora.py ``print_trainable_parameters``) counted the
    packed 4-bit tensors, two weights per byte, at half, and halved the trainable count too under 4 bits:
    that is the paper's "about 2.14 %".
    """

    trainable: int
    total: int
    four_bit: int = 0

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / self.total

    @property
    def paper_script_percent(self) -> float:
        if not self.four_bit:
            return self.percent
        return 100.0 * (self.trainable / 2) / (self.total - self.four_bit / 2)

    def __str__(self) -> str:
        return (
            f"{self.trainable:,} of {self.total:,} parameters trainable ({self.percent:.2f} %; "
            f"{self.paper_script_percent:.2f} % as the paper's QLoRA script counted)"
        )


def four_bit_weight_count(model: torch.nn.Module) -> int:
    """Weights stored in 4 bits: every bitsandbytes ``Linear4bit`` layer's in x out."""
    from bitsandbytes.nn import Linear4bit

    return sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, Linear4bit))


ALL_LINEAR = "all-linear"


def all_linear_names(model: torch.nn.Module) -> list[str]:
    """Leaf names of every linear layer (4-bit ones included) but the output head: what "all-linear" means.

    Resolved here rather than by PEFT because PEFT 0.21 reads "all-linear" on a Mixtral as transformers 4's
    layers (router ``gate``, experts ``w1``/``w2``/``w3``) and maps them onto transformers 5's fused 3-D
    parameters (``ParamWrapper``, which refuses dropout), even when the experts are linear layers again.
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return sorted({
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and module is not head
    })  # fmt: skip


def peft_lora_config(lora_cfg: LoraConfig, model: torch.nn.Module | None = None) -> PeftLoraConfig:
    """peft's LoraConfig from ours; with ``model``, "all-linear" becomes that model's linear layer names."""
    targets = lora_cfg.target_modules
    if OmegaConf.is_config(targets):
        targets = OmegaConf.to_container(targets)
    if model is not None and targets == ALL_LINEAR:
        targets = all_linear_names(model)
    return PeftLoraConfig(
        r=lora_cfg.r,
        lora_alpha=lora_cfg.alpha,
        lora_dropout=lora_cfg.dropout,
        target_modules=targets,
        bias=lora_cfg.bias,
        task_type="CAUSAL_LM",
    )


def attach_lora(
    model: PreTrainedModel, lora_cfg: LoraConfig, seed: int, quantized: bool, gradient_checkpointing: bool
) -> tuple[PeftModel, TrainableShare]:
    """Wrap ``model`` with fresh LoRA adapters, seeded so one seed always gives one initialisation.

    A 4-bit base goes through ``prepare_model_for_kbit_training`` (norms and embeddings in fp32, input
    gradients on); checkpointing uses ``use_reentrant=False``, which also works under DDP.
    """
    if quantized:
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=gradient_checkpointing,
            gradient_checkpointing_kwargs=CHECKPOINTING_KWARGS,
        )
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=CHECKPOINTING_KWARGS)
        model.enable_input_require_grads()
    torch.manual_seed(seed)
    peft_model = get_peft_model(model, peft_lora_config(lora_cfg, model))
    peft_model.train()  # transformers 5 loads in eval mode; LoRA dropout must be active in training
    share = TrainableShare(*peft_model.get_nb_trainable_parameters(), four_bit=four_bit_weight_count(peft_model))
    log.info("LoRA r=%d alpha=%d: %s", lora_cfg.r, lora_cfg.alpha, share)
    return peft_model, share

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
    trainable: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / self.total

    def __str__(self) -> str:
        return f"{self.trainable:,} of {self.total:,} parameters trainable ({self.percent:.2f} %)"


def peft_lora_config(lora_cfg: LoraConfig) -> PeftLoraConfig:
    """peft's LoraConfig from ours ("all-linear" covers every linear layer but lm_head)."""
    targets = lora_cfg.target_modules
    if OmegaConf.is_config(targets):
        targets = OmegaConf.to_container(targets)
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
    peft_model = get_peft_model(model, peft_lora_config(lora_cfg))
    peft_model.train()  # transformers 5 loads in eval mode; LoRA dropout must be active in training
    share = TrainableShare(*peft_model.get_nb_trainable_parameters())
    log.info("LoRA r=%d alpha=%d: %s", lora_cfg.r, lora_cfg.alpha, share)
    return peft_model, share

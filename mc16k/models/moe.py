"""Mixtral's experts as one ``nn.Linear`` per expert projection, so QLoRA treats them as the paper did.

transformers 5 fuses each layer's experts into two 3-D parameters (``gate_up_proj``, ``down_proj``).
bitsandbytes does not quantize 3-D parameters on load (the 8x7B base would stay ~87 GB of bf16 experts), and
PEFT can reach them only through ``ParamWrapper``, which refuses LoRA dropout. The paper (transformers 4.36)
had per-expert ``w1``/``w2``/``w3`` linear layers: 4-bit NF4 with double quantization, LoRA with dropout 0.1.

``per_expert_mixtral()`` restores that layout *at load time*: while it is active, a Mixtral is built with
``PerExpertMixtralExperts`` (``experts.<i>.gate_proj/up_proj/down_proj``, renamed from the checkpoint's
``w1/w3/w2`` on load) and loaded without the fusing weight converters, so bitsandbytes quantizes every expert weight as it streams in, and
``all-linear`` LoRA wraps each one as a ``Linear4bit``. The router stays a plain (bf16) parameter, neither
quantized nor adapted. The forward is the fused one, expert by expert, in the same order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from transformers.activations import ACT2FN

MIXTRAL = "mixtral"
# an expert's projections: our module names (Llama's) for the hub checkpoint's w1, w3, w2. Not w1/w2/w3 themselves:
# PEFT maps those v4 names onto transformers 5's fused 3-D parameters (ParamWrapper, no dropout).
CHECKPOINT_NAMES = {"gate_proj": "w1", "up_proj": "w3", "down_proj": "w2"}
EXPERT_PROJECTIONS = tuple(CHECKPOINT_NAMES)


class MixtralExpert(nn.Module):
    """One expert's SwiGLU MLP: ``down(act(gate x) * up x)``, i.e. the checkpoint's ``w2(act(w1 x) * w3 x)``."""

    def __init__(self, hidden_dim: int, intermediate_dim: int, act_fn: nn.Module) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden_dim, intermediate_dim, bias=False)
        self.up_proj = nn.Linear(hidden_dim, intermediate_dim, bias=False)
        self.down_proj = nn.Linear(intermediate_dim, hidden_dim, bias=False)
        self.act_fn = act_fn

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_fn(self.gate_proj(hidden_states)) * self.up_proj(hidden_states))


class PerExpertMixtralExperts(nn.ModuleList):
    """Drop-in for transformers' ``MixtralExperts`` (same call, same result) holding one module per expert."""

    def __init__(self, config) -> None:
        act_fn = ACT2FN[config.hidden_act]
        super().__init__(
            MixtralExpert(config.hidden_size, config.intermediate_size, act_fn) for _ in range(config.num_local_experts)
        )
        self.num_experts = config.num_local_experts

    def forward(
        self, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor
    ) -> torch.Tensor:
        final_hidden_states = torch.zeros_like(hidden_states)
        with torch.no_grad():
            # one class more than experts, as transformers does: index num_experts marks tokens routed nowhere
            expert_mask = torch.nn.functional.one_hot(top_k_index, num_classes=self.num_experts + 1).permute(2, 1, 0)
            expert_hit = torch.greater(expert_mask.sum(dim=(-1, -2)), 0).nonzero()
        for (expert_idx,) in expert_hit.tolist():
            if expert_idx == self.num_experts:
                continue
            top_k_pos, token_idx = torch.where(expert_mask[expert_idx])
            current = self[expert_idx](hidden_states[token_idx]) * top_k_weights[token_idx, top_k_pos, None]
            final_hidden_states.index_add_(0, token_idx, current.to(final_hidden_states.dtype))
        return final_hidden_states


def is_mixtral(config) -> bool:
    return getattr(config, "model_type", None) == MIXTRAL


@contextlib.contextmanager
def per_expert_mixtral() -> Iterator[None]:
    """Within this block, Mixtral models are built and loaded with per-expert linear layers.

    Two patches, both undone on exit: the sparse MoE block's constructor (its fused ``experts`` are
    swapped for ``PerExpertMixtralExperts``; under ``from_pretrained`` the fused ones exist only on the
    meta device) and the ``mixtral`` checkpoint conversion (kept: ``block_sparse_moe`` -> ``mlp``;
    added: ``experts.<i>.w1/w3/w2`` -> ``gate_proj/up_proj/down_proj``; dropped: the converters that stack
    them into 3-D tensors). Saving a converted model reverses the renames, so its files keep the hub layout.
    """
    from transformers import conversion_mapping
    from transformers.core_model_loading import WeightRenaming
    from transformers.models.mixtral import modeling_mixtral

    original = conversion_mapping.get_checkpoint_conversion_mapping(MIXTRAL)
    renames = [t for t in original if isinstance(t, WeightRenaming)] + [
        WeightRenaming(f".{hub}.weight", f".{ours}.weight") for ours, hub in CHECKPOINT_NAMES.items()
    ]
    was_user_registered = MIXTRAL in conversion_mapping.USER_REGISTERED_MAPPINGS
    block = modeling_mixtral.MixtralSparseMoeBlock
    fused_init = block.__init__

    def per_expert_init(self, config) -> None:
        fused_init(self, config)
        self.experts = PerExpertMixtralExperts(config)

    conversion_mapping.register_checkpoint_conversion_mapping(MIXTRAL, renames, overwrite=True)
    block.__init__ = per_expert_init
    try:
        yield
    finally:
        block.__init__ = fused_init
        conversion_mapping.register_checkpoint_conversion_mapping(MIXTRAL, original, overwrite=True)
        if not was_user_registered:
            conversion_mapping.USER_REGISTERED_MAPPINGS.discard(MIXTRAL)


def expert_linears(model: nn.Module) -> dict[str, nn.Module]:
    """Every per-expert projection module of ``model`` by qualified name (empty for a fused or dense model)."""
    return {
        name: module
        for name, module in model.named_modules()
        if name.rsplit(".", 1)[-1] in EXPERT_PROJECTIONS and ".experts." in name
    }

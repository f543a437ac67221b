"""QLoRA memory of a base model's real shape, computed on the meta device (no weights, no GPU).

Counts what training holds before activations: the 4-bit NF4 weights with their double-quantized
statistics (bitsandbytes' layout: two weights per byte, one uint8 absmax per 64 weights, one fp32 absmax per
256 of those, a 256-entry fp32 code per tensor), the layers left unquantized (embeddings, lm_head, norms,
the Mixtral router) in fp32 as ``prepare_model_for_kbit_training`` leaves them, and the LoRA weights in
fp32 with their gradients and two AdamW moments.

    python -m mc16k.models.footprint                   # Mixtral-8x7B, paper LoRA (r=64)
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import torch
from transformers import AutoModelForCausalLM, PretrainedConfig

from mc16k.models.moe import per_expert_mixtral

NF4_BLOCK = 64  # bitsandbytes' 4-bit block size
NESTED_BLOCK = 256  # double quantization: absmax values per second-level block
PER_TENSOR_BYTES = 256 * 4 + 16 * 4 + 4  # nested code, NF4 code, offset
GIB = 2**30


def nf4_double_quant_bytes(weights: int) -> int:
    """Bytes bitsandbytes stores for one tensor of ``weights`` NF4 weights with double quantization."""
    blocks = math.ceil(weights / NF4_BLOCK)
    return math.ceil(weights / 2) + blocks + 4 * math.ceil(blocks / NESTED_BLOCK) + PER_TENSOR_BYTES


@dataclass(frozen=True)
class QLoraFootprint:
    four_bit_weights: int
    four_bit_bytes: int
    other_params: int
    lora_params: int

    @property
    def other_bytes(self) -> int:
        return 4 * self.other_params  # upcast to fp32 by prepare_model_for_kbit_training

    @property
    def lora_bytes(self) -> int:
        return 16 * self.lora_params  # fp32 weight + gradient + AdamW exp_avg + exp_avg_sq

    @property
    def base_bytes(self) -> int:
        return self.four_bit_bytes + self.other_bytes

    @property
    def bf16_base_bytes(self) -> int:
        return 2 * (self.four_bit_weights + self.other_params)

    @property
    def total_bytes(self) -> int:
        return self.base_bytes + self.lora_bytes

    def __str__(self) -> str:
        return (
            f"base: {self.four_bit_weights / 1e9:.2f} B weights in 4-bit = {self.four_bit_bytes / GIB:.1f} GiB, "
            f"{self.other_params / 1e9:.2f} B others in fp32 = {self.other_bytes / GIB:.1f} GiB "
            f"(the whole base in bf16: {self.bf16_base_bytes / GIB:.1f} GiB); "
            f"LoRA: {self.lora_params / 1e6:.0f} M params, with gradients and AdamW = {self.lora_bytes / GIB:.1f} GiB; "
            f"total before activations {self.total_bytes / GIB:.1f} GiB"
        )


def qlora_footprint(config: PretrainedConfig, lora_r: int = 64) -> QLoraFootprint:
    """Footprint of QLoRA on ``config``'s shape, built on the meta device the way ``load_base_model`` builds it.

    Every ``nn.Linear`` but the output head is 4-bit (what bitsandbytes quantizes on load) and gets LoRA
    rank ``lora_r`` (``all-linear``): ``r x (in + out)`` parameters each.
    """
    with per_expert_mixtral(), torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    head = model.get_output_embeddings()
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m is not head]
    four_bit = sum(m.in_features * m.out_features for m in linears)
    return QLoraFootprint(
        four_bit_weights=four_bit,
        four_bit_bytes=sum(nf4_double_quant_bytes(m.in_features * m.out_features) for m in linears),
        other_params=sum(p.numel() for p in model.parameters()) - four_bit,
        lora_params=sum(lora_r * (m.in_features + m.out_features) for m in linears),
    )


def mixtral_8x7b_config() -> PretrainedConfig:
    """Mixtral-8x7B-v0.1's shape (transformers' ``MixtralConfig`` defaults are that model's sizes)."""
    from transformers import MixtralConfig

    return MixtralConfig()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lora-r", type=int, default=64)
    args = parser.parse_args()
    print(f"Mixtral-8x7B QLoRA (NF4, double quant, LoRA r={args.lora_r} on every linear layer but lm_head):")
    print(qlora_footprint(mixtral_8x7b_config(), args.lora_r))


if __name__ == "__main__":
    main()

"""Mixtral as QLoRA: per-expert linear layers in 4-bit NF4 with LoRA (dropout 0.1) on each, the forward of
the fused transformers 5 model unchanged, the footprint of the real 8x7B shape, the paper's trainable share."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from transformers import AutoModelForCausalLM

from mc16k.models.config import LoraConfig, QuantConfig
from mc16k.models.loading import load_base_model, load_for_inference
from mc16k.models.lora import TrainableShare, attach_lora, peft_lora_config
from mc16k.models.moe import EXPERT_PROJECTIONS, expert_linears
from mc16k.schema import ModelConfig

IDS = torch.tensor([[1, 5, 9, 12, 40, 41, 7, 3, 17, 22, 60, 2], [1, 33, 8, 90, 14, 5, 5, 71, 19, 4, 28, 2]])


def mixtral_cfg(path) -> ModelConfig:
    return OmegaConf.structured(ModelConfig(name="tiny-mixtral", name_or_path=str(path), dtype="float32"))


def test_per_expert_mixtral_computes_what_the_fused_transformers_model_computes(tiny_mixtral_dir):
    fused = AutoModelForCausalLM.from_pretrained(tiny_mixtral_dir, dtype=torch.float32)
    converted = load_base_model(mixtral_cfg(tiny_mixtral_dir), OmegaConf.structured(QuantConfig(enabled=False)))
    assert hasattr(fused.model.layers[0].mlp.experts, "gate_up_proj")  # what transformers 5 builds by itself
    experts = expert_linears(converted)
    layers, num_experts = fused.config.num_hidden_layers, fused.config.num_local_experts
    assert len(experts) == layers * num_experts * len(EXPERT_PROJECTIONS)
    assert all(type(m) is torch.nn.Linear for m in experts.values())
    with torch.no_grad():
        expected, got = fused(IDS).logits, converted(IDS).logits
    assert torch.allclose(got, expected, atol=1e-6, rtol=0), (got - expected).abs().max()


def test_mixtral_qlora_quantizes_every_expert_and_puts_lora_with_dropout_on_each(tiny_mixtral_dir, tmp_path):
    from bitsandbytes.nn import Linear4bit
    from peft.tuners.lora import Linear4bit as LoraLinear4bit

    quant = OmegaConf.structured(QuantConfig(compute_dtype="float32"))
    base = load_base_model(mixtral_cfg(tiny_mixtral_dir), quant)
    experts = expert_linears(base)
    assert experts and all(isinstance(m, Linear4bit) for m in experts.values())
    assert all(m.weight.quant_state.quant_type == "nf4" and m.weight.quant_state.nested for m in experts.values())
    assert not isinstance(base.model.layers[0].mlp.gate, torch.nn.Linear)  # the router: a plain parameter

    model, share = attach_lora(base, OmegaConf.structured(LoraConfig(r=8)), 0, True, False)
    wrapped = {n: m for n, m in model.named_modules() if isinstance(m, LoraLinear4bit)}
    expert_names = {n for n in wrapped if ".experts." in n}
    assert len(expert_names) == len(experts)
    assert {n.rsplit(".", 1)[-1] for n in expert_names} == set(EXPERT_PROJECTIONS)
    assert {n.rsplit(".", 1)[-1] for n in wrapped} == {*EXPERT_PROJECTIONS, "q_proj", "k_proj", "v_proj", "o_proj"}
    assert all(m.lora_dropout["default"].p == 0.1 for m in wrapped.values())
    assert not any("lm_head" in n or ".gate." in n or n.endswith(".gate") for n, _ in model.named_parameters()
                   if "lora_" in n)  # fmt: skip
    assert share.four_bit == sum(m.in_features * m.out_features for m in experts.values()) + sum(
        m.in_features * m.out_features for n, m in wrapped.items() if ".self_attn." in n
    )

    for name, param in model.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0, 0.1)
    model(IDS, labels=IDS).loss.backward()
    expert_grads = [p.grad for n, p in model.named_parameters() if ".experts." in n and "lora_A" in n]
    assert any(g is not None and g.abs().sum() > 0 for g in expert_grads)

    model.eval()
    with torch.no_grad():
        expected = model(IDS).logits
    model.save_pretrained(tmp_path / "adapter")
    reloaded = load_for_inference(mixtral_cfg(tiny_mixtral_dir), quant, adapter_dir=tmp_path / "adapter")
    with torch.no_grad():
        assert torch.allclose(reloaded(IDS).logits, expected, atol=1e-5)


def test_nf4_double_quant_bytes_match_what_bitsandbytes_stores():
    from bitsandbytes.nn import Params4bit

    from mc16k.models.footprint import nf4_double_quant_bytes

    weight = Params4bit(torch.randn(384, 1024), requires_grad=False, quant_type="nf4", compress_statistics=True)
    weight = weight.to("cpu") if weight.bnb_quantized else weight._quantize("cpu")
    state = weight.quant_state
    tensors = [weight.data, state.absmax, state.code, state.state2.absmax, state.state2.code, state.offset]
    assert nf4_double_quant_bytes(384 * 1024) == sum(t.numel() * t.element_size() for t in tensors)


def test_mixtral_8x7b_in_4bit_with_paper_lora_fits_one_80gb_gpu_and_bf16_would_not():
    from mc16k.models.footprint import GIB, mixtral_8x7b_config, qlora_footprint

    config = mixtral_8x7b_config()
    footprint = qlora_footprint(config, lora_r=64)
    h, i, layers, e = config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.num_local_experts
    kv = config.num_key_value_heads * h // config.num_attention_heads
    assert footprint.four_bit_weights == layers * (e * 3 * h * i + 2 * h * h + 2 * h * kv)
    assert footprint.lora_params == layers * 64 * (e * 3 * (h + i) + 2 * (h + h) + 2 * (h + kv))
    assert footprint.bf16_base_bytes / GIB > 80 and footprint.total_bytes / GIB < 40


def test_trainable_share_as_peft_counts_it_and_as_the_paper_script_did_on_mistral_7b():
    """Paper: about 2.14 % (qlora.py halves the count under 4 bits and counts packed weights at half); PEFT: 2.26 %."""
    from peft import get_peft_model
    from transformers import MistralConfig, MistralForCausalLM

    with torch.device("meta"):
        model = MistralForCausalLM(MistralConfig())  # the defaults are Mistral-7B's sizes
    head = model.get_output_embeddings()
    four_bit = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear) and m is not head)
    lora = OmegaConf.structured(LoraConfig(r=64))
    share = TrainableShare(*get_peft_model(model, peft_lora_config(lora, model)).get_nb_trainable_parameters(), four_bit)
    assert round(share.percent, 2) == 2.26 and round(share.paper_script_percent, 2) == 2.14
    assert "2.14 %" in str(share)


@pytest.mark.parametrize("arch", ["llama", "mistral"])
def test_all_linear_resolves_to_the_same_layers_peft_would_pick_on_dense_models(arch, tmp_path):
    from peft import get_peft_model

    from mc16k.models.tiny import build_tiny_model

    path = build_tiny_model(tmp_path / arch, arch=arch)
    plain = OmegaConf.structured(QuantConfig(enabled=False))
    lora = OmegaConf.structured(LoraConfig(r=4))
    by_peft = get_peft_model(load_base_model(mixtral_cfg(path), plain), peft_lora_config(lora))
    base = load_base_model(mixtral_cfg(path), plain)
    ours = get_peft_model(base, peft_lora_config(lora, base))
    assert {n for n, _ in by_peft.named_parameters()} == {n for n, _ in ours.named_parameters()}

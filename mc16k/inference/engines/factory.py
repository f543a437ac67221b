"""Open the configured engine for one answer target (vLLM imported only when chosen)."""

from __future__ import annotations

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from mc16k.data.tokenizer import load_tokenizer
from mc16k.inference.config import EngineConfig, EngineName
from mc16k.inference.engines import Engine
from mc16k.inference.targets import AnswerTarget


def load_target_tokenizer(target: AnswerTarget) -> PreTrainedTokenizerBase:
    """A fine-tuned run's own saved tokenizer (same pad token as in training), else the model's."""
    if target.adapter_dir is not None and (target.adapter_dir / "tokenizer_config.json").is_file():
        return AutoTokenizer.from_pretrained(target.adapter_dir)
    return load_tokenizer(target.model)


def open_engine(
    engine_cfg: EngineConfig, target: AnswerTarget, tokenizer: PreTrainedTokenizerBase, cache_dir: str | None
) -> Engine:
    if EngineName(engine_cfg.name) is EngineName.vllm:
        from mc16k.inference.engines.vllm import VLLMEngine

        return VLLMEngine(engine_cfg, target, tokenizer)
    import torch

    from mc16k.inference.engines.hf import HFEngine
    from mc16k.models.loading import load_for_inference

    device = engine_cfg.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_for_inference(
        target.model,
        target.quant,
        adapter_dir=target.adapter_dir,
        merge=engine_cfg.merge_adapter,
        device_map={"": device},
        cache_dir=cache_dir,
    )
    return HFEngine(model, tokenizer)

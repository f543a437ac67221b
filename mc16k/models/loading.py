"""Base models from config: 4-bit NF4 (QLoRA) or plain weights, GGUF files included, plus adapters.

Training, inference and export all load through here, so a model is quantized, placed and given its
adapter the same way in every stage.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, BitsAndBytesConfig, PreTrainedModel

from mc16k.dtypes import to_torch_dtype
from mc16k.errors import MissingInputError, hub_access
from mc16k.models.config import QuantConfig
from mc16k.models.moe import per_expert_mixtral
from mc16k.models.smollm2 import SMOLLM2_GGUF_FILE, smollm2_dir, smollm2_gguf_path  # noqa: F401 (re-exported)
from mc16k.paths import default_cache_dir
from mc16k.schema import ModelConfig

log = logging.getLogger(__name__)

DeviceMap = dict[str, Any] | None


def default_device_map(local_rank: int = 0) -> dict[str, Any]:
    """The whole model on this process's own device: GPU ``local_rank`` when CUDA is there, else CPU.

    Never ``"auto"``: under DDP each rank must hold a full copy on its own device.
    """
    return {"": local_rank} if torch.cuda.is_available() else {"": "cpu"}


def bnb_config(quant_cfg: QuantConfig) -> BitsAndBytesConfig | None:
    """bitsandbytes 4-bit settings from ``quant``; None when quantization is off."""
    if not quant_cfg.enabled:
        return None
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quant_cfg.quant_type,
        bnb_4bit_use_double_quant=quant_cfg.double_quant,
        bnb_4bit_compute_dtype=to_torch_dtype(quant_cfg.compute_dtype),
        bnb_4bit_quant_storage=to_torch_dtype(quant_cfg.quant_storage),
    )


def dense_checkpoint_dir(model_cfg: ModelConfig, cache_dir: str | Path) -> Path:
    """Unpack ``model_cfg.gguf_file`` once into a plain safetensors checkpoint under ``cache_dir``.

    transformers cannot 4-bit-quantize a model loaded from GGUF, nor save one; a dense copy can be both.
    The copy is keyed by the GGUF file's path, size and mtime, so it is rebuilt when the file changes.
    """
    gguf = Path(model_cfg.name_or_path) / model_cfg.gguf_file
    if not gguf.is_file():
        raise MissingInputError(f"model {model_cfg.name!r}: GGUF file {gguf} not found (model.gguf_file)")
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    out = Path(cache_dir) / "gguf-dense" / f"{gguf.stem}-{key}"
    if (out / "config.json").is_file():
        return out
    log.info("unpacking %s into %s (once)", gguf, out)
    unpacked = AutoModelForCausalLM.from_pretrained(
        model_cfg.name_or_path, gguf_file=model_cfg.gguf_file, dtype=torch.float32
    )
    config = unpacked.config
    config.quantization_config = None
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    dense = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    dense.load_state_dict(unpacked.state_dict())
    tmp = out.with_name(out.name + ".partial")
    dense.save_pretrained(tmp)
    tmp.rename(out)
    return out


def weights_location(model_cfg: ModelConfig, cache_dir: str | Path | None) -> str:
    """Where ``from_pretrained`` finds plain weights: the hub id / local dir, or a GGUF file's dense copy."""
    if model_cfg.gguf_file is None:
        return model_cfg.name_or_path
    if cache_dir is None:
        cache_dir = default_cache_dir()
    return str(dense_checkpoint_dir(model_cfg, cache_dir))


def load_base_model(
    model_cfg: ModelConfig,
    quant_cfg: QuantConfig,
    device_map: DeviceMap = None,
    cache_dir: str | Path | None = None,
) -> PreTrainedModel:
    """The frozen base: 4-bit NF4 when ``quant.enabled``, else ``model.dtype`` weights; in eval mode.

    A Mixtral is built with one linear layer per expert projection (``mc16k.models.moe``), so its experts
    are quantized like every other linear layer and LoRA can wrap each of them.

    ``device_map`` defaults to the whole model on GPU 0 (or CPU); pass ``{"": local_rank}`` under DDP.
    """
    quantization = bnb_config(quant_cfg)
    kwargs: dict[str, Any] = {
        "revision": model_cfg.revision if model_cfg.gguf_file is None else None,
        "trust_remote_code": model_cfg.trust_remote_code,
        "device_map": device_map or default_device_map(),
    }
    if quantization is not None:
        kwargs["quantization_config"] = quantization
        kwargs["dtype"] = to_torch_dtype(quant_cfg.compute_dtype)
    else:
        kwargs["dtype"] = to_torch_dtype(model_cfg.dtype)
    location = weights_location(model_cfg, cache_dir)
    with hub_access(f"model {model_cfg.name!r}: weights", location), per_expert_mixtral():
        model = AutoModelForCausalLM.from_pretrained(location, **kwargs)
    model.eval()
    return model


def load_for_inference(
    model_cfg: ModelConfig,
    quant_cfg: QuantConfig,
    adapter_dir: str | Path | None = None,
    merge: bool = False,
    device_map: DeviceMap = None,
    cache_dir: str | Path | None = None,
) -> PreTrainedModel:
    """Base model, optionally with a trained LoRA adapter (``<run_dir>/adapter``), ready to generate.

    ``merge=True`` folds the adapter into the weights (faster generation; on a 4-bit base the merged
    weights are re-quantized, so outputs can differ slightly from the unmerged adapter).
    """
    model = load_base_model(model_cfg, quant_cfg, device_map=device_map, cache_dir=cache_dir)
    if adapter_dir is not None:
        from peft import PeftModel

        adapter_dir = Path(adapter_dir)
        if not (adapter_dir / "adapter_config.json").is_file():
            raise MissingInputError(f"{adapter_dir} is not a PEFT adapter dir (no adapter_config.json)")
        model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)
        if merge:
            model = model.merge_and_unload()
    model.eval()
    return model

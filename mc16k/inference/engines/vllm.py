"""vLLM engine for GPU machines: the base model once, a LoRA adapter per request, a seed per request.

Imported only when ``engine=vllm`` is chosen; install with ``pip install -e ".[vllm]"``.
"""

from __future__ import annotations

import gc

from transformers import PreTrainedTokenizerBase

from mc16k.errors import BadInputError
from mc16k.inference.config import EngineConfig, GenerationConfig
from mc16k.inference.engines import Completion
from mc16k.inference.targets import AnswerTarget

try:
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt
    from vllm.lora.request import LoRARequest
except ImportError as err:  # pragma: no cover - depends on the machine
    raise ImportError('engine=vllm needs vLLM: pip install -e ".[vllm]" (GPU machines)') from err


class VLLMEngine:
    def __init__(self, engine_cfg: EngineConfig, target: AnswerTarget, tokenizer: PreTrainedTokenizerBase):
        model_cfg = target.model
        if model_cfg.gguf_file is not None:
            raise BadInputError(
                f"model {model_cfg.name!r}: engine=vllm does not load GGUF files here; use engine=hf"
            )
        quantized = bool(target.quant.enabled)
        self.llm = LLM(
            model=model_cfg.name_or_path,
            revision=model_cfg.revision,
            tokenizer=str(target.adapter_dir) if target.adapter_dir is not None else model_cfg.name_or_path,
            dtype=str(target.quant.compute_dtype.value if quantized else model_cfg.dtype.value),
            quantization="bitsandbytes" if quantized else None,
            load_format="bitsandbytes" if quantized else "auto",  # older vLLM needs both for QLoRA bases
            max_model_len=model_cfg.max_context,
            enable_lora=target.adapter_dir is not None,
            max_lora_rank=engine_cfg.max_lora_rank,
            gpu_memory_utilization=engine_cfg.gpu_memory_utilization,
            tensor_parallel_size=engine_cfg.tensor_parallel_size,
            trust_remote_code=model_cfg.trust_remote_code,
        )
        self.lora = (
            LoRARequest(target.model_id, 1, str(target.adapter_dir))
            if target.adapter_dir is not None
            else None
        )

    def generate(
        self, prompts: list[list[int]], seeds: list[int], params: GenerationConfig
    ) -> list[Completion]:
        sampling = [
            SamplingParams(
                temperature=params.temperature if params.do_sample else 0.0,
                top_p=params.top_p if params.do_sample else 1.0,
                top_k=params.top_k if params.do_sample and params.top_k > 0 else -1,
                max_tokens=params.max_new_tokens,
                stop=list(params.stop_strings),
                seed=seed,
            )
            for seed in seeds
        ]
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=p) for p in prompts],
            sampling,
            lora_request=self.lora,
            use_tqdm=False,
        )
        completions = []
        for output in outputs:
            best = output.outputs[0]
            completions.append(
                Completion(
                    best.text.strip(),
                    len(best.token_ids),
                    "length" if best.finish_reason == "length" else "stop",
                )
            )
        return completions

    def close(self) -> None:
        del self.llm
        gc.collect()

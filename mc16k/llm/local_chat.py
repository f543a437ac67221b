"""A transformers model in this process behind the same ``complete`` coroutine as the remote chat clients.

Data pipelines that must not send text anywhere (paraphrasing private transcripts) generate with it; the
async runner drives it like any other client. Generation runs on a worker thread, one call at a time (a
lock), so the event loop keeps storing finished results while the model computes.

Sampling is seeded per call from the prompt text and how often this client has seen that prompt before, so
a re-run asks the model the same way: the same prompts in the same order give the same replies.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import threading
from pathlib import Path

import torch

from mc16k.llm.config import LLMConfig
from mc16k.llm.types import ChatRequest, ChatResponse, Usage


def sampling_seed(text: str, occurrence: int) -> int:
    """A 63-bit seed from a prompt and its occurrence number (stable across processes and Python versions)."""
    digest = hashlib.sha256(f"{occurrence}\n{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


class LocalHFChatClient:
    """Loads the model once through the project's model loader; replies with the model's chat template."""

    def __init__(self, cfg: LLMConfig, cache_dir: str | Path | None = None):
        from transformers import AutoTokenizer

        from mc16k.models.config import ModelConfig, QuantConfig
        from mc16k.models.loading import load_base_model

        if cfg.num_threads is not None:
            torch.set_num_threads(cfg.num_threads)
        self.cfg = cfg
        self.endpoint = f"local:{cfg.gguf_file or cfg.model}"
        self.structured_output = cfg.structured_output
        self.tokenizer = AutoTokenizer.from_pretrained(cfg.model, gguf_file=cfg.gguf_file)
        model_cfg = ModelConfig(name=f"local:{cfg.gguf_file or cfg.model}", name_or_path=cfg.model,
                                gguf_file=cfg.gguf_file, dtype=cfg.dtype)
        quant_cfg = QuantConfig(enabled=cfg.load_in_4bit, compute_dtype=cfg.dtype)
        self.model = load_base_model(model_cfg, quant_cfg, device_map={"": cfg.device}, cache_dir=cache_dir)
        self._lock = threading.Lock()
        self._seen: collections.Counter[str] = collections.Counter()
        eos = self.model.generation_config.eos_token_id
        self._stop_ids = sorted(
            {*(eos if isinstance(eos, list) else [eos] if eos is not None else []), self.tokenizer.eos_token_id}
            - {None}
        )

    def _prompt_ids(self, request: ChatRequest) -> list[int]:
        messages = [{"role": "system", "content": request.system}, {"role": "user", "content": request.user}]
        if self.tokenizer.chat_template:
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            text = f"{request.system}\n\n{request.user}\n\n"
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def generate(self, request: ChatRequest) -> ChatResponse:
        """One reply (blocking); sampled at ``cfg.temperature`` (greedy at 0) with a per-call seed."""
        ids = self._prompt_ids(request)
        key = f"{request.system}\n\n{request.user}"
        with self._lock:
            occurrence = self._seen[key]
            self._seen[key] += 1
            sample = self.cfg.temperature > 0
            generator_state = torch.random.get_rng_state()
            torch.manual_seed(sampling_seed(key, occurrence))
            try:
                with torch.inference_mode():
                    output = self.model.generate(
                        input_ids=torch.tensor([ids], device=self.model.device),
                        attention_mask=torch.ones(1, len(ids), dtype=torch.long, device=self.model.device),
                        do_sample=sample,
                        temperature=self.cfg.temperature if sample else None,
                        top_p=None,
                        top_k=None,
                        max_new_tokens=self.cfg.max_output_tokens,
                        eos_token_id=self._stop_ids or None,
                        pad_token_id=self._stop_ids[0] if self._stop_ids else None,
                    )
            finally:
                torch.random.set_rng_state(generator_state)
        new_tokens = output[0, len(ids):].tolist()
        text = self.tokenizer.decode(new_tokens, skip_special_tokens=True).strip()
        return ChatResponse(text=text, usage=Usage(input_tokens=len(ids), output_tokens=len(new_tokens), calls=1))

    async def complete(self, request: ChatRequest) -> ChatResponse:
        return await asyncio.to_thread(self.generate, request)

    def fall_back(self, rejected: str | None) -> bool:
        """A local model has no response format to step down from."""
        return False

    async def close(self) -> None:
        return None

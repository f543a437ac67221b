"""Generation engines behind one small interface: token-id prompts in, completions out.

The runner owns ordering, batching, seeds and files; an engine only turns a batch of prompts into text.
``engine=vllm`` is imported only when chosen, so the package works without vLLM installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mc16k.inference.config import GenerationConfig


@dataclass(frozen=True)
class Completion:
    text: str
    completion_tokens: int
    finish_reason: str  # "stop" (end-of-sequence token) or "length" (max_new_tokens reached)


class Engine(Protocol):
    def generate(
        self, prompts: list[list[int]], seeds: list[int], params: GenerationConfig
    ) -> list[Completion]:
        """Complete each prompt (token ids, unpadded); ``seeds[i]`` seeds prompt i's sampling."""
        ...

    def close(self) -> None:
        """Free the model (the next target may load another one)."""
        ...

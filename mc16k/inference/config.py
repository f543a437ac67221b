"""Typed configs for answering a benchmark (conf/benchmark, conf/engine, conf/infer.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


@dataclass
class BenchmarkConfig:
    """A FastChat question file (``{question_id, category, turns}`` per line) and the subset drawn from it.

    Shared with evaluate.py: judging reads the same questions and the same subset.
    """

    name: str = "???"  # directory name under answers_dir; a subset answers into the same dir (same keys)
    path: str = "???"
    n: int | None = None  # null: every question; paper's significance test: n=50 with seed=42
    seed: int = 42


class EngineName(str, Enum):
    hf = "hf"  # transformers generate: batched, left-padded, CPU or GPU, 4-bit or bf16 base, peft adapters
    vllm = "vllm"  # vLLM with LoRA adapters (GPU machines; imported only when chosen)


@dataclass
class EngineConfig:
    """Which engine generates, and how it batches."""

    name: EngineName = EngineName.hf
    batch_size: int = 8  # prompts per generate call; answers are written after each batch
    merge_adapter: bool = False  # hf: merge LoRA into the base for speed (dequantizes a 4-bit base)
    device: str = "auto"  # hf: auto = cuda when available, else cpu
    gpu_memory_utilization: float = 0.9  # vllm
    tensor_parallel_size: int = 1  # vllm
    max_lora_rank: int = 64  # vllm: at least the trained LoRA rank


@dataclass
class GenerationConfig:
    """Sampling parameters. Defaults are the paper's: sampling at temperature 0.7, at most 512 new tokens.

    ``top_p`` and ``top_k`` are stated here (1.0 and 0 = off) so nothing is hidden in code.
    """

    do_sample: bool = True  # false: greedy decoding (temperature/top_p/top_k unused)
    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int = 0  # 0: no top-k cut
    max_new_tokens: int = 512
    # Generation stops at (and the answer is cut before) any of these: the alpaca/vicuna templates' next-turn
    # markers, which base models otherwise go on to write. Chat-template models stop at their end-of-turn token.
    stop_strings: list[str] = field(default_factory=lambda: ["### Instruction:", "### Input:", "USER:"])


@dataclass
class InferConfig:
    """Who answers, how many rounds, and how prompts are fitted to the context."""

    engine: EngineConfig = field(default_factory=EngineConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    rounds: int = 1  # paper's significance test: 5
    round_seeds: list[int] | None = None  # null: round k (1-based) uses seed + k - 1
    # A training run dir or a sweep dir: answers every finished run below it (done.json) and, with
    # ``with_base_models``, each of their base models. Null: answers ``baseline`` if set, else ``model``.
    from_runs: str | None = None
    with_base_models: bool = True
    baselines: list[str] = field(default_factory=list)  # names in conf/baseline/ answered as well
    # Prompt budget: null = model.max_context - generation.max_new_tokens. Longer questions are cut in the
    # user text (visibly, by the data layer's encode_prompt) and their answers flagged ``truncated``.
    max_prompt_tokens: int | None = None
    show_progress: bool = True

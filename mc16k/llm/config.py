"""Typed configs for the LLM client layer: which backend, how hard to push it, what it costs."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from mc16k.dtypes import DType


class Provider(str, Enum):
    """Backends the client layer speaks; every remote or local LLM call goes through one of them."""

    openai = "openai"
    gemini = "gemini"
    openai_compatible = "openai_compatible"  # vLLM, llama.cpp server, Ollama ...: the OpenAI API at base_url
    local_hf = "local_hf"  # a transformers model in this process


class StructuredOutput(str, Enum):
    """How a remote judge is asked for machine-readable output (servers differ in what they accept)."""

    json_schema = "json_schema"  # OpenAI response_format json_schema / Gemini response_schema
    json_object = "json_object"  # JSON mode without a schema
    none = "none"  # prompt-only; the tolerant parser reads the reply


@dataclass
class PricingConfig:
    """US dollars per million tokens; zero for local models."""

    input_per_million: float = 0.0
    output_per_million: float = 0.0


@dataclass
class LLMConfig:
    """One model behind one backend. Keys are read from the environment variable named here, never stored."""

    provider: Provider = Provider.openai
    model: str = "???"
    base_url: str | None = None  # openai_compatible: required; openai/gemini: a proxy or test server
    api_key_envs: list[str] = field(default_factory=list)  # env vars tried in order; empty: no key (local servers)
    temperature: float = 0.0
    max_output_tokens: int = 1024
    timeout_s: float = 60.0
    structured_output: StructuredOutput = StructuredOutput.json_schema
    pricing: PricingConfig = field(default_factory=PricingConfig)
    # local_hf only
    gguf_file: str | None = None  # a GGUF file inside ``model`` (a dir); dequantized by transformers
    dtype: DType = DType.float32  # weights (and 4-bit compute) dtype
    device: str = "cpu"
    load_in_4bit: bool = False  # NF4 via bitsandbytes, for a big judge on a small GPU
    num_threads: int | None = None  # torch CPU threads; null: torch's default (one per core)


@dataclass
class RunnerConfig:
    """Concurrency, rate limits and retry policy of the async runner."""

    concurrency: int = 8
    requests_per_minute: int | None = None  # null: unlimited
    tokens_per_minute: int | None = None  # prompt + completion tokens; null: unlimited
    max_retries: int = 6  # retries after the first attempt, for 429 / 5xx / timeouts / broken responses
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    max_retry_after_s: float = 300.0  # a server's Retry-After longer than this is capped
    max_transport_failures_in_a_row: int = 5  # calls without any HTTP answer before the run stops (server down)
    rate_window_s: float = 60.0  # the sliding window of requests_per_minute / tokens_per_minute
    # each booking is held this fraction of the window longer, so that requests a busy event loop sends a little
    # after their booking never land above the limit in the server's own window
    rate_margin: float = 0.02

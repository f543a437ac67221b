"""Requests, responses, usage accounting and the two error kinds every backend raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mc16k.llm.config import PricingConfig


@dataclass(frozen=True)
class ChatRequest:
    """A chat call: system + user text, optionally constrained to a JSON schema."""

    system: str
    user: str
    json_schema: dict[str, Any] | None = None  # used when the backend supports structured output
    schema_name: str = "reply"

    def estimated_prompt_tokens(self) -> int:
        """Rough token count (4 characters per token) for rate limiting and dry runs before any call."""
        return (len(self.system) + len(self.user)) // 4 + 8


@dataclass
class Usage:
    """Token counts of one or more calls."""

    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0

    def add(self, other: Usage) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.calls += other.calls

    def cost_usd(self, pricing: PricingConfig) -> float:
        return (
            self.input_tokens * pricing.input_per_million + self.output_tokens * pricing.output_per_million
        ) / 1e6

    def as_dict(self) -> dict[str, int]:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens, "calls": self.calls}


@dataclass
class ChatResponse:
    """The reply text and what it cost."""

    text: str
    usage: Usage = field(default_factory=Usage)


class LLMError(Exception):
    """A call that did not produce a reply."""


class RetryableLLMError(LLMError):
    """429, 5xx, timeouts and broken responses: worth another try after ``retry_after_s`` (if the server said)."""

    def __init__(self, reason: str, retry_after_s: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


class PermanentLLMError(LLMError):
    """This request cannot succeed (e.g. rejected content): retrying cannot help; the item fails."""


class LLMSetupError(PermanentLLMError):
    """Bad key, no access, unknown model: no request can succeed, so the run stops before storing failures."""

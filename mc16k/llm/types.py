"""Requests, responses, usage accounting and the error kinds every backend raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mc16k.errors import UserError
from mc16k.llm.config import PricingConfig


@dataclass(frozen=True)
class ChatRequest:
    """A chat call: system + user text, optionally constrained to a JSON schema.

    ``followups`` continues the conversation after the first user turn: (assistant reply, next user turn)
    pairs, so a re-ask can quote the judge's own reply and say what was wrong with it.
    """

    system: str
    user: str
    json_schema: dict[str, Any] | None = None  # used when the backend supports structured output
    schema_name: str = "reply"
    followups: tuple[tuple[str, str], ...] = ()

    def estimated_prompt_tokens(self) -> int:
        """Rough token count (4 characters per token) for rate limiting and dry runs before any call."""
        text = len(self.system) + len(self.user) + sum(len(a) + len(u) for a, u in self.followups)
        return text // 4 + 8


@dataclass
class Usage:
    """Token counts of one or more calls. ``calls`` counts every request a server received (including
    those answered with an HTTP error or that timed out); tokens count every reply that reported usage."""

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
    """The reply text and what it cost (``text`` may be empty: a billed reply the parser will reject)."""

    text: str
    usage: Usage = field(default_factory=Usage)
    structured_output: str | None = None  # the response format the request actually used


class LLMError(Exception):
    """A call that did not produce a reply; ``usage`` holds what its attempts were billed."""

    def __init__(self, *args: object, usage: Usage | None = None):
        super().__init__(*args)
        self.usage = usage or Usage()


class RetryableLLMError(LLMError):
    """429, 5xx, timeouts and broken responses: worth another try after ``retry_after_s`` (if the server said)."""

    def __init__(self, reason: str, retry_after_s: float | None = None, usage: Usage | None = None):
        super().__init__(reason, usage=usage)
        self.reason = reason
        self.retry_after_s = retry_after_s


class TransportError(RetryableLLMError):
    """No HTTP answer: connection refused, DNS, TLS, or a timeout. ``sent``: whether the request may have
    reached the server (a timeout) or surely did not (a refused connection)."""

    def __init__(self, reason: str, sent: bool):
        super().__init__(reason, usage=Usage(calls=int(sent)))
        self.sent = sent


class PermanentLLMError(LLMError):
    """This request cannot succeed (e.g. rejected content): retrying cannot help; the item fails."""


class RequestRejectedError(PermanentLLMError):
    """The server refused the request itself (a 4xx, or a 5xx whose body names a request field)."""

    def __init__(self, status: int, message: str, structured_output: str | None):
        super().__init__(f"HTTP {status}: {message}", usage=Usage(calls=1))
        self.status = status
        self.message = message
        self.structured_output = structured_output


class LLMSetupError(PermanentLLMError, UserError):
    """Bad key, no access, unknown model, an endpoint that is down or refuses the request shape: no request
    can succeed, so the run stops before storing failures."""


class UnfinishedCallError(LLMError):
    """Retries exhausted on transport failures or server errors: nothing was judged, so nothing is stored."""

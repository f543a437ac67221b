"""The async runner: a concurrency limit, request/token rate limits and retries with backoff and jitter.

Sleeping (backoff, Retry-After, rate limits) happens outside the concurrency slot so that one throttled call
never blocks the others from using the connection.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time

from mc16k.llm.clients import ChatClient
from mc16k.llm.config import RunnerConfig
from mc16k.llm.types import ChatRequest, ChatResponse, LLMError, PermanentLLMError, RetryableLLMError, Usage

log = logging.getLogger(__name__)


class RateLimiter:
    """Sliding window (one minute) over requests and tokens; ``acquire`` waits until a call fits both limits."""

    def __init__(self, requests_per_minute: int | None, tokens_per_minute: int | None, window_s: float = 60.0):
        self._rpm = requests_per_minute
        self._tpm = tokens_per_minute
        self._window_s = window_s
        self._events: collections.deque[list] = collections.deque()  # [monotonic stamp, tokens]
        self._tokens_in_window = 0
        self._lock = asyncio.Lock()

    def _expire(self, now: float) -> None:
        while self._events and now - self._events[0][0] >= self._window_s:
            self._tokens_in_window -= self._events.popleft()[1]

    def _wait_needed(self, now: float, tokens: int) -> float:
        waits = [0.0]
        if self._rpm is not None and len(self._events) >= self._rpm:
            waits.append(self._events[len(self._events) - self._rpm][0] + self._window_s - now)
        if self._tpm is not None and self._events and self._tokens_in_window + tokens > self._tpm:
            excess = self._tokens_in_window + tokens - self._tpm
            for stamp, spent in self._events:  # wait until enough old tokens have left the window
                excess -= spent
                if excess <= 0:
                    waits.append(stamp + self._window_s - now)
                    break
        return max(waits)

    async def acquire(self, tokens: int) -> list | None:
        """Wait for room; returns the booked entry so that :meth:`correct` can fix its token count."""
        if self._rpm is None and self._tpm is None:
            return None
        async with self._lock:  # first come, first served
            while True:
                now = time.monotonic()
                self._expire(now)
                wait = self._wait_needed(now, tokens)
                if wait <= 0:
                    entry = [now, tokens]
                    self._events.append(entry)
                    self._tokens_in_window += tokens
                    return entry
                await asyncio.sleep(wait)

    def correct(self, entry: list | None, actual_tokens: int) -> None:
        """Replace a booked estimate with the tokens the server reported (if still in the window)."""
        if entry is not None and any(e is entry for e in self._events):
            self._tokens_in_window += actual_tokens - entry[1]
            entry[1] = actual_tokens


class AsyncRunner:
    """Runs chat calls through one client with the configured limits, retries and usage accounting."""

    def __init__(self, client: ChatClient, cfg: RunnerConfig, max_output_tokens: int):
        if cfg.concurrency < 1:
            raise ValueError(f"runner.concurrency must be >= 1, got {cfg.concurrency}")
        self.client = client
        self.cfg = cfg
        self._max_output_tokens = max_output_tokens
        self._slots = asyncio.Semaphore(cfg.concurrency)
        self._limiter = RateLimiter(cfg.requests_per_minute, cfg.tokens_per_minute)
        self.usage = Usage()
        self.retries: collections.Counter[str] = collections.Counter()

    def backoff_s(self, attempt: int, retry_after_s: float | None) -> float:
        """Exponential backoff with full jitter; a server's Retry-After is a floor (capped)."""
        ceiling = min(self.cfg.backoff_max_s, self.cfg.backoff_initial_s * 2**attempt)
        delay = random.uniform(0.5 * ceiling, ceiling)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.cfg.max_retry_after_s))
        return delay

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """One reply, after as many retries as allowed; raises :class:`LLMError` when all attempts fail."""
        estimate = request.estimated_prompt_tokens() + self._max_output_tokens
        for attempt in range(self.cfg.max_retries + 1):
            booking = await self._limiter.acquire(estimate)
            try:
                async with self._slots:
                    response = await self.client.complete(request)
            except PermanentLLMError:
                raise
            except RetryableLLMError as err:
                self.retries[err.reason] += 1
                if attempt == self.cfg.max_retries:
                    raise LLMError(f"gave up after {attempt + 1} attempts; last: {err.reason}") from err
                delay = self.backoff_s(attempt, err.retry_after_s)
                log.debug("retrying after %s in %.2fs", err.reason, delay)
                await asyncio.sleep(delay)
                continue
            self.usage.add(response.usage)
            actual = response.usage.input_tokens + response.usage.output_tokens
            if actual:
                self._limiter.correct(booking, actual)
            return response
        raise AssertionError("unreachable")

"""The async runner: a concurrency limit, request/token rate limits and retries with backoff and jitter.

Sleeping for a backoff or a Retry-After happens outside the concurrency slot, so that one throttled call never
blocks the others from using the connection. Slots go by priority: a unit of work that has started (its
retries, its re-asks) gets the next free slot before any new unit's first call, so a killed run leaves at most
``concurrency`` units half-paid rather than every unit that met a fault.

Three things stop a run instead of failing item by item: a setup error (bad key, unknown model), an endpoint
that gives no HTTP answer to several calls in a row, and a request shape the server refuses every time (where a
simpler ``structured_output`` exists, the client falls back to it once and says so).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import itertools
import logging
import math
import random
import time
from collections.abc import AsyncIterator

from mc16k.errors import BadInputError
from mc16k.llm.clients import ChatClient
from mc16k.llm.config import RunnerConfig
from mc16k.llm.types import (
    ChatRequest,
    ChatResponse,
    LLMSetupError,
    PermanentLLMError,
    RequestRejectedError,
    RetryableLLMError,
    TransportError,
    UnfinishedCallError,
    Usage,
)

log = logging.getLogger(__name__)

Priority = tuple[int, int]
FIRST_CALL = 1  # priority class of a unit's first call; its later calls use class 0 (served first)


class RateLimiter:
    """Sliding window over requests and tokens; ``acquire`` waits until a call fits both limits.

    A booking is corrected to the tokens the server reported once the call completes, and every waiting call
    re-checks then: an estimate that was too high holds nobody back for longer than the call itself.
    """

    def __init__(self, requests_per_minute: int | None, tokens_per_minute: int | None, window_s: float = 60.0):
        self._rpm = requests_per_minute
        self._tpm = tokens_per_minute
        self._window_s = window_s
        self._events: collections.deque[list] = collections.deque()  # [monotonic stamp, tokens]
        self._tokens_in_window = 0
        self._changed = asyncio.Condition()

    @property
    def enabled(self) -> bool:
        return self._rpm is not None or self._tpm is not None

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
        if not self.enabled:
            return None
        async with self._changed:
            while True:
                now = time.monotonic()
                self._expire(now)
                wait = self._wait_needed(now, tokens)
                if wait <= 0:
                    entry = [now, tokens]
                    self._events.append(entry)
                    self._tokens_in_window += tokens
                    return entry
                with contextlib.suppress(TimeoutError):  # woken early by a correction, or the wait is over
                    await asyncio.wait_for(self._changed.wait(), wait)

    async def correct(self, entry: list | None, actual_tokens: int) -> None:
        """Replace a booked estimate with the tokens the server reported, and wake the waiting calls."""
        if entry is None:
            return
        async with self._changed:
            if any(e is entry for e in self._events):
                self._tokens_in_window += actual_tokens - entry[1]
            entry[1] = actual_tokens
            self._changed.notify_all()


class PrioritySlots:
    """A semaphore whose waiters are served lowest priority first (ties: first come, first served)."""

    def __init__(self, size: int):
        self._free = size
        self._waiters: list[tuple[Priority, int, asyncio.Future]] = []
        self._order = itertools.count()

    @contextlib.asynccontextmanager
    async def slot(self, priority: Priority) -> AsyncIterator[None]:
        await self._acquire(priority)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, priority: Priority) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()  # handed a slot just as it was cancelled: pass it on
            raise

    def _release(self) -> None:
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)
                return
        self._free += 1


class AsyncRunner:
    """Runs chat calls through one client with the configured limits, retries and usage accounting.

    ``usage`` counts every request a server received and the tokens of every reply it billed, failed or not.
    """

    def __init__(self, client: ChatClient, cfg: RunnerConfig, max_output_tokens: int):
        if cfg.concurrency < 1:
            raise BadInputError(f"runner.concurrency must be >= 1, got {cfg.concurrency}")
        self.client = client
        self.cfg = cfg
        self._max_output_tokens = max_output_tokens
        self._slots = PrioritySlots(cfg.concurrency)
        self._limiter = RateLimiter(
            cfg.requests_per_minute, cfg.tokens_per_minute, cfg.rate_window_s * (1 + cfg.rate_margin)
        )
        self.usage = Usage()
        self.retries: collections.Counter[str] = collections.Counter()
        self._recent_output_tokens: collections.deque[int] = collections.deque(maxlen=200)
        self._replies = 0  # HTTP 200 replies so far
        self._transport_failures_in_a_row = 0
        self._rejections: set[tuple[int, str, str | None]] = set()
        self._stopped: LLMSetupError | None = None  # once set, every call raises it: the run is over

    def backoff_s(self, attempt: int, retry_after_s: float | None) -> float:
        """Exponential backoff with jitter in [ceiling/2, ceiling]; a server's Retry-After is a floor (capped)."""
        ceiling = min(self.cfg.backoff_max_s, self.cfg.backoff_initial_s * 2**attempt)
        delay = random.uniform(0.5 * ceiling, ceiling)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.cfg.max_retry_after_s))
        return delay

    def expected_output_tokens(self) -> int:
        """What the limiter books for a reply: the configured maximum until replies arrive, then the 90th
        percentile of the output tokens replies actually used (corrected to the truth on completion)."""
        if not self._recent_output_tokens:
            return self._max_output_tokens
        observed = sorted(self._recent_output_tokens)
        return min(self._max_output_tokens, observed[math.ceil(0.9 * len(observed)) - 1])

    def _stop(self, message: str, usage: Usage) -> LLMSetupError:
        if self._stopped is None:
            self._stopped = LLMSetupError(message)
        return LLMSetupError(str(self._stopped), usage=usage)

    async def complete(self, request: ChatRequest, priority: Priority = (FIRST_CALL, 0)) -> ChatResponse:
        """One reply, after as many retries as allowed. Raises :class:`UnfinishedCallError` when retries run
        out, :class:`PermanentLLMError` for a rejected request, :class:`LLMSetupError` when the run must stop.
        Every error carries the usage its attempts were billed."""
        usage = Usage()
        attempt = 0
        refused_here: tuple[int, str | None] | None = None  # this call's last refusal (status, response format)
        while True:
            if self._stopped is not None:
                raise LLMSetupError(str(self._stopped), usage=usage)
            try:
                async with self._slots.slot(priority):
                    estimate = request.estimated_prompt_tokens() + self.expected_output_tokens()
                    booking = await self._limiter.acquire(estimate)
                    try:
                        response = await self.client.complete(request)
                    except Exception:
                        await self._limiter.correct(booking, 0)  # what a failed call used is unknown: free it
                        raise
            except TransportError as err:
                self._account(usage, err.usage)
                self._transport_failures_in_a_row += 1
                if self._transport_failures_in_a_row >= self.cfg.max_transport_failures_in_a_row:
                    raise self._stop(
                        f"{self.client.endpoint} is unreachable: {self._transport_failures_in_a_row} calls in a row "
                        f"got no HTTP answer (last: {err.reason}); the run stops and stores nothing for the "
                        "unanswered items: run the same command again once the server is back",
                        usage,
                    ) from err
                error: RetryableLLMError = err
            except RequestRejectedError as err:
                self._account(usage, err.usage)
                self._transport_failures_in_a_row = 0
                if self._replies == 0:  # nothing has worked yet: is it the request's shape?
                    key = (err.status, err.message, err.structured_output)
                    deterministic = key in self._rejections or refused_here == (err.status, err.structured_output)
                    self._rejections.add(key)
                    refused_here = (err.status, err.structured_output)
                    if not deterministic:
                        continue  # ask once more: the same refusal twice is deterministic
                    if self.client.fall_back(err.structured_output):
                        continue
                    raise self._stop(
                        f"{self.client.endpoint} refuses the request: HTTP {err.status}: {err.message.strip()} "
                        f"(structured_output={err.structured_output}). The server does not accept this request "
                        "shape; set llm.structured_output=json_object or llm.structured_output=none",
                        usage,
                    ) from err
                raise PermanentLLMError(str(err), usage=usage) from err
            except LLMSetupError as err:
                self._account(usage, err.usage)
                raise LLMSetupError(str(err), usage=usage) from err
            except RetryableLLMError as err:
                self._account(usage, err.usage)
                self._transport_failures_in_a_row = 0
                error = err
            else:
                self._account(usage, response.usage)
                self._transport_failures_in_a_row = 0
                self._replies += 1
                self._recent_output_tokens.append(response.usage.output_tokens)
                await self._limiter.correct(booking, response.usage.input_tokens + response.usage.output_tokens)
                response.usage = usage
                return response
            self.retries[error.reason] += 1
            if attempt == self.cfg.max_retries:
                raise UnfinishedCallError(
                    f"gave up after {attempt + 1} attempts; last: {error.reason}", usage=usage
                ) from error
            delay = self.backoff_s(attempt, error.retry_after_s)
            attempt += 1
            log.debug("retrying after %s in %.2fs", error.reason, delay)
            await asyncio.sleep(delay)

    def _account(self, call_usage: Usage, attempt_usage: Usage) -> None:
        call_usage.add(attempt_usage)
        self.usage.add(attempt_usage)

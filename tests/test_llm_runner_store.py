"""The runner's rate limits and backoff, and the keyed JSONL store's crash tolerance."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from mc16k.llm.clients import StructuredOutputFallback
from mc16k.llm.config import RunnerConfig, StructuredOutput
from mc16k.llm.runner import AsyncRunner, RateLimiter
from mc16k.llm.store import JsonlStore, StoreCorruptError
from mc16k.llm.types import (
    ChatRequest,
    ChatResponse,
    LLMError,
    LLMSetupError,
    PermanentLLMError,
    RequestRejectedError,
    RetryableLLMError,
    Usage,
)


def test_rate_limiter_spaces_requests_and_tokens():
    async def timed(limiter: RateLimiter, tokens: list[int]) -> list[float]:
        start = time.monotonic()
        stamps = []
        for t in tokens:
            await limiter.acquire(t)
            stamps.append(time.monotonic() - start)
        return stamps

    by_requests = asyncio.run(timed(RateLimiter(3, None, window_s=0.3), [1] * 7))
    assert by_requests[2] < 0.3 <= by_requests[3] < 0.6 <= by_requests[6]  # 3 per window, no needless waits
    by_tokens = asyncio.run(timed(RateLimiter(None, 100, window_s=0.3), [60, 30, 50]))
    assert by_tokens[1] < 0.3 <= by_tokens[2]  # 60 + 30 + 50 > 100: waits for the first to expire


class ScriptedClient:
    """A stand-in for an SDK: raises the scripted errors in order, then answers."""

    def __init__(self, errors: list[Exception]):
        self.errors = list(errors)
        self.calls = 0

    async def complete(self, request: ChatRequest) -> ChatResponse:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return ChatResponse("{}", Usage(input_tokens=10, output_tokens=2, calls=1))

    async def close(self) -> None:
        pass


def run(client: ScriptedClient, **runner_kwargs) -> tuple[ChatResponse, AsyncRunner]:
    cfg = RunnerConfig(backoff_initial_s=0.01, backoff_max_s=0.02, **runner_kwargs)
    runner = AsyncRunner(client, cfg, max_output_tokens=16)
    return asyncio.run(runner.complete(ChatRequest("s", "u"))), runner


def test_retries_then_success_counts_reasons_and_usage():
    client = ScriptedClient([RetryableLLMError("HTTP 429", 0.2), RetryableLLMError("timeout")])
    started = time.monotonic()
    response, runner = run(client, max_retries=3)
    assert time.monotonic() - started >= 0.2  # Retry-After is a floor under the tiny backoff
    assert client.calls == 3 and dict(runner.retries) == {"HTTP 429": 1, "timeout": 1}
    assert runner.usage.as_dict() == {"input_tokens": 10, "output_tokens": 2, "calls": 1}


def test_gives_up_after_max_retries_and_never_retries_permanent_errors():
    client = ScriptedClient([RetryableLLMError("HTTP 500")] * 5)
    with pytest.raises(LLMError, match="gave up after 3 attempts; last: HTTP 500"):
        run(client, max_retries=2)
    permanent = ScriptedClient([PermanentLLMError("HTTP 401: bad key")])
    with pytest.raises(PermanentLLMError):
        run(permanent, max_retries=5)
    assert permanent.calls == 1


def test_backoff_grows_with_jitter_and_caps_retry_after():
    runner = AsyncRunner(ScriptedClient([]), RunnerConfig(backoff_initial_s=1, backoff_max_s=8, max_retry_after_s=30), 16)
    for attempt, ceiling in [(0, 1), (2, 4), (5, 8)]:
        delays = [runner.backoff_s(attempt, None) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays) and len(set(delays)) > 1
    assert runner.backoff_s(0, 12.0) == 12.0 and runner.backoff_s(0, 999.0) == 30.0


def test_store_keeps_last_record_per_key_and_drops_a_torn_last_line(tmp_path, caplog):
    path = tmp_path / "judge" / "judgments.jsonl"
    with JsonlStore(path) as store:
        store.append({"key": "a", "v": 1})
        store.append({"key": "b", "v": 2})
        store.append({"key": "a", "v": 3})
    with path.open("ab") as handle:  # a writer killed mid-line
        handle.write(b'{"key": "c", "v"')
    with JsonlStore(path) as store:
        assert {k: r["v"] for k, r in store.records.items()} == {"a": 3, "b": 2}
        store.append({"key": "c", "v": 4})
    assert "judgments.jsonl:4: dropping a torn last line (16 bytes" in caplog.text  # before: dropped silently
    lines = path.read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[-1]) == {"key": "c", "v": 4}


def test_store_refuses_a_corrupt_middle_line_naming_file_and_line(tmp_path):
    path = tmp_path / "judgments.jsonl"
    path.write_text('{"key": "a"}\nnot json\n{"key": "b"}\n')
    with pytest.raises(StoreCorruptError, match=r"judgments.jsonl:2: unreadable record"):
        JsonlStore(path)


def test_a_correction_wakes_a_waiting_call_at_once():
    # before: a waiting call slept out the wait computed from the booked estimate, whatever usage came back
    async def scenario() -> float:
        limiter = RateLimiter(None, 1000, window_s=30.0)
        booked = await limiter.acquire(900)  # e.g. a prompt plus max_output_tokens
        started = time.monotonic()
        waiting = asyncio.create_task(limiter.acquire(500))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # 900 + 500 > 1000: it must wait
        await limiter.correct(booked, 120)  # the reply used 120 tokens
        await asyncio.wait_for(waiting, 5.0)  # not the 30 s window
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 5.0


def test_the_limiter_books_observed_output_tokens_once_replies_arrive():
    class Replies(ScriptedClient):
        async def complete(self, request: ChatRequest) -> ChatResponse:
            self.calls += 1
            return ChatResponse("{}", Usage(input_tokens=50, output_tokens=10 * self.calls, calls=1))

    runner = AsyncRunner(Replies([]), RunnerConfig(tokens_per_minute=10**6), max_output_tokens=4096)
    assert runner.expected_output_tokens() == 4096  # nothing observed yet: the configured maximum

    async def many() -> None:
        for _ in range(10):
            await runner.complete(ChatRequest("s", "u"))

    asyncio.run(many())
    assert runner.expected_output_tokens() == 90  # the 90th percentile of 10, 20, ..., 100
    assert runner.usage.as_dict() == {"input_tokens": 500, "output_tokens": 550, "calls": 10}


def test_refusals_that_differ_in_wording_still_stop_the_run():
    # a server that puts a request id into every refusal must not make "the same refusal twice" unreachable
    class Refusing(ScriptedClient):
        endpoint = "http://127.0.0.1:9/v1"
        structured_output = StructuredOutput.json_schema

        async def complete(self, request: ChatRequest) -> ChatResponse:
            self.calls += 1
            raise RequestRejectedError(400, f"bad request (request id {self.calls})", self.structured_output.value)

        def fall_back(self, rejected: str | None) -> bool:
            return StructuredOutputFallback.fall_back(self, rejected)

    client = Refusing([])
    with pytest.raises(LLMSetupError, match=r"refuses the request: HTTP 400: bad request .*structured_output=none"):
        run(client, max_retries=2)
    assert client.calls == 6  # twice per response format: json_schema, json_object, none

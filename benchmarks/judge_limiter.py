"""Rate-limit accuracy: judgments through the real OpenAI client and the runner's limiter against the loopback
server (its own process), once bound by ``tokens_per_minute`` and once by ``requests_per_minute``, on a mixed
workload (answers of 5 to 400 words, one call per metric, ``max_output_tokens`` 4096 as for Gemini 2.5). The
window is scaled to a few seconds (``runner.rate_window_s``) so that a run spans several windows.

Side by side in one run: the limiter as it is (books the 90th percentile of observed output tokens, corrects
on completion and wakes waiting calls) and the limiter before (booked the full ``max_output_tokens`` per call
and slept out its computed wait; kept below as ``BeforeRateLimiter`` for this comparison only). Prints, per
scenario, achieved ÷ configured throughput over the run's full windows (target >= 0.9) and the busiest sliding
window ÷ the limit (must be <= 1.0), both from the server's own arrival times.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

from mc16k.judging.config import JudgeConfig, MetricMode
from mc16k.judging.judge import run_judge
from mc16k.llm import runner as runner_module
from mc16k.llm.config import LLMConfig, Provider, RunnerConfig, StructuredOutput
from mc16k.paths import resource_path

LOOPBACK_SERVER = Path(__file__).resolve().parents[1] / "tests" / "loopback.py"  # the tests' fault-injecting server
WINDOW_S, MAX_OUTPUT, LATENCY_S = 6.0, 4096, 0.1
SCENARIOS = {  # name: (requests per window, tokens per window, answers judged per metric)
    "token-bound": (None, 40_000, 40),
    "request-bound": (90, 10_000_000, 40),
}


class BeforeRateLimiter:
    """The limiter before this change: a lock held while sleeping out the computed wait; no wake-up."""

    def __init__(self, requests_per_minute, tokens_per_minute, window_s=60.0):
        self._rpm, self._tpm, self._window_s = requests_per_minute, tokens_per_minute, window_s
        self._events: collections.deque[list] = collections.deque()
        self._tokens_in_window = 0
        self._lock = asyncio.Lock()

    def _wait_needed(self, now: float, tokens: int) -> float:
        while self._events and now - self._events[0][0] >= self._window_s:
            self._tokens_in_window -= self._events.popleft()[1]
        waits = [0.0]
        if self._rpm is not None and len(self._events) >= self._rpm:
            waits.append(self._events[len(self._events) - self._rpm][0] + self._window_s - now)
        if self._tpm is not None and self._events and self._tokens_in_window + tokens > self._tpm:
            excess = self._tokens_in_window + tokens - self._tpm
            for stamp, spent in self._events:
                excess -= spent
                if excess <= 0:
                    waits.append(stamp + self._window_s - now)
                    break
        return max(waits)

    async def acquire(self, tokens: int) -> list | None:
        async with self._lock:
            while True:
                now = time.monotonic()
                wait = self._wait_needed(now, tokens)
                if wait <= 0:
                    entry = [now, tokens]
                    self._events.append(entry)
                    self._tokens_in_window += tokens
                    return entry
                await asyncio.sleep(wait)

    async def correct(self, entry: list | None, actual_tokens: int) -> None:
        if entry is not None and actual_tokens and any(e is entry for e in self._events):
            self._tokens_in_window += actual_tokens - entry[1]
            entry[1] = actual_tokens


def measured(billed: list[tuple[float, int]], requests: bool) -> tuple[float, int]:
    """(mean per window over the run's full windows, busiest window-long interval) of requests or tokens."""
    weight = [1 if requests else tokens for _, tokens in billed]
    start = billed[0][0]
    full = max(1, int((billed[-1][0] - start) // WINDOW_S))
    mean = sum(w for (t, _), w in zip(billed, weight, strict=True) if t < start + full * WINDOW_S) / full
    busiest, j, inside = 0, 0, 0
    for i, (t, _) in enumerate(billed):  # two pointers over arrivals sorted by time
        while j < len(billed) and billed[j][0] < t + WINDOW_S:
            inside += weight[j]
            j += 1
        busiest = max(busiest, inside)
        inside -= weight[i]
    return mean, busiest


def run(rpm: int | None, tpm: int, answers: int, before: bool) -> str:
    pairs = [(i, f"Question {i}: I cannot sleep.", f"Answer {i}: " + "I hear you. " * (2 + (i * 37) % 130))
             for i in range(answers)]
    with tempfile.TemporaryDirectory() as tmp:
        log_file = Path(tmp) / "billed.txt"
        server = subprocess.Popen([sys.executable, str(LOOPBACK_SERVER), "--latency-s", str(LATENCY_S),
                                   "--billed-log", str(log_file)], stdout=subprocess.PIPE, text=True)
        try:
            port = int(server.stdout.readline())
            cfg = JudgeConfig(
                name="benchmark",
                llm=LLMConfig(provider=Provider.openai_compatible, model="loopback",
                              base_url=f"http://127.0.0.1:{port}/v1", max_output_tokens=MAX_OUTPUT,
                              structured_output=StructuredOutput.none),
                runner=RunnerConfig(concurrency=8, requests_per_minute=rpm, tokens_per_minute=tpm,
                                    rate_window_s=WINDOW_S),
                rubric_dir=resource_path("prompts/judge/v1"),
                mode=MetricMode.per_metric,
            )
            patches = contextlib.ExitStack()
            if before:
                patches.enter_context(mock.patch.object(runner_module, "RateLimiter", BeforeRateLimiter))
                patches.enter_context(mock.patch.object(runner_module.AsyncRunner, "expected_output_tokens",
                                                        lambda self: self._max_output_tokens))
            started = time.monotonic()
            with patches:
                summary = run_judge(cfg, pairs, Path(tmp) / "store")
            elapsed = time.monotonic() - started
        finally:
            server.terminate()
            server.wait()
        billed = sorted((float(t), int(n)) for t, n in (line.split() for line in log_file.read_text().splitlines()))
    requests = rpm is not None
    mean, busiest = measured(billed, requests)
    limit = rpm if requests else tpm
    label = "before (books max_output_tokens)" if before else "limiter"
    return (f"  {label:33s}: {summary.usage.calls} calls in {elapsed:5.1f}s; {'requests' if requests else 'tokens'} "
            f"per window: achieved / limit {mean / limit:.2f}, busiest window / limit {busiest / limit:.2f}")


def main() -> int:
    print(f"judge_limiter: window {WINDOW_S:.0f}s (stands for 60 s), {LATENCY_S * 1000:.0f} ms server latency, "
          f"max_output_tokens {MAX_OUTPUT}, one call per metric on answers of 5-400 words, concurrency 8")
    for name, (rpm, tpm, answers) in SCENARIOS.items():
        print(f"{name} (requests per window {rpm}, tokens per window {tpm}):")
        for before in (False, True):
            print(run(rpm, tpm, answers, before), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

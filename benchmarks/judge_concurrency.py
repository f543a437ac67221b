"""Judging throughput: 400 judgments through the real OpenAI client, runner, parser and store against a
loopback server that answers each call after 100 ms, at concurrency 16.

The bound is what perfect overlap would give, 400 x 0.1 s / 16 = 2.5 s; the target is <= 1.3 x the bound.
Prints the ratio; exits non-zero when it is over 1.3.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from mc16k.config import resource_path
from mc16k.judging.config import JudgeConfig, MetricMode
from mc16k.judging.judge import run_judge
from mc16k.llm.config import LLMConfig, Provider, RunnerConfig
from mc16k.llm.loopback import LoopbackLLMServer

CALLS, LATENCY_S, CONCURRENCY, TARGET = 400, 0.1, 16, 1.3


def main() -> int:
    os.environ.setdefault("OPENAI_API_KEY", "sk-loopback-benchmark")  # the loopback server ignores it
    pairs = [(i, f"Question {i}: I cannot sleep.", f"Answer {i}: that sounds hard.") for i in range(CALLS)]
    with LoopbackLLMServer(latency_s=LATENCY_S) as server, tempfile.TemporaryDirectory() as store_dir:
        cfg = JudgeConfig(
            name="benchmark",
            llm=LLMConfig(provider=Provider.openai_compatible, model="loopback", base_url=server.openai_base_url),
            runner=RunnerConfig(concurrency=CONCURRENCY),
            rubric_dir=resource_path("prompts/judge/v1"),
            mode=MetricMode.all,
        )
        started = time.monotonic()
        summary = run_judge(cfg, pairs, store_dir)
        elapsed = time.monotonic() - started
        served = server.counts["ok"]
    bound = CALLS * LATENCY_S / CONCURRENCY
    ratio = elapsed / bound
    print(f"judge_concurrency: {served} judgments ({summary.usage.calls} calls, {summary.metrics_failed} failed) "
          f"in {elapsed:.2f}s at concurrency {CONCURRENCY}, {LATENCY_S * 1000:.0f} ms latency; "
          f"bound {bound:.2f}s; ratio {ratio:.2f} (target <= {TARGET})")
    return 0 if ratio <= TARGET and served == CALLS else 1


if __name__ == "__main__":
    sys.exit(main())

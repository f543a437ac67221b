"""Judging throughput: 400 judgments through the real OpenAI client, runner, parser and store against a
loopback server (its own process, like a real server) that answers each call after 100 ms, at concurrency 16.

The bound is what perfect overlap would give, 400 x 0.1 s / 16 = 2.5 s; the target is <= 1.3 x the bound.
One warm-up judgment (lazy imports in the SDK) is not timed. Prints the ratio and whether the target was met
(timings depend on what else the CPU runs, so only a wrong result — a missing or failed judgment — exits 1).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mc16k.judging.config import JudgeConfig, MetricMode
from mc16k.judging.judge import run_judge
from mc16k.llm.config import LLMConfig, Provider, RunnerConfig
from mc16k.paths import resource_path

CALLS, LATENCY_S, CONCURRENCY, TARGET = 400, 0.1, 16, 1.3
LOOPBACK_SERVER = Path(__file__).resolve().parents[1] / "tests" / "loopback.py"  # the tests' fault-injecting server


def main() -> int:
    server = subprocess.Popen(
        [sys.executable, str(LOOPBACK_SERVER), "--latency-s", str(LATENCY_S)], stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(server.stdout.readline())
        cfg = JudgeConfig(
            name="benchmark",
            llm=LLMConfig(
                provider=Provider.openai_compatible, model="loopback", base_url=f"http://127.0.0.1:{port}/v1"
            ),
            runner=RunnerConfig(concurrency=CONCURRENCY),
            rubric_dir=resource_path("prompts/judge/v1"),
            mode=MetricMode.all,
        )
        pairs = [(i, f"Question {i}: I cannot sleep.", f"Answer {i}: that sounds hard.") for i in range(CALLS)]
        with tempfile.TemporaryDirectory() as store_dir:
            run_judge(cfg, [(-1, "Warm-up question.", "Warm-up answer.")], store_dir)
            started = time.monotonic()
            summary = run_judge(cfg, pairs, store_dir)
            elapsed = time.monotonic() - started
    finally:
        server.terminate()
        server.wait()
    bound = CALLS * LATENCY_S / CONCURRENCY
    ratio = elapsed / bound
    print(f"judge_concurrency: {summary.units_judged} judgments ({summary.usage.calls} calls, "
          f"{summary.metrics_failed} failed metric scores) in {elapsed:.2f}s at concurrency {CONCURRENCY}, "
          f"{LATENCY_S * 1000:.0f} ms latency; bound {bound:.2f}s; ratio {ratio:.2f} "
          f"(target <= {TARGET}: {'met' if ratio <= TARGET else 'MISSED'}); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return 0 if summary.units_judged == CALLS and summary.metrics_failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""SIGKILL evaluate.py while many units wait on retries and re-asks, then count the calls paid for work that
was not stored (the rerun pays them again). A started unit's retries and re-asks go before new units' first
calls, and only so many units are in progress, so that waste stays within concurrency x (1 + max_reasks +
max_retries). Before, retries queued behind every unit's first call and a kill repeated up to 45 % more calls."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kill_helpers import kill_once_stored
from loopback import LoopbackLLMServer

from mc16k.inference.store import add_answers, answer_path
from mc16k.judging.store import text_sha
from mc16k.llm.store import JsonlStore

ROOT = Path(__file__).resolve().parents[1]
N, KILL_AFTER = 240, 120
CONCURRENCY, MAX_RETRIES, MAX_REASKS = 4, 3, 2
FAULTS = ["500", "malformed", "429", "missing"]  # every other answer meets one on its first call


def answer_text(i: int) -> str:
    fault = f" [[fault:{FAULTS[(i // 2) % len(FAULTS)]}]]" if i % 2 else ""
    return f"Answer {i}: that sounds hard.{fault}"


def write_benchmark(tmp_path: Path) -> None:
    with (tmp_path / "questions.jsonl").open("w") as handle:
        for i in range(N):
            handle.write(json.dumps({"question_id": i, "category": "test", "turns": [f"Question {i}: I feel low."]}) + "\n")
    rows = [
        {"question_id": i, "answer_id": f"a{i}", "model_id": "m", "choices": [{"index": 0, "turns": [answer_text(i)]}],
         "tstamp": 0.0, "kind": "base", "base_model": "m", "round": 1}
        for i in range(N)
    ]
    add_answers(answer_path(tmp_path / "answers", "killfaults", "m", 1), rows)


def evaluate_cmd(tmp_path: Path, server: LoopbackLLMServer) -> list[str]:
    return [
        sys.executable, str(ROOT / "evaluate.py"), "judge=openai-compatible", "logger=none",
        "benchmark.name=killfaults", f"benchmark.path={tmp_path}/questions.jsonl",
        f"paths.answers_dir={tmp_path}/answers", f"paths.judgments_dir={tmp_path}/judgments",
        f"paths.reports_dir={tmp_path}/reports", f"hydra.run.dir={tmp_path}/hydra",
        "evaluate.judge.llm.model=loopback", f"evaluate.judge.llm.base_url={server.openai_base_url}",
        f"evaluate.judge.runner.concurrency={CONCURRENCY}", f"evaluate.judge.runner.max_retries={MAX_RETRIES}",
        f"evaluate.judge.max_reasks={MAX_REASKS}", "evaluate.judge.runner.backoff_initial_s=0.3",
    ]


@pytest.mark.slow
def test_a_kill_with_retries_pending_wastes_at_most_the_bound(tmp_path):
    write_benchmark(tmp_path)
    store_file = tmp_path / "judgments" / "openai-compatible" / "judgments.jsonl"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    with LoopbackLLMServer(latency_s=0.02, retry_after_s=0.3) as server:
        server.hold_after_ok(KILL_AFTER)
        first = subprocess.Popen(evaluate_cmd(tmp_path, server), cwd=tmp_path, env=env, start_new_session=True,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        kill_once_stored(first, server, store_file, KILL_AFTER, timeout_s=180)
        with JsonlStore(store_file) as store:
            stored_answers = {record["answer_sha"] for record in store}
        calls_first_run = server.counts["requests"]
        wasted = sum(n for answer, n in server.requests_by_answer.items() if text_sha(answer) not in stored_answers)
        server.release()
        second = subprocess.run(evaluate_cmd(tmp_path, server), cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=300)
        assert second.returncode == 0, second.stderr[-3000:]
        calls_second_run = server.counts["requests"] - calls_first_run
    bound = CONCURRENCY * (1 + MAX_REASKS + MAX_RETRIES)
    print(f"SIGKILL after {len(stored_answers)} of {N} judgments stored ({calls_first_run} calls); calls repeated "
          f"after the rerun (paid for unstored work): {wasted}, bound concurrency x (1 + max_reasks + max_retries) "
          f"= {bound}; the rerun made {calls_second_run} calls")
    assert wasted <= bound
    with JsonlStore(store_file) as store:
        assert len(store) == N and all(m["status"] == "ok" for record in store for m in record["metrics"].values())
    printed = next(line for line in second.stdout.splitlines() if line.startswith("judged "))
    assert f"; {calls_second_run} calls," in printed  # the printed count is the server's count

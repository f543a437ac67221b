"""SIGKILL evaluate.py in the middle of a 500-call run against the loopback server, then run it again: every
judgment the server sent was stored before the kill, the rerun asks only for the rest, and in total the
server sent exactly 500 successful judgments for a store of 500 unique keys."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from loopback import LoopbackLLMServer

from mc16k.inference.store import add_answers, answer_path
from mc16k.llm.store import JsonlStore

ROOT = Path(__file__).resolve().parents[1]
N = 500
SECRET = "canary-openai-key-must-never-be-written-0123456789"


def write_benchmark(tmp_path: Path) -> None:
    with (tmp_path / "questions.jsonl").open("w") as handle:
        for i in range(N):
            handle.write(json.dumps({"question_id": i, "category": "test", "turns": [f"Question {i}: I feel low."]}) + "\n")
    rows = [
        {"question_id": i, "answer_id": f"a{i}", "model_id": "m", "choices": [{"index": 0, "turns": [f"Answer {i}."]}],
         "tstamp": 0.0, "kind": "base", "base_model": "m", "round": 1}
        for i in range(N)
    ]
    add_answers(answer_path(tmp_path / "answers", "kill", "m", 1), rows)


def evaluate_cmd(tmp_path: Path, server: LoopbackLLMServer) -> list[str]:
    return [
        sys.executable, str(ROOT / "evaluate.py"), "judge=openai-compatible", "logger=none",
        "benchmark.name=kill", f"benchmark.path={tmp_path}/questions.jsonl",
        f"paths.answers_dir={tmp_path}/answers", f"paths.judgments_dir={tmp_path}/judgments",
        f"paths.reports_dir={tmp_path}/reports", f"hydra.run.dir={tmp_path}/hydra",
        "evaluate.judge.llm.model=loopback", f"evaluate.judge.llm.base_url={server.openai_base_url}",
        "evaluate.judge.runner.concurrency=16", "evaluate.judge.llm.api_key_envs=[OPENAI_API_KEY]",
    ]


def stored_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.mark.slow
def test_sigkill_mid_run_loses_nothing_answered_and_rerun_pays_only_the_rest(tmp_path):
    write_benchmark(tmp_path)
    store_file = tmp_path / "judgments" / "openai-compatible" / "judgments.jsonl"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "OPENAI_API_KEY": SECRET}
    with LoopbackLLMServer(latency_s=0.01) as server:
        server.hold_after_ok(200)
        first = subprocess.Popen(evaluate_cmd(tmp_path, server), cwd=tmp_path, env=env, start_new_session=True,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        settled = None  # the ok count once the server holds and every sent judgment is on disk
        while True:
            assert first.poll() is None, first.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, (dict(server.counts), stored_lines(store_file))
            ok = server.counts["ok"]
            if ok >= 200 and stored_lines(store_file) == ok:
                if settled == ok:
                    break
                settled = ok
                time.sleep(0.5)  # no request may still be between the hold and its reply
                continue
            time.sleep(0.05)
        sent_before_kill = settled
        os.killpg(first.pid, signal.SIGKILL)  # with requests held in flight
        first.wait()
        assert stored_lines(store_file) == sent_before_kill
        server.release()
        second = subprocess.run(evaluate_cmd(tmp_path, server), cwd=tmp_path, env=env, capture_output=True, timeout=300)
        assert second.returncode == 0, second.stderr.decode()[-3000:]
        assert server.counts["ok"] == N, dict(server.counts)
        assert server.counts["dropped"] > 0  # the kill really happened mid-flight
        print(f"SIGKILL after {sent_before_kill} stored judgments, {server.counts['dropped']} requests in flight; "
              f"server sent {server.counts['ok']} ok judgments in total")
    with JsonlStore(store_file) as store:
        assert len(store) == N
        assert all(m["status"] == "ok" for record in store for m in record["metrics"].values())
    assert (tmp_path / "reports" / "kill" / "table3.md").is_file()
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaked == []  # .hydra/, the store and the reports never hold the key

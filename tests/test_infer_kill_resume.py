"""The real 200 questions with the tiny model through infer.py: SIGKILL mid-run, rerun, exactly one answer
per (question, round), none lost, the longest question cut and flagged (slow: two subprocess runs)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from infer_helpers import REAL_QUESTIONS, ROOT, tiny_overrides

from mc16k.inference.store import read_answers

pytestmark = pytest.mark.slow


def infer_command(overrides: list[str]) -> list[str]:
    return [sys.executable, str(ROOT / "infer.py"), *overrides]


def test_sigkill_then_rerun_leaves_exactly_one_answer_per_question_and_round(tiny_model_dir, tmp_path):
    overrides = tiny_overrides(tiny_model_dir, tmp_path) + [
        f"benchmark.path={REAL_QUESTIONS}",
        "model.max_context=1024",
        "infer.rounds=2",
        "infer.generation.max_new_tokens=8",
        "infer.engine.batch_size=8",
        f"hydra.run.dir={tmp_path}/hydra",
    ]
    files = [tmp_path / "answers" / "evalq200" / "tiny" / f"round-{k}.jsonl" for k in (1, 2)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(
        infer_command(overrides), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 300
    while sum(len(read_answers(f)) for f in files if f.exists()) < 40:
        assert first.poll() is None, first.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "no answers written within 300 s"
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    before = {k: read_answers(f) for k, f in enumerate(files, start=1)}
    answered_before = sum(map(len, before.values()))
    assert 40 <= answered_before < 400, "the kill must land mid-run"

    rerun = subprocess.run(infer_command(overrides), env=env, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]

    questions = [json.loads(line) for line in REAL_QUESTIONS.read_text().splitlines()]
    longest = max(questions, key=lambda q: len(q["turns"][0].split()))["question_id"]
    for k, path in enumerate(files, start=1):
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        ids = [row["question_id"] for row in lines]
        assert sorted(ids) == sorted(q["question_id"] for q in questions)  # every question, once
        rows = {row["question_id"]: row for row in lines}
        assert all(rows[qid] == row for qid, row in before[k].items())  # nothing answered before was lost
        assert all(row["round"] == k for row in lines)
        assert rows[longest]["truncated"] and rows[longest]["dropped_prompt_tokens"] > 0
    truncated = sum(row["truncated"] for row in read_answers(files[0]).values())
    summary = (
        f"{400 - answered_before} answered, {answered_before} already done, {truncated} truncated prompt(s)"
    )
    assert summary in rerun.stdout + rerun.stderr  # the count of truncated answers is reported

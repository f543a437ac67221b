"""The acceptance path itself: `python evaluate.py` against the loopback server. A down server ends the run
with exit status 2 and one line naming the URL and stores nothing; after recovery the same command judges every item,
and the call count it prints is the server's count of calls received."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from loopback import LoopbackLLMServer
from test_report_pipeline import write_answers

from mc16k.llm.store import JsonlStore

ROOT = Path(__file__).resolve().parents[1]


def evaluate(tmp_path: Path, base_url: str, *extra: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable, str(ROOT / "evaluate.py"), "judge=gpt-4-turbo", "benchmark=sample", "logger=none",
        f"paths.answers_dir={tmp_path}/answers", f"paths.judgments_dir={tmp_path}/judgments",
        f"paths.reports_dir={tmp_path}/reports", f"hydra.run.dir={tmp_path}/hydra",
        f"evaluate.judge.llm.base_url={base_url}", "evaluate.judge.runner.backoff_initial_s=0.01", *extra,
    ]
    env = {**os.environ, "OPENAI_API_KEY": "loopback-test-key", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_down_then_up_on_the_command_line(tmp_path):
    n_answers = write_answers(tmp_path / "answers", rounds=1)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    down = evaluate(tmp_path, url, "evaluate.judge.mode=per_metric")
    assert down.returncode == 2  # a user error (mc16k.tasks.cli): at most three lines, no traceback
    error_lines = [line for line in down.stderr.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1 and f"{url} is unreachable" in error_lines[0], down.stderr[-2000:]
    assert "Traceback" not in down.stderr
    store_file = tmp_path / "judgments" / "gpt-4-turbo" / "judgments.jsonl"
    assert not store_file.exists() or store_file.read_bytes() == b""  # nothing stored, failed or otherwise
    with LoopbackLLMServer(port=port) as server:  # the server is back
        up = evaluate(tmp_path, url, "evaluate.judge.mode=per_metric")
        received = server.counts["requests"]
    assert up.returncode == 0, up.stderr[-3000:]
    printed = next(line for line in up.stdout.splitlines() if line.startswith("judged "))
    assert printed.startswith(f"judged {n_answers * 7} new / 0 cached units")
    assert f"; {received} calls," in printed and received == n_answers * 7
    with JsonlStore(store_file) as store:
        assert len(store) == n_answers * 7
        assert all(m["status"] == "ok" for record in store for m in record["metrics"].values())
    print(f"down: exit {down.returncode}, {error_lines[0]!r}; up: {printed!r}; server received {received}")

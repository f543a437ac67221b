"""benchmarks/gpu_check.py --cpu-smoke: the prepared GPU check runs end to end on tiny shapes, so device
time is never spent finding a typo. Every part reports figures that mean what their names say."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_cpu_smoke_reports_every_part(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--cpu-smoke", "--out", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=3600,  # minutes when idle; a busy shared machine is far slower
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())

    runs = report["training"]
    assert {(r["variant"], r["micro_batch_examples"]) for r in runs} == {
        ("plain", 4), ("mc16k", 4), ("plain", 8), ("mc16k", 8)
    }  # fmt: skip
    for run in runs:
        assert run["tokens_per_s"] > 0 and run["real_tokens"] > 0
        assert 0 < run["trainable_percent"] < 100
        assert run["mfu"] == pytest.approx(4 * run["matmul_params"] * run["tokens_per_s"] / 790e12)

    mixtral = report["mixtral"]
    assert mixtral["nf4_linear_params"] + mixtral["bf16_params"] == mixtral["total_params"]
    assert mixtral["footprint_gib"] > 0
    assert math.isfinite(mixtral["step"]["loss"]) and mixtral["step"]["tokens_per_s_last"] > 0

    generation = report["generation"]
    assert generation["questions"] == 8 and generation["hf"]["generated_tokens_per_s"] > 0
    if importlib.util.find_spec("vllm") is None:
        assert generation["vllm"].startswith("not run: vLLM is not installed")

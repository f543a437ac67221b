"""train.py end to end in subprocesses (slow tier): the 21-job sweep with W&B offline and secret canaries,
relaunch skipping, SIGKILL and resume, DDP on CPU with 2 gloo processes (the SmolLM2 demo: test_pipeline_slow.py)."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from peft import PeftModel

from mc16k.models.config import QuantConfig
from mc16k.models.loading import load_base_model
from mc16k.schema import ModelConfig

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CANARIES = {
    "WANDB_API_KEY": "canary-wandb-5c1e9d0b7a3f4e21",
    "OPENAI_API_KEY": "canary-openai-8f2d61c4b9e04a77",
    "GEMINI_API_KEY": "canary-gemini-3b7a9e5d1c2f4068",
    "GOOGLE_API_KEY": "canary-google-e4d2a8c6f1b35790",
}
PAPER_MODELS = 7
SPLITS = ("synthetic", "interview", "both")


def train_cli(args: list[str], env: dict[str, str] | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "train.py", *args], cwd=ROOT, env={**os.environ, **(env or {})},
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def load_adapter(run_dir: Path) -> PeftModel:
    info = json.loads((run_dir / "adapter" / "mc16k_run.json").read_text())
    model_cfg = OmegaConf.merge(OmegaConf.structured(ModelConfig), info["model"])
    quant_cfg = OmegaConf.merge(OmegaConf.structured(QuantConfig), info["quant"])
    return PeftModel.from_pretrained(load_base_model(model_cfg, quant_cfg), str(run_dir / "adapter"))


def test_sweep_of_every_model_and_split_then_relaunch_skips_all_and_no_secret_is_written(tmp_path, tiny_model_dir):
    sweep = [
        "-m", "experiment=smoke", "model=glob(*)", "data=synthetic,interview,both", "logger=wandb",
        f"paths.root_dir={tmp_path}", f"model.name_or_path={tiny_model_dir}", "trainer.max_steps=2",
        "train.validate_base=false",
    ]  # fmt: skip
    train_cli(sweep, env=CANARIES)
    sweep_dir = tmp_path / "multirun" / "smoke"
    job_dirs = sorted(p.parent for p in sweep_dir.glob("*/done.json"))
    assert len(job_dirs) == PAPER_MODELS * len(SPLITS)
    assert {p.name.split("__")[1] for p in job_dirs} == set(SPLITS)
    run_ids = set()
    for job in job_dirs:
        assert (job / ".hydra" / "config.yaml").is_file() and (job / "adapter" / "adapter_model.safetensors").is_file()
        offline_runs = list((job / "wandb").glob("offline-run-*"))
        assert len(offline_runs) == 1, job
        run_ids.add(json.loads((job / "done.json").read_text())["run_id"])
    assert len(run_ids) == len(job_dirs)
    load_adapter(job_dirs[0])

    started = time.perf_counter()
    again = train_cli(sweep, env=CANARIES)
    elapsed = time.perf_counter() - started
    print(f"relaunch of {len(job_dirs)} finished jobs: {elapsed:.1f} s")
    assert elapsed < 60, f"relaunch took {elapsed:.0f} s"
    assert again.stderr.count("finished earlier") + again.stdout.count("finished earlier") == len(job_dirs)
    assert all(len(list((job / "wandb").glob("offline-run-*"))) == 1 for job in job_dirs)

    leaks = []
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            leaks += [f"{path}: {name}" for name, value in CANARIES.items() if value.encode() in data]
    assert not leaks


def test_sigkill_after_first_checkpoint_then_rerun_continues_from_that_step(tmp_path, tiny_model_dir):
    args = [
        "experiment=smoke", "logger=csv", f"paths.root_dir={tmp_path}", f"model.name_or_path={tiny_model_dir}",
        "trainer.max_steps=30", "trainer.max_epochs=3", "train.checkpoint_every_n_steps=5",
        "train.validate_base=false",
    ]  # fmt: skip
    run_dir = tmp_path / "outputs" / "runs" / "smoke" / "mistral-7b__both"
    last = run_dir / "checkpoints" / "last.ckpt"
    process = subprocess.Popen([sys.executable, "train.py", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not last.is_file() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL and not (run_dir / "done.json").exists()
    time.sleep(0.5)  # a save in flight is atomic (Lightning writes then renames)
    killed_at = torch.load(last, map_location="cpu", weights_only=False)["global_step"]
    assert 0 < killed_at < 30

    rerun = train_cli(args)
    log = rerun.stdout + rerun.stderr
    assert re.search(rf"resuming at optimizer step {killed_at}\b", log), log[-3000:]
    done = json.loads((run_dir / "done.json").read_text())
    assert done["global_step"] == 30
    with (run_dir / "csv" / "metrics.csv").open() as handle:
        steps = [int(row["step"]) for row in csv.DictReader(handle) if row.get("train/loss_step")]
    assert steps and min(steps) >= killed_at  # the rerun logged no step before the checkpoint
    load_adapter(run_dir)


def test_ddp_two_cpu_processes_with_gloo(tmp_path, tiny_model_dir):
    train_cli([
        "experiment=smoke", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true",
        "logger=csv", f"paths.root_dir={tmp_path}", f"model.name_or_path={tiny_model_dir}",
    ])  # fmt: skip
    run_dir = tmp_path / "outputs" / "runs" / "smoke" / "mistral-7b__both"
    done = json.loads((run_dir / "done.json").read_text())
    assert done["global_step"] == 4
    load_adapter(run_dir)

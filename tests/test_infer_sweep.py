"""One command answers every finished run of a sweep, their base model and a baseline, each named apart."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from infer_helpers import CONF_DIR, compose_infer, one_torch_thread  # noqa: F401 (autouse)

from mc16k.config import register_configs
from mc16k.data.tokenizer import load_tokenizer
from mc16k.inference.store import read_answers
from mc16k.models.loading import load_base_model
from mc16k.models.lora import attach_lora
from mc16k.runs.identity import run_id as compute_run_id
from mc16k.runs.records import mark_done
from mc16k.tasks.infer import run_inference
from mc16k.tasks.train import run_name, save_adapter


def write_smoke_run(sweep_dir: Path, cache_dir: Path, split: str, finished: bool) -> Path:
    """A run dir exactly as train.py leaves it (adapter, mc16k_run.json, done.json), minus the training steps."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "experiment=smoke",
                f"data={split}",
                "logger=none",
                f"paths.cache_dir={cache_dir}",
                f"paths.output_dir={sweep_dir}",
                f"paths.work_dir={sweep_dir}",
            ],
        )
    run_dir = sweep_dir / run_name(cfg)
    model, _ = attach_lora(
        load_base_model(cfg.model, cfg.quant, cache_dir=cache_dir), cfg.lora, seed=cfg.seed,
        quantized=cfg.quant.enabled, gradient_checkpointing=False,
    )  # fmt: skip
    run_id = compute_run_id(cfg)
    save_adapter(model, load_tokenizer(cfg.model), cfg, run_id, run_dir / "adapter")
    if finished:
        mark_done(run_dir, run_id, {})
    return run_dir


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    for split, finished in (("interview", True), ("synthetic", True), ("both", False)):
        write_smoke_run(root / "multirun" / "smoke", root / "cache", split, finished)
    return root / "multirun" / "smoke"


def test_sweep_dir_answers_runs_base_and_baseline_each_named_apart(sweep_dir, tmp_path):
    tiny = sweep_dir.parents[1] / "cache" / "tiny-llama"
    cfg = compose_infer(
        [
            f"infer.from_runs={sweep_dir}",
            "baseline=samantha-1.11-7b",
            f"baseline.name_or_path={tiny}",
            "baseline.prompt_format=chat_template",
            "baseline.dtype=float32",
            "quant=none",
            "benchmark=sample",
            "benchmark.n=2",
            "infer.generation.max_new_tokens=3",
            f"paths.answers_dir={tmp_path}/answers",
            f"paths.cache_dir={tmp_path}/cache",
            "logger=none",
            "infer.show_progress=false",
        ]
    )
    reports = run_inference(cfg)
    assert [(r.model_id, r.kind, r.answered) for r in reports] == [
        ("mistral-7b", "base", 2),
        ("mistral-7b-ft-interview", "finetuned", 2),
        ("mistral-7b-ft-synthetic", "finetuned", 2),
        ("baseline-samantha-1.11-7b", "baseline", 2),
    ]  # the unfinished "both" run (no done.json) is skipped
    answers = tmp_path / "answers" / "sample"
    rows = {
        r.model_id: next(iter(read_answers(answers / r.model_id / "round-1.jsonl").values())) for r in reports
    }
    assert rows["mistral-7b-ft-interview"]["data_split"] == "interview"
    assert rows["mistral-7b-ft-interview"]["base_model"] == str(tiny)
    assert rows["mistral-7b-ft-synthetic"]["run_id"] and rows["mistral-7b"]["run_id"] is None
    assert rows["baseline-samantha-1.11-7b"]["base_model"] == "meta-llama/Llama-2-7b-hf"


def test_a_dir_without_finished_runs_is_a_clear_error(tmp_path):
    cfg = compose_infer([f"infer.from_runs={tmp_path}", "logger=none", "benchmark=sample"])
    with pytest.raises(FileNotFoundError, match="no finished training run"):
        run_inference(cfg)


def test_a_single_run_dir_with_merged_adapter_and_no_base(sweep_dir, tmp_path):
    cfg = compose_infer(
        [
            f"infer.from_runs={sweep_dir / 'mistral-7b__interview'}",
            "infer.with_base_models=false",
            "infer.engine.merge_adapter=true",
            "benchmark=sample",
            "benchmark.n=1",
            "infer.generation.max_new_tokens=3",
            f"paths.answers_dir={tmp_path}/answers",
            f"paths.cache_dir={tmp_path}/cache",
            "logger=none",
            "infer.show_progress=false",
        ]
    )
    assert [(r.model_id, r.answered) for r in run_inference(cfg)] == [("mistral-7b-ft-interview", 1)]

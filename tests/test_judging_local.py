"""The local-hf judge through the whole judging path (tiny model, both metric modes), the evaluate config
tree (demo/smoke/paper compose; bad keys fail naming them); `evaluate.py experiment=demo` runs in test_pipeline_slow.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError, ValidationError

from mc16k.config import register_configs
from mc16k.judging.config import JudgeConfig, MetricMode
from mc16k.judging.judge import run_judge
from mc16k.judging.store import STATUS_OK, store_path
from mc16k.llm.config import LLMConfig, Provider
from mc16k.llm.store import JsonlStore
from mc16k.paths import resource_path

ROOT = Path(__file__).resolve().parents[1]
PAIRS = [(1, "I cannot sleep.", "That sounds exhausting; a regular bedtime may help."), (2, "I feel alone.", "You matter.")]


def compose_evaluate(*overrides: str):
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("evaluate", overrides=list(overrides))


@pytest.mark.parametrize("mode", [MetricMode.all, MetricMode.per_metric])
def test_local_judge_scores_every_metric_in_both_modes(tmp_path, tiny_model_dir, mode):
    cfg = JudgeConfig(
        name=f"local-{mode.value}",
        llm=LLMConfig(provider=Provider.local_hf, model=str(tiny_model_dir)),
        rubric_dir=resource_path("prompts/judge/v1"),
        mode=mode,
    )
    summary = run_judge(cfg, PAIRS, tmp_path, cache_dir=tmp_path / "cache")
    assert summary.units_judged == (2 if mode is MetricMode.all else 14) and summary.metrics_failed == 0
    with JsonlStore(store_path(tmp_path, cfg.name)) as store:
        results = [m for record in store for m in record["metrics"].values()]
    assert len(results) == 14
    for result in results:
        assert result["status"] == STATUS_OK and 1.0 <= result["score"] <= 10.0
        assert abs(sum(result["probabilities"].values()) - 1.0) < 1e-3
    assert run_judge(cfg, PAIRS, tmp_path, cache_dir=tmp_path / "cache").units_judged == 0


def test_experiments_pick_their_judges():
    assert compose_evaluate().evaluate.judge.name == "gpt-4-turbo"
    demo = compose_evaluate("experiment=demo")
    assert demo.evaluate.judge.llm.provider.value == "local_hf" and demo.benchmark.name == "sample"
    assert demo.evaluate.judge.llm.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert compose_evaluate("experiment=paper", "judge=gemini-pro").evaluate.judge.llm.provider.value == "gemini"
    assert compose_evaluate("judge=openai-compatible").evaluate.judge.llm.api_key_envs == []


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("evaluate.judge.runner.concurrency=many", "evaluate.judge.runner.concurrency"),
        ("evaluate.judge.mode=sometimes", "evaluate.judge.mode"),
        ("evaluate.judge.llm.temprature=0", "evaluate.judge.llm.temprature"),
        ("evaluate.dryrun=true", "dryrun"),
    ],
)
def test_bad_evaluate_keys_fail_at_compose_naming_the_key(override, key):
    with pytest.raises((ConfigCompositionException, ConfigKeyError, ValidationError)) as err:
        compose_evaluate(override)
    message = str(err.value) + str(err.value.__cause__)
    assert key in message

"""Real openai / google-genai clients against the fault-injecting loopback server: every item ends with a
valid score or an explicit failure status, re-asks ask only what failed, re-runs pay nothing."""

from __future__ import annotations

import time

import pytest
from loopback import LoopbackLLMServer, expected_score

from mc16k.judging.config import JudgeConfig, MetricMode
from mc16k.judging.judge import STATUS_FAILED, STATUS_OK, run_judge, store_path
from mc16k.llm.config import LLMConfig, Provider, RunnerConfig
from mc16k.llm.store import JsonlStore
from mc16k.llm.types import LLMSetupError
from mc16k.paths import resource_path

QUESTION = "I cannot sleep since my father died and I feel guilty all the time."
FAULTS = ["429", "500", "slow", "garbage_body", "malformed", "missing", "prose", "out_of_range", "always_500"]


def judge_config(server: LoopbackLLMServer, provider: Provider, mode: MetricMode = MetricMode.all) -> JudgeConfig:
    if provider is Provider.gemini:
        llm = LLMConfig(
            provider=provider, model="gemini-test", base_url=server.gemini_base_url, api_key_envs=["GEMINI_API_KEY"]
        )
    else:
        llm = LLMConfig(
            provider=provider, model="gpt-test", base_url=server.openai_base_url, api_key_envs=["OPENAI_API_KEY"]
        )
    llm.timeout_s = 0.5
    return JudgeConfig(
        name=f"test-{provider.value}",
        llm=llm,
        runner=RunnerConfig(concurrency=4, max_retries=2, backoff_initial_s=0.01, backoff_max_s=0.05),
        rubric_dir=resource_path("prompts/judge/v1"),
        mode=mode,
        max_reasks=2,
    )


@pytest.fixture
def keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback-test")
    monkeypatch.setenv("GEMINI_API_KEY", "loopback-test")


def answers_with_faults() -> list[tuple[int, str, str]]:
    pairs = [(i, QUESTION, f"Answer {i}: I hear how heavy this is. [[fault:{fault}]]") for i, fault in enumerate(FAULTS)]
    pairs.append((len(FAULTS), QUESTION, "A plain answer with no fault at all."))
    return pairs


def metrics_by_fault(judgments_dir, judge_name) -> dict[str, dict]:
    with JsonlStore(store_path(judgments_dir, judge_name)) as store:
        records = list(store)
    by_fault = {}
    for record in records:
        fault = next((f for f in FAULTS if record["question_id"] == FAULTS.index(f)), "none")
        by_fault[fault] = record["metrics"]
    return by_fault


@pytest.mark.parametrize("provider", [Provider.openai, Provider.gemini])
def test_every_item_ends_scored_or_failed(tmp_path, keys, provider):
    with LoopbackLLMServer(slow_s=1.0) as server:
        cfg = judge_config(server, provider)
        summary = run_judge(cfg, answers_with_faults(), tmp_path)
        counts = dict(server.counts)
        requested = list(server.requested_metrics)
    assert summary.units_judged == len(FAULTS) + 1
    by_fault = metrics_by_fault(tmp_path, cfg.name)
    assert set(by_fault) == {*FAULTS, "none"}
    for metrics in by_fault.values():
        assert len(metrics) == 7
        for result in metrics.values():
            assert result["status"] in (STATUS_OK, STATUS_FAILED)
            if result["status"] == STATUS_OK:
                assert 1 <= result["score"] <= 10
            else:
                assert result["score"] is None and result["reason"]
    recovered = ["429", "500", "slow", "garbage_body", "malformed", "missing", "prose", "none"]
    for fault in recovered:
        assert all(r["status"] == STATUS_OK for r in by_fault[fault].values()), (fault, by_fault[fault])
    answer_none = "A plain answer with no fault at all."
    assert all(r["score"] == expected_score(answer_none, k) for k, r in by_fault["none"].items())
    # out of range: that metric fails with a reason (after re-asks), the other six keep their scores
    failed = {k: r for k, r in by_fault["out_of_range"].items() if r["status"] == STATUS_FAILED}
    assert len(failed) == 1 and "outside 1-10" in next(iter(failed.values()))["reason"]
    # server errors to the end: recorded failures, never numbers
    assert all(r["status"] == STATUS_FAILED and r["reason"].startswith("api:") for r in by_fault["always_500"].values())
    assert counts["http_429"] == 1 and counts["http_500"] == 1 + 3  # always_500: first try + 2 retries
    assert counts["slow"] == 1 and counts["garbage_body"] == 1  # injected once each (retries may add timeouts under load)
    # "missing" dropped two metrics: the re-ask asked for exactly those two
    assert any(len(keys) == 2 for keys in requested)
    assert summary.metrics_failed == 1 + 7
    assert summary.retries["HTTP 429"] == 1 and summary.retries["HTTP 500"] == 1 + 3 and summary.retries["timeout"] >= 1
    assert summary.usage.input_tokens > 0 and summary.usage.output_tokens > 0


def test_rerun_pays_zero_calls_and_retry_after_is_honoured(tmp_path, keys):
    pairs = [(1, QUESTION, "Answer one [[fault:429]]"), (2, QUESTION, "Answer two")]
    with LoopbackLLMServer(retry_after_s=0.4) as server:
        cfg = judge_config(server, Provider.openai, mode=MetricMode.per_metric)
        started = time.monotonic()
        first = run_judge(cfg, pairs, tmp_path)
        elapsed = time.monotonic() - started
        calls_after_first = sum(server.counts.values())
        second = run_judge(cfg, pairs, tmp_path)
        assert sum(server.counts.values()) == calls_after_first
    assert elapsed >= 0.4  # the 429's Retry-After (0.4 s) beats the 0.01 s backoff
    assert first.units_judged == 14 and second.units_judged == 0 and second.units_cached == 14


@pytest.mark.parametrize("provider", [Provider.openai, Provider.gemini])
def test_a_rejected_key_stops_the_run_and_stores_no_failures(tmp_path, keys, provider):
    with LoopbackLLMServer() as server:
        cfg = judge_config(server, provider)
        with pytest.raises(LLMSetupError, match="HTTP 401"):
            run_judge(cfg, [(1, QUESTION, "An answer [[fault:401]]")], tmp_path)
        assert server.counts["http_401"] == 1  # not retried
    with JsonlStore(store_path(tmp_path, cfg.name)) as store:
        assert len(store) == 0


def test_missing_key_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with LoopbackLLMServer() as server:
        cfg = judge_config(server, Provider.openai)
        with pytest.raises(LLMSetupError, match="OPENAI_API_KEY"):
            run_judge(cfg, [(1, QUESTION, "x")], tmp_path)
        assert sum(server.counts.values()) == 0

"""Real openai / google-genai clients against the fault-injecting loopback server: every item ends with a
valid score or an explicit content failure, re-asks ask only what failed, re-runs pay nothing, and what the
world did to a call (a dead server, exhausted retries, a refused request shape) is never stored as a judgment."""

from __future__ import annotations

import socket
import time

import pytest
from loopback import MESSY_FORMS, LoopbackLLMServer, expected_score, served_score

from mc16k.judging.config import JudgeConfig, MetricMode
from mc16k.judging.judge import JudgingStopped, run_judge
from mc16k.judging.store import STATUS_FAILED, STATUS_OK, store_path
from mc16k.llm.config import LLMConfig, Provider, RunnerConfig
from mc16k.llm.store import JsonlStore
from mc16k.llm.types import LLMSetupError
from mc16k.paths import resource_path

QUESTION = "I cannot sleep since my father died and I feel guilty all the time."
FAULTS = ["429", "500", "slow", "garbage_body", "malformed", "missing", "empty", "prose", "out_of_range"]


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
        server_tokens = dict(server.tokens)
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
    recovered = ["429", "500", "slow", "garbage_body", "malformed", "missing", "empty", "prose", "none"]
    for fault in recovered:
        assert all(r["status"] == STATUS_OK for r in by_fault[fault].values()), (fault, by_fault[fault])
    answer_none = "A plain answer with no fault at all."
    assert all(r["score"] == expected_score(answer_none, k) for k, r in by_fault["none"].items())
    # out of range: that metric fails with a reason (after re-asks), the other six keep their scores
    failed = {k: r for k, r in by_fault["out_of_range"].items() if r["status"] == STATUS_FAILED}
    assert len(failed) == 1 and "outside 1-10" in next(iter(failed.values()))["reason"]
    assert counts["http_429"] == 1 and counts["http_500"] == 1
    assert counts["slow"] == 1 and counts["garbage_body"] == 1  # injected once each (retries may add timeouts under load)
    # "missing" dropped two metrics: the re-ask asked for exactly those two
    assert any(len(keys) == 2 for keys in requested)
    assert summary.metrics_failed == 1
    assert summary.retries["HTTP 429"] == 1 and summary.retries["HTTP 500"] == 1 and summary.retries["timeout"] >= 1
    # every request the server received is counted, and every token it billed (the empty reply's too)
    assert summary.usage.calls == counts["requests"]
    assert (summary.usage.input_tokens, summary.usage.output_tokens) == (server_tokens["input"], server_tokens["output"])
    # an empty HTTP 200 reply is a content failure for both clients alike: one re-ask, no transport retries
    assert by_fault["empty"]["active_listening"]["asks"] == 2


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
        with pytest.raises(JudgingStopped, match="HTTP 401"):
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stored(judgments_dir, judge_name) -> dict[str, dict]:
    path = store_path(judgments_dir, judge_name)
    if not path.exists():
        return {}
    with JsonlStore(path) as store:
        return dict(store.records)


@pytest.mark.parametrize("provider", [Provider.openai, Provider.gemini])
def test_a_down_server_stops_the_run_stores_nothing_and_a_rerun_judges_everything(tmp_path, keys, provider):
    # before: 70 of 70 metrics were stored as failed, and a rerun after recovery made 0 calls
    pairs = [(i, QUESTION, f"Answer {i}: that sounds hard.") for i in range(10)]
    port = free_port()
    with LoopbackLLMServer(port=port) as server:
        cfg = judge_config(server, provider)
    with pytest.raises(JudgingStopped, match=rf"127\.0\.0\.1:{port}.* is unreachable: 5 calls in a row") as stopped:
        run_judge(cfg, pairs, tmp_path)  # the server is gone: connection refused
    assert stored(tmp_path, cfg.name) == {}
    assert stopped.value.summary.units_unfinished == 10 and stopped.value.summary.usage.calls == 0
    with LoopbackLLMServer(port=port) as server:  # back on the same port
        summary = run_judge(cfg, pairs, tmp_path)
        assert summary.units_judged == 10 and summary.usage.calls == server.counts["requests"] == 10
    records = stored(tmp_path, cfg.name)
    assert len(records) == 10 and all(m["status"] == STATUS_OK for r in records.values() for m in r["metrics"].values())


@pytest.mark.parametrize("provider", [Provider.openai, Provider.gemini])
def test_server_errors_to_the_end_are_not_judgments_and_a_rerun_judges_them(tmp_path, keys, provider):
    pairs = [(1, QUESTION, "An answer [[fault:always_500]]"), (2, QUESTION, "Another answer")]
    with LoopbackLLMServer() as server:
        cfg = judge_config(server, provider)
        with pytest.raises(JudgingStopped, match=r"1 of 2 judgments were not made .*HTTP 500.* run the same command"):
            run_judge(cfg, pairs, tmp_path)
        assert server.counts["http_500"] == 1 + 2  # first try + max_retries
    records = stored(tmp_path, cfg.name)
    assert [r["question_id"] for r in records.values()] == [2]  # the finished one is kept, the other not stored


@pytest.mark.parametrize("mode", [MetricMode.all, MetricMode.per_metric])
@pytest.mark.parametrize("provider", [Provider.openai, Provider.gemini])
def test_messy_but_valid_replies_lose_no_score(tmp_path, keys, provider, mode):
    pairs = [(i, QUESTION, f"Answer {i}: you are not alone. [[fault:messy_{form}]]") for i, form in enumerate(MESSY_FORMS)]
    with LoopbackLLMServer() as server:
        cfg = judge_config(server, provider, mode)
        summary = run_judge(cfg, pairs, tmp_path)
        assert server.counts["bad_reply"] == 0 and server.counts["ok"] == summary.usage.calls  # no re-ask needed
    assert summary.metrics_failed == 0
    scores: dict[tuple[int, str], dict] = {}
    for record in stored(tmp_path, cfg.name).values():
        for key, result in record["metrics"].items():
            scores[(record["question_id"], key)] = result
    assert len(scores) == len(MESSY_FORMS) * 7
    for (qid, key), result in scores.items():
        form, answer = MESSY_FORMS[qid], pairs[qid][2]
        assert result["status"] == STATUS_OK, (form, key, result)
        if form == "float":
            assert result["score"] == served_score(answer, key) and result["whole"] is False
        else:
            assert result["score"] == expected_score(answer, key) and result["whole"] is True, (form, key)


@pytest.mark.parametrize("provider", [Provider.openai, Provider.gemini])
def test_a_per_metric_reask_quotes_the_parse_error_and_recovers(tmp_path, keys, provider):
    # before: a re-ask sent the identical prompt again, so a judge that needed telling never recovered
    answer = "I am here with you. [[fault:needs_feedback]]"
    with LoopbackLLMServer() as server:
        cfg = judge_config(server, provider, MetricMode.per_metric)
        summary = run_judge(cfg, [(1, QUESTION, answer)], tmp_path)
        assert server.counts["requests"] == 14 and server.counts["bad_reply"] == 7  # one re-ask per metric
    assert summary.metrics_failed == 0
    (record,) = [r for r in stored(tmp_path, cfg.name).values() if r["group"] == "empathy_validation"]
    assert record["metrics"]["empathy_validation"] == {
        "status": STATUS_OK, "score": expected_score(answer, "empathy_validation"), "whole": True,
        "justification": "reasoning about empathy_validation", "asks": 2,
    }


def test_the_reask_turn_names_the_metric_the_error_and_the_format():
    from mc16k.judging.judge import RemoteBackend
    from mc16k.judging.rubric import load_rubric
    from mc16k.llm.types import ChatRequest

    rubric = load_rubric(resource_path("prompts/judge/v1"))
    backend = RemoteBackend(JudgeConfig(rubric_dir="x"), rubric, runner=None)
    first = ChatRequest("sys", "user turn")
    again = backend.reask(first, '{"verdict": "good"', {"empathy_validation": "metric missing from reply"})
    ((quoted, follow_up),) = again.followups
    assert quoted == '{"verdict": "good"' and again.user == "user turn"
    assert 'Empathy & Validation (key "empathy_validation"): metric missing from reply' in follow_up
    assert 'exactly these keys: "empathy_validation"' in follow_up
    assert list(again.json_schema["properties"]) == ["empathy_validation"]


@pytest.mark.parametrize("provider", [Provider.openai, Provider.gemini])
def test_a_refused_json_schema_falls_back_once_and_every_judgment_records_the_mode(tmp_path, keys, provider, caplog):
    # llama.cpp's server answers json_schema with HTTP 500 naming response_format: before, 5 retries per unit
    # and every metric stored as failed
    pairs = [(i, QUESTION, f"Answer {i}") for i in range(6)]
    with LoopbackLLMServer(reject_json_schema=True) as server:
        cfg = judge_config(server, provider)
        summary = run_judge(cfg, pairs, tmp_path)
        formats = dict(server.response_formats)
        assert summary.usage.calls == server.counts["requests"]
    assert summary.metrics_failed == 0 and summary.units_judged == 6
    assert formats["json_schema"] <= cfg.runner.concurrency + 1 and formats["json_object"] == 6
    assert "falling back to structured_output=json_object" in caplog.text
    assert {r["structured_output"] for r in stored(tmp_path, cfg.name).values()} == {"json_object"}


@pytest.mark.parametrize("provider", [Provider.openai, Provider.gemini])
def test_a_request_refused_in_every_shape_stops_the_run_with_the_servers_complaint(tmp_path, keys, provider):
    pairs = [(i, QUESTION, f"Answer {i} [[fault:always_400]]") for i in range(20)]
    with LoopbackLLMServer() as server:
        cfg = judge_config(server, provider)
        with pytest.raises(JudgingStopped, match=r"refuses the request: HTTP 400: .*injected always_400.*"
                                                 r"llm.structured_output=json_object or llm.structured_output=none"):
            run_judge(cfg, pairs, tmp_path)
        assert server.counts["http_400"] < 20  # stopped on the first calls, not one failure per item
    assert stored(tmp_path, cfg.name) == {}

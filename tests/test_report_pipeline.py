"""evaluate's pipeline end to end against the loopback server with both real clients: answer files in the
inference layout -> two judges -> results.csv, table3.md/.tex, agreement, significance, failures, PNGs."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from loopback import LoopbackLLMServer

from mc16k.config import register_configs
from mc16k.inference.benchmark import read_questions
from mc16k.inference.store import add_answers, answer_path
from mc16k.paths import resource_path
from mc16k.tasks.evaluate import run_evaluation

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
MODELS = {"tiny": ("base", "tiny"), "tiny-interview": ("finetuned", "tiny"), "samantha": ("baseline", "llama")}


def write_answers(answers_dir: Path, rounds: int = 3) -> int:
    """Answer files as infer.py writes them, for every sample question, model and round."""
    questions = read_questions(resource_path("benchmark/sample_questions.jsonl"))
    written = 0
    for model_id, (kind, base) in MODELS.items():
        for k in range(1, rounds + 1):
            rows = [
                {
                    "question_id": q.question_id,
                    "answer_id": f"{model_id}-{k}-{q.question_id}",
                    "model_id": model_id,
                    "choices": [{"index": 0, "turns": [f"{model_id} round {k}: " + "I hear you. " * (q.question_id % 5 + k)]}],
                    "tstamp": 0.0,
                    "kind": kind,
                    "base_model": base,
                    "data_split": "interview" if kind == "finetuned" else None,
                    "round": k,
                    "seed": k,
                }
                for q in questions
            ]
            written += add_answers(answer_path(answers_dir, "sample", model_id, k), rows)
    return written


def compose_evaluate(tmp_path: Path, server: LoopbackLLMServer, judge: str, *extra: str):
    base_url = server.gemini_base_url if judge == "gemini-pro" else server.openai_base_url
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(
            "evaluate",
            overrides=[
                f"judge={judge}",
                "benchmark=sample",
                "logger=none",
                f"paths.answers_dir={tmp_path}/answers",
                f"paths.judgments_dir={tmp_path}/judgments",
                f"paths.reports_dir={tmp_path}/reports",
                f"evaluate.judge.llm.base_url={base_url}",
                "evaluate.judge.runner.backoff_initial_s=0.01",
                "evaluate.judge.runner.concurrency=16",
                *extra,
            ],
        )


@pytest.fixture
def keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback-test")
    monkeypatch.setenv("GEMINI_API_KEY", "loopback-test")


def test_two_judges_then_table3_agreement_significance_and_plots(tmp_path, keys, capsys):
    n_answers = write_answers(tmp_path / "answers")
    with LoopbackLLMServer() as server:
        dry = run_evaluation(compose_evaluate(tmp_path, server, "gpt-4-turbo", "evaluate.dry_run=true"))
        assert sum(server.counts.values()) == 0 and dry["dry_run"]["calls"] == n_answers
        assert "dry run:" in capsys.readouterr().out
        run_evaluation(compose_evaluate(tmp_path, server, "gpt-4-turbo"))
        again = run_evaluation(compose_evaluate(tmp_path, server, "gpt-4-turbo", "evaluate.dry_run=true"))
        assert again["dry_run"]["calls"] == 0  # everything is in the store now
        result = run_evaluation(compose_evaluate(tmp_path, server, "gemini-pro"))
        assert server.counts["ok"] == 2 * n_answers
    reports = tmp_path / "reports" / "sample"
    for name in ("results.csv", "table3.md", "table3.tex", "agreement.md", "significance.csv", "failures.csv"):
        assert (reports / name).stat().st_size > 0, name
    assert sorted(p.name for p in reports.glob("*.png")) == [
        "scores_gemini-pro_gemini-2.5-pro.png", "scores_gpt-4-turbo_gpt-4-turbo.png"
    ]
    with (reports / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * len(MODELS) * 7  # judge x model x metric
    assert all(1 <= float(r["mean"]) <= 10 and float(r["ci_low"]) <= float(r["mean"]) <= float(r["ci_high"]) for r in rows)
    assert {int(r["n"]) for r in rows} == {12 * 3} and {r["n_scores"] for r in rows} == {"14"}
    table = (reports / "table3.md").read_text()
    assert "gpt-4-turbo (gpt-4-turbo): Empathy & Validation" in table
    assert "gemini-pro (gemini-2.5-pro): Holistic Approach" in table
    assert "Judges: gemini-pro (gemini-2.5-pro); gpt-4-turbo (gpt-4-turbo)." in table
    with (reports / "significance.csv").open() as handle:
        tests = list(csv.DictReader(handle))
    assert {(t["model_id"], t["base_model_id"], t["rounds"]) for t in tests} == {("tiny-interview", "tiny", "3 vs 3")}
    assert len(tests) == 2 * 7 and all(0.0 <= float(t["p"]) <= 1.0 for t in tests)
    agreement = (reports / "agreement.md").read_text()
    assert "gemini-pro" in agreement and "Length bias" in agreement
    assert list(result["average"]["n_scores"]) == [14, 14, 14]


def test_report_only_needs_no_judge_and_bad_answer_rows_name_file_and_field(tmp_path, keys):
    bad = answer_path(tmp_path / "answers", "sample", "broken", 1)
    bad.parent.mkdir(parents=True)
    bad.write_text('{"question_id": 1, "model_id": "broken", "choices": []}\n')
    with LoopbackLLMServer() as server:
        with pytest.raises(ValueError, match=r"broken/round-1.jsonl.*'choices'"):
            run_evaluation(compose_evaluate(tmp_path, server, "gpt-4-turbo"))
        bad.unlink()
        write_answers(tmp_path / "answers", rounds=1)
        with pytest.raises(ValueError, match="no judgments"):
            run_evaluation(compose_evaluate(tmp_path, server, "gpt-4-turbo", "evaluate.judge_answers=false"))
        assert sum(server.counts.values()) == 0


def test_two_judge_models_under_one_judge_name_never_share_a_row(tmp_path, keys):
    # before: re-judging some answers with another llm.model under the same judge name silently replaced
    # those answers' scores in the report (a mean moved, n stayed the same)
    write_answers(tmp_path / "answers")
    with LoopbackLLMServer(scores_by_model=True) as server:
        run_evaluation(compose_evaluate(tmp_path, server, "gpt-4-turbo"))
        first = (tmp_path / "reports" / "sample" / "results.csv").read_text()
        run_evaluation(compose_evaluate(tmp_path, server, "gpt-4-turbo", "evaluate.models=[tiny]",
                                        "evaluate.judge.llm.model=gpt-4o"))
        calls = server.counts["requests"]
        run_evaluation(compose_evaluate(tmp_path, server, "gpt-4-turbo", "evaluate.judge_answers=false"))  # rebuild
        assert server.counts["requests"] == calls
    reports = tmp_path / "reports" / "sample"
    with (reports / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    turbo = [r for r in rows if r["judge"] == "gpt-4-turbo (gpt-4-turbo)"]
    other = [r for r in rows if r["judge"] == "gpt-4-turbo (gpt-4o)"]
    assert len(turbo) == len(MODELS) * 7 and len(other) == 7 and len(rows) == len(turbo) + len(other)
    assert {r["model_id"] for r in other} == {"tiny"}
    with io.StringIO(first) as handle:
        before = {(r["model_id"], r["metric"]): (r["mean"], r["n"]) for r in csv.DictReader(handle)}
    assert {(r["model_id"], r["metric"]): (r["mean"], r["n"]) for r in turbo} == before  # untouched
    assert "gpt-4-turbo (gpt-4o): Active Listening" in (reports / "table3.md").read_text()
    assert sorted(p.name for p in reports.glob("*.png")) == [
        "scores_gpt-4-turbo_gpt-4-turbo.png", "scores_gpt-4-turbo_gpt-4o.png"
    ]

"""infer end to end on the tiny random model: files in the judging layout, rounds, resume, truncation."""

from __future__ import annotations

import json

import pytest
from hydra.errors import ConfigCompositionException
from infer_helpers import REAL_QUESTIONS, compose_infer, one_torch_thread, tiny_overrides  # noqa: F401 (autouse)

from mc16k.inference.store import read_answers
from mc16k.tasks.infer import run_inference

FASTCHAT_FIELDS = {"question_id", "answer_id", "model_id", "choices", "tstamp"}
OUR_FIELDS = {
    "kind", "base_model", "data_split", "round", "seed", "prompt_hash", "truncated",
    "prompt_tokens", "completion_tokens", "generation_s",
}  # fmt: skip


def test_sample_benchmark_two_rounds_then_a_rerun_skips_everything(tiny_model_dir, tmp_path):
    overrides = tiny_overrides(tiny_model_dir, tmp_path) + [
        "benchmark=sample",
        "benchmark.n=6",
        "infer.rounds=2",
        "infer.generation.max_new_tokens=4",
        "infer.engine.batch_size=5",
    ]
    cfg = compose_infer(overrides)
    (report,) = run_inference(cfg)
    assert (report.model_id, report.kind, report.answered, report.already_done) == ("tiny", "base", 12, 0)
    answers_dir = tmp_path / "answers" / "sample" / "tiny"
    assert sorted(p.name for p in answers_dir.iterdir()) == ["round-1.jsonl", "round-2.jsonl"]
    rounds = {k: read_answers(answers_dir / f"round-{k}.jsonl") for k in (1, 2)}
    for k, rows in rounds.items():
        assert len(rows) == 6
        for row in rows.values():
            assert FASTCHAT_FIELDS | OUR_FIELDS <= row.keys()
            assert row["round"] == k and row["seed"] == 41 + k and row["kind"] == "base"
            assert row["choices"][0]["index"] == 0 and isinstance(row["choices"][0]["turns"][0], str)
            assert row["generation"]["temperature"] == 0.7 and row["generation"]["top_p"] == 1.0
    assert [r["choices"] for r in rounds[1].values()] != [r["choices"] for r in rounds[2].values()]

    (again,) = run_inference(compose_infer(overrides))
    assert (again.answered, again.already_done) == (0, 12)
    assert read_answers(answers_dir / "round-1.jsonl") == rounds[1]


def test_resumed_run_gives_the_same_answers_as_an_uninterrupted_one(tiny_model_dir, tmp_path):
    common = ["benchmark=sample", "infer.generation.max_new_tokens=6", "infer.engine.batch_size=3"]
    straight = tiny_overrides(tiny_model_dir, tmp_path / "straight") + common
    resumed = tiny_overrides(tiny_model_dir, tmp_path / "resumed") + common
    run_inference(compose_infer(straight))
    run_inference(compose_infer(resumed + ["benchmark.n=4"]))  # "interrupted" after 4 questions
    (report,) = run_inference(compose_infer(resumed))
    assert (report.answered, report.already_done) == (8, 4)

    def texts(work):
        rows = read_answers(work / "answers" / "sample" / "tiny" / "round-1.jsonl")
        return {qid: row["choices"][0]["turns"][0] for qid, row in rows.items()}

    assert texts(tmp_path / "resumed") == texts(tmp_path / "straight")


def test_longest_real_question_is_cut_flagged_and_counted(tiny_model_dir, tmp_path):
    rows = [json.loads(line) for line in REAL_QUESTIONS.read_text().splitlines()]
    longest = max(rows, key=lambda r: len(r["turns"][0].split()))
    assert len(longest["turns"][0].split()) == 4239
    shortest = min(rows, key=lambda r: len(r["turns"][0].split()))
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps(r) + "\n" for r in (longest, shortest)))
    cfg = compose_infer(
        tiny_overrides(tiny_model_dir, tmp_path)
        + [f"benchmark.path={questions}", "model.max_context=512", "infer.generation.max_new_tokens=4"]
    )
    (report,) = run_inference(cfg)
    assert report.truncated == 1
    answers = read_answers(tmp_path / "answers" / "evalq200" / "tiny" / "round-1.jsonl")
    cut, whole = answers[longest["question_id"]], answers[shortest["question_id"]]
    assert cut["truncated"] and cut["dropped_prompt_tokens"] > 0 and cut["prompt_tokens"] <= 512 - 4
    assert not whole["truncated"] and whole["dropped_prompt_tokens"] == 0


def test_changed_generation_settings_refuse_to_mix_into_existing_answers(tiny_model_dir, tmp_path):
    overrides = tiny_overrides(tiny_model_dir, tmp_path) + ["benchmark=sample", "benchmark.n=2"]
    run_inference(compose_infer(overrides + ["infer.generation.max_new_tokens=2"]))
    with pytest.raises(ValueError, match=r"round-1\.jsonl: 2 answer\(s\).*another"):
        run_inference(compose_infer(overrides + ["infer.generation.max_new_tokens=3"]))


def test_paper_defaults_and_engine_choice_compose(tmp_path):
    cfg = compose_infer(["engine=vllm", "benchmark.n=50", "infer.rounds=5"])
    assert cfg.infer.engine.name.value == "vllm" and cfg.benchmark.n == 50 and cfg.benchmark.seed == 42
    gen = cfg.infer.generation
    assert (gen.do_sample, gen.temperature, gen.top_p, gen.max_new_tokens) == (True, 0.7, 1.0, 512)
    assert compose_infer([]).infer.engine.name.value == "hf"


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("infer.generation.temprature=0.5", "temprature"),
        ("infer.rounds=many", "infer.rounds"),
        ("benchmark.n=x", "benchmark.n"),
    ],
)
def test_bad_infer_keys_fail_at_compose_naming_the_key(override, key):
    with pytest.raises(ConfigCompositionException) as info:
        compose_infer([override])
    chain, err = [], info.value
    while err is not None:
        chain.append(str(err))
        err = err.__cause__
    assert key in "\n".join(chain)


def test_a_prompt_budget_that_leaves_no_room_for_the_answer_is_refused(tiny_model_dir, tmp_path):
    overrides = tiny_overrides(tiny_model_dir, tmp_path) + ["benchmark=sample", "model.max_context=600"]
    with pytest.raises(ValueError, match="max_context=600 with infer.generation.max_new_tokens=512"):
        run_inference(compose_infer(overrides + ["infer.max_prompt_tokens=100"]))
    with pytest.raises(ValueError, match="budget of 88 tokens does not fit"):
        run_inference(compose_infer(overrides + ["infer.max_prompt_tokens=88", "model.max_context=100"]))

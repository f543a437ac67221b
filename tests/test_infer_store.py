"""Answer files: keyed, atomic, resumable, safe with concurrent writers, tolerant of a torn last line."""

from __future__ import annotations

import json
import multiprocessing

import pytest
from infer_helpers import REAL_QUESTIONS

from mc16k.inference.benchmark import read_questions, select_subset
from mc16k.inference.store import add_answers, answer_path, read_answers


def row(qid, text="answer"):
    return {"question_id": qid, "choices": [{"index": 0, "turns": [text]}]}


def test_answer_path_is_the_judging_layout(tmp_path):
    assert answer_path(tmp_path, "evalq200", "mistral-7b-ft-interview", 3) == (
        tmp_path / "evalq200" / "mistral-7b-ft-interview" / "round-3.jsonl"
    )


def test_add_skips_existing_question_ids_and_leaves_only_complete_lines(tmp_path):
    path = tmp_path / "m" / "round-1.jsonl"
    assert add_answers(path, [row(2), row(1)]) == 2
    assert add_answers(path, [row(1, "second try"), row(3)]) == 1
    rows = read_answers(path)
    assert sorted(rows) == [1, 2, 3] and rows[1]["choices"][0]["turns"] == ["answer"]
    text = path.read_text()
    assert text.endswith("\n") and [json.loads(line)["question_id"] for line in text.splitlines()] == [
        1,
        2,
        3,
    ]
    assert sorted(p.name for p in path.parent.iterdir()) == ["round-1.jsonl"]  # no temp or lock files left


def test_torn_last_line_is_dropped_and_repaired_on_next_write(tmp_path):
    path = tmp_path / "round-1.jsonl"
    add_answers(path, [row(1), row(2)])
    with path.open("a") as handle:
        handle.write('{"question_id": 3, "choi')  # a writer killed mid-line
    assert sorted(read_answers(path)) == [1, 2]
    add_answers(path, [row(3)])
    assert sorted(read_answers(path)) == [1, 2, 3]
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_bad_line_in_the_middle_names_file_and_line(tmp_path):
    path = tmp_path / "round-1.jsonl"
    path.write_text('{"question_id": 1}\nnot json\n{"question_id": 2}\n')
    with pytest.raises(ValueError, match=r"round-1\.jsonl:2"):
        read_answers(path)
    path.write_text('{"question_id": 1}\n{"question_id": 1}\n')
    with pytest.raises(ValueError, match=r"round-1\.jsonl:2: duplicate question_id 1"):
        read_answers(path)


def _write_range(path: str, start: int, stop: int) -> None:
    for qid in range(start, stop):
        add_answers(path, [row(qid)])


def test_concurrent_writers_never_lose_or_duplicate(tmp_path):
    path = str(tmp_path / "round-1.jsonl")
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_write_range, args=(path, start, start + 30)) for start in (0, 15)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    lines = [json.loads(line)["question_id"] for line in open(path).read().splitlines()]
    assert lines == list(range(45))


def test_real_benchmark_loads_and_the_paper_subset_is_seeded():
    questions = read_questions(REAL_QUESTIONS)
    assert len(questions) == 200 and len({q.question_id for q in questions}) == 200
    subset = select_subset(questions, 50, 42)
    assert len(subset) == 50 and subset == select_subset(questions, 50, 42)
    assert subset != select_subset(questions, 50, 7)
    assert [q.question_id for q in subset] == sorted(q.question_id for q in subset)  # file order kept
    assert select_subset(questions, None, 42) == questions


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"question_id": 1, "turns": []}', "q.jsonl:2: field 'turns'"),
        ('{"category": "x", "turns": ["hi"]}', "q.jsonl:2: field 'question_id'"),
        ('{"question_id": 0, "turns": ["again"]}', "q.jsonl:2: duplicate question_id 0"),
        ("[1, 2]", "q.jsonl:2: expected a JSON object"),
        ('{"question_id": 1, "turns": ["hi"', "q.jsonl:2: not valid JSON"),
    ],
)
def test_bad_question_rows_name_file_line_and_field(tmp_path, line, message):
    path = tmp_path / "q.jsonl"
    path.write_text('{"question_id": 0, "turns": ["fine"]}\n' + line + "\n")
    with pytest.raises(ValueError, match=message):
        read_questions(path)

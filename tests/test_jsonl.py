"""One jsonl reader, one torn-line policy: every stage's jsonl files (answers, questions, data rows, the
judgment store) drop a torn last line with a warning and refuse a bad line elsewhere, naming file and line."""

from __future__ import annotations

import json
import logging

import pytest

from mc16k.data.loading import DataValidationError, load_source
from mc16k.inference.benchmark import read_questions
from mc16k.inference.store import read_answers
from mc16k.llm.store import JsonlStore, StoreCorruptError

QUESTION = {"question_id": 1, "category": "c", "turns": ["I feel low."]}
ANSWER = {"question_id": 1, "choices": [{"index": 0, "turns": ["That sounds hard."]}]}
DATA_ROW = {"instruction": "Be kind.", "input": "I feel low and tired all day.", "output": "That sounds hard."}
STORE_RECORD = {"key": "k1", "v": 1}

READERS = {
    "questions": (QUESTION, lambda p: [q.question_id for q in read_questions(p)], [1], ValueError),
    "answers": (ANSWER, lambda p: sorted(read_answers(p)), [1], ValueError),
    "data": (DATA_ROW, lambda p: [r.row for r in load_source(p, "interview").rows], [1], DataValidationError),
    "store": (STORE_RECORD, lambda p: sorted(JsonlStore(p).records), ["k1"], StoreCorruptError),
}


@pytest.mark.parametrize("kind", sorted(READERS))
def test_a_torn_last_line_is_dropped_with_a_warning(kind, tmp_path, caplog):
    good, read, expected, _ = READERS[kind]
    path = tmp_path / f"{kind}.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(good)[:15])  # a writer killed mid-line
    with caplog.at_level(logging.WARNING):
        assert read(path) == expected
    assert f"{kind}.jsonl:2: dropping a torn last line" in caplog.text


@pytest.mark.parametrize("kind", sorted(READERS))
def test_a_bad_line_elsewhere_names_file_and_line(kind, tmp_path):
    good, read, _, error = READERS[kind]
    path = tmp_path / f"{kind}.jsonl"
    path.write_text(json.dumps(good) + "\n{not json\n")  # ends with a newline: not torn, broken
    with pytest.raises(error, match=rf"{kind}\.jsonl(:|: row )2"):
        read(path)


def test_the_store_keeps_a_complete_last_record_missing_its_newline(tmp_path):
    path = tmp_path / "judgments.jsonl"
    path.write_text(json.dumps({"key": "a", "v": 1}) + "\n" + json.dumps({"key": "b", "v": 2}))
    with JsonlStore(path) as store:
        assert {k: r["v"] for k, r in store.records.items()} == {"a": 1, "b": 2}
        store.append({"key": "c", "v": 3})
    assert [json.loads(line)["key"] for line in path.read_text().splitlines()] == ["a", "b", "c"]

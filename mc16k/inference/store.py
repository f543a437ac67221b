"""Answer files: one jsonl per (model, round), keyed by question id, rewritten atomically per batch.

Every write re-reads the file under an exclusive lock on its dir, adds only question ids not yet present, writes a
temp file, fsyncs it and ``os.replace``s it over the old one. A SIGKILL at any moment therefore leaves
either the old or the new complete file, two processes answering the same model cannot duplicate or
lose rows, and a rerun skips what is on disk. A torn last line (a file written by another tool, or a
crash on a filesystem without atomic rename) is dropped with a warning (``mc16k.jsonl``'s policy) and the
question re-answered.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mc16k.atomic_io import write_text_atomically
from mc16k.jsonl import JsonlLineError, read_jsonl

log = logging.getLogger(__name__)


def answer_path(answers_dir: str | Path, benchmark: str, model_id: str, round_index: int) -> Path:
    """``<answers_dir>/<benchmark>/<model_id>/round-<k>.jsonl`` (the layout judging reads)."""
    return Path(answers_dir) / benchmark / model_id / f"round-{round_index}.jsonl"


def read_answers(path: str | Path) -> dict[int | str, dict]:
    """Rows of an answer file by question id (torn last line: see ``mc16k.jsonl``; the question is answered
    again); a line that is not an answer row, or a duplicate question id, is an error naming file and line."""
    path = Path(path)
    rows: dict[int | str, dict] = {}
    for line_no, row in read_jsonl(path).rows:
        if not isinstance(row, dict) or not isinstance(row.get("question_id"), (int, str)):
            raise JsonlLineError(path, line_no, "not an answer row (no int or str question_id)")
        qid = row["question_id"]
        if qid in rows:
            raise JsonlLineError(path, line_no, f"duplicate question_id {qid!r}")
        rows[qid] = row
    return rows


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Exclusive advisory lock on the answer dir, so concurrent writers of its files take turns."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def add_answers(path: str | Path, new_rows: list[dict]) -> int:
    """Add rows whose question id is not in the file yet; return how many were added."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path.parent):
        for leftover in path.parent.glob(path.name + ".*.tmp"):  # a killed writer's; live ones hold the lock
            leftover.unlink()
        rows = read_answers(path)
        added = 0
        for row in new_rows:
            if row["question_id"] not in rows:
                rows[row["question_id"]] = row
                added += 1
        if added:
            ordered = sorted(rows.values(), key=lambda r: (isinstance(r["question_id"], str), r["question_id"]))
            write_text_atomically(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in ordered))
    return added

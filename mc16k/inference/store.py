"""Answer files: one jsonl per (model, round), keyed by question id, rewritten atomically per batch.

Every write re-reads the file under an exclusive lock on its dir, adds only question ids not yet present, writes a
temp file, fsyncs it and ``os.replace``s it over the old one. A SIGKILL at any moment therefore leaves
either the old or the new complete file, two processes answering the same model cannot duplicate or
lose rows, and a rerun skips what is on disk. A torn last line (a file written by another tool, or a
crash on a filesystem without atomic rename) is dropped with a warning and the question re-answered.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


def answer_path(answers_dir: str | Path, benchmark: str, model_id: str, round_index: int) -> Path:
    """``<answers_dir>/<benchmark>/<model_id>/round-<k>.jsonl`` (the layout judging reads)."""
    return Path(answers_dir) / benchmark / model_id / f"round-{round_index}.jsonl"


def read_answers(path: str | Path) -> dict[int | str, dict]:
    """Rows of an answer file by question id; a torn last line is dropped, any other bad line is an error."""
    path = Path(path)
    if not path.exists():
        return {}
    lines = path.read_text(encoding="utf-8").split("\n")
    rows: dict[int | str, dict] = {}
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            qid = row["question_id"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            if index == last:
                log.warning(
                    "%s:%d: dropping a torn last line (%s); that question is answered again",
                    path,
                    index + 1,
                    err,
                )
                continue
            raise ValueError(f"{path}:{index + 1}: not an answer row ({err})") from err
        if qid in rows:
            raise ValueError(f"{path}:{index + 1}: duplicate question_id {qid!r}")
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


def _write_atomically(path: Path, rows: Iterable[dict]) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        os.fchmod(fd, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


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
            _write_atomically(
                path,
                sorted(rows.values(), key=lambda r: (isinstance(r["question_id"], str), r["question_id"])),
            )
    return added

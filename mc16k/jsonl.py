"""The one jsonl reader, with one torn-line policy, for every jsonl file the stages exchange.

Policy: blank lines are skipped; a LAST line that has no newline and does not parse is *torn* (a writer
died mid-line): it is dropped with a warning naming the file and line, and ``torn_at`` says where it
starts so an appending writer can cut it off. Any other line that does not parse is an error naming the
file and line. A last line that parses but lacks its newline is kept (``ends_with_newline`` is false).

Bytes are decoded as UTF-8 with ``surrogateescape``: undecodable bytes survive as lone surrogates, so a
caller that checks cells (the data layer) can report them by row and column.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mc16k.errors import BadInputError

log = logging.getLogger(__name__)


class JsonlLineError(BadInputError):
    """A line that is not valid JSON (or, raised by a caller, not the record it should be)."""

    def __init__(self, path: str | Path, line: int, problem: str):
        super().__init__(f"{path}:{line}: {problem}")
        self.path, self.line, self.problem = Path(path), line, problem


@dataclass
class JsonlContents:
    """What a jsonl file holds: ``rows`` are (1-based line number, parsed value)."""

    rows: list[tuple[int, Any]] = field(default_factory=list)
    torn_at: int | None = None  # byte offset where a dropped torn last line starts
    ends_with_newline: bool = True


def read_jsonl(path: str | Path) -> JsonlContents:
    """Parse ``path`` by the policy above; a missing file holds no rows."""
    path = Path(path)
    contents = JsonlContents()
    if not path.exists():
        return contents
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines[-1]  # b"" when the file ends with a newline
    offset = 0
    for index, raw in enumerate(lines):
        line_no = index + 1
        start, offset = offset, offset + len(raw) + 1
        text = raw.decode("utf-8", errors="surrogateescape")
        if line_no == 1:
            text = text.removeprefix("\ufeff")
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            if index == len(lines) - 1:  # no newline after it: a torn write
                log.warning("%s:%d: dropping a torn last line (%d bytes; %s)", path, line_no, len(raw), err.msg)
                contents.torn_at = start
                break
            raise JsonlLineError(path, line_no, f"not valid JSON ({err.msg})") from err
        contents.rows.append((line_no, value))
    contents.ends_with_newline = contents.torn_at is not None or not tail.strip()
    return contents

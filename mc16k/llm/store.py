"""A keyed JSONL store that survives SIGKILL: one complete line per record, appended and fsynced.

Each record carries a ``key``; the last record of a key wins, so a re-run can append a fresh result for a
key (e.g. re-trying failures) without rewriting the file. A torn last line (the process died mid-write) is
cut off on open (``mc16k.jsonl``'s policy); any other unreadable line is an error naming the file and line.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mc16k.errors import BadInputError
from mc16k.jsonl import JsonlContents, JsonlLineError, read_jsonl


class StoreCorruptError(BadInputError):
    pass


def keyed_records(path: Path, contents: JsonlContents) -> dict[str, dict[str, Any]]:
    """The latest record per key of a parsed store file; a record without a key is corruption."""
    records: dict[str, dict[str, Any]] = {}
    for line_no, record in contents.rows:
        if not isinstance(record, dict) or "key" not in record:
            raise StoreCorruptError(f"{path}:{line_no}: unreadable record (no 'key')")
        records[record["key"]] = record
    return records


def read_records(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The latest record per key, read only (a torn last line is skipped, not cut off; no file is created)."""
    path = Path(path)
    try:
        return keyed_records(path, read_jsonl(path))
    except JsonlLineError as err:
        raise StoreCorruptError(f"{err.path}:{err.line}: unreadable record ({err.problem})") from err


class JsonlStore:
    """Append-only keyed records in one file; ``records`` holds the latest record per key."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records: dict[str, dict[str, Any]] = {}
        self._load()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._writer: ThreadPoolExecutor | None = None

    def _load(self) -> None:
        try:
            contents = read_jsonl(self.path)
        except JsonlLineError as err:
            raise StoreCorruptError(f"{err.path}:{err.line}: unreadable record ({err.problem})") from err
        if contents.torn_at is not None:  # torn last line from a killed writer: cut it off
            with open(self.path, "r+b") as fh:
                fh.truncate(contents.torn_at)
                os.fsync(fh.fileno())
        elif not contents.ends_with_newline:  # a complete last record whose newline was never written
            with open(self.path, "ab") as fh:
                fh.write(b"\n")
                os.fsync(fh.fileno())
        self.records = keyed_records(self.path, contents)

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records.values())

    def append(self, record: dict[str, Any]) -> None:
        """Write one record durably (a single write of a complete line, then fsync) before returning."""
        if "key" not in record:
            raise ValueError("store records need a 'key'")
        line = (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode()
        written = os.write(self._fd, line)
        if written != len(line):
            raise OSError(f"short write to {self.path}: {written} of {len(line)} bytes")
        os.fsync(self._fd)
        self.records[record["key"]] = record

    async def append_async(self, record: dict[str, Any]) -> None:
        """:meth:`append` on the store's one writer thread: the event loop keeps serving other calls while
        fsync waits for the disk, and records still reach the file one by one, in order."""
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jsonl-store")
        await asyncio.get_running_loop().run_in_executor(self._writer, self.append, record)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> JsonlStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


"""A keyed JSONL store that survives SIGKILL: one complete line per record, appended and fsynced.

Each record carries a ``key``; the last record of a key wins, so a re-run can append a fresh result for a
key (e.g. re-trying failures) without rewriting the file. A torn last line (the process died mid-write) is
cut off on open; any other unreadable line is an error naming the file and line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class StoreCorruptError(ValueError):
    pass


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
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        complete_end = data.rfind(b"\n") + 1
        if complete_end < len(data):  # torn last line from a killed writer: drop it, and say so
            log.warning(
                "%s: dropped a torn last line (%d bytes, the process writing it was killed mid-write)",
                self.path, len(data) - complete_end,
            )
            with open(self.path, "r+b") as fh:
                fh.truncate(complete_end)
                os.fsync(fh.fileno())
        for line_no, line in enumerate(data[:complete_end].splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                key = record["key"]
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise StoreCorruptError(f"{self.path}:{line_no}: unreadable record ({err})") from err
            self.records[key] = record

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


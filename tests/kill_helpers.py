"""Kill a run at a known point: once the loopback server holds and every reply it sent is on disk."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any


def stored_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def kill_once_stored(proc: subprocess.Popen, server: Any, store_file: Path, at_least: int, timeout_s: float) -> int:
    """SIGKILL ``proc``'s process group once ``at_least`` replies were sent and the store holds each of them
    (the same count twice, 0.5 s apart); returns that count."""
    deadline = time.monotonic() + timeout_s
    settled = None
    while True:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, (dict(server.counts), stored_lines(store_file))
        ok = server.counts["ok"]
        if ok >= at_least and stored_lines(store_file) == ok:
            if settled == ok:
                break
            settled = ok
            time.sleep(0.5)
            continue
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return settled

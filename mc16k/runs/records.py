"""Files a training job leaves in its dir: provenance record, metrics and the done marker (all atomic)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from mc16k.atomic_io import write_text_atomically
from mc16k.errors import UserError
from mc16k.paths import project_root
from mc16k.runs.layout import DONE_FILE, PROVENANCE_FILE, RUN_FILE

PROVENANCE_PACKAGES = (
    "mc16k", "torch", "transformers", "peft", "bitsandbytes", "lightning", "accelerate",
    "hydra-core", "omegaconf", "datasets", "tokenizers", "wandb",
)  # fmt: skip


class RunDirConflict(UserError, RuntimeError):
    """A run dir already holds another configuration's run."""


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_json(path: Path, payload: Any) -> None:
    """Write JSON atomically: a killed job never leaves half a record."""
    write_text_atomically(path, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def finished_run(run_dir: Path, run_id: str) -> dict[str, Any] | None:
    """The done marker when ``run_dir`` holds a finished run of this id; None when unfinished or empty.

    Raises ``RunDirConflict`` when the dir belongs to a different configuration, rather than mixing
    checkpoints of two runs.
    """
    for name in (DONE_FILE, RUN_FILE):
        record = read_json(run_dir / name)
        if record is not None and record.get("run_id") != run_id:
            raise RunDirConflict(
                f"{run_dir / name} belongs to run {record.get('run_id')}, but this config is run {run_id}: "
                "the config changed since that run. Use another train.group (or output dir) or remove the dir."
            )
    return read_json(run_dir / DONE_FILE)


def claim_run_dir(run_dir: Path, run_id: str, run_name: str) -> None:
    """Record which run owns ``run_dir`` (before any checkpoint is written)."""
    if read_json(run_dir / RUN_FILE) is None:
        write_json(run_dir / RUN_FILE, {"run_id": run_id, "name": run_name, "created": utc_now()})


def mark_done(run_dir: Path, run_id: str, metrics: dict[str, Any]) -> None:
    write_json(run_dir / DONE_FILE, {"run_id": run_id, "finished": utc_now(), **metrics})


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git_state(repo: str | Path) -> dict[str, Any]:
    """Commit and dirty flag of the checkout (None values outside a git checkout)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"), "dirty": None if status is None else bool(status)}


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in PROVENANCE_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def write_provenance(
    run_dir: Path, run_id: str, resolved_config: dict[str, Any], data_files: dict[str, Path], data_counts: Any
) -> None:
    """What produced this run: code version, packages, resolved config, data file hashes and counts."""
    write_json(
        run_dir / PROVENANCE_FILE,
        {
            "run_id": run_id,
            "written": utc_now(),
            "git": git_state(project_root()),
            "packages": package_versions(),
            "config": resolved_config,
            "data_files": {
                source: {"path": str(path), "sha256": file_sha256(path), "bytes": path.stat().st_size}
                for source, path in data_files.items()
            },
            "data_counts": data_counts,
        },
    )

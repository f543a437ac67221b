"""`pip install .` (a real, non-editable install) and `python train.py experiment=smoke` from a fresh project
dir holding the `.project-root` marker: the run's outputs land in the project, nothing in site-packages."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IGNORED = shutil.ignore_patterns(
    ".git", ".venv", "outputs", "multirun", ".cache", "wandb", "build", "dist", "*.egg-info", "__pycache__",
    ".pytest_cache", ".ruff_cache", ".mypy_cache", ".import_linter_cache",
)  # fmt: skip


def snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns) for p in directory.rglob("*")}


@pytest.mark.slow
def test_wheel_install_runs_the_smoke_job_from_a_fresh_project_and_writes_nothing_into_site_packages(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=IGNORED)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    site_packages = Path(
        subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                       check=True, capture_output=True, text=True).stdout.strip()
    )  # fmt: skip
    # The new venv sees this environment's dependencies (torch & co.) as a plain path entry, so its own
    # site-packages holds only what `pip install .` (this environment's pip and setuptools) puts there; this
    # environment's editable hook is not run.
    (site_packages / "_mc16k_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("PYTHONPATH", None)
    env.pop("MC16K_ROOT", None)
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-build-isolation",
         str(source)],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr

    project = tmp_path / "project"  # a user's project: entry point, configs and the marker, no package
    project.mkdir()
    shutil.copy(source / "train.py", project)
    shutil.copytree(source / "conf", project / "conf")
    (project / ".project-root").write_text("")
    where = subprocess.run([python, "-c", "import mc16k; print(mc16k.__file__)"], cwd=project, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert Path(where).is_relative_to(site_packages), where
    before = snapshot(site_packages)

    run = subprocess.run([python, "train.py", "experiment=smoke"], cwd=project, env=env,
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert snapshot(site_packages) == before
    done = list((project / "outputs" / "runs" / "smoke").glob("*/done.json"))
    assert len(done) == 1 and (done[0].parent / "adapter" / "mc16k_run.json").is_file()
    assert (project / ".cache" / "tiny-llama").is_dir()  # the tiny model is built under the project too

    elsewhere = tmp_path / "elsewhere"  # no marker here: MC16K_ROOT names the project instead
    elsewhere.mkdir()
    root = subprocess.run([python, "-c", "from mc16k.paths import project_root; print(project_root())"],
                          cwd=elsewhere, env={**env, "MC16K_ROOT": str(project)}, capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip
    assert root == str(project.resolve())

"""The house rules a linter cannot see: entry points import only their task, the project root never comes
from where the package is installed, and no module of the package serves HTTP (test servers live in tests/)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from mc16k import paths

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINTS = {"train.py": "mc16k.tasks.train", "infer.py": "mc16k.tasks.infer", "evaluate.py": "mc16k.tasks.evaluate"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("script", sorted(ENTRY_POINTS))
def test_entry_points_import_only_their_task(script):
    ours = {m for m in imported_modules(ROOT / script) if m.split(".")[0] == "mc16k"}
    assert ours == {ENTRY_POINTS[script]}


def test_no_module_under_mc16k_serves_http():
    servers = ("asyncio.start_server", "start_server(", "http.server", "socketserver", "aiohttp.web", "HTTPServer")
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "mc16k").rglob("*.py"))
        if any(marker in path.read_text(encoding="utf-8") for marker in servers)
    ]
    assert offenders == []


def test_project_root_is_the_env_var_then_the_nearest_marker_then_the_cwd(tmp_path, monkeypatch):
    project = tmp_path / "project"
    deep = project / "a" / "b"
    deep.mkdir(parents=True)
    (project / paths.ROOT_MARKER).write_text("")
    monkeypatch.delenv(paths.ROOT_ENV_VAR, raising=False)
    monkeypatch.chdir(deep)
    assert paths.project_root() == str(project.resolve())
    monkeypatch.setenv(paths.ROOT_ENV_VAR, str(tmp_path / "elsewhere"))
    assert paths.project_root() == str((tmp_path / "elsewhere").resolve())
    monkeypatch.delenv(paths.ROOT_ENV_VAR)
    (project / paths.ROOT_MARKER).unlink()
    if any((parent / paths.ROOT_MARKER).is_file() for parent in tmp_path.resolve().parents):
        pytest.skip("a .project-root above the temp dir")
    assert paths.project_root() == str(deep.resolve())
    assert paths.project_root() != str(Path(paths.__file__).resolve().parents[1])


def test_the_checkout_ships_its_marker():
    assert (ROOT / paths.ROOT_MARKER).is_file()

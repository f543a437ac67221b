"""What a new user meets first, run the way they run it: each entry point as a subprocess of a fresh project.

A user error (no hub access, no answers, no API key, a bad data file, a bad question file, a misspelled
key) ends with exit status 2 and at most three lines of output, no traceback; HYDRA_FULL_ERROR=1 brings the
traceback back.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
KEY_VARS = ("OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY")


def run_app(project: Path, script: str, *overrides: str, **env: str) -> subprocess.CompletedProcess:
    """``python <script> <overrides>`` from a fresh project dir, offline, no API keys unless given."""
    (project / ".project-root").touch()
    environ = {k: v for k, v in os.environ.items() if k not in KEY_VARS and k != "HYDRA_FULL_ERROR"}
    environ.update(HF_HUB_OFFLINE="1", WANDB_MODE="offline", MC16K_ROOT=str(project), PYTHONPATH=str(REPO))
    environ.update(env)
    return subprocess.run(
        [sys.executable, str(REPO / script), *overrides],
        cwd=project, env=environ, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def assert_brief_user_error(result: subprocess.CompletedProcess, *expected: str) -> str:
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 2, output[-3000:]
    assert "Traceback" not in output
    lines = output.splitlines()
    assert len(lines) <= 3, output
    assert lines[0].startswith("error: ")
    for text in expected:
        assert text in output
    return output


def test_bare_train_offline_names_the_model_and_suggests_the_demo(tmp_path):
    output = assert_brief_user_error(run_app(tmp_path, "train.py"), "mistralai/Mistral-7B-v0.1", "experiment=demo")
    assert "Hugging Face hub" in output and "access" in output


def test_evaluate_without_answers_says_which_benchmark_to_answer(tmp_path):
    result = run_app(tmp_path, "evaluate.py", OPENAI_API_KEY="sk-test-not-used")
    assert_brief_user_error(result, "no answer files", "benchmark=evalq200", "infer.py")


@pytest.mark.parametrize("dry_run", ["false", "true"])
def test_missing_api_key_stops_the_job_before_anything_else(tmp_path, dry_run):
    result = run_app(tmp_path, "evaluate.py", "judge=gpt-4-turbo", f"evaluate.dry_run={dry_run}")
    assert_brief_user_error(result, "no API key", "OPENAI_API_KEY")  # not "no answer files": the key comes first


def test_bad_data_file_names_the_file(tmp_path):
    data = tmp_path / "my-data"
    data.mkdir()
    (data / "Interview_Data_6K.csv").write_text("instruction,input\nbe kind,hello\n", encoding="utf-8")
    result = run_app(
        tmp_path, "train.py", "experiment=demo", "logger=none", f"data.root={data}", "data.sources=[interview]"
    )
    assert_brief_user_error(result, "Interview_Data_6K.csv", "output")


def test_bad_question_file_names_the_file_and_row(tmp_path):
    questions = tmp_path / "questions.jsonl"
    rows = [{"question_id": 1, "category": "x", "turns": ["How do I sleep?"]}, {"question_id": 2, "turns": []}]
    questions.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    result = run_app(tmp_path, "infer.py", "experiment=demo", "logger=none", f"benchmark.path={questions}")
    assert_brief_user_error(result, "questions.jsonl", "turns")


def test_a_key_added_with_plus_that_the_schema_lacks_is_refused(tmp_path):
    result = run_app(tmp_path, "train.py", "experiment=demo", "logger=none", "+lora.rnk=8")
    assert_brief_user_error(result, "lora.rnk", "trainer")
    assert not (tmp_path / "outputs" / "runs").exists() or not any((tmp_path / "outputs" / "runs").rglob("*.json"))


def test_full_error_env_var_shows_the_traceback(tmp_path):
    result = run_app(tmp_path, "train.py", "experiment=demo", "logger=none", "+lora.rnk=8", HYDRA_FULL_ERROR="1")
    assert result.returncode != 0 and "Traceback" in result.stderr and "lora.rnk" in result.stderr


HELP_GROUPS = {
    "train.py": ["model", "data", "prompt", "lora", "quant", "optim", "trainer", "logger", "experiment"],
    "infer.py": ["model", "baseline", "benchmark", "engine", "prompt", "quant", "logger", "experiment"],
    "evaluate.py": ["judge", "benchmark", "logger", "experiment"],
}
FOREIGN_KEYS = {  # keys of the other apps that one app's --help must not show
    "train.py": ["infer.", "evaluate.", "judge:", "benchmark:"],
    "infer.py": ["train.", "evaluate.", "lora.", "judge:", "trainer:"],
    "evaluate.py": ["train.", "infer.", "lora.", "trainer:", "model:"],
}


@pytest.mark.parametrize("script", sorted(HELP_GROUPS))
def test_help_names_every_option_of_the_apps_groups_and_no_key_of_another_app(tmp_path, script):
    result = run_app(tmp_path, script, "--help")
    assert result.returncode == 0, result.stderr[-2000:]
    text = result.stdout
    assert text.startswith(f"{script}: ") and "== Examples ==" in text and "== Outputs ==" in text
    for group in HELP_GROUPS[script]:
        line = next(line for line in text.splitlines() if line.strip().startswith(f"{group}:"))
        for option in sorted(p.stem for p in (REPO / "conf" / group).glob("*.yaml")):
            assert option in line, (group, option)
    for key in FOREIGN_KEYS[script]:  # "infer." is a key prefix, "infer.py" the other app's name
        assert not re.search(rf"\b{re.escape(key)}(?!py\b)", text), key
    assert str(tmp_path) in text  # outputs named as this project's real paths
    assert "Powered by Hydra" not in text and len(text.splitlines()) < 60

"""The pipelines' output is training data as it stands: generate (loopback server) and paraphrase (a local
server), then `python train.py experiment=smoke data=<split> data.root=<out_dir>` trains on each file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from loopback import LoopbackLLMServer
from synth_helpers import SynthResponder
from test_synth_generate import backend_overrides, compose_generate
from test_synth_paraphrase import EchoingParaphraser, compose_paraphrase, write_transcripts

from mc16k.synth.generate import run_generate
from mc16k.synth.paraphrase import run_paraphrase

ROOT = Path(__file__).resolve().parents[1]


def train(tmp_path: Path, tiny_model_dir: Path, split: str, data_root: Path) -> subprocess.CompletedProcess:
    args = ["experiment=smoke", "logger=csv", f"paths.root_dir={tmp_path}", f"model.name_or_path={tiny_model_dir}",
            f"data={split}", f"data.root={data_root}", "train.validate_base=false"]
    return subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, capture_output=True, timeout=600)


@pytest.mark.slow
def test_train_smoke_runs_on_generated_and_paraphrased_files(tmp_path, tiny_model_dir):
    synthetic = tmp_path / "synthetic"
    with LoopbackLLMServer(responder=SynthResponder()) as server:
        cfg, system = compose_generate(backend_overrides(server, synthetic, 40))
        assert run_generate(cfg, system)["kept"] == 40
    interview = tmp_path / "interview"
    names = write_transcripts(tmp_path / "transcripts")
    with LoopbackLLMServer(responder=EchoingParaphraser()) as server:
        cfg, system = compose_paraphrase([
            f"synth.transcripts_dir={tmp_path / 'transcripts'}", f"synth.out_dir={interview}",
            f"synth.pii.names_file={names}", "synth/backend=openai-compatible", "synth.llm.model=loopback",
            f"synth.llm.base_url={server.openai_base_url}",
        ])
        assert run_paraphrase(cfg, system)["kept"] == 3
    for split, root in (("synthetic", synthetic), ("interview", interview)):
        result = train(tmp_path, tiny_model_dir, split, root)
        assert result.returncode == 0, result.stderr.decode()[-3000:]
        run_dirs = list((tmp_path / "outputs" / "runs" / "smoke").glob(f"*__{split}"))
        assert run_dirs and (run_dirs[0] / "done.json").is_file(), sorted((tmp_path / "outputs").rglob("*"))[:20]


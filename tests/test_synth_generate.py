"""python -m mc16k.synth.generate against the loopback server through the real openai client: topic shares,
filter counts for planted bad replies, correct topic labels, and SIGKILL + resume without paying twice."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from kill_helpers import kill_once_stored, stored_lines
from loopback import LoopbackLLMServer
from omegaconf import OmegaConf
from scipy.stats import chisquare
from synth_helpers import EXACT_TEXT, PLANTED_MARKER, SynthResponder

from mc16k.llm.store import JsonlStore
from mc16k.paths import config_dir
from mc16k.synth.config import register_synth_configs
from mc16k.synth.generate import STORE_FILE, run_generate

ROOT = Path(__file__).resolve().parents[1]
OPENING = re.compile(r"^I am writing about (.+?)\. ")


def backend_overrides(server: LoopbackLLMServer, out_dir: Path, n: int) -> list[str]:
    return [
        "synth/backend=openai-compatible", "synth.llm.model=loopback", f"synth.llm.base_url={server.openai_base_url}",
        f"synth.n={n}", f"synth.out_dir={out_dir}", "synth.runner.concurrency=16", "synth.runner.backoff_initial_s=0.01",
    ]


def compose_generate(overrides: list[str]):
    register_synth_configs()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="synth_generate", overrides=overrides)
    return OmegaConf.to_object(cfg.synth), cfg.prompt.system


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def pooled(observed: dict[str, int], weights: dict[str, float], n: int) -> tuple[list[int], list[float]]:
    """Observed and expected counts, topics with an expected count under 5 pooled into one bin."""
    total = sum(weights.values())
    obs, exp, rest_obs, rest_exp = [], [], 0, 0.0
    for topic, weight in weights.items():
        expected = n * weight / total
        if expected >= 5:
            obs.append(observed.get(topic, 0))
            exp.append(expected)
        else:
            rest_obs += observed.get(topic, 0)
            rest_exp += expected
    if rest_exp > 0:
        obs, exp = obs + [rest_obs], exp + [rest_exp]
    return obs, exp


def test_generate_follows_topic_weights_and_rejects_planted_replies_with_counts(tmp_path):
    n = 300
    responder = SynthResponder()
    with LoopbackLLMServer(responder=responder) as server:
        cfg, system = compose_generate(backend_overrides(server, tmp_path, n))
        report = run_generate(cfg, system)
        calls = server.counts["ok"]
    rows = read_rows(tmp_path / "Synthetic_Data_10K.csv")
    assert list(rows[0]) == ["instruction", "input", "output", "topic"]
    assert len(rows) == n == report["kept"] and report["unfilled_slots"] == []
    assert all(r["instruction"] == system for r in rows)

    # topic shares within sampling error of the CounselChat weights (and clearly not uniform)
    weights = {t.name: t.weight for t in cfg.topics}
    assert len(weights) == 33
    observed = {}
    for row in rows:
        observed[row["topic"]] = observed.get(row["topic"], 0) + 1
    obs, exp = pooled(observed, weights, n)
    assert chisquare(obs, [e * sum(obs) / sum(exp) for e in exp]).pvalue > 0.01
    uniform_obs, uniform_exp = pooled(observed, dict.fromkeys(weights, 1.0), n)
    assert chisquare(uniform_obs, uniform_exp).pvalue < 1e-6  # the test can tell the weights from uniform

    # every planted bad reply rejected, counted under its reason; the first copy of a duplicate kept
    sent = responder.sent
    assert sent["message_near"] >= 5 and sent["message_refusal"] >= 5 and sent["answer_refusal"] >= 3
    assert report["rejected"] == {
        "input_exact_duplicate": sent["message_exact"] - 1,
        "input_near_duplicate": sent["message_near"] - 1,
        "input_off_format": sent["message_offformat"],
        "input_refusal": sent["message_refusal"],
        "input_too_short": sent["message_short"],
        "output_refusal": sent["answer_refusal"],
    }
    assert sum(PLANTED_MARKER in r["input"] for r in rows) == 1
    assert sum(r["input"] == EXACT_TEXT for r in rows) == 1
    assert len({r["input"] for r in rows}) == n

    # topic labels stay with their rows although a quarter of the replies were rejected
    labelled = [(OPENING.match(r["input"]), r["topic"]) for r in rows if r["input"] != EXACT_TEXT]
    assert all(match is not None and match.group(1) == topic for match, topic in labelled)

    assert report["calls"] == {"made": calls, "from_store": 0, "retries": {}}
    assert report["usage_this_run"]["calls"] == calls == sum(sent.values())
    # a re-run with everything stored pays for nothing and writes the same file
    before = (tmp_path / "Synthetic_Data_10K.csv").read_bytes()
    with LoopbackLLMServer(responder=SynthResponder()) as server:
        again = run_generate(compose_generate(backend_overrides(server, tmp_path, n))[0], system)
        assert server.counts["ok"] == 0
    assert again["calls"]["made"] == 0 and again["calls"]["from_store"] == calls
    assert (tmp_path / "Synthetic_Data_10K.csv").read_bytes() == before


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_keeps_every_stored_reply_and_pays_only_the_rest(tmp_path):
    n = 120
    store_file = tmp_path / STORE_FILE
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OPENAI_API_KEY": "unused"}
    with LoopbackLLMServer(latency_s=0.01, responder=SynthResponder()) as server:
        cmd = [sys.executable, "-m", "mc16k.synth.generate", *backend_overrides(server, tmp_path, n),
               f"hydra.run.dir={tmp_path}/hydra"]
        server.hold_after_ok(60)
        first = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        settled = kill_once_stored(first, server, store_file, 60, timeout_s=120)  # with requests held in flight
        assert stored_lines(store_file) == settled
        assert not (tmp_path / "Synthetic_Data_10K.csv").exists()
        server.release()
        second = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, timeout=300)
        assert second.returncode == 0, second.stderr.decode()[-3000:]
        total_ok = server.counts["ok"]
        assert server.counts["dropped"] > 0  # the kill really happened mid-flight
    report = json.loads((tmp_path / "Synthetic_Data_10K.report.json").read_text())
    with JsonlStore(store_file) as store:
        assert len(store) == stored_lines(store_file) == total_ok  # no reply paid twice, none lost
    assert report["calls"]["from_store"] >= settled and report["calls"]["made"] == total_ok - settled
    rows = read_rows(tmp_path / "Synthetic_Data_10K.csv")
    assert len(rows) == n and len({r["input"] for r in rows}) == n
    print(f"SIGKILL after {settled} stored replies ({server.counts['dropped']} in flight); rerun made "
          f"{report['calls']['made']} calls, {report['calls']['from_store']} replies from the store")


def test_a_zero_topic_weight_is_refused_by_name_before_any_call(tmp_path):
    with LoopbackLLMServer() as server:
        cfg, system = compose_generate(backend_overrides(server, tmp_path, 3))
        cfg.topics[0].weight = 0.0
        with pytest.raises(ValueError, match="Relationships"):
            run_generate(cfg, system)
        assert server.counts["ok"] == 0

"""python -m mc16k.synth.paraphrase on a project-written transcript: PII scrubbed before and after the model
(planted emails, phones, names, an address and a date of birth), the 40-word filter, transcript order,
private data refused by remote backends, and real local models (tiny random; SmolLM2 in the slow tier)."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from loopback import LoopbackLLMServer
from omegaconf import OmegaConf

from mc16k.paths import config_dir
from mc16k.synth.backend import PrivateDataError
from mc16k.synth.config import register_synth_configs
from mc16k.synth.paraphrase import run_paraphrase

EMAILS = ["maria.lopez@example.com", "t.baker@mailbox.org"]
PHONES = ["(415) 555-0132", "+44 20 7946 0958"]
NAMES = ["Maria Lopez", "Tom Baker"]
ADDRESS = "42 Oak Tree Road"
BIRTH = "03/14/1961"
PLANTED = [*EMAILS, *PHONES, "Maria", "Lopez", "Tom", "Baker", ADDRESS, BIRTH]

PAGE_1 = f"""Coach: Thanks for coming in today, Maria. How have the last two weeks been?
Caregiver: Honestly, exhausting. My husband Tom Baker was diagnosed with early dementia and I do everything now.
He was born {BIRTH} and he keeps asking what year it is. I barely sleep, maybe four hours a night.
Caregiver: You can reach me at {EMAILS[0]} or on {PHONES[0]} if anything changes with the group.
Coach: It sounds like you are carrying a lot on your own. What support do you have around you?
Caregiver: My sister calls, but she lives far away. I feel guilty when I get angry with him."""
PAGE_2 = f"""Coach: Last time we talked about taking short breaks. Did you manage any?
Caregiver: A neighbour at {ADDRESS} sat with Tom for an hour, and I walked. It helped a little.
Caregiver: His doctor's office is {PHONES[1]}, they want a care plan, and the email is {EMAILS[1]}.
Coach: That is a real step. Let us write down what a good week would look like for you, Maria Lopez.
Caregiver: I want to stop snapping at him, and I want to understand what to expect next year."""
PAGE_0 = f"""Coach: Welcome. Tell me a little about what brings you here.
Caregiver: I look after my mother, she has Parkinson's, and since March I have had panic attacks at night.
Caregiver: Tom Baker from the clinic gave me your number; my email is {EMAILS[1]} if you need it.
Coach: Panic at night is common when someone is on call all day. How long do the attacks last?
Caregiver: Ten minutes or so, three or four times a week. I am scared I will not hear her if she falls."""
PAGE_3 = "Coach: We are out of time. Same day next week?\nCaregiver: Yes. [[short]]"


def write_transcripts(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "session-02.txt").write_text(f"{PAGE_1}\f{PAGE_2}\f{PAGE_3}\n", encoding="utf-8")
    (directory / "session-01.txt").write_text(f"{PAGE_0}\n", encoding="utf-8")
    names = directory.parent / "names.txt"
    names.write_text("\n".join(NAMES) + "\n", encoding="utf-8")
    return names


class EchoingParaphraser:
    """Replies with the page it was sent (so any PII that reached it would come back) plus PII of its own."""

    def __init__(self):
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str | None:
        if "[Transcript page]" not in prompt:
            return None
        self.prompts.append(prompt)
        page = prompt.split("[Transcript page]\n", 1)[1].split("\n\n", 1)[0]
        if "[[short]]" in page:
            return "Thanks."
        words = " ".join(page.split()[:60])
        if "[Caregiver's message]" in prompt:
            return f"I hear how tired you are. Write to {EMAILS[0]} or call Tom Baker on {PHONES[0]}. {words}"
        return f"I am caring for my husband and I am exhausted. {words}"


def compose_paraphrase(overrides: list[str]):
    register_synth_configs()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="synth_paraphrase", overrides=overrides)
    return OmegaConf.to_object(cfg.synth), cfg.prompt.system


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def common(tmp_path: Path, names: Path) -> list[str]:
    return [f"synth.transcripts_dir={tmp_path / 'transcripts'}", f"synth.out_dir={tmp_path / 'out'}",
            f"synth.pii.names_file={names}"]


def test_pii_is_scrubbed_before_and_after_the_model_and_reported(tmp_path):
    names = write_transcripts(tmp_path / "transcripts")
    responder = EchoingParaphraser()
    with LoopbackLLMServer(responder=responder) as server:
        cfg, system = compose_paraphrase([
            *common(tmp_path, names), "synth/backend=openai-compatible", "synth.llm.model=loopback",
            f"synth.llm.base_url={server.openai_base_url}",  # a server on this machine is local
        ])
        report = run_paraphrase(cfg, system)
    # nothing identifying ever reached the model
    assert responder.prompts and not [p for p in PLANTED if any(p in prompt for prompt in responder.prompts)]
    rows = read_rows(tmp_path / "out" / "Interview_Data_6K.csv")
    assert list(rows[0]) == ["instruction", "input", "output", "session_id", "page"]
    assert [(r["session_id"], r["page"]) for r in rows] == [("session-01", "1"), ("session-02", "1"),
                                                             ("session-02", "2")]
    assert all(r["instruction"] == system for r in rows)
    text = "\n".join(r["input"] + "\n" + r["output"] for r in rows)
    assert [p for p in PLANTED if p.lower() in text.lower()] == []
    assert "[EMAIL]" in text and "[PHONE]" in text and "[NAME]" in text
    assert report["rejected"] == {"pair_too_short": 1}  # page 3: under the paper's 40 words
    assert report["kept"] == 3 and report["chunks"] == 4 and report["sessions"] == 2

    pii = json.loads((tmp_path / "out" / "Interview_Data_6K.pii_report.json").read_text())
    removed = {(f["field"], f["entity"], f["text"]) for f in pii["removed"]}
    for email in EMAILS:
        assert ("transcript", "EMAIL_ADDRESS", email) in removed
    for phone in PHONES:
        assert ("transcript", "PHONE_NUMBER", phone) in removed
    for name in ("Tom Baker", "Maria Lopez", "Maria", "Tom"):
        assert ("transcript", "PERSON", name) in removed
    assert ("transcript", "STREET_ADDRESS", ADDRESS) in removed
    assert ("transcript", "DATE", BIRTH) in removed
    assert ("output", "EMAIL_ADDRESS", EMAILS[0]) in removed  # the model's own PII is caught too
    assert all({"session_id", "page", "start", "end"} <= set(f) for f in pii["removed"])
    assert pii["counts"]["EMAIL_ADDRESS"] == sum(1 for f in pii["removed"] if f["entity"] == "EMAIL_ADDRESS")


def test_private_transcripts_are_refused_by_a_remote_backend_unless_overridden(tmp_path, caplog):
    names = write_transcripts(tmp_path / "transcripts")
    with LoopbackLLMServer(responder=EchoingParaphraser()) as server:
        remote = [*common(tmp_path, names), "synth/backend=openai", "synth.llm.api_key_envs=[]",
                  f"synth.llm.base_url={server.openai_base_url}"]
        cfg, system = compose_paraphrase(remote)
        assert cfg.private is True  # the default for paraphrase
        with pytest.raises(PrivateDataError, match=r"synth.private=true and the backend is remote.*allow_remote_private"):
            run_paraphrase(cfg, system)
        assert server.counts["requests"] == 0
        cfg, system = compose_paraphrase([*remote, "synth.allow_remote_private=true"])
        with caplog.at_level(logging.WARNING):
            report = run_paraphrase(cfg, system)
        assert "PRIVATE DATA IS SENT TO A REMOTE BACKEND" in caplog.text
        assert report["remote_private_override"] is True and server.counts["ok"] > 0


def test_tiny_local_model_paraphrases_a_transcript(tmp_path, tiny_model_dir):
    names = write_transcripts(tmp_path / "transcripts")
    cfg, system = compose_paraphrase([
        *common(tmp_path, names), "synth/backend=local-hf", f"synth.llm.model={tiny_model_dir}",
        "synth.llm.gguf_file=null", "synth.llm.max_output_tokens=64", "synth.filters.min_pair_words=1",
    ])
    report = run_paraphrase(cfg, system, cache_dir=tmp_path / "cache")
    rows = read_rows(tmp_path / "out" / "Interview_Data_6K.csv")
    assert report["calls"]["made"] >= 2 and len(rows) >= 1, report
    assert report["kept"] + sum(report["rejected"].values()) + sum(report["failed_calls"].values()) == 4
    assert report["model"] == f"local_hf:{tiny_model_dir}"


@pytest.mark.slow
def test_smollm2_paraphrases_a_transcript_with_the_paper_filter(tmp_path):
    names = write_transcripts(tmp_path / "transcripts")
    cfg, system = compose_paraphrase([*common(tmp_path, names), "synth.llm.max_output_tokens=160"])
    assert cfg.filters.min_pair_words == 40 and cfg.llm.provider.value == "local_hf"
    report = run_paraphrase(cfg, system, cache_dir=tmp_path / "cache")
    rows = read_rows(tmp_path / "out" / "Interview_Data_6K.csv")
    assert len(rows) >= 1, report
    assert all(len((r["input"] + " " + r["output"]).split()) >= 40 for r in rows)
    text = "\n".join(r["input"] + "\n" + r["output"] for r in rows).lower()
    assert [p for p in PLANTED if p.lower() in text] == []
    print(report)

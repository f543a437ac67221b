"""Synthetic counseling conversations, the paper's way: a patient message per topic, then a counselor answer.

    python -m mc16k.synth.generate synth.n=1000                       # OpenAI, key from OPENAI_API_KEY
    python -m mc16k.synth.generate synth/backend=openai-compatible synth.llm.base_url=http://localhost:8000/v1 \
        synth.llm.model=mistralai/Mistral-7B-Instruct-v0.2
    python -m mc16k.synth.generate synth/backend=local-hf synth.n=5   # SmolLM2 in-process, CPU, offline

Slots: row ``i`` of the ``n`` to keep gets a topic drawn (seeded) with the CounselChat weights, once. Each
round asks a patient message for every unfilled slot, filters them in slot order (off-format, refusal, too
short, exact and near-duplicate), asks a counselor answer for each survivor (with the project's system
instruction, as in training), filters the answers, and keeps the pairs. A rejected slot is asked again next
round, with a new attempt number and variation, for the *same* topic: the kept rows follow the weights even
when a model refuses some topics more than others, and a topic label can never shift to another row.

Every reply is stored (keyed by prompt version, model, slot, attempt and request hash) the moment it comes
back, so a killed run resumes without paying again for any stored reply; the decisions are replayed in slot
order from the stored replies, so a resumed run writes the same file as an uninterrupted one.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from mc16k.llm.store import JsonlStore
from mc16k.llm.types import ChatRequest
from mc16k.paths import config_dir
from mc16k.synth.backend import StoredCalls, build_runner, check_privacy, model_id, request_sha
from mc16k.synth.config import GenerateConfig, TopicWeight, register_synth_configs
from mc16k.synth.filters import DuplicateIndex, content_reason
from mc16k.synth.output import SYNTHETIC_FILE, report_path, write_csv, write_json
from mc16k.synth.prompts import PromptSet, load_prompts

log = logging.getLogger(__name__)

COLUMNS = ["instruction", "input", "output", "topic"]
STORE_FILE = "generate_store.jsonl"


def draw_topics(topics: list[TopicWeight], n: int, seed: int) -> list[str]:
    """``n`` topics drawn with replacement by weight; slot i's topic does not depend on ``n``."""
    if not topics:
        raise ValueError("synth.topics is empty: choose a topic list (synth/topics=counselchat) or give one")
    bad = [t.name for t in topics if not t.weight > 0]
    if bad:
        raise ValueError(f"synth.topics: weights must be > 0, not for {bad}")
    rng = random.Random(seed)
    return rng.choices([t.name for t in topics], weights=[t.weight for t in topics], k=n)


def variation(prompts: PromptSet, seed: int, slot: int, attempt: int) -> dict[str, str]:
    """One choice per variation axis, seeded by (seed, slot, attempt)."""
    rng = random.Random(f"{seed}:{slot}:{attempt}")
    return {axis: rng.choice(choices) for axis, choices in sorted(prompts.variations.items())}


@dataclass
class Slot:
    index: int
    topic: str
    attempt: int = 0
    message: str | None = None  # the accepted patient message of this round


@dataclass
class GenerationResult:
    rows: list[dict[str, Any]]
    rejected: collections.Counter[str] = field(default_factory=collections.Counter)
    failed: collections.Counter[str] = field(default_factory=collections.Counter)
    unfilled: list[int] = field(default_factory=list)
    rounds: int = 0
    used_keys: set[str] = field(default_factory=set)


class Generator:
    def __init__(self, cfg: GenerateConfig, prompts: PromptSet, system_instruction: str, calls: StoredCalls):
        self.cfg = cfg
        self.prompts = prompts
        self.system_instruction = system_instruction
        self.calls = calls
        self.model = model_id(cfg.llm)

    def message_request(self, slot: Slot) -> ChatRequest:
        fields = variation(self.prompts, self.cfg.seed, slot.index, slot.attempt)
        user = self.prompts.render("patient_user.txt", topic=slot.topic, **fields)
        return ChatRequest(system=self.prompts.templates["patient_system.txt"], user=user)

    def answer_request(self, message: str) -> ChatRequest:
        return ChatRequest(system=self.system_instruction, user=message)

    def key(self, kind: str, slot: Slot, request: ChatRequest) -> str:
        return "|".join(
            (kind, self.prompts.version, self.model, f"slot:{slot.index}", f"attempt:{slot.attempt}",
             f"req:{request_sha(request)}")
        )

    async def run(self) -> GenerationResult:
        cfg = self.cfg
        slots = [Slot(i, topic) for i, topic in enumerate(draw_topics(cfg.topics, cfg.n, cfg.seed))]
        result = GenerationResult(rows=[])
        kept: dict[int, dict[str, Any]] = {}
        index = DuplicateIndex(cfg.filters.near_duplicate, near=cfg.filters.near_duplicates)
        for round_no in range(1, cfg.max_rounds + 1):
            pending = [s for s in slots if s.index not in kept]
            if not pending:
                break
            result.rounds = round_no
            message_keys = {}
            requests = {}
            for slot in pending:
                requests[slot.index] = self.message_request(slot)
                message_keys[slot.index] = self.key("message", slot, requests[slot.index])
            outcomes = await asyncio.gather(
                *(self.calls.ask(message_keys[s.index], requests[s.index], kind="message", slot=s.index,
                                 attempt=s.attempt, topic=s.topic) for s in pending)
            )
            survivors: list[Slot] = []
            for slot, outcome in zip(pending, outcomes, strict=True):  # decisions in slot order
                if outcome.text is None:
                    result.failed[f"message_{outcome.failure}"] += 1
                    if outcome.failure == "api_rejected":
                        slot.attempt += 1
                    continue
                result.used_keys.add(message_keys[slot.index])
                reason = content_reason(outcome.text, self.prompts, cfg.filters.min_input_words)
                minhash = None
                if reason is None:
                    reason, _, minhash = index.check(outcome.text)
                if reason is not None:
                    result.rejected[f"input_{reason}"] += 1
                    slot.attempt += 1
                    continue
                index.add(message_keys[slot.index], outcome.text, minhash)
                slot.message = outcome.text
                survivors.append(slot)
            answer_requests = {s.index: self.answer_request(s.message) for s in survivors}
            answer_keys = {s.index: self.key("answer", s, answer_requests[s.index]) for s in survivors}
            answers = await asyncio.gather(
                *(self.calls.ask(answer_keys[s.index], answer_requests[s.index], kind="answer", slot=s.index,
                                 attempt=s.attempt, topic=s.topic) for s in survivors)
            )
            for slot, outcome in zip(survivors, answers, strict=True):
                reason = None
                if outcome.text is None:
                    result.failed[f"answer_{outcome.failure}"] += 1
                else:
                    result.used_keys.add(answer_keys[slot.index])
                    reason = content_reason(outcome.text, self.prompts, cfg.filters.min_output_words)
                    if reason is None and len((slot.message + " " + outcome.text).split()) < cfg.filters.min_pair_words:
                        reason = "too_short"
                if outcome.text is None or reason is not None:
                    if reason is not None:
                        result.rejected[f"output_{reason}"] += 1
                    index.remove(message_keys[slot.index])  # its message no longer blocks others
                    if outcome.text is not None or outcome.failure == "api_rejected":
                        slot.attempt += 1
                    continue
                kept[slot.index] = {
                    "instruction": self.system_instruction,
                    "input": slot.message,
                    "output": outcome.text,
                    "topic": slot.topic,
                }
            log.info(
                "round %d: %d/%d rows kept; rejected so far %s; failed calls %s; %d calls, %d from the store",
                round_no, len(kept), cfg.n, dict(result.rejected), dict(result.failed),
                self.calls.counts["called"], self.calls.counts["cached"],
            )
        result.rows = [kept[i] for i in sorted(kept)]
        result.unfilled = [s.index for s in slots if s.index not in kept]
        return result


def run_generate(cfg: GenerateConfig, system_instruction: str, cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Generate ``cfg.n`` rows into ``<out_dir>/Synthetic_Data_10K.csv``; returns the report (also written)."""
    started = time.monotonic()
    overridden = check_privacy(cfg, "synth.generate")
    if cfg.n < 1:
        raise ValueError(f"synth.n must be >= 1, got {cfg.n}")
    prompts = load_prompts(cfg.prompts_dir)
    out_dir = Path(cfg.out_dir)
    out_csv = out_dir / SYNTHETIC_FILE

    async def main() -> tuple[GenerationResult, StoredCalls]:
        runner = build_runner(cfg, cache_dir)
        with JsonlStore(out_dir / STORE_FILE) as store:
            calls = StoredCalls(runner, store)
            try:
                return await Generator(cfg, prompts, system_instruction, calls).run(), calls
            finally:
                await calls.close()

    result, calls = asyncio.run(main())
    write_csv(out_csv, COLUMNS, result.rows)
    run_usage = calls.runner.usage
    dataset_usage = calls.stored_usage(result.used_keys)
    report = {
        "file": str(out_csv),
        "requested": cfg.n,
        "kept": len(result.rows),
        "unfilled_slots": result.unfilled,
        "rejected": dict(sorted(result.rejected.items())),
        "rejected_total": sum(result.rejected.values()),
        "failed_calls": dict(sorted(result.failed.items())),
        "rounds": result.rounds,
        "topics": dict(collections.Counter(r["topic"] for r in result.rows).most_common()),
        "calls": {"made": calls.counts["called"], "from_store": calls.counts["cached"],
                  "retries": dict(calls.runner.retries)},
        "usage_this_run": run_usage.as_dict(),
        "cost_usd_this_run": round(run_usage.cost_usd(cfg.llm.pricing), 4),
        "usage_dataset": dataset_usage.as_dict(),
        "cost_usd_dataset": round(dataset_usage.cost_usd(cfg.llm.pricing), 4),
        "model": model_id(cfg.llm),
        "prompt_version": prompts.version,
        "seed": cfg.seed,
        "private": cfg.private,
        "remote_private_override": overridden,
        "seconds": round(time.monotonic() - started, 2),
    }
    write_json(report_path(out_csv), report)
    log.info(
        "wrote %d/%d rows to %s (rejected %s; %d calls this run, %d replies from the store; $%.4f this run)",
        len(result.rows), cfg.n, out_csv, report["rejected"], report["calls"]["made"],
        report["calls"]["from_store"], report["cost_usd_this_run"],
    )
    if result.unfilled:
        log.warning("%d slots still unfilled after %d rounds: raise synth.max_rounds or re-run to continue",
                    len(result.unfilled), cfg.max_rounds)
    return report


def generate_app(cfg: DictConfig) -> None:
    synth: GenerateConfig = OmegaConf.to_object(cfg.synth)  # typed by synth_generate_schema
    run_generate(synth, cfg.prompt.system, cache_dir=cfg.paths.cache_dir)


def main() -> None:
    """The Hydra app (conf/synth_generate.yaml); the config dir is found when the app starts, not on import."""
    register_synth_configs()
    hydra.main(config_path=config_dir(), config_name="synth_generate", version_base="1.3")(generate_app)()


if __name__ == "__main__":
    main()

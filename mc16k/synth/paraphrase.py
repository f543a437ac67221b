"""Private transcripts -> caregiver/coach QA pairs, with a local model only (the paper's interview split).

    python -m mc16k.synth.paraphrase synth.transcripts_dir=/secure/sessions synth.pii.names_file=/secure/names.txt
    python train.py data=interview data.root=data/interview

Each ``*.txt`` file is one session (its stem is the ``session_id``), cut into pages: form-feed separated
pages when the file has them, else consecutive lines up to ``synth.page_words`` words. Every
``synth.pages_per_chunk`` consecutive pages become one QA pair: the page text is PII-scrubbed *before* the
model sees it, the model writes the caregiver's message and then the coach's answer, and both are scrubbed
again (a model can invent or reconstruct details). Pairs under ``filters.min_pair_words`` (the paper's 40)
and refusals / off-format replies are dropped and counted. Rows keep the transcript order with
``session_id`` and ``page`` (the chunk's first page), so later work can rebuild the context.

``synth.private`` (default true) refuses remote backends before any call (see docs/synth.md). Replies are
stored in ``<out_dir>/paraphrase_store.jsonl`` before they count, so a killed run resumes without asking the
model again; the store and the PII report hold transcript-derived text: keep them with the transcripts.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from mc16k.errors import MissingInputError
from mc16k.llm.store import JsonlStore
from mc16k.llm.types import ChatRequest
from mc16k.paths import config_dir
from mc16k.synth.backend import StoredCalls, build_runner, check_privacy, model_id, request_sha
from mc16k.synth.config import ParaphraseConfig, register_synth_configs
from mc16k.synth.filters import TOO_SHORT, DuplicateIndex, content_reason, word_count
from mc16k.synth.output import INTERVIEW_FILE, report_path, write_csv, write_json
from mc16k.synth.pii import PLACEHOLDERS, PIIScrubber, read_names
from mc16k.synth.prompts import PromptSet, load_prompts

log = logging.getLogger(__name__)

COLUMNS = ["instruction", "input", "output", "session_id", "page"]
STORE_FILE = "paraphrase_store.jsonl"


@dataclass(frozen=True)
class Chunk:
    session_id: str
    page: int  # 1-based number of the chunk's first page
    text: str


def split_pages(text: str, page_words: int) -> list[str]:
    """Form-feed pages if the text has them, else whole lines gathered up to ``page_words`` words."""
    if "\f" in text:
        return [p.strip() for p in text.split("\f") if p.strip()]
    pages, current, words = [], [], 0
    for line in text.splitlines():
        n = word_count(line)
        if current and words + n > page_words:
            pages.append("\n".join(current).strip())
            current, words = [], 0
        current.append(line)
        words += n
    if "\n".join(current).strip():
        pages.append("\n".join(current).strip())
    return [p for p in pages if p]


def read_chunks(cfg: ParaphraseConfig) -> list[Chunk]:
    directory = Path(cfg.transcripts_dir)
    if not directory.is_dir():
        raise MissingInputError(f"synth.transcripts_dir: {directory} is not a directory")
    files = sorted(directory.glob("*.txt"))
    if not files:
        raise MissingInputError(f"synth.transcripts_dir: no *.txt transcripts in {directory}")
    if cfg.pages_per_chunk < 1 or cfg.page_words < 1:
        raise ValueError("synth.pages_per_chunk and synth.page_words must be >= 1")
    chunks = []
    for path in files:
        pages = split_pages(path.read_text(encoding="utf-8"), cfg.page_words)
        for first in range(0, len(pages), cfg.pages_per_chunk):
            text = "\n\n".join(pages[first : first + cfg.pages_per_chunk])
            chunks.append(Chunk(path.stem, first + 1, text))
    return chunks


class Paraphraser:
    def __init__(self, cfg: ParaphraseConfig, prompts: PromptSet, system_instruction: str, calls: StoredCalls,
                 scrubber: PIIScrubber):
        self.cfg = cfg
        self.prompts = prompts
        self.system_instruction = system_instruction
        self.calls = calls
        self.scrubber = scrubber
        self.model = model_id(cfg.llm)
        self.findings: list[dict[str, Any]] = []
        self.rejected: collections.Counter[str] = collections.Counter()
        self.failed: collections.Counter[str] = collections.Counter()

    def scrub(self, text: str, chunk: Chunk, field: str) -> str:
        clean, findings = self.scrubber.scrub(text)
        for f in findings:
            self.findings.append({"session_id": chunk.session_id, "page": chunk.page, "field": field,
                                  "entity": f.entity, "start": f.start, "end": f.end, "text": f.text})
        return clean

    async def ask(self, kind: str, chunk: Chunk, user: str) -> str | None:
        request = ChatRequest(system=self.prompts.templates["paraphrase_system.txt"], user=user)
        key = "|".join((kind, self.prompts.version, self.model, f"req:{request_sha(request)}"))
        for _ in range(self.cfg.max_rounds):
            outcome = await self.calls.ask(key, request, kind=kind)
            if outcome.text is not None:
                return outcome.text
            self.failed[f"{kind}_{outcome.failure}"] += 1
            if outcome.failure == "api_rejected":
                break
        return None

    async def one(self, chunk: Chunk) -> dict[str, Any] | None:
        page = self.scrub(chunk.text, chunk, "transcript")
        question = await self.ask("question", chunk, self.prompts.render("paraphrase_question.txt", page=page))
        if question is None:
            return None
        reason = content_reason(question, self.prompts, self.cfg.filters.min_input_words)
        if reason is not None:
            self.rejected[f"input_{reason}"] += 1
            return None
        question = self.scrub(question, chunk, "input")
        answer = await self.ask(
            "answer", chunk, self.prompts.render("paraphrase_answer.txt", page=page, question=question)
        )
        if answer is None:
            return None
        reason = content_reason(answer, self.prompts, self.cfg.filters.min_output_words)
        if reason is not None:
            self.rejected[f"output_{reason}"] += 1
            return None
        answer = self.scrub(answer, chunk, "output")
        if word_count(question) + word_count(answer) < self.cfg.filters.min_pair_words:
            self.rejected[f"pair_{TOO_SHORT}"] += 1
            return None
        return {"instruction": self.system_instruction, "input": question, "output": answer,
                "session_id": chunk.session_id, "page": chunk.page}

    async def run(self, chunks: list[Chunk]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        duplicates = DuplicateIndex(self.cfg.filters.near_duplicate, near=self.cfg.filters.near_duplicates)
        for done, chunk in enumerate(chunks, start=1):  # in transcript order: one local model, one at a time
            row = await self.one(chunk)
            if row is not None:
                reason, _, minhash = duplicates.check(row["input"])
                if reason is not None:
                    self.rejected[f"input_{reason}"] += 1
                else:
                    duplicates.add(f"{chunk.session_id}:{chunk.page}", row["input"], minhash)
                    rows.append(row)
            if done % 10 == 0 or done == len(chunks):
                log.info("paraphrase: %d/%d chunks, %d rows kept, rejected %s", done, len(chunks), len(rows),
                         dict(self.rejected))
            if self.cfg.n is not None and len(rows) >= self.cfg.n:
                break
        return rows


def run_paraphrase(cfg: ParaphraseConfig, system_instruction: str, cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Paraphrase every chunk into ``<out_dir>/Interview_Data_6K.csv``; returns the report (also written)."""
    started = time.monotonic()
    overridden = check_privacy(cfg, "synth.paraphrase")  # before reading or sending anything
    prompts = load_prompts(cfg.prompts_dir)
    chunks = read_chunks(cfg)
    scrubber = PIIScrubber(cfg.pii)
    out_dir = Path(cfg.out_dir)
    out_csv = out_dir / INTERVIEW_FILE

    async def main() -> tuple[list[dict[str, Any]], Paraphraser]:
        runner = build_runner(cfg, cache_dir)
        with JsonlStore(out_dir / STORE_FILE) as store:
            calls = StoredCalls(runner, store)
            paraphraser = Paraphraser(cfg, prompts, system_instruction, calls, scrubber)
            try:
                return await paraphraser.run(chunks), paraphraser
            finally:
                await calls.close()

    rows, paraphraser = asyncio.run(main())
    residual = [(i, f.entity) for i, r in enumerate(rows) for col in ("input", "output")
                for f in scrubber.find(r[col]) if r[col][max(0, f.start - 1) : f.end + 1] not in PLACEHOLDERS.values()]
    if residual:  # cannot happen after a scrub; checked so that the report's claim is measured
        raise RuntimeError(f"PII left in output rows after the scrub: {residual[:5]}")
    write_csv(out_csv, COLUMNS, rows)
    findings = paraphraser.findings
    pii_report = {
        "file": str(out_csv),
        "counts": dict(collections.Counter(f["entity"] for f in findings).most_common()),
        "counts_by_field": {
            field: dict(collections.Counter(f["entity"] for f in findings if f["field"] == field))
            for field in ("transcript", "input", "output")
        },
        "removed": findings,
        "names_checked": len(read_names(cfg.pii)),
        "residual_in_output": 0,
    }
    write_json(report_path(out_csv, "pii_report"), pii_report)
    calls = paraphraser.calls
    usage = calls.runner.usage
    report = {
        "file": str(out_csv),
        "sessions": len({c.session_id for c in chunks}),
        "chunks": len(chunks),
        "kept": len(rows),
        "rejected": dict(sorted(paraphraser.rejected.items())),
        "failed_calls": dict(sorted(paraphraser.failed.items())),
        "pii_removed": pii_report["counts"],
        "calls": {"made": calls.counts["called"], "from_store": calls.counts["cached"],
                  "retries": dict(calls.runner.retries)},
        "usage_this_run": usage.as_dict(),
        "cost_usd_this_run": round(usage.cost_usd(cfg.llm.pricing), 4),
        "model": model_id(cfg.llm),
        "prompt_version": prompts.version,
        "private": cfg.private,
        "remote_private_override": overridden,
        "page_words": cfg.page_words,
        "pages_per_chunk": cfg.pages_per_chunk,
        "seconds": round(time.monotonic() - started, 2),
    }
    write_json(report_path(out_csv), report)
    log.info("wrote %d rows from %d chunks to %s (rejected %s; PII removed %s)", len(rows), len(chunks), out_csv,
             report["rejected"], report["pii_removed"])
    return report


def paraphrase_app(cfg: DictConfig) -> None:
    synth: ParaphraseConfig = OmegaConf.to_object(cfg.synth)  # typed by synth_paraphrase_schema
    run_paraphrase(synth, cfg.prompt.system, cache_dir=cfg.paths.cache_dir)


def main() -> None:
    """The Hydra app (conf/synth_paraphrase.yaml); the config dir is found when the app starts, not on import."""
    register_synth_configs()
    hydra.main(config_path=config_dir(), config_name="synth_paraphrase", version_base="1.3")(paraphrase_app)()


if __name__ == "__main__":
    main()

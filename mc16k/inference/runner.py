"""Answer a benchmark with one target: encode prompts, skip what is on disk, generate longest-first in
batches, write each batch's answers atomically, and report truncations and throughput.

``mc16k.tasks.infer`` runs this for every target a config names."""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from rich.progress import Progress

from mc16k.data.formatting import EncodedPrompt, encode_prompt
from mc16k.errors import BadInputError
from mc16k.inference.benchmark import Question
from mc16k.inference.config import GenerationConfig
from mc16k.inference.engines import Engine
from mc16k.inference.engines.factory import load_target_tokenizer, open_engine
from mc16k.inference.sampling import question_seed, round_seeds
from mc16k.inference.store import add_answers, answer_path, read_answers
from mc16k.inference.targets import AnswerTarget

log = logging.getLogger(__name__)

MetricsLogger = Callable[[dict[str, float]], None]


@dataclass
class TargetReport:
    """What one target's run did; ``truncated`` counts questions whose prompt was cut."""

    model_id: str
    kind: str
    answered: int = 0
    already_done: int = 0
    truncated: int = 0
    completion_tokens: int = 0
    generation_s: float = 0.0
    files: list[str] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.generation_s if self.generation_s else 0.0


@dataclass(frozen=True)
class _WorkItem:
    question: Question
    round_index: int
    round_seed: int
    prompt: EncodedPrompt
    prompt_hash: str


def generation_fingerprint(params: GenerationConfig) -> dict:
    """Generation settings recorded on every row; a rerun with other settings refuses to mix them in."""
    return dict(OmegaConf.to_container(OmegaConf.structured(params), enum_to_str=True))


def prompt_hash(prompt: EncodedPrompt, prompt_version: str) -> str:
    """Short hash of exactly what the model was asked (prompt text, token ids) and the prompt version."""
    payload = json.dumps([prompt_version, prompt.text, prompt.input_ids])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def answer_id(model_id: str, question_id: int | str, round_index: int, phash: str) -> str:
    """Deterministic answer id: the same answer key always gets the same id."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"mc16k:{model_id}:{question_id}:{round_index}:{phash}").hex


def _pending_work(
    prompts: dict[int | str, EncodedPrompt],
    hashes: dict[int | str, str],
    questions: list[Question],
    seeds: list[int],
    paths: dict[int, Path],
    fingerprint: dict,
) -> tuple[list[_WorkItem], int]:
    """(items still to answer, count already on disk); refuses files made with other prompts or settings."""
    pending: list[_WorkItem] = []
    done = 0
    for round_index, seed in enumerate(seeds, start=1):
        existing = read_answers(paths[round_index])
        stale = [
            qid
            for q in questions
            if (row := existing.get(qid := q.question_id)) is not None
            and (
                row.get("prompt_hash") != hashes[qid]
                or row.get("generation") != fingerprint
                or row.get("seed") != seed
            )
        ]
        if stale:
            raise BadInputError(
                f"{paths[round_index]}: {len(stale)} answer(s) (question ids {stale[:5]}) were made with another "
                "prompt, generation settings or seed; move the file away or answer into another paths.answers_dir"
            )
        for q in questions:
            if q.question_id in existing:
                done += 1
            else:
                qid = q.question_id
                pending.append(_WorkItem(q, round_index, seed, prompts[qid], hashes[qid]))
    # longest first: the largest batch runs (and fails, if memory is short) first; similar lengths pad little
    pending.sort(key=lambda item: -len(item.prompt.input_ids))
    return pending, done


def answer_target(
    target: AnswerTarget,
    questions: list[Question],
    cfg: DictConfig,
    progress: Progress,
    log_metrics: MetricsLogger,
) -> TargetReport:
    """Answer every (question, round) of ``target`` not yet in its answer files."""
    params: GenerationConfig = cfg.infer.generation
    seeds = round_seeds(cfg.seed, cfg.infer.rounds, cfg.infer.round_seeds)
    room = target.model.max_context - params.max_new_tokens
    budget = cfg.infer.max_prompt_tokens or room
    if not 0 < budget <= room:
        raise BadInputError(
            f"model {target.model.name!r}: a prompt budget of {budget} tokens does not fit max_context="
            f"{target.model.max_context} with infer.generation.max_new_tokens={params.max_new_tokens}"
        )
    if target.prompt_version not in (None, cfg.prompt.version):
        log.warning(
            "%s was trained with prompt version %s but is asked with %s (prompt=%s)",
            target.model_id, target.prompt_version, cfg.prompt.version, cfg.prompt.name,
        )  # fmt: skip
    tokenizer = load_target_tokenizer(target)
    prompts = {
        q.question_id: encode_prompt(tokenizer, target.model, cfg.prompt.system, q.text, budget)
        for q in questions
    }
    report = TargetReport(target.model_id, target.kind)
    report.truncated = sum(p.truncated for p in prompts.values())
    if report.truncated:
        log.warning(
            "%s: %d of %d questions cut to fit %d prompt tokens (answers flagged truncated): ids %s",
            target.model_id,
            report.truncated,
            len(questions),
            budget,
            [qid for qid, p in prompts.items() if p.truncated],
        )
    paths = {
        k: answer_path(cfg.paths.answers_dir, cfg.benchmark.name, target.model_id, k)
        for k in range(1, len(seeds) + 1)
    }
    report.files = [str(p) for p in paths.values()]
    fingerprint = generation_fingerprint(params)
    hashes = {qid: prompt_hash(prompt, cfg.prompt.version) for qid, prompt in prompts.items()}
    pending, report.already_done = _pending_work(prompts, hashes, questions, seeds, paths, fingerprint)
    task = progress.add_task(target.model_id, total=len(pending), tokens_per_s=0.0)
    if not pending:
        log.info("%s: all %d answers already on disk", target.model_id, report.already_done)
        return report
    engine = open_engine(cfg.infer.engine, target, tokenizer, cfg.paths.cache_dir)
    try:
        for batch in _batches(pending, cfg.infer.engine.batch_size):
            _answer_batch(engine, batch, target, params, fingerprint, cfg.prompt.version, paths, report)
            progress.update(task, advance=len(batch), tokens_per_s=report.tokens_per_s)
            log_metrics(
                {
                    f"infer/{target.model_id}/answered": report.answered,
                    f"infer/{target.model_id}/tokens_per_s": report.tokens_per_s,
                }
            )
    finally:
        engine.close()
    return report


def _batches(items: list[_WorkItem], size: int) -> Iterator[list[_WorkItem]]:
    if size < 1:
        raise BadInputError(f"infer.engine.batch_size must be >= 1, got {size}")
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _answer_batch(
    engine: Engine,
    batch: list[_WorkItem],
    target: AnswerTarget,
    params: GenerationConfig,
    fingerprint: dict,
    prompt_version: str,
    paths: dict[int, Path],
    report: TargetReport,
) -> None:
    sample_seeds = [question_seed(item.round_seed, item.question.question_id) for item in batch]
    started = time.perf_counter()
    completions = engine.generate([item.prompt.input_ids for item in batch], sample_seeds, params)
    seconds = time.perf_counter() - started
    rows_by_round: dict[int, list[dict]] = defaultdict(list)
    for item, completion, sample_seed in zip(batch, completions, sample_seeds, strict=True):
        phash = item.prompt_hash
        qid = item.question.question_id
        rows_by_round[item.round_index].append(
            {
                "question_id": qid,
                "answer_id": answer_id(target.model_id, qid, item.round_index, phash),
                "model_id": target.model_id,
                "choices": [{"index": 0, "turns": [completion.text]}],
                "tstamp": time.time(),
                **target.row_fields(),
                "round": item.round_index,
                "seed": item.round_seed,
                "sample_seed": sample_seed,
                "prompt_version": prompt_version,
                "prompt_hash": phash,
                "truncated": item.prompt.truncated,
                "dropped_prompt_tokens": item.prompt.dropped_tokens,
                "prompt_tokens": len(item.prompt.input_ids),
                "completion_tokens": completion.completion_tokens,
                "finish_reason": completion.finish_reason,
                "generation_s": round(seconds, 4),  # wall time of the whole batch
                "batch_size": len(batch),
                "generation": fingerprint,
            }
        )
    for round_index, rows in rows_by_round.items():
        report.answered += add_answers(paths[round_index], rows)
    report.completion_tokens += sum(c.completion_tokens for c in completions)
    report.generation_s += seconds

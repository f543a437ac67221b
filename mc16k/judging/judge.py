"""Judges: turn (question, answer) pairs into stored judgments, remote (chat + parser) or local (G-Eval).

A *unit* is one stored judgment: all metrics of one answer (mode ``all``) or one metric of it (mode
``per_metric``). Its key is (judge model, prompt version, metric mode, metric group, question hash, answer
hash), so identical answers are judged once and a re-run skips every unit already in the store.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mc16k.errors import UserError
from mc16k.judging.config import JudgeConfig, MetricMode
from mc16k.judging.parsing import parse_reply
from mc16k.judging.rubric import Metric, Rubric, load_rubric
from mc16k.judging.store import STATUS_FAILED, STATUS_OK, open_store, text_sha
from mc16k.llm.config import Provider
from mc16k.llm.runner import FIRST_CALL, AsyncRunner
from mc16k.llm.store import JsonlStore
from mc16k.llm.types import ChatRequest, LLMSetupError, PermanentLLMError, UnfinishedCallError, Usage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JudgingUnit:
    key: str
    question_id: Any
    question: str
    answer: str
    metrics: tuple[Metric, ...]
    group: str  # "all" or the metric key


def judge_model_id(cfg: JudgeConfig) -> str:
    """What identifies the judging model in cache keys (a GGUF file name rather than a machine-local dir)."""
    return f"{cfg.llm.provider.value}:{cfg.llm.gguf_file or cfg.llm.model}"


def build_units(cfg: JudgeConfig, rubric: Rubric, pairs: list[tuple[Any, str, str]]) -> list[JudgingUnit]:
    """Units for (question_id, question, answer) pairs, deduplicated by key, in input order."""
    groups: list[tuple[str, tuple[Metric, ...]]]
    if cfg.mode is MetricMode.all:
        groups = [("all", rubric.metrics)]
    else:
        groups = [(m.key, (m,)) for m in rubric.metrics]
    units: dict[str, JudgingUnit] = {}
    model_id = judge_model_id(cfg)
    for question_id, question, answer in pairs:
        for group, metrics in groups:
            key = "|".join(
                (model_id, rubric.version, cfg.mode.value, group, f"q:{text_sha(question)}", f"a:{text_sha(answer)}")
            )
            units.setdefault(key, JudgingUnit(key, question_id, question, answer, metrics, group))
    return list(units.values())


def unit_key_parts(key: str) -> dict[str, str]:
    """The fields of a unit key, for joining judgments back to answers."""
    model_id, version, mode, group, question, answer = key.rsplit("|", 5)
    return {
        "judge_model": model_id,
        "prompt_version": version,
        "mode": mode,
        "group": group,
        "question_sha": question.removeprefix("q:"),
        "answer_sha": answer.removeprefix("a:"),
    }


class Backend(Protocol):
    sequential: bool  # True: judge units one by one in order (a local model reuses its KV cache)

    async def judge(self, unit: JudgingUnit, order: int = 0) -> tuple[dict[str, dict[str, Any]], Usage, dict]: ...

    def retry_counts(self) -> dict[str, int]: ...

    def spent(self) -> Usage | None: ...

    async def close(self) -> None: ...


class UnfinishedUnit(Exception):
    """A unit whose calls ran out of retries without a reply to judge: it is left for the next run."""

    def __init__(self, reason: str, usage: Usage):
        super().__init__(reason)
        self.usage = usage


class JudgingStopped(UserError):
    """The run stopped before every unit was judged (endpoint down, setup error, retries exhausted); what
    was judged is stored, nothing else is. ``summary`` says what the run did."""

    def __init__(self, message: str, summary: JudgingSummary | None = None):
        super().__init__(message)
        self.summary = summary


class RemoteBackend:
    """A chat model: structured output where supported, tolerant by-name parsing, re-ask only what failed
    (in a follow-up turn that quotes the judge's reply and says what could not be read)."""

    sequential = False

    def __init__(self, cfg: JudgeConfig, rubric: Rubric, runner: AsyncRunner | None):
        self.cfg = cfg
        self.rubric = rubric
        self.runner = runner

    def request(self, unit: JudgingUnit, metrics: list[Metric]) -> ChatRequest:
        return ChatRequest(
            system=self.rubric.templates["system.txt"],
            user=self.rubric.user_prompt(unit.question, unit.answer, metrics, score_only=False),
            json_schema=self.rubric.json_schema(metrics),
            schema_name="counseling_judgment",
        )

    def reask(self, previous: ChatRequest, reply: str, errors: dict[str, str]) -> ChatRequest:
        """The conversation so far plus the judge's reply and a turn saying what was wrong with it."""
        metrics = [self.rubric.metric(key) for key in errors]
        return dataclasses.replace(
            previous,
            json_schema=self.rubric.json_schema(metrics),
            followups=(*previous.followups, (reply, self.rubric.reask_prompt(errors))),
        )

    async def judge(self, unit: JudgingUnit, order: int = 0) -> tuple[dict[str, dict[str, Any]], Usage, dict]:
        """(metric results, usage, extra record fields). Raises :class:`UnfinishedUnit` when a call ran out of
        retries (nothing to store) and :class:`LLMSetupError` when the run must stop."""
        assert self.runner is not None, "a dry run has no runner"
        results: dict[str, dict[str, Any]] = {}
        usage = Usage()
        pending = list(unit.metrics)
        request = self.request(unit, pending)
        structured_output = None
        for attempt in range(self.cfg.max_reasks + 1):
            priority = (FIRST_CALL if attempt == 0 else 0, order)  # re-asks before any unit's first call
            try:
                response = await self.runner.complete(request, priority)
            except UnfinishedCallError as err:
                usage.add(err.usage)
                raise UnfinishedUnit(str(err), usage) from err
            except LLMSetupError:
                raise  # a bad key, a refused request shape or a dead endpoint: stop instead of storing failures
            except PermanentLLMError as err:  # this request was refused after others succeeded
                usage.add(err.usage)
                for metric in pending:
                    results[metric.key] = {"status": STATUS_FAILED, "score": None, "reason": f"api: {err}"}
                break
            usage.add(response.usage)
            structured_output = response.structured_output
            parsed = parse_reply(response.text, pending, self.rubric.score_min, self.rubric.score_max)
            for key, score in parsed.scores.items():
                results[key] = {
                    "status": STATUS_OK,
                    "score": score,
                    "whole": key not in parsed.not_whole,
                    "justification": parsed.justifications.get(key, ""),
                    "asks": attempt + 1,
                }
            errors = {m.key: parsed.errors[m.key] for m in pending if m.key in parsed.errors}
            if not response.text.strip():
                errors = dict.fromkeys(errors, "the reply was empty")
            pending = [m for m in pending if m.key in errors]
            for metric in pending:
                results[metric.key] = {
                    "status": STATUS_FAILED,
                    "score": None,
                    "reason": f"unreadable after {attempt + 1} asks: {errors[metric.key]}",
                }
            if not pending:
                break
            request = self.reask(request, response.text, errors)
        return results, usage, {"structured_output": structured_output}

    def retry_counts(self) -> dict[str, int]:
        return dict(self.runner.retries) if self.runner is not None else {}

    def spent(self) -> Usage | None:
        return self.runner.usage if self.runner is not None else None

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.client.close()


class LocalBackend:
    """An in-process transformers model: score = probability-weighted mean over 1-10 for each metric."""

    sequential = True

    def __init__(self, cfg: JudgeConfig, rubric: Rubric, scorer: Any):
        self.rubric = rubric
        self.scorer = scorer

    async def judge(self, unit: JudgingUnit, order: int = 0) -> tuple[dict[str, dict[str, Any]], Usage, dict]:
        metrics = list(unit.metrics)
        user = self.rubric.user_prompt(unit.question, unit.answer, metrics, score_only=True)
        prefixes = [self.rubric.score_prefix(m) for m in metrics]
        try:
            distributions = await self.scorer.ascore(self.rubric.templates["system.txt"], user, prefixes)
        except (ValueError, RuntimeError) as err:
            failed = {"status": STATUS_FAILED, "score": None, "reason": f"local scoring: {err}"}
            return {m.key: dict(failed) for m in metrics}, Usage(calls=1), {}
        results = {
            m.key: {
                "status": STATUS_OK,
                "score": round(dist.expected(), 4),
                "probabilities": {c: round(p, 5) for c, p in dist.probabilities.items()},
                "valid_mass": round(dist.valid_mass, 5),
            }
            for m, dist in zip(metrics, distributions, strict=True)
        }
        return results, Usage(calls=1), {}

    def retry_counts(self) -> dict[str, int]:
        return {}

    def spent(self) -> Usage | None:
        return None

    async def close(self) -> None:
        return None


def build_backend(cfg: JudgeConfig, rubric: Rubric, cache_dir: str | Path | None = None) -> Backend:
    """The backend for ``cfg`` (``cache_dir``: where a local judge's GGUF file is unpacked once)."""
    if cfg.llm.provider is Provider.local_hf:
        from mc16k.llm.local_hf import LocalHFScorer

        return LocalBackend(cfg, rubric, LocalHFScorer(cfg.llm, cache_dir))
    from mc16k.llm.clients import build_chat_client

    runner = AsyncRunner(build_chat_client(cfg.llm), cfg.runner, cfg.llm.max_output_tokens)
    return RemoteBackend(cfg, rubric, runner)


@dataclass
class JudgingSummary:
    units_total: int
    units_cached: int
    units_judged: int
    metrics_failed: int
    usage: Usage  # every call this run made (failed attempts included) and every billed token
    cost_usd: float
    seconds: float
    retries: dict[str, int]  # retried calls by reason (HTTP 429, timeout, ...)
    units_unfinished: int = 0  # left unjudged (retries exhausted, or the run stopped): judged by the next run


def estimate(cfg: JudgeConfig, rubric: Rubric, units: list[JudgingUnit]) -> dict[str, float]:
    """Calls and tokens a run of ``units`` would need at least (re-asks and retries come on top)."""
    backend = RemoteBackend(cfg, rubric, runner=None)
    input_tokens = sum(backend.request(u, list(u.metrics)).estimated_prompt_tokens() for u in units)
    output_tokens = 0 if cfg.llm.provider is Provider.local_hf else len(units) * cfg.llm.max_output_tokens
    usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens, calls=len(units))
    return {
        "calls": len(units),
        "input_tokens": input_tokens,
        "max_output_tokens": output_tokens,
        "max_cost_usd": round(usage.cost_usd(cfg.llm.pricing), 4),
    }


def pending_units(units: list[JudgingUnit], stored: dict[str, dict], retry_failed: bool) -> list[JudgingUnit]:
    """Units without a stored judgment (or, with ``retry_failed``, whose stored judgment has a failure)."""

    def done(unit: JudgingUnit) -> bool:
        record = stored.get(unit.key)
        if record is None:
            return False
        return not (retry_failed and any(m["status"] != STATUS_OK for m in record["metrics"].values()))

    return [u for u in units if not done(u)]


async def judge_units(
    cfg: JudgeConfig, backend: Backend, store: JsonlStore, units: list[JudgingUnit], retry_failed: bool = False
) -> JudgingSummary:
    """Judge every unit not yet in ``store``, storing each judgment the moment it is complete.

    Raises :class:`JudgingStopped` (with the summary) when the backend says the run must stop, or when some
    units could not be judged: only judgments, complete or failed on content, are ever stored.
    """
    started = time.monotonic()
    todo = pending_units(units, store.records, retry_failed)
    usage = Usage()
    failed = 0
    finished = 0
    unfinished: list[str] = []

    in_progress = asyncio.Semaphore(cfg.max_units_in_progress or 2 * cfg.runner.concurrency)

    async def one(unit: JudgingUnit, order: int) -> None:
        async with in_progress:  # units are admitted in order; a slot frees once the judgment is stored
            await judge_and_store(unit, order)

    async def judge_and_store(unit: JudgingUnit, order: int) -> None:
        nonlocal failed, finished
        try:
            results, unit_usage, extra = await backend.judge(unit, order)
        except UnfinishedUnit as err:
            usage.add(err.usage)
            unfinished.append(str(err))
            return
        record = {
            "key": unit.key,
            "judge": cfg.name,
            **unit_key_parts(unit.key),
            **extra,
            "question_id": unit.question_id,
            "metrics": results,
            "usage": unit_usage.as_dict(),
            "tstamp": time.time(),
        }
        await store.append_async(record)  # durable before it counts as done
        usage.add(unit_usage)
        failed += sum(1 for m in results.values() if m["status"] != STATUS_OK)
        finished += 1
        if finished % 50 == 0 or finished == len(todo):
            log.info("judge %s: %d/%d judgments stored", cfg.name, finished, len(todo))

    def summary() -> JudgingSummary:
        spent = backend.spent() or usage
        return JudgingSummary(
            units_total=len(units),
            units_cached=len(units) - len(todo),
            units_judged=finished,
            metrics_failed=failed,
            usage=spent,
            cost_usd=round(spent.cost_usd(cfg.llm.pricing), 4),
            seconds=round(time.monotonic() - started, 2),
            retries=backend.retry_counts(),
            units_unfinished=len(todo) - finished,
        )

    try:
        if backend.sequential:
            for order, unit in enumerate(todo):
                await one(unit, order)
        else:  # the runner's priority slots and rate limiter pace the calls
            tasks = [asyncio.create_task(one(u, order)) for order, u in enumerate(todo)]
            try:
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
    except LLMSetupError as err:
        raise JudgingStopped(f"judge {cfg.name}: {err}", summary()) from err
    done = summary()
    if unfinished:
        raise JudgingStopped(
            f"judge {cfg.name}: {len(unfinished)} of {len(todo)} judgments were not made (last: {unfinished[-1]}); "
            "nothing was stored for them: run the same command again to judge them",
            done,
        )
    return done


def run_judge(
    cfg: JudgeConfig,
    pairs: list[tuple[Any, str, str]],
    judgments_dir: str | Path,
    retry_failed: bool = False,
    cache_dir: str | Path | None = None,
) -> JudgingSummary:
    """Judge (question_id, question, answer) pairs with one judge into its store; returns what it did."""
    rubric = load_rubric(cfg.rubric_dir)
    units = build_units(cfg, rubric, pairs)

    async def main() -> JudgingSummary:
        backend = build_backend(cfg, rubric, cache_dir)
        try:
            with open_store(judgments_dir, cfg.name) as store:
                return await judge_units(cfg, backend, store, units, retry_failed)
        finally:
            await backend.close()

    return asyncio.run(main())

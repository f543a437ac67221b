"""A transformers model in this process that scores instead of generating (G-Eval style).

For a prompt ending in e.g. ``"Empathy score (1-10): "`` the score is the probability-weighted mean over the
candidate strings ``"1"`` ... ``"10"``, so a reading always exists. Candidates are scored honestly whatever the
tokenizer does with them: a candidate's probability is the product of its tokens' probabilities (``"10"`` may
be ``"1"`` then ``"0"``) times the probability that no further digit follows (so ``"1"`` does not also count
the mass of ``"10"`` or ``"15"``). The KV cache of the longest shared token prefix is reused, so scoring 7
metrics after one long question+answer costs one long forward pass and a few short ones.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import threading
from dataclasses import dataclass

import torch

from mc16k.dtypes import to_torch_dtype
from mc16k.llm.config import LLMConfig

SCORE_CHOICES = tuple(str(score) for score in range(1, 11))


@dataclass(frozen=True)
class ScoreDistribution:
    """Normalised probabilities over the candidate scores, and how much raw mass the model put on them."""

    probabilities: dict[str, float]
    valid_mass: float  # before normalisation: low values mean the model wanted to say something else

    def expected(self) -> float:
        return sum(int(choice) * p for choice, p in self.probabilities.items())


def _common_prefix_len(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class LocalHFScorer:
    """Loads the model once; ``score`` is thread-safe (one forward at a time) and has an async wrapper."""

    def __init__(self, cfg: LLMConfig):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        load_kwargs = {"gguf_file": cfg.gguf_file} if cfg.gguf_file else {}
        self.tokenizer = AutoTokenizer.from_pretrained(cfg.model, **load_kwargs)
        self.model = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=to_torch_dtype(cfg.dtype), **load_kwargs)
        self.model.to(cfg.device).eval()
        self.device = torch.device(cfg.device)
        self._lock = threading.Lock()
        vocab = self.tokenizer.convert_ids_to_tokens(list(range(len(self.tokenizer))))
        decoded = [self.tokenizer.convert_tokens_to_string([t]) if t is not None else "" for t in vocab]
        digit_ids = [i for i, text in enumerate(decoded) if text[:1].isdigit()]
        self._digit_ids = torch.tensor(digit_ids, dtype=torch.long)
        forward_args = inspect.signature(self.model.forward).parameters
        self._cache_argument = "cache" if "cache" in forward_args else "past_key_values"  # renamed in transformers 5
        self._cache = None
        self._cached_ids: list[int] = []
        self._last_logits: torch.Tensor | None = None

    def _render(self, system: str, user: str) -> str:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        if self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return f"{system}\n\n{user}\n\n"

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def _advance(self, target: list[int], max_keep: int | None = None) -> torch.Tensor:
        """Bring the KV cache to exactly ``target``, reusing at most ``max_keep`` cached tokens of the shared
        prefix; returns the next-token log-probs at every fed position."""
        from transformers import DynamicCache

        keep = min(_common_prefix_len(self._cached_ids, target), len(target) - 1)  # feed >= 1 token
        if max_keep is not None:
            keep = min(keep, max_keep)
        if self._cache is None or keep == 0:
            self._cache, keep = DynamicCache(), 0
        elif len(self._cached_ids) > keep:
            self._cache.crop(keep - len(self._cached_ids))  # negative: tokens to drop (every transformers version)
        feed = torch.tensor([target[keep:]], dtype=torch.long, device=self.device)
        with torch.no_grad():
            out = self.model(input_ids=feed, use_cache=True, **{self._cache_argument: self._cache})
        self._cached_ids = list(target)
        return torch.log_softmax(out.logits[0].float(), dim=-1).cpu()

    def _score_one(self, context: str, assistant_prefix: str) -> ScoreDistribution:
        candidates = [self._ids(context + assistant_prefix + choice) for choice in SCORE_CHOICES]
        branch = min(_common_prefix_len(candidates[0], other) for other in candidates[1:])
        log_p_first = self._advance(candidates[0][:branch])[-1]
        raw: dict[str, float] = {}
        for choice, ids in zip(SCORE_CHOICES, candidates, strict=True):
            continuation = ids[branch:]
            log_probs = self._advance(ids, max_keep=branch)  # row i predicts the token after continuation[i]
            log_p = float(log_p_first[continuation[0]])
            for position in range(1, len(continuation)):
                log_p += float(log_probs[position - 1, continuation[position]])
            p_more_digits = float(log_probs[-1, self._digit_ids].exp().sum())
            raw[choice] = math.exp(log_p) * max(0.0, 1.0 - p_more_digits)
        mass = sum(raw.values())
        if mass <= 0.0:
            raise ValueError("the model put no probability on any score 1-10")
        return ScoreDistribution({c: p / mass for c, p in raw.items()}, valid_mass=mass)

    def score(self, system: str, user: str, assistant_prefixes: list[str]) -> list[ScoreDistribution]:
        """One distribution over 1-10 per assistant prefix, each continuing the same system+user prompt."""
        context = self._render(system, user)
        with self._lock:
            return [self._score_one(context, prefix) for prefix in assistant_prefixes]

    async def ascore(self, system: str, user: str, assistant_prefixes: list[str]) -> list[ScoreDistribution]:
        return await asyncio.to_thread(self.score, system, user, assistant_prefixes)

"""Seeds per round and per question, and a sampler whose draws do not depend on the batch.

Each (round, question) gets its own seed and its own random generator, so an answer is the same whether
its question was generated alone, in a batch of 8, or after a resume in a different batch (up to float
noise from padding). vLLM takes the same per-request seed natively.
"""

from __future__ import annotations

import hashlib

import torch
from transformers import LogitsProcessor

from mc16k.errors import BadInputError
from mc16k.inference.config import GenerationConfig


def round_seeds(base_seed: int, rounds: int, explicit: list[int] | None) -> list[int]:
    """One distinct seed per round (1-based): ``explicit`` if given, else ``base_seed + k - 1``."""
    if rounds < 1:
        raise BadInputError(f"infer.rounds must be >= 1, got {rounds}")
    seeds = list(explicit) if explicit is not None else [base_seed + k for k in range(rounds)]
    if len(seeds) != rounds:
        raise BadInputError(f"infer.round_seeds has {len(seeds)} seeds but infer.rounds={rounds}")
    if len(set(seeds)) != rounds:
        raise BadInputError(f"infer.round_seeds must be distinct, got {seeds}")
    return seeds


def question_seed(round_seed: int, question_id: int | str) -> int:
    """A stable 63-bit seed for one question in one round (independent of batch and order)."""
    digest = hashlib.sha256(f"{round_seed}:{question_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


class PerRowSampler(LogitsProcessor):
    """Temperature, top-k and top-p sampling with one ``torch.Generator`` per batch row.

    Used with greedy ``generate``: it returns scores that are -inf everywhere but the sampled token, so the
    argmax picks the row's own draw.
    """

    def __init__(self, seeds: list[int], params: GenerationConfig, device: torch.device | str):
        if params.temperature <= 0:
            raise BadInputError(
                f"infer.generation.temperature must be > 0 when sampling, got {params.temperature}"
            )
        if not 0 < params.top_p <= 1:
            raise BadInputError(f"infer.generation.top_p must be in (0, 1], got {params.top_p}")
        self.params = params
        self.generators = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        logits = scores.float() / self.params.temperature
        if self.params.top_k > 0:
            kth = torch.topk(logits, min(self.params.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if self.params.top_p < 1.0:
            sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
            sorted_probs = sorted_logits.softmax(dim=-1)
            # drop a token when the mass before it already reaches top_p (the top token always stays)
            drop_sorted = (sorted_probs.cumsum(dim=-1) - sorted_probs) >= self.params.top_p
            logits = logits.masked_fill(drop_sorted.scatter(1, order, drop_sorted), float("-inf"))
        # inverse-CDF draw: one uniform per row from the row's own generator, the search vectorized
        cdf = logits.softmax(dim=-1).cumsum(dim=-1)
        uniforms = torch.stack([torch.rand((), generator=gen, device=cdf.device) for gen in self.generators])
        picked = torch.searchsorted(cdf, (uniforms * cdf[:, -1]).unsqueeze(1), right=True)
        choice = torch.full_like(scores, float("-inf"))
        return choice.scatter(1, picked.clamp(max=scores.shape[-1] - 1), 0.0)

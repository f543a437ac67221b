"""The local G-Eval scorer: honest probabilities over "1".."10" (multi-token "10" included), identical with
and without KV-cache reuse, on the tiny random model (fast) and on SmolLM2 (slow)."""

from __future__ import annotations

import math

import pytest
import torch

from mc16k.llm.config import LLMConfig, Provider
from mc16k.llm.local_hf import SCORE_CHOICES, LocalHFScorer, _common_prefix_len

SYSTEM = "You are an impartial expert evaluator of counseling responses."
USER = "[The person's message]\nI cannot sleep.\n\n[The assistant's response]\nTry a regular bedtime.\n\nRate it."
PREFIXES = ["Active Listening score (1-10): ", "Empathy & Validation score (1-10): "]


def brute_force(scorer: LocalHFScorer, context: str, prefix: str) -> dict[str, float]:
    """Every candidate scored by a full forward pass of its own text, no cache: the reference."""
    raw = {}
    for choice in SCORE_CHOICES:
        full = scorer._ids(context + prefix + choice)
        base = scorer._ids(context + prefix)
        shared = _common_prefix_len(full, base)
        with torch.no_grad():
            logits = scorer.model(input_ids=torch.tensor([full])).logits[0].float()
        log_probs = torch.log_softmax(logits, dim=-1)
        log_p = sum(float(log_probs[i - 1, full[i]]) for i in range(shared, len(full)))
        p_digit = float(log_probs[-1, scorer._digit_ids].exp().sum())
        raw[choice] = math.exp(log_p) * (1 - p_digit)
    total = sum(raw.values())
    return {c: p / total for c, p in raw.items()}


def check_scorer(scorer: LocalHFScorer) -> None:
    first = scorer.score(SYSTEM, USER, PREFIXES)
    scorer.score(SYSTEM, "something else entirely", PREFIXES[:1])  # moves the cache elsewhere
    again = scorer.score(SYSTEM, USER, PREFIXES)
    context = scorer._render(SYSTEM, USER)
    for dist, repeat, prefix in zip(first, again, PREFIXES, strict=True):
        assert set(dist.probabilities) == set(SCORE_CHOICES)
        assert math.isclose(sum(dist.probabilities.values()), 1.0, rel_tol=1e-6)
        assert 1.0 <= dist.expected() <= 10.0 and 0.0 < dist.valid_mass <= 1.0 + 1e-6
        reference = brute_force(scorer, context, prefix)
        for choice in SCORE_CHOICES:
            assert dist.probabilities[choice] == pytest.approx(reference[choice], abs=1e-4)
            assert repeat.probabilities[choice] == pytest.approx(dist.probabilities[choice], abs=1e-5)


def test_tiny_model_scores_match_brute_force(tiny_model_dir):
    scorer = LocalHFScorer(LLMConfig(provider=Provider.local_hf, model=str(tiny_model_dir)))
    ten = scorer._ids("score: 10")[len(scorer._ids("score: ")) - 1 :]
    assert len(ten) >= 1  # whatever "10" becomes, the reference agrees with the cached scorer
    check_scorer(scorer)


@pytest.mark.slow
def test_smollm2_scores_match_brute_force():
    from mc16k.models.loading import SMOLLM2_GGUF_FILE, smollm2_gguf_path

    scorer = LocalHFScorer(
        LLMConfig(provider=Provider.local_hf, model=str(smollm2_gguf_path().parent), gguf_file=SMOLLM2_GGUF_FILE)
    )
    assert scorer._ids("score: 10")[-2:] == scorer._ids("1") + scorer._ids("0")  # "10" is two tokens here
    check_scorer(scorer)

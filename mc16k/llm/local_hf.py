"""A transformers model in this process that scores instead of generating (G-Eval style).

For a prompt ending in e.g. ``"Empathy score (1-10): "`` the score is the probability-weighted mean over the
candidate strings ``"1"`` ... ``"10"``, so a reading always exists. Candidates are scored honestly whatever the
tokenizer does with them: a candidate's probability is the product of its tokens' probabilities (``"10"`` may
be ``"1"`` then ``"0"``) times the probability that no further digit follows (so ``"1"`` does not also count
the mass of ``"10"`` or ``"15"``). The KV cache of the longest shared token prefix is reused across calls,
and every (metric prefix, score) continuation of a prompt is evaluated in one extra forward pass as a token
tree, so 7 metrics after one long question+answer cost one long pass and one short one.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from mc16k.errors import hub_access
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

    def __init__(self, cfg: LLMConfig, cache_dir: str | Path | None = None):
        """Load through the project's one model loader (a GGUF file is unpacked once to dense weights under
        ``cache_dir``: far faster than computing on packed GGUF weights; ``load_in_4bit`` for big judges)."""
        from transformers import AutoTokenizer

        from mc16k.models.config import QuantConfig
        from mc16k.models.loading import load_base_model
        from mc16k.schema import ModelConfig

        if cfg.num_threads is not None:
            torch.set_num_threads(cfg.num_threads)
        with hub_access("local judge model", cfg.model):
            self.tokenizer = AutoTokenizer.from_pretrained(cfg.model, gguf_file=cfg.gguf_file)
        model_cfg = ModelConfig(name=f"judge:{cfg.gguf_file or cfg.model}", name_or_path=cfg.model,
                                gguf_file=cfg.gguf_file, dtype=cfg.dtype)
        quant_cfg = QuantConfig(enabled=cfg.load_in_4bit, compute_dtype=cfg.dtype)
        self.model = load_base_model(model_cfg, quant_cfg, device_map={"": cfg.device}, cache_dir=cache_dir)
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

    def _render(self, system: str, user: str) -> str:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        if self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return f"{system}\n\n{user}\n\n"

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def _cache_to(self, target: list[int]) -> None:
        """Bring the KV cache to exactly ``target``, computing only what is not already cached."""
        from transformers import DynamicCache

        keep = _common_prefix_len(self._cached_ids, target)
        if self._cache is None or keep == 0:
            self._cache, self._cached_ids, keep = DynamicCache(), [], 0
        elif len(self._cached_ids) > keep:
            self._drop_cached(len(self._cached_ids) - keep)
        if keep < len(target):
            feed = torch.tensor([target[keep:]], dtype=torch.long, device=self.device)
            with torch.no_grad():
                self.model(input_ids=feed, use_cache=True, **{self._cache_argument: self._cache})
        self._cached_ids = list(target)

    def _drop_cached(self, count: int) -> None:
        self._cache.crop(-count)  # negative: tokens to drop (the form every transformers version accepts)

    def _forward_tree(self, nodes: list[tuple[int, int]]) -> torch.Tensor:
        """Next-token log-probs after each node of a token tree hanging off the cached prefix, in one forward.

        ``nodes`` are (token, parent index or -1), parents first. Each node attends to the cache and to its
        own ancestors only (a custom 4D mask, positions by depth), so every branch sees exactly the text it
        would see alone. The tree is dropped from the cache afterwards.
        """
        cached = len(self._cached_ids)
        depth: list[int] = []
        allowed = torch.zeros(len(nodes), len(nodes), dtype=torch.bool)
        for i, (_, parent) in enumerate(nodes):
            depth.append(0 if parent < 0 else depth[parent] + 1)
            if parent >= 0:
                allowed[i] = allowed[parent]
            allowed[i, i] = True
        dtype = self.model.dtype
        mask = torch.zeros(1, 1, len(nodes), cached + len(nodes), dtype=dtype)
        mask[0, 0, :, cached:] = torch.where(allowed, 0.0, torch.finfo(dtype).min)
        tokens = torch.tensor([[token for token, _ in nodes]], dtype=torch.long, device=self.device)
        positions = torch.tensor([[cached + d for d in depth]], dtype=torch.long, device=self.device)
        with torch.no_grad():
            out = self.model(
                input_ids=tokens,
                position_ids=positions,
                attention_mask=mask.to(self.device),
                use_cache=True,
                **{self._cache_argument: self._cache},
            )
        self._drop_cached(len(nodes))
        return torch.log_softmax(out.logits[0].float(), dim=-1).cpu()

    def score(self, system: str, user: str, assistant_prefixes: list[str]) -> list[ScoreDistribution]:
        """One distribution over 1-10 per assistant prefix, each continuing the same system+user prompt.

        Every (prefix, score) text is tokenized whole; their shared tokens come from the KV cache (reused
        across calls), the rest forms one token tree evaluated in a single forward pass.
        """
        context = self._render(system, user)
        sequences = [self._ids(context + prefix + choice) for prefix in assistant_prefixes for choice in SCORE_CHOICES]
        shared = min(_common_prefix_len(sequences[0], other) for other in sequences)
        root = max(0, shared - 1)  # the last shared token goes into the tree: its output scores first tokens
        with self._lock:
            self._cache_to(sequences[0][:root])
            nodes: list[tuple[int, int]] = []
            node_of: dict[tuple[int, ...], int] = {}
            for ids in sequences:
                parent = -1
                for end in range(root + 1, len(ids) + 1):
                    path = tuple(ids[root:end])
                    if path not in node_of:
                        node_of[path] = len(nodes)
                        nodes.append((ids[end - 1], parent))
                    parent = node_of[path]
            log_probs = self._forward_tree(nodes)
        results = []
        n_choices = len(SCORE_CHOICES)
        for index in range(len(assistant_prefixes)):
            group = sequences[index * n_choices : (index + 1) * n_choices]
            branch = min(_common_prefix_len(group[0], other) for other in group[1:])  # where the scores begin
            raw: dict[str, float] = {}
            for choice, ids in zip(SCORE_CHOICES, group, strict=True):
                # P(token k | tokens before it) is the output of the node holding token k-1
                log_p = sum(float(log_probs[node_of[tuple(ids[root:k])], ids[k]]) for k in range(branch, len(ids)))
                p_more_digits = float(log_probs[node_of[tuple(ids[root:])], self._digit_ids].exp().sum())
                raw[choice] = math.exp(log_p) * max(0.0, 1.0 - p_more_digits)
            mass = sum(raw.values())
            if mass <= 0.0:
                raise ValueError("the model put no probability on any score 1-10")
            results.append(ScoreDistribution({c: p / mass for c, p in raw.items()}, valid_mass=mass))
        return results

    async def ascore(self, system: str, user: str, assistant_prefixes: list[str]) -> list[ScoreDistribution]:
        return await asyncio.to_thread(self.score, system, user, assistant_prefixes)

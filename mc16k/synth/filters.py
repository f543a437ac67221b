"""Row filters with one reason each: off-format, refusal, too short, exact and near-duplicate.

A reply is checked in that order and rejected for the first reason that holds, so every rejected reply is
counted exactly once. Near-duplicates are found with MinHash LSH over word shingles (``datasketch``):
offline, deterministic (fixed hash seed), and sub-linear in the number of kept messages.
"""

from __future__ import annotations

import hashlib
import re

from datasketch import MinHash, MinHashLSH

from mc16k.synth.config import NearDuplicateConfig
from mc16k.synth.prompts import PromptSet

OFF_FORMAT = "off_format"
REFUSAL = "refusal"
TOO_SHORT = "too_short"
EXACT_DUPLICATE = "exact_duplicate"
NEAR_DUPLICATE = "near_duplicate"

_WORD = re.compile(r"[a-z0-9']+")


def word_count(text: str) -> int:
    """Words as the data layer counts them (whitespace-separated)."""
    return len(text.split())


def normalized_words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def content_reason(text: str, prompts: PromptSet, min_words: int) -> str | None:
    """Why a single reply is unusable on its own (None: usable)."""
    if not text.strip() or any(p.search(text) for p in prompts.offformat_patterns):
        return OFF_FORMAT
    if any(p.search(text) for p in prompts.refusal_patterns):
        return REFUSAL
    if word_count(text) < min_words:
        return TOO_SHORT
    return None


class DuplicateIndex:
    """Exact duplicates (same words, ignoring case, punctuation and spacing) and MinHash-LSH near-duplicates
    among the texts added so far; ``remove`` takes back a text whose row was rejected later."""

    def __init__(self, cfg: NearDuplicateConfig, near: bool = True):
        self.cfg = cfg
        self.near = near
        self._exact: dict[str, str] = {}  # digest -> key
        self._digests: dict[str, str] = {}  # key -> digest
        self._lsh = MinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm) if near else None

    def _minhash(self, words: list[str]) -> MinHash:
        n = self.cfg.shingle_words
        shingles = {" ".join(words[i : i + n]) for i in range(max(1, len(words) - n + 1))}
        minhash = MinHash(num_perm=self.cfg.num_perm, seed=1)
        minhash.update_batch([s.encode() for s in shingles])
        return minhash

    def check(self, text: str) -> tuple[str | None, str | None, MinHash | None]:
        """(reason, key of the text it duplicates, its MinHash to pass to ``add``)."""
        words = normalized_words(text)
        digest = hashlib.sha256(" ".join(words).encode()).hexdigest()
        if digest in self._exact:
            return EXACT_DUPLICATE, self._exact[digest], None
        if self._lsh is None:
            return None, None, None
        minhash = self._minhash(words)
        similar = self._lsh.query(minhash)
        if similar:
            return NEAR_DUPLICATE, sorted(similar)[0], minhash
        return None, None, minhash

    def add(self, key: str, text: str, minhash: MinHash | None = None) -> None:
        words = normalized_words(text)
        digest = hashlib.sha256(" ".join(words).encode()).hexdigest()
        self._exact[digest] = key
        self._digests[key] = digest
        if self._lsh is not None:
            self._lsh.insert(key, minhash if minhash is not None else self._minhash(words))

    def remove(self, key: str) -> None:
        digest = self._digests.pop(key)
        del self._exact[digest]
        if self._lsh is not None:
            self._lsh.remove(key)

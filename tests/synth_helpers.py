"""A loopback responder for the data pipelines: replies seeded by (prompt, how often it was asked), with
planted bad ones.

A real model samples a new reply each time it is asked the same prompt; so does this responder, so the only
duplicates the pipeline sees are the planted ones and every filter count can be predicted exactly.

Patient prompts (they name a topic) get a ~320-word message that starts "I am writing about <topic>." and is
otherwise random words seeded by the prompt; a share of them are planted instead: refusals, near-duplicates
of one base text (3 words changed), exact duplicates, too-short messages and off-format ones. Counselor
prompts get a ~120-word answer, sometimes a refusal (never for a planted message, so that every planted
duplicate's first copy is kept). ``sent`` counts what was sent by kind.
"""

from __future__ import annotations

import collections
import hashlib
import random
import re

TOPIC = re.compile(r"Topic of the message: (.+)")
VOCAB = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "pe", "ra", "si", "tu", "ve", "zo") for b in range(300)]
BASE_WORDS = random.Random("near-duplicate base").choices(VOCAB, k=320)
EXACT_TEXT = "I am writing about my worries. " + " ".join(random.Random("exact").choices(VOCAB, k=320))
REFUSAL = "I'm sorry, but I can't help with that request."
PLANTED_MARKER = "zzplanted"  # in planted near-duplicates, so the answer side can tell them apart

# shares of patient replies by kind (the rest are unique messages)
PLAN = (("refusal", 0.05), ("near", 0.08), ("exact", 0.04), ("short", 0.04), ("offformat", 0.03))


def _unit(text: str) -> tuple[float, random.Random]:
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64, random.Random(digest)


class SynthResponder:
    def __init__(self, answer_refusal_share: float = 0.03):
        self.answer_refusal_share = answer_refusal_share
        self.sent: collections.Counter[str] = collections.Counter()
        self._asked: collections.Counter[str] = collections.Counter()

    def patient(self, topic: str, prompt: str) -> tuple[str, str]:
        u, rng = _unit(prompt)
        kind, edge = "unique", 0.0
        for planned, share in PLAN:
            edge += share
            if u < edge:
                kind = planned
                break
        opening = f"I am writing about {topic}."
        if kind == "refusal":
            return kind, REFUSAL
        if kind == "near":
            words = list(BASE_WORDS)
            for position in rng.sample(range(len(words)), 3):
                words[position] = rng.choice(VOCAB)
            return kind, f"{opening} {PLANTED_MARKER} " + " ".join(words)
        if kind == "exact":
            return kind, EXACT_TEXT
        if kind == "short":
            return kind, f"{opening} " + " ".join(rng.choices(VOCAB, k=40))
        if kind == "offformat":
            return kind, "Sure! Here is the message you asked for:\n\n" + " ".join(rng.choices(VOCAB, k=320))
        return kind, f"{opening} " + " ".join(rng.choices(VOCAB, k=320))

    def answer(self, prompt: str) -> tuple[str, str]:
        u, rng = _unit("answer\n" + prompt)
        planted = PLANTED_MARKER in prompt or EXACT_TEXT in prompt
        if not planted and u < self.answer_refusal_share:
            return "answer_refusal", REFUSAL
        return "answer", "Thank you for sharing this with me. " + " ".join(rng.choices(VOCAB, k=120))

    def __call__(self, prompt: str) -> str | None:
        occurrence = self._asked[prompt]
        self._asked[prompt] += 1
        match = TOPIC.search(prompt)
        if match:
            kind, text = self.patient(match.group(1).strip(), f"{occurrence}\n{prompt}")
            self.sent[f"message_{kind}"] += 1
        elif "counselling assistant" in prompt:
            kind, text = self.answer(f"{occurrence}\n{prompt}")
            self.sent[kind] += 1
        else:
            return None
        return text

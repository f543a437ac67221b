"""Answering a benchmark: question sets, who answers (base, fine-tuned run, baseline), seeded batched
generation (HF or vLLM) and resumable per-(model, round) answer files that judging reads."""

"""mc16k: reproduce and extend MentalChat16K (KDD 2025) — QLoRA fine-tuning, benchmark answers, LLM judges."""

__version__ = "0.1.0"

"""Config resolvers for models: cheap to register, heavy work (torch) only when one is resolved."""

from __future__ import annotations

from mc16k.models.smollm2 import smollm2_dir

__all__ = ["smollm2_dir", "tiny_model_dir"]


def tiny_model_dir(out_dir: str, arch: str = "llama") -> str:
    """``${tiny_model:<dir>[,<arch>]}``: a tiny random model built on first use (smoke runs and tests)."""
    from mc16k.models.tiny import build_tiny_model

    return str(build_tiny_model(out_dir, arch=arch))

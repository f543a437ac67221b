"""Optimizer and schedule of the authors' recipe, built from ``_partial_`` config targets (conf/optim)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR

log = logging.getLogger(__name__)


def bitsandbytes_has_cuda() -> bool:
    """True when CUDA is available and bitsandbytes ships a CUDA backend (paged optimizers need both)."""
    if not torch.cuda.is_available():
        return False
    try:
        import bitsandbytes as bnb

        return bnb.optim.PagedAdamW32bit is not None
    except (ImportError, RuntimeError, AttributeError):
        return False


def adamw(
    params: Iterable[torch.nn.Parameter],
    lr: float,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    paged: bool | None = None,
) -> torch.optim.Optimizer:
    """AdamW; paged 32-bit (bitsandbytes) as the authors used it when CUDA allows, else torch's.

    ``paged=None`` picks automatically; ``True`` insists (and fails without CUDA), ``False`` never pages.
    """
    use_paged = bitsandbytes_has_cuda() if paged is None else paged
    if use_paged:
        import bitsandbytes as bnb

        return bnb.optim.PagedAdamW32bit(params, lr=lr, weight_decay=weight_decay, betas=tuple(betas))
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=tuple(betas))


def constant_with_warmup(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float) -> LambdaLR:
    """Linear warm-up over ``warmup_ratio`` of ``total_steps`` optimizer steps, then a constant rate."""
    if not 0.0 <= warmup_ratio < 1.0:
        raise ValueError(f"train.scheduler.warmup_ratio must be in [0, 1), got {warmup_ratio}")
    warmup_steps = max(1, round(total_steps * warmup_ratio)) if warmup_ratio > 0 else 0

    def factor(step: int) -> float:
        return min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0

    return LambdaLR(optimizer, factor)

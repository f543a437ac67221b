"""Optimizer and schedule of the authors' recipe, built from ``_partial_`` config targets (conf/optim)."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR
from transformers import get_constant_schedule_with_warmup

from mc16k.errors import BadInputError

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
    if paged is None and not use_paged and torch.cuda.is_available():
        message = (
            "CUDA is available but bitsandbytes' paged AdamW 32-bit (the authors' optimizer) is not: training "
            "with torch.optim.AdamW instead (no paging of optimizer states). Set train.optimizer.paged=false "
            "to choose it, or true to stop here"
        )
        log.warning(message)
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    if use_paged:
        import bitsandbytes as bnb

        return bnb.optim.PagedAdamW32bit(params, lr=lr, weight_decay=weight_decay, betas=tuple(betas))
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=tuple(betas))


def warmup_steps(total_steps: int, warmup_ratio: float) -> int:
    """``ceil(total_steps x warmup_ratio)`` as in transformers' ``TrainingArguments``: one step at least
    whenever the ratio is above 0 (3 % of a 16-step run is one warm-up step, not none)."""
    if not 0.0 <= warmup_ratio < 1.0:
        raise BadInputError(f"train.scheduler.warmup_ratio must be in [0, 1), got {warmup_ratio}")
    return math.ceil(total_steps * warmup_ratio)


def constant_with_warmup(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float) -> LambdaLR:
    """transformers' ``get_constant_schedule_with_warmup``: optimizer step k (from 0) runs at
    ``lr x k / warmup`` during the warm-up, so the first step at lr 0, then at the constant ``lr``."""
    steps = warmup_steps(total_steps, warmup_ratio)
    log.info("lr schedule: %d warm-up step(s) of %d, then constant", steps, total_steps)
    return get_constant_schedule_with_warmup(optimizer, num_warmup_steps=steps)

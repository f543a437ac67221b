"""The one place where config dtype names become torch dtypes."""

from __future__ import annotations

from enum import Enum

import torch

from mc16k.errors import BadInputError


class DType(str, Enum):
    """Dtype names accepted in configs; OmegaConf rejects any other string at compose time."""

    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"
    uint8 = "uint8"


_TORCH_DTYPES = {
    DType.float32: torch.float32,
    DType.bfloat16: torch.bfloat16,
    DType.float16: torch.float16,
    DType.uint8: torch.uint8,
}


def to_torch_dtype(name: DType | str) -> torch.dtype:
    """Resolve a config dtype (enum member or its name) to a ``torch.dtype``."""
    try:
        return _TORCH_DTYPES[DType(name if not isinstance(name, DType) else name.value)]
    except ValueError as err:
        raise BadInputError(f"unknown dtype {name!r}; expected one of {[d.value for d in DType]}") from err

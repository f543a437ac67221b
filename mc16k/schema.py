"""What the data and the model stages share, owned by neither: the model description and the label mask.

``data`` formats conversations for a ``ModelConfig``'s prompt format and masks prompt tokens with
``IGNORE_INDEX``; ``models`` loads that ``ModelConfig`` and ignores those labels in its loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Optional

from mc16k.dtypes import DType

IGNORE_INDEX = -100  # label of tokens the loss skips (prompt, padding); PyTorch's cross-entropy default


class PromptFormat(str, Enum):
    """How a conversation becomes text: the tokenizer's own chat template, or a template file of ours."""

    chat_template = "chat_template"
    alpaca = "alpaca"
    vicuna = "vicuna"


@dataclass
class ModelConfig:
    """A base model (or baseline) and what differs between models."""

    name: str = "???"  # short id used in run dirs and answer files
    name_or_path: str = "???"  # hub id or local dir
    gguf_file: Optional[str] = None  # load a GGUF file inside name_or_path (dequantized by transformers)
    revision: Optional[str] = None
    prompt_format: PromptFormat = PromptFormat.alpaca
    system_in_user: bool = False  # chat templates without a system role (Mistral-Instruct): prepend it to the user turn
    pad_token: Optional[str] = None  # null: add a dedicated pad token when the tokenizer has none / has pad == eos
    max_context: int = 4096
    dtype: DType = DType.bfloat16  # weights dtype when not quantized
    trust_remote_code: bool = False
    base_model: Optional[str] = None  # baselines: what they were tuned from (documentation only)

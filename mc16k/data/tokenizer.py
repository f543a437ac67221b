"""Load a model's tokenizer with a pad token chosen by config, never silently equal to EOS."""

from __future__ import annotations

import logging

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from mc16k.errors import BadInputError, hub_access
from mc16k.schema import ModelConfig

log = logging.getLogger(__name__)

ADDED_PAD_TOKEN = "<pad>"


def load_tokenizer(model_cfg: ModelConfig) -> PreTrainedTokenizerBase:
    """Tokenizer of ``model_cfg`` with its pad token set.

    ``model_cfg.pad_token`` names an existing token (e.g. ``<unk>`` for Llama/Mistral); it must be in the
    vocabulary and must differ from EOS. When it is null and the tokenizer has no pad token, or its pad
    equals EOS, a dedicated ``<pad>`` token is added: the model's embeddings must then be resized to
    ``len(tokenizer)``. Labels never depend on the pad id (they come from ``mc16k.data.formatting``), so
    EOS stays a training target either way; the rule keeps generation and padding unambiguous.
    """
    with hub_access(f"model {model_cfg.name!r}: tokenizer", model_cfg.name_or_path):
        tokenizer = AutoTokenizer.from_pretrained(
            model_cfg.name_or_path,
            revision=model_cfg.revision,
            gguf_file=model_cfg.gguf_file,
            trust_remote_code=model_cfg.trust_remote_code,
        )
    if not tokenizer.is_fast:
        raise BadInputError(
            f"model {model_cfg.name!r}: {type(tokenizer).__name__} is a slow tokenizer; mc16k needs a fast "
            "one (character offsets are used to cut over-long inputs)"
        )
    if tokenizer.eos_token is None:
        raise BadInputError(
            f"model {model_cfg.name!r}: tokenizer at {model_cfg.name_or_path!r} has no EOS token"
        )
    if model_cfg.pad_token is not None:
        _use_configured_pad(tokenizer, model_cfg)
    elif tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        tokenizer.add_special_tokens({"pad_token": ADDED_PAD_TOKEN})
        log.warning(
            "model %s: added pad token %s (id %d); resize the model's embeddings to %d",
            model_cfg.name,
            ADDED_PAD_TOKEN,
            tokenizer.pad_token_id,
            len(tokenizer),
        )
    return tokenizer


def _use_configured_pad(tokenizer: PreTrainedTokenizerBase, model_cfg: ModelConfig) -> None:
    """Set the configured pad token, refusing one that is unknown or equal to EOS."""
    pad = model_cfg.pad_token
    if pad == tokenizer.eos_token:
        raise BadInputError(
            f"model {model_cfg.name!r}: model.pad_token={pad!r} equals the EOS token; pick another token "
            "or set model.pad_token=null to add a dedicated pad token"
        )
    pad_id = tokenizer.convert_tokens_to_ids(pad)
    if pad_id is None or (pad_id == tokenizer.unk_token_id and pad != tokenizer.unk_token):
        raise BadInputError(
            f"model {model_cfg.name!r}: model.pad_token={pad!r} is not in the vocabulary of "
            f"{model_cfg.name_or_path!r}; set model.pad_token=null to add a dedicated pad token"
        )
    tokenizer.pad_token = pad

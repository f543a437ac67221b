"""transformers ``generate`` over left-padded batches, with per-row seeded sampling."""

from __future__ import annotations

import gc

import torch
from transformers import GenerationConfig as HFGenerationConfig
from transformers import LogitsProcessorList, PreTrainedModel, PreTrainedTokenizerBase

from mc16k.errors import BadInputError
from mc16k.inference.config import GenerationConfig
from mc16k.inference.engines import Completion
from mc16k.inference.sampling import PerRowSampler


def stop_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """End-of-sequence ids: the model's generation config (chat models list their end-of-turn token) and the tokenizer's."""
    configured = model.generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    if not ids:
        raise BadInputError(
            f"{model.name_or_path}: neither model nor tokenizer defines an end-of-sequence token"
        )
    return sorted(ids)


def first_stop(text: str, stop_strings: list[str]) -> int | None:
    """Index where the earliest stop string starts in ``text``; None when there is none."""
    found = [index for stop in stop_strings if (index := text.find(stop)) >= 0]
    return min(found) if found else None


def padding_id(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, fallback: int) -> int:
    """The tokenizer's pad id when the model has an embedding for it, else ``fallback`` (an EOS id).

    Padded positions are masked, so any valid id works; a pad token added to the tokenizer but never
    trained (a base model answering) has no embedding row and would fail the lookup.
    """
    pad = tokenizer.pad_token_id
    return pad if pad is not None and pad < model.get_input_embeddings().num_embeddings else fallback


def left_pad(
    prompts: list[list[int]], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch unequal prompts with padding on the left, so every row's next token sits in the last column."""
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        input_ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        attention_mask[row, width - len(prompt) :] = 1
    return input_ids.to(device), attention_mask.to(device)


class HFEngine:
    """Batched generation with a loaded (possibly 4-bit, possibly peft-wrapped) causal LM."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.stop_ids = stop_token_ids(model, tokenizer)
        self.pad_id = padding_id(model, tokenizer, self.stop_ids[0])

    @torch.inference_mode()
    def generate(
        self, prompts: list[list[int]], seeds: list[int], params: GenerationConfig
    ) -> list[Completion]:
        input_ids, attention_mask = left_pad(prompts, self.pad_id, self.model.device)
        processors = LogitsProcessorList()
        if params.do_sample:
            processors.append(PerRowSampler(seeds, params, self.model.device))
        # greedy decoding in generate; sampling, when asked, happens in PerRowSampler (one generator per row)
        hf_params = HFGenerationConfig(
            do_sample=False,
            max_new_tokens=params.max_new_tokens,
            eos_token_id=self.stop_ids,
            pad_token_id=self.pad_id,
            stop_strings=list(params.stop_strings) or None,
        )
        output = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            generation_config=hf_params,
            logits_processor=processors,
            tokenizer=self.tokenizer,  # generate needs it to match stop strings
        )
        return [
            self._completion(row, params.stop_strings) for row in output[:, input_ids.shape[1] :].tolist()
        ]

    def _completion(self, row: list[int], stop_strings: list[str]) -> Completion:
        """Decode one generated row: cut at the first end-of-sequence token or stop string."""
        eos_at = next((i for i, token in enumerate(row) if token in self.stop_ids), None)
        tokens = row if eos_at is None else row[:eos_at]
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        cut = first_stop(text, stop_strings)
        if cut is not None:
            while tokens and tokens[-1] == self.pad_id:  # generate pads a row once its stop string appeared
                tokens = tokens[:-1]
            return Completion(text[:cut].strip(), len(tokens), "stop")
        finish = "length" if eos_at is None else "stop"
        return Completion(text.strip(), len(tokens) + (eos_at is not None), finish)

    def close(self) -> None:
        del self.model
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

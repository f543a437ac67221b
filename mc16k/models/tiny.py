"""A tiny random Llama/Mistral with a real BPE tokenizer, built offline in well under a second.

Tests, the smoke experiment and benchmarks use it in place of a 7B model: the same loading code (4-bit
QLoRA included) runs on it, only the sizes differ.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    MixtralConfig,
    MixtralForCausalLM,
    PreTrainedTokenizerFast,
)

# ChatML-style template so the tiny model can stand in for chat-template models too.
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TINY_ARCHITECTURES = ("llama", "mistral", "mixtral")
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]

_CORPUS = [
    "I have been feeling anxious and overwhelmed at work and I cannot sleep at night.",
    "My mother has dementia and caring for her every day leaves me exhausted and guilty.",
    "It sounds like you are carrying a lot right now. Your feelings are valid and understandable.",
    "Have you considered talking to a licensed therapist or counselor about these worries?",
    "Small steps such as a regular bedtime, short walks and time with friends can help.",
    "### Instruction:\n### Input:\n### Response:\nUSER: ASSISTANT: system user assistant",
    "Below is an instruction that describes a task, paired with an input that provides further context.",
    "You are a helpful and empathetic mental health counseling assistant.",
    "0 1 2 3 4 5 6 7 8 9 10 score justification metric empathy safety listening clarity",
]


def build_tiny_tokenizer(vocab_size: int = 512, corpus: list[str] | None = None) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on a built-in corpus, or on ``corpus`` (deterministic, no downloads)."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator((corpus or _CORPUS) * 4, trainer=trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        chat_template=TINY_CHAT_TEMPLATE,
        model_max_length=4096,
    )


def build_tiny_model(
    out_dir: str | Path,
    arch: str = "llama",
    hidden_size: int = 64,
    num_layers: int = 2,
    seed: int = 0,
) -> Path:
    """Save a random ``arch`` ("llama", "mistral" or "mixtral": 4 experts, 2 per token) causal LM and its tokenizer to ``out_dir``; return it.

    Re-uses a complete earlier build in the same dir (a ``tiny_build.json`` marker records its arguments).
    """
    out = Path(out_dir)
    marker = out / "tiny_build.json"
    spec = {"arch": arch, "hidden_size": hidden_size, "num_layers": num_layers, "seed": seed}
    if marker.exists() and json.loads(marker.read_text()) == spec:
        return out
    tokenizer = build_tiny_tokenizer()
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common))
    elif arch == "mistral":
        model = MistralForCausalLM(MistralConfig(sliding_window=None, **common))
    elif arch == "mixtral":
        config = MixtralConfig(sliding_window=None, num_local_experts=4, num_experts_per_tok=2, **common)
        model = MixtralForCausalLM(config)
    else:
        raise ValueError(f"tiny model arch must be one of {TINY_ARCHITECTURES}, got {arch!r}")
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    marker.write_text(json.dumps(spec))
    return out


if __name__ == "__main__":
    import sys

    print(build_tiny_model(sys.argv[1] if len(sys.argv) > 1 else "tiny-model"))

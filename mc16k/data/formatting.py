"""The ONE formatting function for training and inference (the authors used three different prompts).

A conversation is (system instruction from config, user text, response). It is rendered with the model's
own chat template (``prompt_format: chat_template``) or with a template file of ours in
``mc16k/resources/prompts/`` (alpaca, vicuna). Training sequences are the inference prompt followed by
the response, token for token, so a model is asked exactly what it was trained on.

Labels are -100 everywhere but the response, the template's end-of-turn text and the EOS token; they are
built here, never derived from the pad id, so EOS stays a target even where pad == EOS.

Truncation policy: an over-long conversation loses the MIDDLE of the user text, replaced by a visible
``[...]`` marker (the opening and the closing question survive); the response is kept. Only when even an
empty user text cannot make room is the response's end cut (and then it has no EOS: the example did not
end there).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from transformers import PreTrainedTokenizerBase

from mc16k.errors import BadInputError
from mc16k.paths import RESOURCES_DIR
from mc16k.schema import IGNORE_INDEX, ModelConfig, PromptFormat

TRUNCATION_MARKER = "[...]"
PROMPTS_DIR = RESOURCES_DIR / "prompts"


@dataclass(frozen=True)
class EncodedExample:
    """A training example: ``labels`` is -100 on prompt tokens."""

    input_ids: list[int]
    labels: list[int]
    truncated: bool  # anything was cut (user text or response)
    dropped_tokens: int = 0  # user-text tokens cut out
    response_truncated: bool = False


@dataclass(frozen=True)
class EncodedPrompt:
    """An inference prompt; ``text`` is what ``input_ids`` encode (for servers that take text)."""

    input_ids: list[int]
    text: str
    truncated: bool
    dropped_tokens: int = 0


@dataclass(frozen=True)
class _Rendered:
    prompt_text: str
    completion_text: str  # response plus the template's end-of-turn text ("" when only a prompt)
    add_special_tokens: bool  # template files rely on the tokenizer's BOS; chat templates render it


@cache
def load_prompt_template(prompt_format: PromptFormat) -> tuple[str, str]:
    """(prompt part, separator before the response) of a template file with {system} {user} {response}.

    Trailing spaces before ``{response}`` belong to the response side: a prompt ending in a space makes
    SentencePiece tokenizers emit a lone "▁" the model never saw in training.
    """
    path = PROMPTS_DIR / f"{PromptFormat(prompt_format).value}.txt"
    text = path.read_text(encoding="utf-8").rstrip("\n")
    for placeholder in ("{system}", "{user}", "{response}"):
        if text.count(placeholder) != 1:
            raise BadInputError(f"prompt template {path} must contain {placeholder} exactly once")
    if not text.endswith("{response}"):
        raise BadInputError(f"prompt template {path} must end with {{response}}")
    head = text[: -len("{response}")]
    prompt = head.rstrip(" ")
    return prompt, head[len(prompt) :]


def _chat_messages(model_cfg: ModelConfig, system: str, user_text: str) -> list[dict[str, str]]:
    if model_cfg.system_in_user:
        return [{"role": "user", "content": f"{system}\n\n{user_text}"}]
    return [{"role": "system", "content": system}, {"role": "user", "content": user_text}]


def _render(
    tokenizer: PreTrainedTokenizerBase,
    model_cfg: ModelConfig,
    system: str,
    user_text: str,
    response: str | None,
) -> _Rendered:
    """Render prompt text and (when ``response`` is given) the completion text that follows it."""
    prompt_format = PromptFormat(model_cfg.prompt_format)
    if prompt_format is not PromptFormat.chat_template:
        template, separator = load_prompt_template(prompt_format)
        prompt_text = template.format(system=system, user=user_text)
        completion = "" if response is None else separator + response
        return _Rendered(prompt_text, completion, add_special_tokens=True)
    if not tokenizer.chat_template:
        raise BadInputError(
            f"model {model_cfg.name!r} has prompt_format=chat_template but its tokenizer has no chat template; "
            "use prompt_format=alpaca or vicuna"
        )
    messages = _chat_messages(model_cfg, system, user_text)
    prompt_text = _with_bos(tokenizer, tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    if response is None:
        return _Rendered(prompt_text, "", add_special_tokens=False)
    full_text = _with_bos(tokenizer, tokenizer.apply_chat_template(
        messages + [{"role": "assistant", "content": response}], tokenize=False
    ))  # fmt: skip
    if not full_text.startswith(prompt_text):
        raise BadInputError(
            f"model {model_cfg.name!r}: its chat template renders the conversation with a different prefix "
            "than the generation prompt, so response tokens cannot be separated from the prompt"
        )
    return _Rendered(prompt_text, full_text[len(prompt_text) :], add_special_tokens=False)


def tokenizer_adds_bos(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether the tokenizer puts BOS in front of a text: what the base model saw in pre-training."""
    bos = tokenizer.bos_token_id
    return bos is not None and tokenizer("a", add_special_tokens=True).input_ids[:1] == [bos]


def _with_bos(tokenizer: PreTrainedTokenizerBase, text: str) -> str:
    """A chat-template rendering with the tokenizer's BOS in front when the template leaves it out.

    Chat-templated text is tokenized without special tokens (templates like Mistral's render BOS
    themselves), so a template without one (Zephyr's) would drop the BOS its base was trained with.
    """
    if tokenizer_adds_bos(tokenizer) and not text.startswith(tokenizer.bos_token):
        return tokenizer.bos_token + text
    return text


def _check_bos(tokenizer: PreTrainedTokenizerBase, prompt_ids: list[int]) -> None:
    """Exactly one BOS first where the tokenizer adds one, none otherwise from us: the pre-training layout."""
    if not tokenizer_adds_bos(tokenizer):
        return
    bos = tokenizer.bos_token_id
    if prompt_ids[:1] != [bos] or prompt_ids[1:2] == [bos]:
        raise ValueError(
            f"the rendered prompt starts with {prompt_ids[:2]}, not one BOS ({bos}) as the tokenizer "
            "adds: a template file must not contain the BOS text; a chat template renders it or not at all"
        )


def _ids(tokenizer: PreTrainedTokenizerBase, text: str, add_special_tokens: bool) -> list[int]:
    """Token ids; over-long texts are expected here (they are what truncation measures), so no warning."""
    return tokenizer(text, add_special_tokens=add_special_tokens, verbose=False).input_ids


def _tokenize(tokenizer: PreTrainedTokenizerBase, rendered: _Rendered) -> tuple[list[int], list[int]]:
    """(prompt ids, completion ids) with the prompt ids exactly those inference will feed the model."""
    prompt_ids = _ids(tokenizer, rendered.prompt_text, rendered.add_special_tokens)
    _check_bos(tokenizer, prompt_ids)
    if not rendered.completion_text:
        return prompt_ids, []
    full_ids = _ids(tokenizer, rendered.prompt_text + rendered.completion_text, rendered.add_special_tokens)
    if full_ids[: len(prompt_ids)] == prompt_ids:
        completion_ids = full_ids[len(prompt_ids) :]
    else:  # a token merged across the boundary: keep the prompt's own tokens
        completion_ids = _ids(tokenizer, rendered.completion_text, False)
    if tokenizer.eos_token_id not in completion_ids:
        completion_ids = completion_ids + [tokenizer.eos_token_id]
    return prompt_ids, completion_ids


def _cut_middle(tokenizer: PreTrainedTokenizerBase, text: str, drop: int) -> str:
    """``text`` without ``drop`` of its tokens from the middle, a visible marker in their place."""
    offsets = tokenizer(
        text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
    ).offset_mapping
    keep = len(offsets) - drop
    if keep <= 0:
        return TRUNCATION_MARKER
    head, tail = (keep + 1) // 2, keep // 2
    head_text = _whole_words(text[: offsets[head - 1][1]], from_end=False)
    tail_text = _whole_words(text[offsets[len(offsets) - tail][0] :], from_end=True) if tail else ""
    return " ".join(part for part in (head_text, TRUNCATION_MARKER, tail_text) if part)


def _whole_words(piece: str, from_end: bool) -> str:
    """``piece`` without a word cut in half at the marker's side (kept whole if it has no space)."""
    if from_end:
        start = piece.find(" ") if piece[:1].strip() else 0
        return piece[start:].strip() if start >= 0 else piece.strip()
    end = piece.rfind(" ") if piece[-1:].strip() else len(piece)
    return piece[:end].strip() if end >= 0 else piece.strip()


def _fit_user_text(
    tokenizer: PreTrainedTokenizerBase, user_text: str, length_of: Callable[[str], int], limit: int
) -> tuple[str, int] | None:
    """Shortest cut of ``user_text`` whose conversation fits ``limit`` tokens: (text, dropped tokens).

    None when even a user text reduced to the marker does not fit.
    """
    user_tokens = len(_ids(tokenizer, user_text, False))
    drop = length_of(user_text) - limit
    while True:
        drop = min(drop, user_tokens)
        cut = _cut_middle(tokenizer, user_text, drop)
        excess = length_of(cut) - limit
        if excess <= 0:
            return cut, drop
        if drop >= user_tokens:
            return None
        drop += excess


def encode_example(
    tokenizer: PreTrainedTokenizerBase,
    model_cfg: ModelConfig,
    system: str,
    user_text: str,
    response: str,
    max_seq_len: int,
) -> EncodedExample:
    """Tokenize one training conversation of at most ``max_seq_len`` tokens, labels on the response only."""

    def encode(user: str) -> tuple[list[int], list[int]]:
        return _tokenize(tokenizer, _render(tokenizer, model_cfg, system, user, response))

    prompt_ids, completion_ids = encode(user_text)
    dropped = 0
    if len(prompt_ids) + len(completion_ids) > max_seq_len:
        fitted = _fit_user_text(tokenizer, user_text, lambda user: sum(map(len, encode(user))), max_seq_len)
        if fitted is None:  # the response alone is too long: keep its start, without EOS
            prompt_ids, completion_ids = encode(TRUNCATION_MARKER)
            dropped = len(_ids(tokenizer, user_text, False))
            completion_ids = completion_ids[: max(0, max_seq_len - len(prompt_ids))]
            if not completion_ids:
                raise BadInputError(
                    f"model {model_cfg.name!r}: the prompt alone takes {len(prompt_ids)} tokens, more than "
                    f"max_seq_len={max_seq_len}"
                )
            return EncodedExample(
                input_ids=prompt_ids + completion_ids,
                labels=[IGNORE_INDEX] * len(prompt_ids) + completion_ids,
                truncated=True,
                dropped_tokens=dropped,
                response_truncated=True,
            )
        user_text, dropped = fitted
        prompt_ids, completion_ids = encode(user_text)
    return EncodedExample(
        input_ids=prompt_ids + completion_ids,
        labels=[IGNORE_INDEX] * len(prompt_ids) + completion_ids,
        truncated=dropped > 0,
        dropped_tokens=dropped,
    )


def encode_prompt(
    tokenizer: PreTrainedTokenizerBase,
    model_cfg: ModelConfig,
    system: str,
    user_text: str,
    max_prompt_tokens: int,
) -> EncodedPrompt:
    """Tokenize an inference prompt of at most ``max_prompt_tokens`` (context minus max new tokens)."""

    def render(user: str) -> _Rendered:
        return _render(tokenizer, model_cfg, system, user, None)

    def encode(user: str) -> list[int]:
        return _tokenize(tokenizer, render(user))[0]

    prompt_ids = encode(user_text)
    dropped = 0
    if len(prompt_ids) > max_prompt_tokens:
        fitted = _fit_user_text(tokenizer, user_text, lambda user: len(encode(user)), max_prompt_tokens)
        if fitted is None:
            raise BadInputError(
                f"model {model_cfg.name!r}: the prompt without any user text is longer than "
                f"max_prompt_tokens={max_prompt_tokens}"
            )
        user_text, dropped = fitted
        prompt_ids = encode(user_text)
    return EncodedPrompt(
        input_ids=prompt_ids,
        text=render(user_text).prompt_text,
        truncated=dropped > 0,
        dropped_tokens=dropped,
    )

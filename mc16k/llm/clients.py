"""Chat clients for OpenAI, OpenAI-compatible servers and Gemini behind one ``complete`` coroutine.

The SDKs' own retries are switched off: the runner owns retries so that 429s, 5xx and timeouts are handled
(and counted) the same way for every backend. SDK exceptions are translated into the two error kinds of
:mod:`mc16k.llm.types`.
"""

from __future__ import annotations

import asyncio
import os
from typing import Protocol

import httpx

from mc16k.llm.config import LLMConfig, Provider, StructuredOutput
from mc16k.llm.types import (
    ChatRequest,
    ChatResponse,
    LLMSetupError,
    PermanentLLMError,
    RetryableLLMError,
    Usage,
)


class ChatClient(Protocol):
    async def complete(self, request: ChatRequest) -> ChatResponse: ...

    async def close(self) -> None: ...


def read_api_key(cfg: LLMConfig) -> str | None:
    """The key from the first set environment variable in ``cfg.api_key_envs``; None when none is configured."""
    if not cfg.api_key_envs:
        return None
    for name in cfg.api_key_envs:
        value = os.environ.get(name)
        if value:
            return value
    raise LLMSetupError(
        f"no API key for {cfg.provider.value} model {cfg.model!r}: set one of the environment variables "
        f"{list(cfg.api_key_envs)}"
    )


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form; HTTP dates are rare from LLM APIs)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


SETUP_STATUSES = (401, 403, 404)  # bad key, no access, unknown model or endpoint


def _is_retryable_status(status: int) -> bool:
    return status == 429 or status == 408 or status >= 500


class OpenAIChatClient:
    """OpenAI's chat completions API (also any OpenAI-compatible server via ``base_url``)."""

    def __init__(self, cfg: LLMConfig):
        import openai

        if cfg.provider is Provider.openai_compatible and not cfg.base_url:
            raise LLMSetupError("judge provider openai_compatible needs llm.base_url (e.g. http://host:8000/v1)")
        self._openai = openai
        self._cfg = cfg
        self._client = openai.AsyncOpenAI(
            api_key=read_api_key(cfg) or "no-key-needed",
            base_url=cfg.base_url,
            timeout=cfg.timeout_s,
            max_retries=0,
        )

    def _response_format(self, request: ChatRequest) -> dict | None:
        mode = self._cfg.structured_output
        if mode is StructuredOutput.json_schema and request.json_schema is not None:
            return {
                "type": "json_schema",
                "json_schema": {"name": request.schema_name, "schema": request.json_schema, "strict": True},
            }
        if mode in (StructuredOutput.json_schema, StructuredOutput.json_object):
            return {"type": "json_object"}
        return None

    async def complete(self, request: ChatRequest) -> ChatResponse:
        openai = self._openai
        kwargs = {}
        response_format = self._response_format(request)
        if response_format is not None:
            kwargs["response_format"] = response_format
        try:
            reply = await self._client.chat.completions.create(
                model=self._cfg.model,
                messages=[
                    {"role": "system", "content": request.system},
                    {"role": "user", "content": request.user},
                ],
                temperature=self._cfg.temperature,
                max_tokens=self._cfg.max_output_tokens,
                **kwargs,
            )
        except openai.APIStatusError as err:
            if _is_retryable_status(err.status_code):
                retry_after = parse_retry_after(err.response.headers.get("retry-after"))
                raise RetryableLLMError(f"HTTP {err.status_code}", retry_after) from err
            error = LLMSetupError if err.status_code in SETUP_STATUSES else PermanentLLMError
            raise error(f"HTTP {err.status_code} from {self._cfg.model!r}: {err.message}") from err
        except openai.APITimeoutError as err:
            raise RetryableLLMError("timeout") from err
        except (openai.APIConnectionError, openai.APIResponseValidationError, ValueError) as err:
            raise RetryableLLMError(f"broken response: {type(err).__name__}") from err
        if not reply.choices or reply.choices[0].message.content is None:
            raise RetryableLLMError("empty reply")
        usage = Usage(calls=1)
        if reply.usage is not None:
            usage.input_tokens = reply.usage.prompt_tokens or 0
            usage.output_tokens = reply.usage.completion_tokens or 0
        return ChatResponse(text=reply.choices[0].message.content, usage=usage)

    async def close(self) -> None:
        await self._client.close()


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection-level errors of the transports google-genai may use (aiohttp is an optional extra)."""
    errors: list[type[BaseException]] = [httpx.HTTPError]
    try:
        import aiohttp

        errors.append(aiohttp.ClientError)
    except ImportError:
        pass
    return tuple(errors)


class GeminiChatClient:
    """Gemini through ``google-genai``; the client object is kept for the run's lifetime (its async session
    closes when it is garbage-collected)."""

    def __init__(self, cfg: LLMConfig):
        from google import genai
        from google.genai import errors, types

        self._types = types
        self._errors = errors
        self._cfg = cfg
        self._client = genai.Client(
            api_key=read_api_key(cfg),
            http_options=types.HttpOptions(
                base_url=cfg.base_url,
                timeout=int(cfg.timeout_s * 1000),
                retry_options=types.HttpRetryOptions(attempts=1),
            ),
        )

    def _config(self, request: ChatRequest):
        types = self._types
        kwargs = {}
        if self._cfg.structured_output is not StructuredOutput.none:
            kwargs["response_mime_type"] = "application/json"
            if self._cfg.structured_output is StructuredOutput.json_schema and request.json_schema is not None:
                kwargs["response_json_schema"] = request.json_schema
        return types.GenerateContentConfig(
            system_instruction=request.system,
            temperature=self._cfg.temperature,
            max_output_tokens=self._cfg.max_output_tokens,
            **kwargs,
        )

    async def complete(self, request: ChatRequest) -> ChatResponse:
        try:
            reply = await self._client.aio.models.generate_content(
                model=self._cfg.model, contents=request.user, config=self._config(request)
            )
        except self._errors.APIError as err:
            if _is_retryable_status(err.code or 0):
                headers = getattr(err.response, "headers", None) or {}
                raise RetryableLLMError(f"HTTP {err.code}", parse_retry_after(headers.get("retry-after"))) from err
            error = LLMSetupError if err.code in SETUP_STATUSES else PermanentLLMError
            raise error(f"HTTP {err.code} from {self._cfg.model!r}: {err.message}") from err
        except (asyncio.TimeoutError, TimeoutError, httpx.TimeoutException) as err:
            raise RetryableLLMError("timeout") from err
        except (*_transport_errors(), ValueError) as err:
            raise RetryableLLMError(f"broken response: {type(err).__name__}") from err
        try:
            text = reply.text
        except ValueError as err:  # blocked or multi-part replies
            raise RetryableLLMError(f"no text in reply: {err}") from err
        if not text:
            raise RetryableLLMError("empty reply")
        usage = Usage(calls=1)
        if reply.usage_metadata is not None:
            usage.input_tokens = reply.usage_metadata.prompt_token_count or 0
            usage.output_tokens = reply.usage_metadata.candidates_token_count or 0
        return ChatResponse(text=text, usage=usage)

    async def close(self) -> None:
        await self._client.aio.aclose()


def build_chat_client(cfg: LLMConfig) -> ChatClient:
    """The chat client for a remote backend (local models score in-process, see :mod:`mc16k.llm.local_hf`)."""
    if cfg.provider in (Provider.openai, Provider.openai_compatible):
        return OpenAIChatClient(cfg)
    if cfg.provider is Provider.gemini:
        return GeminiChatClient(cfg)
    raise LLMSetupError(f"provider {cfg.provider.value!r} has no chat client; use mc16k.llm.local_hf")

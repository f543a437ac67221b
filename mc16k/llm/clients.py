"""Chat clients for OpenAI, OpenAI-compatible servers and Gemini behind one ``complete`` coroutine.

The SDKs' own retries are switched off: the runner owns retries so that 429s, 5xx and timeouts are handled
(and counted) the same way for every backend. SDK exceptions are translated into the error kinds of
:mod:`mc16k.llm.types`: transport failures (no HTTP answer), retryable server errors, request rejections
and setup errors. A reply with HTTP 200 is always returned with its usage, even when it holds no text: it was
billed, and whether its content is usable is the caller's (the parser's) decision, the same for every client.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from typing import Protocol

import httpx

from mc16k.llm.config import LLMConfig, Provider, StructuredOutput
from mc16k.llm.types import (
    ChatRequest,
    ChatResponse,
    LLMSetupError,
    RequestRejectedError,
    RetryableLLMError,
    TransportError,
    Usage,
)

log = logging.getLogger(__name__)


class ChatClient(Protocol):
    endpoint: str  # the URL calls go to, for error messages
    structured_output: StructuredOutput  # the response format requests use now

    async def complete(self, request: ChatRequest) -> ChatResponse: ...

    def fall_back(self, rejected: str | None) -> bool: ...

    async def close(self) -> None: ...


FALLBACK = {StructuredOutput.json_schema: StructuredOutput.json_object, StructuredOutput.json_object: StructuredOutput.none}


class StructuredOutputFallback:
    """The response format a client sends, stepped down once per level when a server refuses it."""

    structured_output: StructuredOutput

    def fall_back(self, rejected: str | None) -> bool:
        """After a deterministic rejection of a request sent with format ``rejected``: True if requests now use
        a simpler format (stepped down here, or already by a concurrent call), False if there is none left."""
        if rejected is None or rejected != self.structured_output.value:
            return rejected is not None
        lower = FALLBACK.get(self.structured_output)
        if lower is None:
            return False
        log.warning(
            "%s refused structured_output=%s; falling back to structured_output=%s (recorded in every judgment)",
            getattr(self, "endpoint", "the server"), self.structured_output.value, lower.value,
        )
        self.structured_output = lower
        return True


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
# request fields a server names when it refuses the request's shape (e.g. llama.cpp's HTTP 500 for json_schema)
REQUEST_FIELDS = re.compile(
    r"response_format|json_schema|response_schema|response_json_schema|response_mime_type|generation_?config"
    r"|max_tokens|max_output_tokens|temperature|'messages'|'contents'",
    re.IGNORECASE,
)


def status_error(status: int, message: str, retry_after: str | None, model: str, structured_output: str):
    """The error kind for an HTTP error status (every one counts as a call the server received)."""
    if status in SETUP_STATUSES:
        return LLMSetupError(f"HTTP {status} from {model!r}: {message}", usage=Usage(calls=1))
    if status >= 500 and REQUEST_FIELDS.search(message or ""):
        return RequestRejectedError(status, message, structured_output)
    if status in (408, 429) or status >= 500:
        return RetryableLLMError(f"HTTP {status}", parse_retry_after(retry_after), usage=Usage(calls=1))
    return RequestRejectedError(status, message, structured_output)


def transport_error(err: BaseException) -> TransportError:
    """A failure without an HTTP answer. A refused connection (or a DNS/TLS failure, a connect timeout) never
    reached the server; a read timeout or a dropped connection may have. The SDKs wrap the transport's error
    (httpx, its fork httpx2, aiohttp), so the cause chain is read by class name."""
    chain: list[BaseException] = []
    cause: BaseException | None = err
    while cause is not None and len(chain) < 10:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    names = {type(c).__name__ for c in chain}
    if names & {"ConnectError", "ConnectTimeout", "ClientConnectorError", "ConnectionRefusedError", "gaierror"}:
        return TransportError(f"connection failed: {chain[-1]}", sent=False)
    if any(isinstance(c, TimeoutError) or "Timeout" in type(c).__name__ for c in chain):
        return TransportError("timeout", sent=True)
    return TransportError(f"connection broken: {type(chain[-1]).__name__}", sent=True)


class OpenAIChatClient(StructuredOutputFallback):
    """OpenAI's chat completions API (also any OpenAI-compatible server via ``base_url``)."""

    def __init__(self, cfg: LLMConfig):
        import openai

        if cfg.provider is Provider.openai_compatible and not cfg.base_url:
            raise LLMSetupError("judge provider openai_compatible needs llm.base_url (e.g. http://host:8000/v1)")
        self._openai = openai
        self._cfg = cfg
        self.structured_output = cfg.structured_output
        self._client = openai.AsyncOpenAI(
            api_key=read_api_key(cfg) or "no-key-needed",
            base_url=cfg.base_url,
            timeout=cfg.timeout_s,
            max_retries=0,
        )
        self.endpoint = str(self._client.base_url).rstrip("/")

    def _response_format(self, request: ChatRequest, mode: StructuredOutput) -> dict | None:
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
        mode = self.structured_output
        kwargs = {}
        response_format = self._response_format(request, mode)
        if response_format is not None:
            kwargs["response_format"] = response_format
        messages = [{"role": "system", "content": request.system}, {"role": "user", "content": request.user}]
        for reply_text, follow_up in request.followups:
            messages += [{"role": "assistant", "content": reply_text}, {"role": "user", "content": follow_up}]
        try:
            reply = await self._client.chat.completions.create(
                model=self._cfg.model,
                messages=messages,
                temperature=self._cfg.temperature,
                max_tokens=self._cfg.max_output_tokens,
                **kwargs,
            )
        except openai.APIStatusError as err:
            raise status_error(
                err.status_code, err.message, err.response.headers.get("retry-after"), self._cfg.model, mode.value
            ) from err
        except openai.APITimeoutError as err:
            raise TransportError("timeout", sent=True) from err
        except openai.APIConnectionError as err:
            raise transport_error(err) from err
        except (openai.APIResponseValidationError, ValueError) as err:  # HTTP 200 with a body that is not a reply
            raise RetryableLLMError(f"broken response: {type(err).__name__}", usage=Usage(calls=1)) from err
        usage = Usage(calls=1)
        if reply.usage is not None:
            usage.input_tokens = reply.usage.prompt_tokens or 0
            usage.output_tokens = reply.usage.completion_tokens or 0
        text = (reply.choices[0].message.content if reply.choices else None) or ""
        return ChatResponse(text=text, usage=usage, structured_output=mode.value)

    async def close(self) -> None:
        await self._client.close()


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection-level errors of the transports google-genai may use (aiohttp is an optional extra)."""
    errors: list[type[BaseException]] = [httpx.TransportError, ConnectionError]
    try:
        import aiohttp

        errors.append(aiohttp.ClientConnectionError)
    except ImportError:
        pass
    return tuple(errors)


GEMINI_DEFAULT_URL = "https://generativelanguage.googleapis.com"


class GeminiChatClient(StructuredOutputFallback):
    """Gemini through ``google-genai``; the client object is kept for the run's lifetime (its async session
    closes when it is garbage-collected)."""

    def __init__(self, cfg: LLMConfig):
        from google import genai
        from google.genai import errors, types

        self._types = types
        self._errors = errors
        self._cfg = cfg
        self.structured_output = cfg.structured_output
        self.endpoint = (cfg.base_url or GEMINI_DEFAULT_URL).rstrip("/")
        self._client = genai.Client(
            api_key=read_api_key(cfg),
            http_options=types.HttpOptions(
                base_url=cfg.base_url,
                timeout=int(cfg.timeout_s * 1000),
                retry_options=types.HttpRetryOptions(attempts=1),
            ),
        )

    def _config(self, request: ChatRequest, mode: StructuredOutput):
        types = self._types
        kwargs = {}
        if mode is not StructuredOutput.none:
            kwargs["response_mime_type"] = "application/json"
            if mode is StructuredOutput.json_schema and request.json_schema is not None:
                kwargs["response_json_schema"] = request.json_schema
        return types.GenerateContentConfig(
            system_instruction=request.system,
            temperature=self._cfg.temperature,
            max_output_tokens=self._cfg.max_output_tokens,
            **kwargs,
        )

    def _contents(self, request: ChatRequest):
        if not request.followups:
            return request.user
        types = self._types
        contents = [types.Content(role="user", parts=[types.Part(text=request.user)])]
        for reply_text, follow_up in request.followups:
            contents.append(types.Content(role="model", parts=[types.Part(text=reply_text)]))
            contents.append(types.Content(role="user", parts=[types.Part(text=follow_up)]))
        return contents

    async def complete(self, request: ChatRequest) -> ChatResponse:
        mode = self.structured_output
        try:
            reply = await self._client.aio.models.generate_content(
                model=self._cfg.model, contents=self._contents(request), config=self._config(request, mode)
            )
        except self._errors.APIError as err:
            headers = getattr(err.response, "headers", None) or {}
            raise status_error(err.code or 0, err.message or "", headers.get("retry-after"), self._cfg.model,
                               mode.value) from err
        except (asyncio.TimeoutError, TimeoutError, *_transport_errors()) as err:
            raise transport_error(err) from err
        except (httpx.HTTPError, ValueError) as err:  # HTTP 200 with a body that is not a reply
            raise RetryableLLMError(f"broken response: {type(err).__name__}", usage=Usage(calls=1)) from err
        try:
            text = reply.text or ""
        except ValueError:  # blocked or multi-part replies: billed, but nothing the parser can read
            text = ""
        usage = Usage(calls=1)
        if reply.usage_metadata is not None:
            usage.input_tokens = reply.usage_metadata.prompt_token_count or 0
            usage.output_tokens = reply.usage_metadata.candidates_token_count or 0
        return ChatResponse(text=text, usage=usage, structured_output=mode.value)

    async def close(self) -> None:
        await self._client.aio.aclose()


def build_chat_client(cfg: LLMConfig) -> ChatClient:
    """The chat client for a remote backend (local models score in-process, see :mod:`mc16k.llm.local_hf`)."""
    if cfg.provider in (Provider.openai, Provider.openai_compatible):
        return OpenAIChatClient(cfg)
    if cfg.provider is Provider.gemini:
        return GeminiChatClient(cfg)
    raise LLMSetupError(f"provider {cfg.provider.value!r} has no chat client; use mc16k.llm.local_hf")

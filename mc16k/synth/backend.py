"""The pipelines' one way to call a model: the client layer's client and runner, with the reply store.

``StoredCalls.ask`` returns a stored reply when its key is in the store (no call, no cost) and otherwise
calls through the runner (concurrency, rate limits, retries) and stores the reply durably before returning
it. A call that fails is not stored: the world's failure is not the model's reply, and the next round or
the next run asks again.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from mc16k.errors import UserError
from mc16k.llm.config import LLMConfig, Provider
from mc16k.llm.runner import AsyncRunner
from mc16k.llm.store import JsonlStore
from mc16k.llm.types import ChatRequest, LLMError, LLMSetupError, PermanentLLMError, Usage
from mc16k.synth.config import SynthCommon

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


class PrivateDataError(UserError, RuntimeError):
    """A private dataset would be sent to a remote backend (the user fixes the backend or overrides)."""


def is_local_backend(cfg: LLMConfig) -> bool:
    """True for an in-process model, or an OpenAI-compatible server on this machine (vLLM, llama.cpp)."""
    if cfg.provider is Provider.local_hf:
        return True
    if cfg.provider is Provider.openai_compatible and cfg.base_url:
        return urlparse(cfg.base_url).hostname in LOOPBACK_HOSTS
    return False  # openai and gemini are remote services, whatever proxy base_url points at


def check_privacy(cfg: SynthCommon, app: str) -> bool:
    """Refuse a private dataset on a remote backend unless overridden; returns whether it was overridden."""
    if not cfg.private or is_local_backend(cfg.llm):
        return False
    where = f"{cfg.llm.provider.value} model {cfg.llm.model!r}" + (f" at {cfg.llm.base_url}" if cfg.llm.base_url else "")
    if not cfg.allow_remote_private:
        raise PrivateDataError(
            f"{app}: synth.private=true and the backend is remote ({where}): the transcripts would leave this "
            "machine. Use a local backend (synth/backend=local-hf, or synth/backend=openai-compatible with a "
            "server on localhost), or, if the data may be shared with that service, set "
            "synth.allow_remote_private=true (logged and written into the report)."
        )
    log.warning(
        "%s: PRIVATE DATA IS SENT TO A REMOTE BACKEND (%s) because synth.allow_remote_private=true", app, where
    )
    return True


def model_id(cfg: LLMConfig) -> str:
    return f"{cfg.provider.value}:{cfg.gguf_file or cfg.model}"


def request_sha(request: ChatRequest) -> str:
    return hashlib.sha256(f"{request.system}\0{request.user}".encode()).hexdigest()[:16]


@dataclass
class CallOutcome:
    text: str | None  # None: no reply (the call failed)
    cached: bool
    failure: str | None = None  # "api_failed" (may succeed later) or "api_rejected" (this request cannot)


def build_runner(cfg: SynthCommon, cache_dir: str | Path | None) -> AsyncRunner:
    """The client layer's runner over the configured backend (a local model is loaded once, here)."""
    if cfg.llm.provider is Provider.local_hf:
        from mc16k.llm.local_chat import LocalHFChatClient

        client = LocalHFChatClient(cfg.llm, cache_dir)
    else:
        from mc16k.llm.clients import build_chat_client

        client = build_chat_client(cfg.llm)
    return AsyncRunner(client, cfg.runner, cfg.llm.max_output_tokens)


class StoredCalls:
    """Chat calls keyed in a :class:`JsonlStore`; counts cached replies, calls, failures and usage."""

    def __init__(self, runner: AsyncRunner | None, store: JsonlStore):
        self.runner = runner
        self.store = store
        self.counts: collections.Counter[str] = collections.Counter()

    async def ask(self, key: str, request: ChatRequest, **fields) -> CallOutcome:
        record = self.store.records.get(key)
        if record is not None:
            self.counts["cached"] += 1
            return CallOutcome(record["text"], cached=True)
        assert self.runner is not None, "no backend to call"
        try:
            response = await self.runner.complete(request)
        except LLMSetupError:
            raise  # a bad key or model: no call can succeed, stop the run
        except PermanentLLMError as err:
            self.counts["api_rejected"] += 1
            log.warning("request %s rejected: %s", key, err)
            return CallOutcome(None, cached=False, failure="api_rejected")
        except LLMError as err:
            self.counts["api_failed"] += 1
            log.warning("call %s failed: %s", key, err)
            return CallOutcome(None, cached=False, failure="api_failed")
        self.counts["called"] += 1
        await self.store.append_async(
            {"key": key, **fields, "text": response.text, "usage": response.usage.as_dict(), "tstamp": time.time()}
        )
        return CallOutcome(response.text, cached=False)

    def stored_usage(self, keys: set[str] | None = None) -> Usage:
        """Usage of every stored reply (or of ``keys``): what the dataset cost, over all runs."""
        total = Usage()
        for record in self.store:
            if keys is None or record["key"] in keys:
                total.add(Usage(**record.get("usage", {})))
        return total

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.client.close()

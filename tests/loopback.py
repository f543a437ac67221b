"""A fault-injecting LLM server on 127.0.0.1 for tests and benchmarks (no real API is ever called).

It speaks OpenAI's ``/v1/chat/completions`` and Gemini's ``/v1beta/models/<model>:generateContent`` and
answers judge prompts with a JSON judgment for every metric the prompt asks for (found by their
``(key "...")`` criterion lines). A fault is chosen by a marker in the prompt, e.g. ``[[fault:429]]`` in an
answer text, so a test decides per item what goes wrong:

=================  ============================================================================
``429``            first request: HTTP 429 with ``Retry-After`` (then normal replies)
``500``            first request: HTTP 500
``slow``           first request: the reply comes after ``slow_s`` (past the client's timeout)
``garbage_body``   first request: HTTP 200 whose body is not JSON
``malformed``      first reply: broken JSON without any metric names
``missing``        first reply: the first two requested metrics left out
``prose``          every reply: prose and a code fence around the JSON
``out_of_range``   every reply: the first requested metric scored 11
``always_500``     every request: HTTP 500
``401``            every request: HTTP 401 (a bad key)
``always_400``     every request: HTTP 400 (a request the server will never accept)
``empty``          first request: HTTP 200 with an empty reply text (usage still billed)
``needs_feedback`` every reply malformed, until a follow-up turn says what was wrong (a re-ask that
                   only repeats the prompt never recovers)
``messy_<form>``   every reply valid but messy, one form each: ``fenced``, ``brackets`` (``Name: [[n]]``
                   lines), ``over_ten`` (``"n/10"``), ``lower_and`` (lower-case names, "and" for
                   "&"), ``float`` (half points: see :func:`served_score`), ``reordered``, ``headings``
=================  ============================================================================

A ``responder`` (the request's whole prompt text, system included -> reply text, or None) answers prompts
other than judge prompts, e.g. the data pipelines' generation prompts; its replies count as ``ok``.

Server-wide options: ``reject_json_schema`` answers requests that ask for a JSON schema the way llama.cpp's
server does (HTTP 500 whose body names ``response_format``), ``scores_by_model`` makes the scores depend on
the request's model name (two judge models give different scores).

``counts`` tallies what was sent: ``ok`` (a complete, valid judgment reply), ``bad_reply`` (200 with a broken
or incomplete judgment), ``late_reply`` (sent after the slow delay), and one entry per HTTP fault;
``requests`` is the number of requests received, ``tokens`` the usage reported in replies, and
``requests_by_answer`` the requests per answer text.
``hold_after_ok(n)`` stops replying after the n-th ``ok``: later requests wait, and on ``release()`` they are
closed unanswered (``dropped``), so a client can be SIGKILLed at a known point with requests in flight.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any

FAULT_MARKER = re.compile(r"\[\[fault:([a-z_0-9]+)\]\]")
REQUESTED_KEY = re.compile(r'\(key "([A-Za-z0-9_]+)"\)')
ANSWER_SECTION = re.compile(r"\[The assistant's response\]\n(.*?)\n\n\[Criteria\]", re.DOTALL)
FIRST_TIME_FAULTS = {"429", "500", "slow", "garbage_body", "malformed", "missing", "empty"}
MESSY_FORMS = ("fenced", "brackets", "over_ten", "lower_and", "float", "reordered", "headings")
METRIC_NAMES = {  # as the v1 rubric names them (the messy forms write names, not keys)
    "active_listening": "Active Listening",
    "empathy_validation": "Empathy & Validation",
    "safety_trustworthiness": "Safety & Trustworthiness",
    "open_mindedness": "Open-mindedness & Non-judgment",
    "clarity_encouragement": "Clarity & Encouragement",
    "boundaries_ethics": "Boundaries & Ethical",
    "holistic_approach": "Holistic Approach",
}
LLAMA_CPP_JSON_SCHEMA_ERROR = (
    "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': "
    "\"Input should be 'text' or 'json_object'\", 'input': 'json_schema'}"
)


def expected_score(answer: str, metric_key: str, model: str = "") -> int:
    """The score the server gives ``metric_key`` for an answer (deterministic, 1-10; ``model`` matters only
    on a server started with ``scores_by_model``)."""
    digest = hashlib.sha256(f"{metric_key}\n{answer}\n{model}".encode() if model else f"{metric_key}\n{answer}".encode())
    return 1 + digest.digest()[0] % 10


def served_score(answer: str, metric_key: str, model: str = "") -> float:
    """The score as a ``messy_float`` reply writes it: half a point below (above, for 1) the expected one."""
    score = expected_score(answer, metric_key, model)
    return score + 0.5 if score == 1 else score - 0.5


REASONS = {
    200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
    500: "Internal Server Error",
}


class LoopbackLLMServer:
    """Start with ``with LoopbackLLMServer() as server:``; ``server.openai_base_url`` / ``gemini_base_url``.

    An asyncio HTTP/1.1 server (keep-alive) on its own thread: light enough per request that benchmarks
    measure the client, not the server.
    """

    def __init__(
        self,
        latency_s: float = 0.0,
        slow_s: float = 2.0,
        retry_after_s: float = 0.05,
        port: int = 0,
        reject_json_schema: bool = False,
        scores_by_model: bool = False,
        billed_log: str | None = None,
        responder: Callable[[str], str | None] | None = None,
    ):
        self.latency_s = latency_s
        self.responder = responder
        self.slow_s = slow_s
        self.retry_after_s = retry_after_s
        self.reject_json_schema = reject_json_schema
        self.scores_by_model = scores_by_model
        self.counts: collections.Counter[str] = collections.Counter()
        self.tokens: collections.Counter[str] = collections.Counter()  # input / output tokens billed in replies
        self.requests_by_answer: collections.Counter[str] = collections.Counter()
        self.response_formats: collections.Counter[str] = collections.Counter()  # what requests asked for
        self.billed: list[tuple[float, int]] = []  # (unix arrival time, input + output tokens) per reply
        self._billed_log = open(billed_log, "a", buffering=1) if billed_log else None  # noqa: SIM115
        self.requested_metrics: list[list[str]] = []  # metrics asked for, per request (re-asks ask fewer)
        self._seen: collections.Counter[str] = collections.Counter()
        self._hold_after: int | None = None
        self._epoch = 0  # bumped by release(): requests held across it are dropped
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._released: asyncio.Event | None = None
        self.port = port

    @property
    def openai_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def gemini_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hold_after_ok(self, n: int) -> None:
        """From the n-th ``ok`` on, hold every request (until :meth:`release` drops them)."""
        self._hold_after = n

    def release(self) -> None:
        def release_now() -> None:
            self._hold_after = None
            self._epoch += 1
            self._released.set()

        self._loop.call_soon_threadsafe(release_now)

    def __enter__(self) -> LoopbackLLMServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    async def _start(self) -> None:
        self._released = asyncio.Event()
        self._released.set()
        self._server = await asyncio.start_server(self._serve_connection, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        self._server.close()
        for task in asyncio.all_tasks() - {asyncio.current_task()}:
            task.cancel()

    # --- judging logic -------------------------------------------------------------------------------
    def _decide(self, first_user: str) -> str | None:
        match = FAULT_MARKER.search(first_user)
        if match is None:
            return None
        fault = match.group(1)
        self._seen[first_user] += 1  # keyed by the first user turn: a re-ask with follow-ups is a repeat
        if fault in FIRST_TIME_FAULTS and self._seen[first_user] > 1:
            return None
        return fault

    def _judgment_text(self, first_user: str, last_user: str, fault: str | None, model: str) -> tuple[str, bool]:
        """(reply text, whether it is a complete valid judgment) for the metrics the last user turn asks for."""
        keys = REQUESTED_KEY.findall(last_user)
        self.requested_metrics.append(keys)
        if fault == "empty":
            return "", False
        if fault == "malformed" or (fault == "needs_feedback" and last_user == first_user):
            return '{"verdict": "good", "details": [1, 2', False
        answer_match = ANSWER_SECTION.search(first_user)
        answer = answer_match.group(1) if answer_match else ""
        scored_by = model if self.scores_by_model else ""
        scores = {k: expected_score(answer, k, scored_by) for k in keys}
        if fault and fault.startswith("messy_"):
            return self._messy(fault.removeprefix("messy_"), answer, keys, scores, scored_by), bool(keys)
        reply = {k: {"justification": f"reasoning about {k}", "score": scores[k]} for k in keys}
        valid = bool(keys)
        if fault == "missing" and len(keys) > 1:
            for k in keys[:2]:
                del reply[k]
            valid = False
        if fault == "out_of_range" and keys:
            reply[keys[0]]["score"] = 11
            valid = False
        text = json.dumps(reply)
        if fault == "prose":
            text = f"Sure! Here is my evaluation of the response.\n```json\n{text}\n```\nI hope this helps."
        return text, valid

    @staticmethod
    def _messy(form: str, answer: str, keys: list[str], scores: dict[str, int], model: str) -> str:
        """A valid judgment written the way real judges sometimes write it."""
        names = {k: METRIC_NAMES.get(k, k) for k in keys}
        if form == "fenced":
            body = {names[k]: {"justification": "fine", "score": scores[k]} for k in keys}
            return "```json\n" + json.dumps(body, indent=2) + "\n```"
        if form == "brackets":
            return "Overall: [[5]]\n" + "\n".join(f"{names[k]}: [[{scores[k]}]]" for k in keys)
        if form == "over_ten":
            return json.dumps({k: {"justification": "fine", "score": f"{scores[k]}/10"} for k in keys})
        if form == "lower_and":
            return json.dumps({names[k].lower().replace("&", "and"): scores[k] for k in keys})
        if form == "float":
            return json.dumps({k: {"justification": "fine", "score": served_score(answer, k, model)} for k in keys})
        if form == "reordered":
            return json.dumps({k: {"score": scores[k], "justification": "fine"} for k in reversed(keys)})
        if form == "headings":
            return "\n\n".join(f"### {names[k]}\nThe response does this well enough.\n**Score:** {scores[k]}/10"
                                for k in reversed(keys))
        raise ValueError(f"unknown messy form {form!r}")

    # --- HTTP ------------------------------------------------------------------------------------------
    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                path = head[0].split(" ")[1]
                headers = dict(
                    (name.strip().lower(), value.strip()) for name, _, value in (h.partition(":") for h in head[1:] if h)
                )
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                if not await self._respond(path, json.loads(body or b"{}"), writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, status: int, body: bytes, extra_headers: str = "") -> None:
        head = (
            f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra_headers}\r\n"
        )
        writer.write(head.encode("latin-1") + body)
        await writer.drain()

    async def _respond(self, path: str, body: dict[str, Any], writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False closes the connection unanswered."""
        if path.endswith("/chat/completions"):
            user_turns = [str(m.get("content", "")) for m in body.get("messages", []) if m.get("role") == "user"]
            whole_prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
            response_format = (body.get("response_format") or {}).get("type", "none")
            model = str(body.get("model", ""))
            api = "openai"
        elif ":generateContent" in path:
            user_turns = [
                "\n".join(p.get("text", "") for p in c.get("parts", []))
                for c in body.get("contents", [])
                if c.get("role", "user") == "user"
            ]
            config = body.get("generationConfig") or {}
            system_parts = (body.get("systemInstruction") or {}).get("parts", [])
            whole_prompt = "\n".join([*(p.get("text", "") for p in system_parts), *user_turns])
            response_format = (
                "json_schema" if ("responseJsonSchema" in config or "responseSchema" in config)
                else "json_object" if config.get("responseMimeType") == "application/json" else "none"
            )
            model = path.split("/models/")[-1].split(":")[0]
            api = "gemini"
        else:
            await self._send(writer, 404, b'{"error": "unknown path"}')
            return True
        first_user, last_user = (user_turns[0], user_turns[-1]) if user_turns else ("", "")
        arrived_at = time.time()
        self.counts["requests"] += 1
        answer_match = ANSWER_SECTION.search(first_user)
        self.requests_by_answer[answer_match.group(1) if answer_match else ""] += 1
        self.response_formats[response_format] += 1
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        arrived_in = self._epoch
        await self._released.wait()
        if self._epoch != arrived_in:  # held, then released: its client is gone
            self.counts["dropped"] += 1
            return False
        if self.reject_json_schema and response_format == "json_schema":
            self.counts["rejected_json_schema"] += 1
            if api == "openai":  # llama.cpp's server: HTTP 500, the validation error in the body
                error = {"error": {"message": LLAMA_CPP_JSON_SCHEMA_ERROR, "type": "internal_server_error"}}
                await self._send(writer, 500, json.dumps(error).encode())
            else:
                message = "Invalid JSON payload received. Unknown name \"responseJsonSchema\" at 'generation_config'"
                error = {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}
                await self._send(writer, 400, json.dumps(error).encode())
            return True
        fault = self._decide(first_user)
        if fault in ("429", "500", "always_500", "401", "always_400"):
            status = {"429": 429, "401": 401, "always_400": 400}.get(fault, 500)
            self.counts[f"http_{status}"] += 1
            error = {"error": {"code": status, "message": f"injected {fault}", "status": "INJECTED"}}
            retry_after = f"Retry-After: {self.retry_after_s}\r\n" if status == 429 else ""
            await self._send(writer, status, json.dumps(error).encode(), retry_after)
            return True
        if fault == "slow":
            self.counts["slow"] += 1
            await asyncio.sleep(self.slow_s)
        if fault == "garbage_body":
            self.counts["garbage_body"] += 1
            await self._send(writer, 200, b"<html>this is not json")
            return True
        reply_text = self.responder(whole_prompt) if self.responder is not None else None
        if reply_text is not None:
            text, valid = reply_text, True
        else:
            text, valid = self._judgment_text(first_user, last_user, fault, model)
        reply = self._wrap(api, text, "\n".join(user_turns))
        usage = reply.get("usage") or reply["usageMetadata"]
        self.tokens["input"] += usage.get("prompt_tokens", usage.get("promptTokenCount", 0))
        self.tokens["output"] += usage.get("completion_tokens", usage.get("candidatesTokenCount", 0))
        self.billed.append((arrived_at, usage.get("total_tokens", usage.get("totalTokenCount", 0))))
        if self._billed_log is not None:
            self._billed_log.write(f"{arrived_at:.6f} {self.billed[-1][1]}\n")
        await self._send(writer, 200, json.dumps(reply).encode())
        outcome = "late_reply" if fault == "slow" else ("ok" if valid else "bad_reply")
        self.counts[outcome] += 1
        if self._hold_after is not None and self.counts["ok"] >= self._hold_after:
            self._released.clear()
        return True

    @staticmethod
    def _wrap(api: str, text: str, prompt: str) -> dict[str, Any]:
        prompt_tokens, completion_tokens = len(prompt) // 4, len(text) // 4
        if api == "openai":
            return {
                "id": "chatcmpl-loopback",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": "loopback",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        return {
            "candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {
                "promptTokenCount": prompt_tokens,
                "candidatesTokenCount": completion_tokens,
                "totalTokenCount": prompt_tokens + completion_tokens,
            },
        }


def main() -> None:
    """Serve in a process of its own (benchmarks: the server's CPU stays out of the client's process)."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-s", type=float, default=0.0)
    parser.add_argument("--billed-log", help="append '<arrival unix time> <tokens>' per reply to this file")
    args = parser.parse_args()
    with LoopbackLLMServer(latency_s=args.latency_s, billed_log=args.billed_log) as server:
        print(server.port, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()

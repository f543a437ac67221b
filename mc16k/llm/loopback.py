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
=================  ============================================================================

``counts`` tallies what was sent: ``ok`` (a complete, valid judgment reply), ``bad_reply`` (200 with a broken
or incomplete judgment), ``late_reply`` (sent after the slow delay), and one entry per HTTP fault.
``hold_after_ok(n)`` stops replying after the n-th ``ok``: later requests wait, and on ``release()`` they are
closed unanswered (``dropped``), so a client can be SIGKILLed at a known point with requests in flight.
"""

from __future__ import annotations

import collections
import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULT_MARKER = re.compile(r"\[\[fault:([a-z_0-9]+)\]\]")
REQUESTED_KEY = re.compile(r'\(key "([A-Za-z0-9_]+)"\)')
ANSWER_SECTION = re.compile(r"\[The assistant's response\]\n(.*?)\n\n\[Criteria\]", re.DOTALL)
FIRST_TIME_FAULTS = {"429", "500", "slow", "garbage_body", "malformed", "missing"}


def expected_score(answer: str, metric_key: str) -> int:
    """The score the server gives ``metric_key`` for an answer (deterministic, 1-10)."""
    digest = hashlib.sha256(f"{metric_key}\n{answer}".encode()).digest()
    return 1 + digest[0] % 10


class LoopbackLLMServer:
    """Start with ``with LoopbackLLMServer() as server:``; ``server.openai_base_url`` / ``gemini_base_url``."""

    def __init__(self, latency_s: float = 0.0, slow_s: float = 2.0, retry_after_s: float = 0.05):
        self.latency_s = latency_s
        self.slow_s = slow_s
        self.retry_after_s = retry_after_s
        self.counts: collections.Counter[str] = collections.Counter()
        self.requested_metrics: list[list[str]] = []  # metrics asked for, per request (re-asks ask fewer)
        self._seen: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._hold_after: int | None = None
        self._released = threading.Event()
        self._released.set()
        self._epoch = 0  # bumped by release(): requests held across it are dropped
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def openai_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def gemini_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hold_after_ok(self, n: int) -> None:
        with self._lock:
            self._hold_after = n
            self._released.clear()

    def release(self) -> None:
        with self._lock:
            self._hold_after = None
            self._epoch += 1
            self._released.set()

    def __enter__(self) -> LoopbackLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self._httpd.shutdown()
        self._httpd.server_close()

    # --- judging logic -------------------------------------------------------------------------------
    def _decide(self, prompt: str) -> str | None:
        match = FAULT_MARKER.search(prompt)
        if match is None:
            return None
        fault = match.group(1)
        with self._lock:
            self._seen[prompt] += 1
            first = self._seen[prompt] == 1
        if fault in FIRST_TIME_FAULTS and not first:
            return None
        return fault

    def _judgment_text(self, prompt: str, fault: str | None) -> tuple[str, bool]:
        """(reply text, whether it is a complete valid judgment)."""
        keys = REQUESTED_KEY.findall(prompt)
        with self._lock:
            self.requested_metrics.append(keys)
        if fault == "malformed":
            return '{"verdict": "good", "details": [1, 2', False
        answer_match = ANSWER_SECTION.search(prompt)
        answer = answer_match.group(1) if answer_match else ""
        reply = {k: {"justification": f"reasoning about {k}", "score": expected_score(answer, k)} for k in keys}
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

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if self.path.endswith("/chat/completions"):
                    prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
                    api = "openai"
                elif ":generateContent" in self.path:
                    parts = [p for c in body.get("contents", []) for p in c.get("parts", [])]
                    prompt = "\n".join(p.get("text", "") for p in parts)
                    api = "gemini"
                else:
                    self._send(404, b'{"error": "unknown path"}')
                    return
                if server.latency_s:
                    time.sleep(server.latency_s)
                arrived_in = server._epoch
                server._released.wait()
                if server._epoch != arrived_in:  # held, then released: its client is gone
                    with server._lock:
                        server.counts["dropped"] += 1
                    self.close_connection = True
                    return
                fault = server._decide(prompt)
                try:
                    if fault in ("429", "500", "always_500"):
                        status = 429 if fault == "429" else 500
                        with server._lock:
                            server.counts[f"http_{status}"] += 1
                        error = {"error": {"code": status, "message": f"injected {fault}", "status": "INJECTED"}}
                        headers = {"Retry-After": str(server.retry_after_s)} if status == 429 else None
                        self._send(status, json.dumps(error).encode(), headers)
                        return
                    if fault == "slow":
                        with server._lock:
                            server.counts["slow"] += 1
                        time.sleep(server.slow_s)
                    if fault == "garbage_body":
                        with server._lock:
                            server.counts["garbage_body"] += 1
                        self._send(200, b"<html>this is not json")
                        return
                    text, valid = server._judgment_text(prompt, fault)
                    self._send(200, json.dumps(self._wrap(api, text, prompt)).encode())
                    with server._lock:
                        outcome = "late_reply" if fault == "slow" else ("ok" if valid else "bad_reply")
                        server.counts[outcome] += 1
                        if server._hold_after is not None and server.counts["ok"] >= server._hold_after:
                            server._released.clear()
                except (BrokenPipeError, ConnectionResetError):
                    with server._lock:
                        server.counts["client_gone"] += 1

            def _wrap(self, api: str, text: str, prompt: str) -> dict[str, Any]:
                prompt_tokens, completion_tokens = len(prompt) // 4, len(text) // 4
                if api == "openai":
                    return {
                        "id": "chatcmpl-loopback",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": "loopback",
                        "choices": [
                            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                        ],
                        "usage": {
                            "prompt_tokens": prompt_tokens,
                            "completion_tokens": completion_tokens,
                            "total_tokens": prompt_tokens + completion_tokens,
                        },
                    }
                return {
                    "candidates": [
                        {"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": "STOP", "index": 0}
                    ],
                    "usageMetadata": {
                        "promptTokenCount": prompt_tokens,
                        "candidatesTokenCount": completion_tokens,
                        "totalTokenCount": prompt_tokens + completion_tokens,
                    },
                }

        return Handler

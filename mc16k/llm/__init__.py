"""One client layer for every LLM call: OpenAI, Gemini, OpenAI-compatible servers and local HF models,
with an async runner (concurrency, rate limits, retries) and a SIGKILL-safe keyed store."""

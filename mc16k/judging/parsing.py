"""Read judge replies: JSON first, then a tolerant by-name reading of prose. Never the first ``[[n]]``.

Every metric is looked up by its key or its name, compared as normalised aliases (case, ``&`` or "and",
hyphens, underscores and punctuation do not matter). A decimal score inside the scale is kept as given and
marked as not whole. A score that is missing, not a number, or outside the scale is a failure with a reason,
never a guess.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from mc16k.judging.rubric import Metric

_NUMBER = r"(-?\d+(?:\.\d+)?)"


@dataclass
class ParsedReply:
    scores: dict[str, float] = field(default_factory=dict)  # whole scores as int, decimal ones as given
    justifications: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # metric key -> why it has no score
    not_whole: set[str] = field(default_factory=set)  # metric keys whose score had a fractional part


def normalise_name(text: str) -> str:
    """The alias form of a metric name or key: "Empathy & Validation", "empathy and validation" and
    "empathy_validation" all become "empathyvalidation"."""
    words = re.findall(r"[a-z0-9]+", text.lower().replace("&", " and "))
    return "".join(w for w in words if w != "and")


def _json_objects(text: str) -> list[dict[str, Any]]:
    """Every JSON object embedded in ``text`` (code fences and prose around it are fine)."""
    decoder = json.JSONDecoder()
    found = []
    position = text.find("{")
    while position != -1:
        try:
            obj, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            position = text.find("{", position + 1)
            continue
        if isinstance(obj, dict):
            found.append(obj)
        position = text.find("{", end)
    return found


def _lookup(obj: dict[str, Any], metric: Metric) -> Any:
    wanted = {normalise_name(metric.key), normalise_name(metric.name)}
    for key, value in obj.items():
        if normalise_name(str(key)) in wanted:
            return value
    return None


def _check_score(raw: Any, low: int, high: int) -> tuple[float | None, str | None]:
    if isinstance(raw, bool) or raw is None:
        return None, f"no score (got {raw!r})"
    if isinstance(raw, str):
        match = re.fullmatch(r"\s*" + _NUMBER + r"\s*(?:/\s*10)?\s*", raw)
        if not match:
            return None, f"score is not a number: {raw!r}"
        raw = float(match.group(1))
    if not isinstance(raw, (int, float)):
        return None, f"score is not a number: {raw!r}"
    if not math.isfinite(raw):
        return None, f"score is not a number: {raw!r}"
    if not low <= raw <= high:
        return None, f"score {raw:g} outside {low}-{high}"
    return (int(raw) if float(raw).is_integer() else float(raw)), None


def _from_json(obj: dict[str, Any], metric: Metric) -> tuple[Any, str, bool]:
    """(raw score, justification, found) for one metric inside a JSON reply."""
    value = _lookup(obj, metric)
    if value is None:
        return None, "", False
    if isinstance(value, dict):
        return value.get("score"), str(value.get("justification", "")), True
    return value, "", True


def _name_pattern(metric: Metric) -> str:
    words = [w for w in re.split(r"[^A-Za-z0-9]+", metric.name) if w and w.lower() != "and"]
    between = r"[^A-Za-z0-9\n]{0,5}(?:and[^A-Za-z0-9\n]{1,5})?"  # "&", "and", hyphens, spaces
    by_name = between.join(re.escape(w) for w in words)
    by_key = r"[^A-Za-z0-9\n]{0,3}".join(re.escape(w) for w in metric.key.split("_"))
    return rf"(?:{by_name}|{by_key})"


def _from_prose(text: str, metric: Metric, others: list[Metric]) -> tuple[Any, str, bool]:
    """The score written in this metric's own section: ``[[n]]``, ``score: n`` or a number right after the name."""
    heading = re.search(_name_pattern(metric), text, flags=re.IGNORECASE)
    if heading is None:
        return None, "", False
    section_end = len(text)
    for other in others:
        later = re.compile(_name_pattern(other), flags=re.IGNORECASE).search(text, heading.end())
        if later is not None:
            section_end = min(section_end, later.start())
    section = text[heading.end() : section_end]
    for pattern in (r"\[\[\s*" + _NUMBER + r"\s*\]\]", r"score\W{0,5}" + _NUMBER, r"^\W{0,12}" + _NUMBER):
        match = re.search(pattern, section, flags=re.IGNORECASE)
        if match:
            return match.group(1), section.strip(), True
    return None, section.strip(), True


def parse_reply(text: str, metrics: list[Metric], low: int = 1, high: int = 10) -> ParsedReply:
    """Scores for ``metrics`` from a judge reply; metrics without a valid score get a reason in ``errors``."""
    result = ParsedReply()
    objects = _json_objects(text)
    for metric in metrics:
        raw, justification, found = None, "", False
        for obj in objects:
            raw, justification, found = _from_json(obj, metric)
            if found:
                break
        if not found:
            others = [m for m in metrics if m.key != metric.key]
            raw, justification, found = _from_prose(text, metric, others)
        if not found:
            result.errors[metric.key] = "metric missing from reply"
            continue
        score, error = _check_score(raw, low, high)
        if error:
            result.errors[metric.key] = error
        else:
            result.scores[metric.key] = score
            result.justifications[metric.key] = justification
            if isinstance(score, float):
                result.not_whole.add(metric.key)
    return result

"""The rubric files and the reply parser: every metric read by name, never the first [[n]]; bad scores are
failures with reasons, never numbers."""

from __future__ import annotations

import json
import shutil

import pytest

from mc16k.judging.parsing import parse_reply
from mc16k.judging.rubric import load_rubric
from mc16k.paths import resource_path

RUBRIC = load_rubric(resource_path("prompts/judge/v1"))
METRICS = list(RUBRIC.metrics)


def test_rubric_has_the_seven_metrics_with_anchors_and_a_content_versioned_id(tmp_path):
    assert RUBRIC.metric_keys == [
        "active_listening", "empathy_validation", "safety_trustworthiness", "open_mindedness",
        "clarity_encouragement", "boundaries_ethics", "holistic_approach",
    ]
    assert all(len(m.anchors) == 5 for m in METRICS)
    assert RUBRIC.version.startswith("mc16k-judge-v1+")
    edited = tmp_path / "v1"
    shutil.copytree(resource_path("prompts/judge/v1"), edited)
    (edited / "system.txt").write_text("A different instruction.\n")
    assert load_rubric(edited).version != RUBRIC.version  # an edited template never reuses cached judgments
    (edited / "user.txt").unlink()
    with pytest.raises(FileNotFoundError, match="user.txt"):
        load_rubric(edited)


def test_json_reply_with_prose_and_names_instead_of_keys():
    body = {m.name: {"justification": "ok", "score": i + 2} for i, m in enumerate(METRICS)}
    parsed = parse_reply("Here you go:\n```json\n" + json.dumps(body) + "\n```\nThanks!", METRICS)
    assert parsed.errors == {}
    assert parsed.scores == {m.key: i + 2 for i, m in enumerate(METRICS)}


def test_prose_reply_is_read_by_name_not_by_first_bracket():
    # the authors' parser took the first [[n]] (here the overall 9) for every metric
    text = "Overall this is a strong answer [[9]].\n" + "\n".join(
        f"{m.name}: the response does fine here. Score: [[{i + 1}]]" for i, m in enumerate(METRICS)
    )
    parsed = parse_reply(text, METRICS)
    assert parsed.scores == {m.key: i + 1 for i, m in enumerate(METRICS)}


@pytest.mark.parametrize(
    ("value", "reason"),
    [(11, "outside 1-10"), (0, "outside 1-10"), (10.5, "outside 1-10"), ("great", "not a number"), (None, "no score"),
     (float("nan"), "not a number")],
)
def test_bad_scores_are_failures_with_reasons(value, reason):
    body = {m.key: {"justification": "x", "score": 6} for m in METRICS}
    body["empathy_validation"]["score"] = value
    parsed = parse_reply(json.dumps(body), METRICS)
    assert "empathy_validation" not in parsed.scores and reason in parsed.errors["empathy_validation"]
    assert len(parsed.scores) == 6


def test_missing_metrics_and_string_scores():
    body = {"active_listening": {"score": "8/10"}, "empathy_validation": {"score": " 3 "}}
    parsed = parse_reply(json.dumps(body), METRICS)
    assert parsed.scores == {"active_listening": 8, "empathy_validation": 3}
    assert set(parsed.errors) == set(RUBRIC.metric_keys[2:])
    assert all(reason == "metric missing from reply" for reason in parsed.errors.values())


def test_truncated_json_is_still_read_by_name_where_the_score_is_there():
    text = '{"active_listening": {"justification": "good", "score": 7}, "empathy_validation": {"justif'
    parsed = parse_reply(text, METRICS[:2])
    assert parsed.scores == {"active_listening": 7} and "empathy_validation" in parsed.errors


def test_lower_case_names_with_and_hyphens_and_punctuation_are_the_same_metric():
    # "empathy and validation" lost 4 of 7 metrics before: names were compared with "&" kept, "and" not dropped
    variants = {
        "active_listening": "active listening",
        "empathy_validation": "empathy and validation",
        "safety_trustworthiness": "Safety and trustworthiness",
        "open_mindedness": "open mindedness and non-judgment",
        "clarity_encouragement": "CLARITY-AND-ENCOURAGEMENT",
        "boundaries_ethics": "boundaries & ethical:",
        "holistic_approach": "Holistic_Approach",
    }
    body = {variants[m.key]: {"justification": "ok", "score": i + 1} for i, m in enumerate(METRICS)}
    parsed = parse_reply(json.dumps(body), METRICS)
    assert parsed.errors == {} and parsed.scores == {m.key: i + 1 for i, m in enumerate(METRICS)}
    prose = "\n".join(f"**{variants[m.key]}**: {i + 1}/10, because it is fine." for i, m in enumerate(METRICS))
    assert parse_reply(prose, METRICS).scores == {m.key: i + 1 for i, m in enumerate(METRICS)}


def test_decimal_scores_in_range_are_kept_as_given_and_marked_not_whole():
    body = {m.key: {"justification": "x", "score": 6} for m in METRICS}
    body["empathy_validation"]["score"] = 5.5
    body["holistic_approach"]["score"] = "7.25/10"
    body["active_listening"]["score"] = 8.0
    parsed = parse_reply(json.dumps(body), METRICS)
    assert parsed.errors == {}
    assert parsed.scores["empathy_validation"] == 5.5 and parsed.scores["holistic_approach"] == 7.25
    assert parsed.scores["active_listening"] == 8 and isinstance(parsed.scores["active_listening"], int)
    assert parsed.not_whole == {"empathy_validation", "holistic_approach"}


def test_markdown_headings_reordered_and_bracket_lines():
    reordered = list(reversed(METRICS))
    headings = "\n\n".join(f"## {m.name}\nThe response is decent.\n**Score:** {i + 2}" for i, m in enumerate(reordered))
    assert parse_reply(headings, METRICS).scores == {m.key: i + 2 for i, m in enumerate(reordered)}
    brackets = "\n".join(f"{m.name.lower().replace('&', 'and')}: [[{i + 1}]]" for i, m in enumerate(reordered))
    assert parse_reply(brackets, METRICS).scores == {m.key: i + 1 for i, m in enumerate(reordered)}

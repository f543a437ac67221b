"""The judging rubric as data: metrics with anchors and prompt templates, loaded from a versioned directory.

The prompt version id is the rubric's declared ``version`` plus a hash of every file in the directory, so an
edited template can never reuse judgments cached under the old wording.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml

from mc16k.errors import BadInputError, MissingInputError

TEMPLATE_FILES = (
    "system.txt",
    "user.txt",
    "criterion.txt",
    "instructions_json.txt",
    "instructions_score_only.txt",
    "score_prefix.txt",
    "reask.txt",
)


@dataclass(frozen=True)
class Metric:
    key: str
    name: str
    description: str
    anchors: dict[str, str]


@dataclass(frozen=True)
class Rubric:
    version: str  # declared version + content hash
    metrics: tuple[Metric, ...]
    templates: dict[str, str]
    score_min: int
    score_max: int

    @property
    def metric_keys(self) -> list[str]:
        return [m.key for m in self.metrics]

    def metric(self, key: str) -> Metric:
        for metric in self.metrics:
            if metric.key == key:
                return metric
        raise KeyError(f"unknown metric {key!r}; rubric has {self.metric_keys}")

    def criteria(self, metrics: list[Metric]) -> str:
        return "\n".join(
            self.templates["criterion.txt"].format(
                name=m.name,
                key=m.key,
                description=m.description,
                anchors="; ".join(f"{band} = {text}" for band, text in m.anchors.items()),
            )
            for m in metrics
        )

    def user_prompt(self, question: str, answer: str, metrics: list[Metric], score_only: bool) -> str:
        """The user message; question and answer come first so that per-metric prompts share a long prefix."""
        if score_only:
            instructions = self.templates["instructions_score_only.txt"]
        else:
            instructions = self.templates["instructions_json.txt"].format(
                keys=", ".join(f'"{m.key}"' for m in metrics)
            )
        return self.templates["user.txt"].format(
            question=question, answer=answer, criteria=self.criteria(metrics), instructions=instructions
        )

    def reask_prompt(self, errors: dict[str, str]) -> str:
        """The follow-up turn of a re-ask: which criteria could not be read, why, and the format expected."""
        lines = "\n".join(f'- {self.metric(key).name} (key "{key}"): {why}' for key, why in errors.items())
        return self.templates["reask.txt"].format(errors=lines, keys=", ".join(f'"{key}"' for key in errors))

    def score_prefix(self, metric: Metric) -> str:
        return self.templates["score_prefix.txt"].format(name=metric.name, key=metric.key)

    def json_schema(self, metrics: list[Metric]) -> dict:
        """JSON schema of a reply: one {justification, score} object per metric key (justification first)."""
        entry = {
            "type": "object",
            "properties": {"justification": {"type": "string"}, "score": {"type": "integer"}},
            "required": ["justification", "score"],
            "additionalProperties": False,
        }
        return {
            "type": "object",
            "properties": {m.key: entry for m in metrics},
            "required": [m.key for m in metrics],
            "additionalProperties": False,
        }


def load_rubric(directory: str | Path) -> Rubric:
    """Read ``rubric.yaml`` and the templates; errors name the file and the missing field."""
    directory = Path(directory)
    rubric_file = directory / "rubric.yaml"
    if not rubric_file.is_file():
        raise MissingInputError(f"judge rubric not found: {rubric_file}")
    raw = yaml.safe_load(rubric_file.read_text(encoding="utf-8"))
    digest = hashlib.sha256()
    for name in ("rubric.yaml", *TEMPLATE_FILES):
        path = directory / name
        if not path.is_file():
            raise MissingInputError(f"judge prompt template missing: {path}")
        digest.update(name.encode() + b"\0" + path.read_bytes())
    for field in ("version", "scale", "metrics"):
        if field not in raw:
            raise BadInputError(f"{rubric_file}: missing field {field!r}")
    metrics = []
    for index, entry in enumerate(raw["metrics"]):
        missing = [f for f in ("key", "name", "description", "anchors") if f not in entry]
        if missing:
            raise BadInputError(f"{rubric_file}: metrics[{index}] is missing {missing}")
        metrics.append(Metric(entry["key"], entry["name"], entry["description"].strip(), dict(entry["anchors"])))
    templates = {
        name: (directory / name).read_text(encoding="utf-8").removesuffix("\n") for name in TEMPLATE_FILES
    }
    return Rubric(
        version=f"{raw['version']}+{digest.hexdigest()[:10]}",
        metrics=tuple(metrics),
        templates=templates,
        score_min=int(raw["scale"]["min"]),
        score_max=int(raw["scale"]["max"]),
    )

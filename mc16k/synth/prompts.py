"""The pipelines' prompts as data: templates, variation lists and filter patterns from a versioned directory.

The version id is the declared ``version`` plus a hash of every file in the directory (as for the judge
rubric), and it is part of every cache key: replies stored under an older wording are never reused.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

TEMPLATE_FILES = (
    "patient_system.txt",
    "patient_user.txt",
    "paraphrase_system.txt",
    "paraphrase_question.txt",
    "paraphrase_answer.txt",
)
SPEC_FILE = "prompts.yaml"


@dataclass(frozen=True)
class PromptSet:
    version: str  # declared version + content hash
    templates: dict[str, str]
    variations: dict[str, tuple[str, ...]]  # axis -> choices, e.g. person, style
    refusal_patterns: tuple[re.Pattern[str], ...]
    offformat_patterns: tuple[re.Pattern[str], ...]

    def render(self, name: str, **fields: str) -> str:
        return self.templates[name].format(**fields)


def _compile(file: Path, field: str, patterns: list, flags: int) -> tuple[re.Pattern[str], ...]:
    compiled = []
    for index, pattern in enumerate(patterns):
        try:
            compiled.append(re.compile(pattern, flags))
        except (re.error, TypeError) as err:
            raise ValueError(f"{file}: {field}[{index}] is not a regular expression: {err}") from err
    return tuple(compiled)


def load_prompts(directory: str | Path) -> PromptSet:
    """Read ``prompts.yaml`` and the templates; errors name the file and the field."""
    directory = Path(directory)
    spec_file = directory / SPEC_FILE
    if not spec_file.is_file():
        raise FileNotFoundError(f"synth prompts not found: {spec_file}")
    digest = hashlib.sha256()
    for name in (SPEC_FILE, *TEMPLATE_FILES):
        path = directory / name
        if not path.is_file():
            raise FileNotFoundError(f"synth prompt template missing: {path}")
        digest.update(name.encode() + b"\0" + path.read_bytes())
    spec = yaml.safe_load(spec_file.read_text(encoding="utf-8")) or {}
    for field in ("version", "variations", "refusal_patterns", "offformat_patterns"):
        if field not in spec:
            raise ValueError(f"{spec_file}: missing field {field!r}")
    variations = {}
    for axis, choices in spec["variations"].items():
        if not choices:
            raise ValueError(f"{spec_file}: variations.{axis} is empty")
        variations[axis] = tuple(str(c) for c in choices)
    return PromptSet(
        version=f"{spec['version']}+{digest.hexdigest()[:10]}",
        templates={n: (directory / n).read_text(encoding="utf-8").strip() for n in TEMPLATE_FILES},
        variations=variations,
        refusal_patterns=_compile(spec_file, "refusal_patterns", spec["refusal_patterns"], re.IGNORECASE),
        offformat_patterns=_compile(
            spec_file, "offformat_patterns", spec["offformat_patterns"], re.IGNORECASE | re.MULTILINE
        ),
    )

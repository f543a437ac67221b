"""PII scrub with presidio-analyzer's pattern recognizers, offline and without a spaCy model.

presidio's ``AnalyzerEngine`` loads a spaCy model (which cannot be downloaded here), so the recognizers are
used directly: ``EmailRecognizer`` (its top-level-domain check reads tldextract's bundled suffix list, never
the network), ``PhoneRecognizer`` (python-phonenumbers), ``DateRecognizer`` plus a written-month date
pattern, a street-address pattern, and a deny-list ``PatternRecognizer`` for the user's names. Every date is
removed: a date of birth cannot be told from other dates without context, and all of them identify.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mc16k.synth.config import PIIConfig

PLACEHOLDERS = {
    "EMAIL_ADDRESS": "[EMAIL]",
    "PHONE_NUMBER": "[PHONE]",
    "STREET_ADDRESS": "[ADDRESS]",
    "DATE": "[DATE]",
    "PERSON": "[NAME]",
}
_MONTHS = r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
WRITTEN_DATE = rf"\b(?:{_MONTHS}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTHS}\.?,?\s+\d{{4}})\b"
_STREET_TYPES = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Ter"
    r"|Circle|Cir|Parkway|Pkwy|Highway|Hwy|Square|Sq)"
)
STREET_ADDRESS = (
    rf"\b\d{{1,6}}\s+(?:[A-Z][A-Za-z'-]*\.?\s+){{1,4}}{_STREET_TYPES}\b\.?"
    r"(?:,?\s+(?:Apt|Apartment|Suite|Unit|#)\.?\s*\w+)?"
)


@dataclass(frozen=True)
class Finding:
    entity: str
    start: int
    end: int
    text: str


def read_names(cfg: PIIConfig) -> list[str]:
    """The user's names (file + list); a full name also contributes each of its words of 2+ letters."""
    names = list(cfg.names)
    if cfg.names_file:
        path = Path(cfg.names_file)
        if not path.is_file():
            raise FileNotFoundError(f"synth.pii.names_file: {path} not found")
        names += [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    expanded = set()
    for name in names:
        if not name or name.startswith("#"):
            continue
        expanded.add(name)
        expanded.update(part for part in re.split(r"\s+", name) if len(part) >= 2)
    return sorted(expanded, key=lambda n: (-len(n), n))  # longest first: "Maria Lopez" before "Maria"


class PIIScrubber:
    """Finds and replaces the configured entities; ``scrub`` returns the new text and what it removed."""

    def __init__(self, cfg: PIIConfig):
        import tldextract
        from presidio_analyzer import Pattern, PatternRecognizer
        from presidio_analyzer.predefined_recognizers import DateRecognizer, EmailRecognizer, PhoneRecognizer

        unknown = sorted(set(cfg.entities) - set(PLACEHOLDERS))
        if unknown:
            raise ValueError(f"synth.pii.entities: unknown {unknown}; known: {sorted(PLACEHOLDERS)}")
        offline_suffixes = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

        class OfflineEmailRecognizer(EmailRecognizer):
            def validate_result(self, pattern_text: str) -> bool:
                return offline_suffixes(pattern_text).fqdn != ""

        case_sensitive = re.DOTALL | re.MULTILINE
        self.recognizers: dict[str, list] = {
            "EMAIL_ADDRESS": [OfflineEmailRecognizer()],
            "PHONE_NUMBER": [PhoneRecognizer(supported_regions=tuple(cfg.phone_regions))],
            "DATE": [
                DateRecognizer(supported_entity="DATE"),
                PatternRecognizer(supported_entity="DATE", patterns=[Pattern("written date", WRITTEN_DATE, 0.7)]),
            ],
            "STREET_ADDRESS": [
                PatternRecognizer(
                    supported_entity="STREET_ADDRESS",
                    patterns=[Pattern("street address", STREET_ADDRESS, 0.6)],
                    global_regex_flags=case_sensitive,
                )
            ],
        }
        names = read_names(cfg)
        if names:
            self.recognizers["PERSON"] = [PatternRecognizer(supported_entity="PERSON", deny_list=names)]
        self.entities = [e for e in cfg.entities if e in self.recognizers]

    def find(self, text: str) -> list[Finding]:
        """Non-overlapping findings, left to right (of overlapping ones the longest wins)."""
        found = []
        for entity in self.entities:
            for recognizer in self.recognizers[entity]:
                for result in recognizer.analyze(text, recognizer.supported_entities, None):
                    found.append(Finding(entity, result.start, result.end, text[result.start : result.end]))
        found.sort(key=lambda f: (f.start, -(f.end - f.start)))
        kept: list[Finding] = []
        for finding in found:
            if kept and finding.start < kept[-1].end:
                continue
            kept.append(finding)
        return kept

    def scrub(self, text: str) -> tuple[str, list[Finding]]:
        findings = self.find(text)
        pieces, last = [], 0
        for finding in findings:
            pieces += [text[last : finding.start], PLACEHOLDERS[finding.entity]]
            last = finding.end
        pieces.append(text[last:])
        return "".join(pieces), findings

"""LLM judges on the 7 counseling metrics: rubric as data, tolerant by-name parsing, cached judgments."""

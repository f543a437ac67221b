"""Run management shared by training jobs: identity, records (provenance, done marker), tracking (W&B)."""

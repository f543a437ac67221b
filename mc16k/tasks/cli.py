"""What every entry point does around its task: refuse unknown config keys, print user errors briefly.

A :class:`~mc16k.errors.UserError` (bad data, a bad question file, missing answers, a missing API key, no hub
access, a corrupt store, an unknown key) is printed in at most three lines and the process exits with status
2; ``HYDRA_FULL_ERROR=1`` shows the full traceback instead. Any other exception is a bug or an accident of the
environment and keeps Hydra's traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TypeVar

from omegaconf import DictConfig

from mc16k.config import refuse_unknown_keys
from mc16k.errors import EXIT_USER_ERROR, UserError

Result = TypeVar("Result")

FULL_ERROR_ENV = "HYDRA_FULL_ERROR"  # Hydra's own switch for full tracebacks; honoured for user errors too


def brief(err: UserError) -> str:
    """At most three lines: what and where, what to do, how to see the traceback."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
    what, todo = lines[0], " ".join(lines[1:])
    text = f"error: {what}\n"
    if todo:
        text += f"{todo}\n"
    return text + f"(set {FULL_ERROR_ENV}=1 for the full traceback)\n"


def run_task(task: Callable[[DictConfig], Result], cfg: DictConfig) -> Result:
    """Run ``task(cfg)`` for an entry point; a user error ends the process with status 2 and a short message."""
    try:
        refuse_unknown_keys(cfg)
        return task(cfg)
    except UserError as err:
        if os.environ.get(FULL_ERROR_ENV, "").lower() in {"1", "true", "yes"}:
            raise
        sys.stdout.flush()
        sys.stderr.write(brief(err))
        sys.stderr.flush()
        sys.exit(EXIT_USER_ERROR)

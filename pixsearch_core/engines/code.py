"""The code an engine's workers run: this checkout on local workers' PYTHONPATH, a zip of the packages for
remote ones, and the version of that code (recorded in index manifests)."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from pixsearch_core import __version__

log = logging.getLogger(__name__)

#: the top-level packages that make up the job code shipped to workers
CODE_PACKAGES = ("pixsearch_core", "indexing", "jobs", "pipelines")


def code_root() -> Path:
    """The directory holding the imported pixsearch packages (a checkout, or site-packages)."""
    import pixsearch_core

    return Path(pixsearch_core.__file__).resolve().parents[1]


def code_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """`env` (default: os.environ) with `code_root()` first on PYTHONPATH, for local worker processes."""
    env = dict(os.environ if env is None else env)
    root = str(code_root())
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != root]
    env["PYTHONPATH"] = os.pathsep.join([root, *paths])
    return env


def put_code_on_path() -> None:
    """Put `code_root()` first on this process's PYTHONPATH, so the workers it starts import the same code."""
    os.environ["PYTHONPATH"] = code_env()["PYTHONPATH"]


@lru_cache(maxsize=1)
def code_version() -> dict[str, Any]:
    """{package, commit, dirty}: the pixsearch version and, in a git checkout, its commit and uncommitted state."""
    root = code_root()
    out: dict[str, Any] = {"package": __version__, "commit": None, "dirty": None}
    try:
        git = ["git", "-C", str(root)]
        top = subprocess.run([*git, "rev-parse", "--show-toplevel"], capture_output=True, text=True, timeout=10)
        if top.returncode != 0 or Path(top.stdout.strip()).resolve() != root:
            return out  # an installed copy, not a checkout
        out["commit"] = subprocess.run(
            [*git, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no", "--", *CODE_PACKAGES],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        out["dirty"] = bool(status.strip())
    except (OSError, subprocess.SubprocessError) as e:
        log.debug("no git version for %s: %s", root, e)
    return out


def _code_files() -> list[tuple[Path, str]]:
    root = code_root()
    files = []
    for pkg in CODE_PACKAGES:
        for path in sorted((root / pkg).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
                files.append((path, path.relative_to(root).as_posix()))
    return files


@lru_cache(maxsize=1)
def code_zip() -> Path:
    """A zip of the job packages (importable from sys.path), named by its content hash; built once per process."""
    files = _code_files()
    h = hashlib.sha256()
    for path, name in files:
        h.update(name.encode() + b"\0" + path.read_bytes())
    target = Path(tempfile.gettempdir()) / f"pixsearch-code-{h.hexdigest()[:12]}.zip"
    if not target.exists():
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            for path, name in files:
                z.write(path, name)
        os.replace(tmp, target)
    log.info("job code for the workers: %s (%d files)", target, len(files))
    return target

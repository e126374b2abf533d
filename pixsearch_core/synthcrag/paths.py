"""References inside a SynthCRAG world: every image and mask a world's files name is a path relative to the world
root (the directory holding `world.json`), e.g. `scenes/test/entity-0003-s0.png`. A world's bytes therefore do not
depend on where it was written, and a world tree can be moved or copied (to s3:// too) as it is.

Every reader of world files resolves references the same way: `reference_base(store, file)` gives the world root
when `file` sits in a world (`<root>/<part>/<name>`, as `write_synthcrag` lays them out) and the file's own
directory otherwise (the generic rule for record files of other origins); `resolve(base, ref)` leaves absolute
paths and URIs as they are.
"""

from __future__ import annotations

import posixpath

from pixsearch_core.storage import ObjectStore, join

#: the file that marks a world root (written last by `write_synthcrag`)
WORLD_MARKER = "world.json"


def _parent(uri: str) -> str:
    head = posixpath.dirname(uri.rstrip("/"))
    return head or "."


def world_root(store: ObjectStore, file_uri: str) -> str | None:
    """The root of the world that `file_uri` (a record file one level under it) belongs to, or None."""
    root = _parent(_parent(file_uri))
    if root.endswith((":", ":/")):  # above an s3:// bucket: not a world
        return None
    return root if store.exists(join(root, WORLD_MARKER)) else None


def reference_base(store: ObjectStore, file_uri: str) -> str:
    """What relative references in `file_uri` resolve against: its world root, else its own directory."""
    return world_root(store, file_uri) or _parent(file_uri)


def resolve(base: str, ref: str) -> str:
    """A reference: absolute paths and URIs as they are, relative ones under `base`."""
    return ref if ref.startswith("/") or "://" in ref else join(base, ref)

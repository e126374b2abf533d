"""Run records: per-sample results appended as parquet parts under `<root>/runs/<run_id>/`, resumable.

    writer = RecordWriter(store, run_dir("s3://b/pixsearch", run_id), meta={"model": ..., "index_version": ...})
    for ex in examples:
        if writer.is_done(ex.id): continue          # a resumed run skips finished samples
        writer.write({"sample_id": ex.id, "answer": ..., "trajectory": {...}})
    writer.close()                                   # flushes the last part

Each flush writes one immutable part file (`records/part-<n>-<uuid>.parquet`) with the store's atomic write, so a
crash loses at most the unflushed buffer and never leaves a half-written part. Values that are dicts or lists are
stored as JSON text and decoded on read (the list of such columns is kept in the parquet schema metadata).
`run.json` holds the run's metadata (model, index version, config hash, ...).
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterable
from typing import Any

from pixsearch_core.storage import ObjectStore, join

log = logging.getLogger(__name__)

ID = "sample_id"
_JSON_META_KEY = b"pixsearch.json_columns"


def run_dir(root: str, run_id: str) -> str:
    """`<root>/runs/<run_id>`; run ids are path-safe names."""
    if not run_id or "/" in run_id or run_id.startswith("."):
        raise ValueError(f"bad run id {run_id!r}: use a non-empty name without '/' that does not start with '.'")
    return join(root, "runs", run_id)


def _to_table(rows: list[dict[str, Any]]):
    import pyarrow as pa

    columns: dict[str, list[Any]] = {}
    for row in rows:
        for key in row:
            columns.setdefault(key, [])
    json_cols = sorted(k for k in columns if any(isinstance(r.get(k), (dict, list, tuple)) for r in rows))
    for row in rows:
        for key, col in columns.items():
            v = row.get(key)
            col.append(json.dumps(v, sort_keys=True) if key in json_cols and v is not None else v)
    table = pa.table(columns)
    return table.replace_schema_metadata({_JSON_META_KEY: json.dumps(json_cols).encode()})


class RecordWriter:
    """Appends per-sample records to a run directory; never writes a sample id twice."""

    def __init__(self, store: ObjectStore, run_uri: str, meta: dict[str, Any] | None = None,
                 flush_every: int = 64):
        if flush_every < 1:
            raise ValueError(f"flush_every={flush_every}; must be >= 1")
        self.store = store
        self.run_uri = run_uri
        self.flush_every = flush_every
        self._buffer: list[dict[str, Any]] = []
        self._done = done_ids(store, run_uri)
        self._parts = sum(1 for _ in _part_uris(store, run_uri))
        if meta is not None:
            self._write_meta(meta)

    def _write_meta(self, meta: dict[str, Any]) -> None:
        uri = join(self.run_uri, "run.json")
        if self.store.exists(uri):
            old = json.loads(self.store.get_bytes(uri))
            diff = {k: (old.get(k), v) for k, v in meta.items() if old.get(k) != v}
            if diff:
                raise ValueError(f"run {self.run_uri} was started with different settings: {diff} "
                                 "(old, new); use a new run id")
            return
        self.store.put_bytes(uri, json.dumps(meta, indent=2, sort_keys=True).encode())

    def is_done(self, sample_id: str) -> bool:
        return str(sample_id) in self._done

    @property
    def done(self) -> frozenset[str]:
        return frozenset(self._done)

    def write(self, record: dict[str, Any]) -> bool:
        """Buffer one record (must have `sample_id`); returns False (and writes nothing) for a done id."""
        if ID not in record:
            raise KeyError(f"record has no {ID!r} field; fields: {sorted(record)}")
        sid = str(record[ID])
        if sid in self._done:
            return False
        self._done.add(sid)
        self._buffer.append({**record, ID: sid})
        if len(self._buffer) >= self.flush_every:
            self.flush()
        return True

    def write_many(self, records: Iterable[dict[str, Any]]) -> int:
        return sum(self.write(r) for r in records)

    def flush(self) -> None:
        if not self._buffer:
            return
        import pyarrow.parquet as pq

        buf = io.BytesIO()
        pq.write_table(_to_table(self._buffer), buf)
        uri = join(self.run_uri, "records", f"part-{self._parts:06d}-{uuid.uuid4().hex[:8]}.parquet")
        self.store.put_bytes(uri, buf.getvalue())
        log.debug("wrote %d records to %s", len(self._buffer), uri)
        self._parts += 1
        self._buffer.clear()

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _part_uris(store: ObjectStore, run_uri: str) -> Iterable[str]:
    return (u for u in store.list(join(run_uri, "records")) if u.endswith(".parquet"))


def _read_part(store: ObjectStore, uri: str):
    return store.read_parquet(uri)


def done_ids(store: ObjectStore, run_uri: str) -> set[str]:
    """Sample ids with a record in the run (reads only the id column of each part)."""
    out: set[str] = set()
    for uri in _part_uris(store, run_uri):
        table = store.read_parquet(uri, columns=[ID])
        out.update(table.column(ID).to_pylist())
    return out


def read_records(store: ObjectStore, run_uri: str) -> list[dict[str, Any]]:
    """All records of a run, JSON columns decoded, in part order."""
    rows: list[dict[str, Any]] = []
    for uri in sorted(_part_uris(store, run_uri)):
        table = _read_part(store, uri)
        meta = table.schema.metadata or {}
        json_cols = set(json.loads(meta.get(_JSON_META_KEY, b"[]")))
        for row in table.to_pylist():
            for key in json_cols:
                if row.get(key) is not None:
                    row[key] = json.loads(row[key])
            rows.append(row)
    return rows


def read_run_meta(store: ObjectStore, run_uri: str) -> dict[str, Any]:
    return json.loads(store.get_bytes(join(run_uri, "run.json")))

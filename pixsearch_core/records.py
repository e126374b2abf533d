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

Reading is defensive: records are deduplicated by sample_id (an answered record wins over error records, a later
part over an earlier one), so even two writers that raced (the eval driver prevents this with a lease) never
double-count; a part that cannot be read is skipped with a warning and listed (`scan_records(...).damaged`), and
its samples count as not run, so a resume runs them again. A sample whose records are all errors is run again
by a writer opened with `max_attempts` > 1 until it has that many.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
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

    def __init__(
        self,
        store: ObjectStore,
        run_uri: str,
        meta: dict[str, Any] | None = None,
        flush_every: int = 64,
        max_attempts: int = 1,
        guard: Callable[[], None] | None = None,
    ):
        """`max_attempts`: a sample whose records are all errors is run again until it has this many;
        `guard`: called before each part is written (e.g. `RunLease.check`), raising stops the writer."""
        if flush_every < 1 or max_attempts < 1:
            raise ValueError(f"flush_every={flush_every}, max_attempts={max_attempts}; both must be >= 1")
        self.store = store
        self.run_uri = run_uri
        self.flush_every = flush_every
        self.guard = guard
        self._buffer: list[dict[str, Any]] = []
        self._done = done_ids(store, run_uri, max_attempts)
        self._parts = sum(1 for _ in _part_uris(store, run_uri))
        if meta is not None:
            self._write_meta(meta)

    def _write_meta(self, meta: dict[str, Any]) -> None:
        uri = join(self.run_uri, "run.json")
        if self.store.exists(uri):
            old = json.loads(self.store.get_bytes(uri))
            diff = {k: (old.get(k), v) for k, v in meta.items() if old.get(k) != v}
            if diff:
                raise ValueError(
                    f"run {self.run_uri} was started with different settings: {diff} (old, new); use a new run id"
                )
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

        if self.guard is not None:
            self.guard()
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


def _read_part(store: ObjectStore, uri: str, columns: list[str] | None = None):
    """One part as a table (only `columns` that it has), or None (logged) when it is damaged: not readable as
    parquet, or without a sample_id column. pre_buffer=False: see ObjectStore.read_parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        data = store.get_bytes(uri)
        names = pq.read_schema(pa.BufferReader(data)).names
        if ID not in names:
            raise ValueError(f"no {ID!r} column (columns: {names})")
        cols = [c for c in columns if c in names] if columns else None
        return pq.read_table(pa.BufferReader(data), columns=cols, pre_buffer=False)
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid / ArrowIOError are ValueError / OSError
        if isinstance(e, FileNotFoundError):
            raise
        log.warning("skipping damaged records part %s: %s: %s", uri, type(e).__name__, e)
        return None


def _rank(row: dict[str, Any]) -> int:
    """Which of two records of one sample wins: an answered one (or one without a status) beats an error."""
    return 0 if row.get("status", "ok") == "error" else 1


@dataclass
class RunRecords:
    """A run's records, one per sample_id (an answered record wins over errors, later parts over earlier),
    with how many error records (failed attempts) each sample has and which parts could not be read."""

    records: list[dict[str, Any]] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    damaged: list[str] = field(default_factory=list)
    duplicates: int = 0


def scan_records(store: ObjectStore, run_uri: str, columns: list[str] | None = None) -> RunRecords:
    """Every part in order; a damaged part is skipped (logged, listed in `damaged`), its samples count as not run."""
    out, best = RunRecords(), {}
    for uri in sorted(_part_uris(store, run_uri)):
        table = _read_part(store, uri, columns)
        if table is None:
            out.damaged.append(uri)
            continue
        json_cols = set(json.loads((table.schema.metadata or {}).get(_JSON_META_KEY, b"[]")))
        for row in table.to_pylist():
            for key in json_cols & set(row):
                if row[key] is not None:
                    row[key] = json.loads(row[key])
            sid = str(row[ID])
            if _rank(row) == 0:
                out.errors[sid] = out.errors.get(sid, 0) + 1
            if sid in best:
                out.duplicates += _rank(best[sid]) == _rank(row) == 1
                if _rank(row) < _rank(best[sid]):
                    continue
            best[sid] = row
    if out.duplicates:
        log.warning(
            "run %s: %d samples have more than one answered record; the latest of each is used", run_uri, out.duplicates
        )
    out.records = list(best.values())
    return out


def done_ids(store: ObjectStore, run_uri: str, max_attempts: int = 1) -> set[str]:
    """Sample ids that need no more work: answered, or failed `max_attempts` times (reads two columns)."""
    scan = scan_records(store, run_uri, columns=[ID, "status"])
    return {str(r[ID]) for r in scan.records if _rank(r) == 1 or scan.errors.get(str(r[ID]), 0) >= max_attempts}


def read_records(store: ObjectStore, run_uri: str) -> list[dict[str, Any]]:
    """The run's records, one per sample (see `scan_records`), JSON columns decoded, in part order."""
    return scan_records(store, run_uri).records


def read_run_meta(store: ObjectStore, run_uri: str) -> dict[str, Any]:
    return json.loads(store.get_bytes(join(run_uri, "run.json")))

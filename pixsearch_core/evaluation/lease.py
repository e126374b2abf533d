"""One driver per eval run: a lease object in the run directory, taken by conditional create, kept by heartbeat.

    with RunLease(store, run_uri, ttl_s=120) as lease:    # LeaseHeld if another live driver has the run
        ...
        lease.check()                                     # LeaseLost if it expired or was taken over

Leases are numbered objects `<run>/lease/<generation>.json` ({"owner", "expires_at", ...}). A driver takes the run
by creating the next generation with `ObjectStore.put_if_absent` (S3 `If-None-Match: *`, locally a hard link):
of several drivers racing for the same generation exactly one succeeds. It may do so only when there is no lease
yet or the newest one has expired (its holder died: nobody renewed it) or was released. A daemon thread renews
the holder's own generation every ttl/3; `check()` (called before every records part is written) fails once a
newer generation exists or the last renewal is older than the ttl, so a driver that stalled past its lease stops
writing instead of racing its successor. Expiry compares wall clocks: hosts must agree to well within the ttl.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid

from pixsearch_core.storage import ObjectStore, join

log = logging.getLogger(__name__)


class LeaseHeld(RuntimeError):
    """Another live driver holds the run."""


class LeaseLost(RuntimeError):
    """This driver's lease expired or was taken over; it must stop writing."""


class RunLease:
    def __init__(self, store: ObjectStore, run_uri: str, ttl_s: float = 120.0, clock=time.time):
        if ttl_s <= 0:
            raise ValueError(f"lease ttl_s={ttl_s}; must be > 0 seconds")
        self.store, self.prefix, self.ttl_s, self.clock = store, join(run_uri, "lease"), ttl_s, clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.generation: int | None = None
        self.expires_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _uri(self, generation: int) -> str:
        return join(self.prefix, f"{generation:010d}.json")

    def _generations(self) -> list[int]:
        names = (u.rsplit("/", 1)[-1] for u in self.store.list(self.prefix))
        return sorted(int(n[:-5]) for n in names if n.endswith(".json") and n[:-5].isdigit())

    def _read(self, generation: int) -> dict:
        """A lease's content; an unreadable one counts as expired (taking over stays exclusive: the next
        generation is still created conditionally)."""
        run = self.prefix.rsplit("/", 1)[0]
        try:
            cur = json.loads(self.store.get_bytes(self._uri(generation)))
            return {"owner": str(cur["owner"]), "expires_at": float(cur["expires_at"])}
        except FileNotFoundError:  # pruned by a newer holder between our list and read
            raise LeaseHeld(f"the lease of run {run} changed hands while it was being read; try again") from None
        except (ValueError, KeyError, TypeError) as e:
            log.warning("lease %d of run %s is unreadable (%s); treating it as expired", generation, run, e)
            return {"owner": "unknown", "expires_at": -1.0}

    def _body(self, expires_at: float) -> bytes:
        return json.dumps({"owner": self.owner, "expires_at": expires_at, "ttl_s": self.ttl_s}).encode()

    def acquire(self) -> RunLease:
        gens = self._generations()
        if gens:
            cur = self._read(gens[-1])
            left = cur["expires_at"] - self.clock()
            if left > 0:
                raise LeaseHeld(
                    f"run {self.prefix.rsplit('/', 1)[0]} is being run by {cur['owner']} (lease valid "
                    f"{left:.0f} s more); wait for it to finish or die, then run again to resume"
                )
            if cur["expires_at"] > 0:  # 0: released by a driver that finished or stopped cleanly
                log.warning("taking over the run from %s (lease %d expired %.0f s ago)", cur["owner"], gens[-1], -left)
        generation = gens[-1] + 1 if gens else 0
        expires_at = self.clock() + self.ttl_s
        if not self.store.put_if_absent(self._uri(generation), self._body(expires_at)):
            raise LeaseHeld(f"another driver took run {self.prefix.rsplit('/', 1)[0]} at the same moment")
        self.generation, self.expires_at = generation, expires_at
        for old in gens[:-1]:  # history beyond the previous holder is not needed
            self.store.delete(self._uri(old))
        self._thread = threading.Thread(target=self._heartbeat, name="run-lease", daemon=True)
        self._thread.start()
        log.info("run lease %d taken by %s (ttl %.0f s)", generation, self.owner, self.ttl_s)
        return self

    def _renew(self) -> None:
        expires_at = self.clock() + self.ttl_s
        self.store.put_bytes(self._uri(self.generation), self._body(expires_at))
        self.expires_at = expires_at

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                self.check()
                self._renew()
            except LeaseLost as e:
                log.error("%s", e)
                return
            except Exception as e:  # noqa: BLE001 - a failed renewal is retried; check() fails once it expires
                log.warning("lease renewal failed (%s); retrying", e)

    def check(self) -> None:
        """Raise LeaseLost unless this driver still holds the run."""
        if self.generation is None:
            raise LeaseLost("no lease taken (call acquire() first)")
        if self.clock() >= self.expires_at:
            raise LeaseLost(f"lease {self.generation} of {self.owner} expired (not renewed for {self.ttl_s:.0f} s)")
        newer = [g for g in self._generations() if g > self.generation]
        if newer:
            raise LeaseLost(f"lease {self.generation} of {self.owner} was taken over (generation {newer[-1]})")

    def release(self) -> None:
        """Stop renewing and mark the lease free (expires_at 0), so the next driver need not wait for the ttl."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.generation is not None and not any(g > self.generation for g in self._generations()):
            self.store.put_bytes(self._uri(self.generation), self._body(0.0))
        self.generation = None

    def __enter__(self) -> RunLease:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

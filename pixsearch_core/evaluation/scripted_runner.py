"""`ScriptedRunner`: a deterministic `SampleRunner` with no model, for tests and pipeline smoke runs.

It answers from a table (or with the gold answer: `--model oracle`), replays scripted searches (with mask RLEs),
and can be told to fail on chosen ids (an exception: recorded as status="error") or to stop the whole process
after N samples (KeyboardInterrupt: what a killed run looks like to the driver). Everything it does is a pure
function of its arguments and the example, so Ray and sequential runs must give identical records.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pixsearch_core.benchmarks.base import Example

log = logging.getLogger(__name__)


class ScriptedRunner:
    """answers: id -> answer (ids not in the table answer `default`, or the gold answer when default is None).
    searches: id -> list of search dicts. fail_ids: ids whose run raises. interrupt_after: raise
    KeyboardInterrupt when this many samples have been answered by this runner (in-process runs only).
    delay_s: sleep this long per sample (stands in for model time in concurrency and kill tests)."""

    def __init__(
        self,
        answers: dict[str, str] | None = None,
        default: str | None = None,
        searches: dict[str, list[dict[str, Any]]] | None = None,
        fail_ids: list[str] | None = None,
        interrupt_after: int | None = None,
        delay_s: float = 0.0,
    ):
        self.answers = dict(answers or {})
        self.default = default
        self.searches = dict(searches or {})
        self.fail_ids = set(fail_ids or [])
        self.interrupt_after = interrupt_after
        self.delay_s = delay_s
        self.answered = 0
        self.ready = False

    def setup(self) -> None:
        self.ready = True

    def _answer(self, ex: Example) -> dict[str, Any]:
        if ex.id in self.fail_ids:
            raise RuntimeError(f"scripted failure on sample {ex.id}")
        if self.interrupt_after is not None and self.answered >= self.interrupt_after:
            raise KeyboardInterrupt(f"scripted interrupt after {self.answered} samples")
        self.answered += 1
        time.sleep(self.delay_s)
        answer = self.answers.get(ex.id, self.default)
        if answer is None:
            answer = ex.answers[0] if ex.answers else ""
        searches = [dict(s, hop=i) for i, s in enumerate(self.searches.get(ex.id, []))]
        masks = [s["mask_rle"] for s in searches if s.get("mask_rle")]
        return {
            "answer": answer,
            "searches": searches,
            "mask_rle": masks[-1] if masks else None,
            "trajectory": {"text": answer, "n_hops": len(searches)},
            "timings": {"decode_s": 0.0},
        }

    def run_batch(self, examples: list[Example]) -> list[dict[str, Any]]:
        if not self.ready:
            raise RuntimeError("ScriptedRunner.run_batch before setup()")
        return [self._answer(ex) for ex in examples]

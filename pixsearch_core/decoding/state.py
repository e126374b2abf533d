"""The per-row state machine of search-interleaved decoding and the trajectory record it fills.

    GENERATING --<search>--> IN_SEARCH --</search>--> AWAITING_EVIDENCE --evidence forced--> GENERATING
        |                        |
        +-- EOS / token limit ---+--> DONE

`Row.push(token)` applies one generated token and returns the new state; the decoder owns the model, the
searcher and the batching. Every token of a row's continuation is kept with an `is_forced` flag (True for evidence
the model did not generate): eval traces, trajectory generation and the training loss share that mask.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class RowState(str, enum.Enum):
    GENERATING = "generating"
    IN_SEARCH = "in_search"
    AWAITING_EVIDENCE = "awaiting_evidence"
    DONE = "done"


@dataclass
class Issue:
    """A malformed-output event, kept on the trajectory (decoding never raises on model output)."""

    kind: str  # search_end_without_start | nested_search | unclosed_search | token_limit_in_search |
    #            empty_payload | unknown_modality | modality_not_allowed | region_no_entity | region_empty_mask |
    #            no_image | search_failed
    position: int  # index into the continuation tokens
    detail: str = ""


@dataclass
class SearchCall:
    hop: int
    modality: str | None  # the query actually sent: region | image | text; None when no search was made
    requested: str | None  # what the payload asked for (differs after a fallback)
    text: str | None = None
    crop_box: tuple[int, int, int, int] | None = None  # (x0, y0, x1, y1) of the region's mask
    mask_rle: dict[str, Any] | None = None
    evidence_ids: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    latency_s: float = 0.0  # of the batched search_many call this query was part of
    batch_size: int = 0  # queries in that call
    span: tuple[int, int] = (0, 0)  # [start, end) of the <search> ... </search> tokens in the continuation
    error: str | None = None


@dataclass
class Segment:
    kind: str  # text | search | information
    start: int
    end: int
    text: str = ""


@dataclass
class Trajectory:
    sample_id: str
    prompt_tokens: int = 0
    tokens: list[int] = field(default_factory=list)  # the continuation after the prompt
    is_forced: list[bool] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    searches: list[SearchCall] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    answer: str = ""
    finish_reason: str = ""  # eos | length
    text: str = ""

    @property
    def generated_tokens(self) -> int:
        return sum(1 for f in self.is_forced if not f)

    @property
    def forced_tokens(self) -> int:
        return sum(self.is_forced)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(generated_tokens=self.generated_tokens, forced_tokens=self.forced_tokens)
        return d


class Row:
    """One sample's decoding state. Token bookkeeping only: no model, no searcher."""

    def __init__(self, sample_id: str, ids, max_new_tokens: int, budget: int | None):
        self.ids = ids
        self.max_new_tokens = max_new_tokens
        self.budget = budget
        self.state = RowState.GENERATING
        self.search_start: int | None = None  # index of the open <search> token
        self.opened = 0  # <search> blocks opened (counts against the budget)
        self.generated = 0
        self.pending: list[int] = []  # tokens appended but not yet fed to the model
        self.blocks: list[tuple[int, int]] = []  # [start, end) of each <search> ... </search> (or unclosed) block
        self.hidden: list = []  # last hidden states of the fed positions, in chunks (only if the model needs them)
        self.traj = Trajectory(sample_id)

    @property
    def tokens(self) -> list[int]:
        return self.traj.tokens

    def issue(self, kind: str, detail: str = "") -> None:
        self.traj.issues.append(Issue(kind, len(self.tokens), detail))

    def budget_left(self) -> bool:
        return self.budget is None or self.opened < self.budget

    def force(self, token_ids: list[int]) -> None:
        """Append forced tokens (evidence): recorded with is_forced=True and fed to the model next step."""
        self.tokens.extend(token_ids)
        self.traj.is_forced.extend([True] * len(token_ids))
        self.pending.extend(token_ids)
        if self.state is RowState.AWAITING_EVIDENCE:
            self.state = RowState.GENERATING
            if self.generated >= self.max_new_tokens:  # </search> was the last token allowed
                self.traj.finish_reason, self.state = "length", RowState.DONE

    def push(self, token: int) -> RowState:
        """Apply one generated token; returns the new state."""
        assert self.state in (RowState.GENERATING, RowState.IN_SEARCH), self.state
        ids = self.ids
        if token == ids.eos:
            if self.state is RowState.IN_SEARCH:
                self.issue("unclosed_search", "EOS inside a search block")
                self.blocks.append((self.search_start, len(self.tokens)))
            self.traj.finish_reason = "eos"
            self.state = RowState.DONE
            return self.state
        self.tokens.append(token)
        self.traj.is_forced.append(False)
        self.pending.append(token)
        self.generated += 1
        if token == ids.search_start:
            if self.state is RowState.IN_SEARCH:
                self.issue("nested_search", "<search> inside an open search block; the outer one is dropped")
            self.state, self.search_start = RowState.IN_SEARCH, len(self.tokens) - 1
            self.opened += 1
        elif token == ids.search_end:
            if self.state is RowState.IN_SEARCH:
                self.state = RowState.AWAITING_EVIDENCE
                self.blocks.append((self.search_start, len(self.tokens)))
            else:
                self.issue("search_end_without_start", "</search> outside a search block; kept as text")
        if self.generated >= self.max_new_tokens and self.state is not RowState.AWAITING_EVIDENCE:
            if self.state is RowState.IN_SEARCH:
                self.issue("token_limit_in_search", f"max_new_tokens={self.max_new_tokens} inside a search block")
                self.blocks.append((self.search_start, len(self.tokens)))
            self.traj.finish_reason = "length"
            self.state = RowState.DONE
        return self.state

    def payload(self) -> list[int]:
        assert self.search_start is not None
        return self.tokens[self.search_start + 1 : -1]


def finalize(row: Row, decode) -> Trajectory:
    """Fill the trajectory's segments, text and answer from the row's tokens. `decode(ids, skip_special) -> str`."""
    traj, n = row.traj, len(row.tokens)
    labels = ["information" if f else "text" for f in traj.is_forced]
    for start, end in row.blocks:
        for k in range(start, min(end, n)):
            labels[k] = "search"
    traj.segments = []
    k = 0
    while k < n:
        end = k
        while end < n and labels[end] == labels[k]:
            end += 1
        traj.segments.append(Segment(labels[k], k, end, decode(row.tokens[k:end], False)))
        k = end
    last_info = max((i for i, s in enumerate(traj.segments) if s.kind == "information"), default=-1)
    tail = [s for s in traj.segments[last_info + 1 :] if s.kind == "text"]
    traj.answer = " ".join(decode(row.tokens[s.start : s.end], True).strip() for s in tail).strip()
    traj.text = decode(row.tokens, False)
    return traj

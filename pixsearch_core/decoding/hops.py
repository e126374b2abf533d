"""One search hop for the rows that closed a `</search>` in the same step: build queries, ONE `search_many`,
and force each row's `<information>` block. Malformed payloads become recorded issues, never exceptions."""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from pixsearch_core.decoding.queries import format_information, parse_payload
from pixsearch_core.decoding.state import Row, SearchCall
from pixsearch_core.masks import mask_to_rle
from pixsearch_core.prompts.restate import restate_question
from pixsearch_core.retrieval.crop import mask_box
from pixsearch_core.retrieval.types import ImageQuery, RegionQuery, TextQuery, image_hw

log = logging.getLogger(__name__)


def _region_query(row: Row, request, model, call: SearchCall):
    """`<region>`: the model's mask of the last entity span; falls back to the whole image (recorded)."""
    hidden = torch.cat(row.hidden, 0) if row.hidden else None
    mask = model.predict_mask(request, hidden, row.tokens[:-1])
    if mask is None:
        row.issue("region_no_entity", "no entity span before <region>; searched the whole image")
    else:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != tuple(image_hw(request.image)) or not mask.any():
            row.issue(
                "region_empty_mask", f"mask shape {mask.shape}, {int(mask.sum())} pixels; searched the whole image"
            )
        else:
            call.modality, call.crop_box, call.mask_rle = "region", mask_box(mask), mask_to_rle(mask)
            return RegionQuery(request.image, mask)
    call.modality = "image"
    return ImageQuery(request.image)


def build_query(row: Row, request, model, allowed: set[str]):
    """Parse the row's payload -> (SearchCall, query or None when the search is refused)."""
    p = parse_payload(row.payload(), model.ids, lambda t: model.tokenizer.decode(t, skip_special_tokens=False))
    call = SearchCall(
        hop=len(row.traj.searches), modality=None, requested=p.modality, text=p.text or None, span=row.blocks[-1]
    )
    if p.error:
        row.issue(p.error, p.detail)
        call.error = p.error
        return call, None
    if p.modality not in allowed:
        kind = "no_image" if p.modality != "text" and request.image is None else "modality_not_allowed"
        row.issue(kind, f"<{p.modality}> query; allowed: {sorted(allowed)}")
        call.error = kind
        return call, None
    if p.modality == "text":
        call.modality = "text"
        return call, TextQuery(p.text)
    if p.modality == "image":
        call.modality = "image"
        return call, ImageQuery(request.image)
    return call, _region_query(row, request, model, call)


def run_searches(
    rows: list[Row], calls: list[SearchCall], queries: list, searcher, model, options, requests: list
) -> None:
    """Send the non-refused queries in ONE `search_many` call and force an information block into every row
    (ending with the row's question when `options.restate_question`; `requests` are the rows' requests)."""
    live = [i for i, q in enumerate(queries) if q is not None]
    results: list[list] = [[] for _ in queries]
    latency = 0.0
    if live:
        t0 = time.perf_counter()
        try:
            found = searcher.search_many([queries[i] for i in live], options.top_k)
            for i, ev in zip(live, found):
                results[i] = list(ev)
        except Exception as e:  # a failing searcher must not kill the batch
            log.warning("search_many failed for %d queries: %s", len(live), e)
            for i in live:
                rows[i].issue("search_failed", f"{type(e).__name__}: {e}")
                calls[i].error = "search_failed"
        latency = time.perf_counter() - t0
    for i, (row, call) in enumerate(zip(rows, calls)):
        ev = results[i][: options.top_k]
        call.evidence_ids = [e.doc_id for e in ev]
        call.scores = [float(e.score) for e in ev]
        if queries[i] is not None:
            call.latency_s, call.batch_size = latency, len(live)
        row.traj.searches.append(call)
        block = format_information(ev, model.tokenizer, options.top_k, options.max_passage_tokens)
        if options.restate_question:
            block = restate_question(block, question_text(requests[i]))
        row.force(model.tokenizer.encode(block, add_special_tokens=False))


def question_text(request) -> str:
    """The request's question: its `question`, else its prompt when that is text."""
    return request.question or (request.prompt if isinstance(request.prompt, str) else "")


def fixed_query(mode: str, request, model):
    """The fixed baselines' query: the question text, or the whole image; None (with a reason) if impossible."""
    if mode == "text_question":
        text = question_text(request)
        return (TextQuery(text), None) if text.strip() else (None, "empty_payload")
    if request.image is None or not model.supports_images:
        return None, "no_image"
    return ImageQuery(request.image), None


def prepend_evidence(rows: list[Row], requests: list, searcher, model, options) -> None:
    """Text-question / whole-image baselines: one batched search before decoding; evidence opens the answer."""
    modality = "text" if options.mode == "text_question" else "image"
    calls, queries = [], []
    for row, req in zip(rows, requests):
        query, error = fixed_query(options.mode, req, model)
        call = SearchCall(
            hop=0,
            modality=modality if query else None,
            requested=modality,
            error=error,
            text=query.text if isinstance(query, TextQuery) else None,
        )
        if error:
            row.issue(error, f"{options.mode} baseline could not build its query")
        calls.append(call)
        queries.append(query)
    run_searches(rows, calls, queries, searcher, model, options, requests)

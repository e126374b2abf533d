"""Search-interleaved decoding (the paper's Algorithm 1): a batched per-row state machine over a live KV cache."""

from pixsearch_core.decoding.adapter import DecodeRequest, DecoderModel, ModelOutput
from pixsearch_core.decoding.decoder import SearchInterleavedDecoder
from pixsearch_core.decoding.options import ABLATIONS, DecodeOptions
from pixsearch_core.decoding.state import Issue, RowState, SearchCall, Segment, Trajectory

__all__ = [
    "ABLATIONS",
    "DecodeOptions",
    "DecodeRequest",
    "DecoderModel",
    "Issue",
    "ModelOutput",
    "RowState",
    "SearchCall",
    "SearchInterleavedDecoder",
    "Segment",
    "Trajectory",
]

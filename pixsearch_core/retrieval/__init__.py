"""Retrieval: the query and evidence types of `search(query, k)`, and the client protocol every backend implements."""

from pixsearch_core.retrieval.types import Evidence, ImageQuery, Query, RegionQuery, Searcher, TextQuery

__all__ = ["Evidence", "ImageQuery", "Query", "RegionQuery", "Searcher", "TextQuery"]

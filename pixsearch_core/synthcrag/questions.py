"""SynthCRAG questions with gold answers and gold search-interleaved trajectories (paper Table 10 types).

Trajectory convention (what stage-2 trains and the decoder parses): the response names the object, then searches.
REGION when the question refers to an object in an egocentric scene, IMAGE for the whole (non-egocentric) scene,
TEXT for follow-up hops; evidence in <information> blocks; the answer last, after "Answer: ".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pixsearch_core.synthcrag.world import Entity, World

QUESTION_TYPES = ("identification", "factoid", "multi_hop", "no_search")


@dataclass
class Question:
    qtype: str
    question: str
    answer: str
    response: str  # gold search-interleaved response (with <search>/<information> blocks)
    query_types: list[str] = field(default_factory=list)  # REGION / IMAGE / TEXT per search, in order
    entity_span: str = ""  # the referring phrase the span tagger must find (stage 1 and region search)


def info(title: str, text: str) -> str:
    return f"<information>{title}: {text}</information>"


def _visual_search(world: World, e: Entity, egocentric: bool) -> tuple[str, str]:
    """(gold prefix that names the object and searches for it, query type)."""
    payload, qt = ("<region>", "REGION") if egocentric else ("<image>", "IMAGE")
    subject = e.description.capitalize()
    return f"{subject}<search>{payload}</search>{info(e.name, e.document())}", qt


def make_question(world: World, e: Entity, qtype: str, egocentric: bool, n_objects: int,
                  rng: np.random.Generator) -> Question:
    ref = e.description
    if qtype == "no_search":
        if rng.random() < 0.5 or n_objects == 1:
            return Question(qtype, f"What colour is {ref.replace(e.colour + ' ', '')}?", e.colour,
                            f"Answer: {e.colour}", [], ref.replace(e.colour + " ", ""))
        return Question(qtype, "How many objects are in the image?", str(n_objects), f"Answer: {n_objects}", [], "")
    prefix, qt = _visual_search(world, e, egocentric)
    if qtype == "identification":
        q, a = f"What is the name of {ref}?", e.name
        return Question(qtype, q, a, f"{prefix} is the {e.name}. Answer: {a}", [qt], ref)
    if qtype == "factoid":
        attr = ["maker", "year", "origin", "category"][int(rng.integers(4))]
        q, a = {
            "maker": (f"Who makes {ref}?", e.maker),
            "year": (f"In which year was {ref} first produced?", str(e.year)),
            "origin": (f"Where was {ref} first produced?", e.origin),
            "category": (f"What kind of object is {ref}?", e.category),
        }[attr]
        return Question(qtype, q, a, f"{prefix} is the {e.name}. Answer: {a}", [qt], ref)
    if qtype == "multi_hop":
        maker = world.maker(e.maker)
        if rng.random() < 0.5:
            q, a = f"Where are the headquarters of the company that makes {ref}?", maker.headquarters
            hop = f"{maker.name} headquarters"
        else:
            q, a = f"In which year was the maker of {ref} founded?", str(maker.founded)
            hop = f"{maker.name} founded"
        second = f"<search>{hop}</search>{info(maker.name, maker.document())}"
        return Question(qtype, q, a, f"{prefix} is the {e.name}, made by {maker.name}.{second} Answer: {a}",
                        [qt, "TEXT"], ref)
    raise ValueError(f"unknown question type {qtype!r}; allowed: {QUESTION_TYPES}")


def to_record(example_id: str, q: Question, e: Entity, egocentric: bool, image: str, mask: str,
              box: tuple[int, int, int, int]) -> dict[str, Any]:
    """One benchmark/stage-2 record (CRAG-MM-like field names plus the gold trajectory and mask)."""
    return {
        "interaction_id": example_id, "image": image, "query": q.question, "ans_full": q.answer,
        "egocentric": egocentric, "question_type": q.qtype, "entity_id": e.id, "entity_span": q.entity_span,
        "gold_mask": mask, "target_box": list(box), "response": q.response, "query_types": q.query_types,
    }

"""SynthCRAG questions with gold answers and gold search-interleaved trajectories (paper Table 10 types).

Trajectory convention (what stage-2 trains and the decoder parses): the response names the object, then searches.
REGION when the question refers to an object in an egocentric scene, IMAGE for the whole (non-egocentric) scene,
TEXT for follow-up hops; evidence in <information> blocks; the answer last, after "Answer: ". An unanswerable
question (`unanswerable`) searches the same way and answers "I don't know": its evidence lacks the fact asked.

Fact tails (`fact_tails=True`, not in the paper): after the evidence, a factoid's response restates the fact it
asks ("… is the Ulsho, first produced in Marrobel. Answer: Marrobel"), as the multi-hop tail names the maker before
its second search, and an unanswerable one says which fact the evidence lacks ("… is the Ulsho; the evidence does
not give the year it was first produced. Answer: I don't know"). Without them the tail is "… is the Ulsho. Answer:
Marrobel", which the demo's small LM tends to answer with the name it has just written.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from pixsearch_core.synthcrag.unanswerable import IDK, UNANSWERABLE
from pixsearch_core.synthcrag.world import CATEGORIES, Entity, Maker, World, random_names

QUESTION_TYPES = ("identification", "factoid", "multi_hop", "no_search")  # drawn per question
FACTOID_ATTRIBUTES = ("maker", "year", "origin", "category")
# fact tails: the clause naming a factoid's fact, and what an unanswerable tail says is missing (`fact_tail`)
_FACT_CLAUSE = {
    "maker": lambda e: f"made by {e.maker}",
    "year": lambda e: f"first produced in {e.year}",
    "origin": lambda e: f"first produced in {e.origin}",
    "category": lambda e: f"a {e.category}",
}
_MISSING = {
    "maker": "its maker",
    "year": "the year it was first produced",
    "origin": "the place where it was first produced",
    "category": "what kind of object it is",
}


@dataclass
class Question:
    qtype: str
    question: str
    answer: str
    response: str  # gold search-interleaved response (with <search>/<information> blocks)
    query_types: list[str] = field(default_factory=list)  # REGION / IMAGE / TEXT per search, in order
    entity_span: str = ""  # the referring phrase the span tagger must find (stage 1 and region search)
    # the same answer in the fixed-query baselines' format (whole image / text question, paper §5): one evidence
    # block prepended, then the response without its first search; for no-search questions the prepended block is
    # an unrelated document the answer must ignore
    evidence_first: str = ""


def info(title: str, text: str) -> str:
    """The evidence block exactly as the decoder forces it for one search hit (`decoding.queries.format_information`
    with top_k=1 and an unclipped passage), so that training and inference see the same text."""
    return f"<information>Doc 1 ({title}): {text}</information>"


def _visual_search(e: Entity, egocentric: bool) -> tuple[str, str, str, str]:
    """(subject naming the object, its search block, the evidence block, query type)."""
    payload, qt = ("<region>", "REGION") if egocentric else ("<image>", "IMAGE")
    return e.description.capitalize(), f"<search>{payload}</search>", info(e.name, e.document()), qt


def _searched(q: Question, subject: str, search: str, evidence: str, tail: str) -> Question:
    """Fill the full response (subject, search, evidence, tail) and its evidence-first form."""
    q.response, q.evidence_first = subject + search + evidence + tail, evidence + subject + tail
    return q


def fact_tail(e: Entity, attr: str, answerable: bool, said: str) -> str:
    """The tail after a factoid's evidence that restates the fact asked, or says it is missing (module docstring)."""
    if answerable:
        return f" is the {e.name}, {_FACT_CLAUSE[attr](e)}. Answer: {said}"
    return f" is the {e.name}; the evidence does not give {_MISSING[attr]}. Answer: {said}"


def counterfactual(world: World, e: Entity, rng: np.random.Generator) -> tuple[Entity, Maker]:
    """`e` as it looks, but with a fresh name and fresh facts, made by a renamed maker with fresh facts.

    Stage-2 trajectories are written with these (evidence and answers alike), so the facts of the training entities
    can never be memorised from the pictures: the only way to answer is to read the evidence block, which is what
    a test entity, never seen in training, requires."""
    name = random_names(rng, 1, set(), (2, 3))[0]
    places = [p.name for p in world.places]
    maker = Maker(
        world.maker(e.maker).id,
        random_names(rng, 1, set(), (2, 2))[0] + " Works",
        int(rng.integers(1850, 1990)),
        places[int(rng.integers(len(places)))],
    )
    return replace(
        e,
        name=name,
        maker=maker.name,
        category=CATEGORIES[int(rng.integers(len(CATEGORIES)))],
        year=int(rng.integers(max(maker.founded, 1900), 2024)),
        origin=places[int(rng.integers(len(places)))],
    ), maker


def make_question(
    world: World,
    e: Entity,
    qtype: str,
    egocentric: bool,
    n_objects: int,
    rng: np.random.Generator,
    maker: Maker | None = None,
    fact_tails: bool = False,
) -> Question:
    """One question about `e` with its gold answer and trajectories; `maker` replaces e's maker from the world
    (for counterfactual entities); `fact_tails`: factoid tails that restate the fact (module docstring). Draws the
    same random numbers either way."""
    ref = e.description
    if qtype == "no_search":
        peers = [d for d in world.split(e.split) if d.id != e.id]  # never a document of the other split
        other = peers[int(rng.integers(len(peers)))] if peers else e
        if rng.random() < 0.5 or n_objects == 1:
            q = Question(
                qtype,
                f"What colour is {ref.replace(e.colour + ' ', '')}?",
                e.colour,
                f"Answer: {e.colour}",
                [],
                ref.replace(e.colour + " ", ""),
            )
        else:
            q = Question(qtype, "How many objects are in the image?", str(n_objects), f"Answer: {n_objects}", [], "")
        q.evidence_first = info(other.name, other.document()) + q.response
        return q
    subject, search, evidence, qt = _visual_search(e, egocentric)
    if qtype == "identification":
        q, a = f"What is the name of {ref}?", e.name
        return _searched(
            Question(qtype, q, a, "", [qt], ref), subject, search, evidence, f" is the {e.name}. Answer: {a}"
        )
    if qtype in ("factoid", UNANSWERABLE):
        if qtype == UNANSWERABLE and e.withheld is None:
            raise ValueError(f"an unanswerable question about {e.id}, whose document withholds no fact")
        attrs = [a for a in FACTOID_ATTRIBUTES if a != e.withheld]  # never ask a withheld fact as a factoid
        attr = e.withheld if qtype == UNANSWERABLE else attrs[int(rng.integers(len(attrs)))]
        q, a = {
            "maker": (f"Who makes {ref}?", e.maker),
            "year": (f"In which year was {ref} first produced?", str(e.year)),
            "origin": (f"Where was {ref} first produced?", e.origin),
            "category": (f"What kind of object is {ref}?", e.category),
        }[attr]
        said = IDK if qtype == UNANSWERABLE else a  # the gold answer stays the true fact; the target abstains
        tail = fact_tail(e, attr, qtype != UNANSWERABLE, said) if fact_tails else f" is the {e.name}. Answer: {said}"
        return _searched(Question(qtype, q, a, "", [qt], ref), subject, search, evidence, tail)
    if qtype == "multi_hop":
        maker = maker or world.maker(e.maker)
        if rng.random() < 0.5:
            q, a = f"Where are the headquarters of the company that makes {ref}?", maker.headquarters
            hop = f"{maker.name} headquarters"
        else:
            q, a = f"In which year was the maker of {ref} founded?", str(maker.founded)
            hop = f"{maker.name} founded"
        second = f"<search>{hop}</search>{info(maker.name, maker.document())}"
        return _searched(
            Question(qtype, q, a, "", [qt, "TEXT"], ref),
            subject,
            search,
            evidence,
            f" is the {e.name}, made by {maker.name}.{second} Answer: {a}",
        )
    raise ValueError(f"unknown question type {qtype!r}; allowed: {(*QUESTION_TYPES, UNANSWERABLE)}")


def to_record(
    example_id: str, q: Question, e: Entity, egocentric: bool, image: str, mask: str, box: tuple[int, int, int, int]
) -> dict[str, Any]:
    """One benchmark/stage-2 record (CRAG-MM-like field names plus the gold trajectory and mask)."""
    return {
        "interaction_id": example_id,
        "image": image,
        "query": q.question,
        "ans_full": q.answer,
        "egocentric": egocentric,
        "question_type": q.qtype,
        "answerable": q.qtype != UNANSWERABLE,
        "entity_id": e.id,
        "entity_span": q.entity_span,
        "gold_mask": mask,
        "target_box": list(box),
        "response": q.response,
        "query_types": q.query_types,
        "response_evidence_first": q.evidence_first,
    }

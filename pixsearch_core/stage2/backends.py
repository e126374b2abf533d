"""The language-model side of stage-2 construction (paper §4.3 (i)-(iii)): two interchangeable backends.

Both answer the same five questions about an `Item`:
    select(item)                      -> (question type of Table 10, needs retrieval)
    decompose(item)                   -> [(atomic sub-question, needs retrieval), ...]
    generate(item, subqs, n)          -> n candidate responses, each with a bare `<search>` marker where a fact
                                         must be looked up (the fact follows the marker), ending "Answer: <answer>"
    refine(item, subqs, candidates)   -> index of the best candidate (self-refinement)
    assign(item, response)            -> [(REGION | IMAGE | TEXT, query), ...], one per marker

`LLMBackend` asks an OpenAI-compatible model with the prompt files under conf/data/prompts/stage2/ and parses its
replies strictly (a reply that does not parse is a `Malformed` error: the item is quarantined with the reply).
`RuleBackend` is NOT a language model: for SynthCRAG only, it derives the same answers deterministically from the
world's gold trajectory, so the whole pipeline runs offline; every record it makes says "rule-based (no LLM)".
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from pixsearch_core.stage2.config import QUESTION_TYPES, Stage2Config
from pixsearch_core.stage2.llm import ChatClient
from pixsearch_core.stage2.sources import Item
from pixsearch_core.storage import ObjectStore

MARK = "<search>"
PROMPTS = ("select", "decompose", "generate", "refine", "assign")
QUERY_TYPES = ("REGION", "IMAGE", "TEXT")


class Malformed(ValueError):
    """A model reply that does not follow the format its prompt asks for."""


def _norm(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", s.lower().replace("–", "-")).strip()


def parse_type(reply: str) -> tuple[str, bool]:
    t = re.search(r"^\s*Type:\s*(.+?)\s*$", reply, re.M | re.I)
    r = re.search(r"^\s*Retrieval:\s*(yes|no)\b", reply, re.M | re.I)
    if not t or not r:
        raise Malformed(f"expected 'Type: ...' and 'Retrieval: yes|no' lines, got {reply[:200]!r}")
    by_norm = {_norm(q): q for q in QUESTION_TYPES}
    if _norm(t.group(1)) not in by_norm:
        raise Malformed(f"unknown question type {t.group(1)!r}; allowed: {', '.join(QUESTION_TYPES)}")
    return by_norm[_norm(t.group(1))], r.group(1).lower() == "yes"


def parse_subquestions(reply: str) -> list[tuple[str, bool]]:
    out = [
        (m.group(1).strip(), m.group(2).lower() == "yes")
        for m in re.finditer(r"^\s*\d+[.)]\s*(.+?)\s*\[retrieval:\s*(yes|no)\]\s*$", reply, re.M | re.I)
    ]
    if not out:
        raise Malformed(f"expected numbered sub-questions ending [retrieval: yes|no], got {reply[:200]!r}")
    return out


def parse_best(reply: str, n: int) -> int:
    m = re.search(r"Best:\s*(\d+)", reply, re.I)
    if not m or not 1 <= int(m.group(1)) <= n:
        raise Malformed(f"expected 'Best: <1..{n}>', got {reply[:200]!r}")
    return int(m.group(1)) - 1


def parse_queries(reply: str, n_marks: int) -> list[tuple[str, str]]:
    out = [
        (m.group(1).upper(), m.group(2).strip())
        for m in re.finditer(r"^\s*\d+[.)]\s*(REGION|IMAGE|TEXT)\s*\|\s*(.*?)\s*$", reply, re.M | re.I)
    ]
    if len(out) != n_marks:
        raise Malformed(f"expected {n_marks} lines 'k) REGION|IMAGE|TEXT | query', got {len(out)}: {reply[:200]!r}")
    if any(t == "TEXT" and not q for t, q in out):
        raise Malformed("a TEXT search needs a query")
    return out


def clean_candidate(text: str) -> str:
    """Keep bare markers only: drop `</search>` (some models close the marker around the fact, as in the paper's
    Table 14) and anything before an 'A:' prefix."""
    text = text.strip()
    text = re.sub(r"^\s*A:\s*", "", text)
    return text.replace("</search>", "").strip()


def prompt_version(prompts_dir: str) -> str:
    h = hashlib.sha256()
    for name in PROMPTS:
        h.update((Path(prompts_dir) / f"{name}.txt").read_bytes())
    return "sha256:" + h.hexdigest()[:16]


class LLMBackend:
    def __init__(self, cfg: Stage2Config, store: ObjectStore, cache: str):
        self.cfg, self.store = cfg, store
        self.client = ChatClient(cfg.llm, store, cache)
        self.prompts = {n: (Path(cfg.prompts) / f"{n}.txt").read_text(encoding="utf-8") for n in PROMPTS}
        self.label = f"{cfg.llm.model} via {cfg.llm.base_url}"

    def _ask(self, name: str, item: Item, temperature: float = 0.0, seed: int | None = None, **fields) -> str:
        text = self.prompts[name].format(question=item.question, answers=" | ".join(item.answers), **fields)
        content: list | str = text
        if self.cfg.send_images and item.image:
            data = base64.b64encode(self.store.get_bytes(item.image)).decode()
            content = [
                {"type": "text", "text": text},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}},
            ]
        params = {"temperature": temperature, **({"seed": seed} if seed is not None else {})}
        return self.client.chat([{"role": "user", "content": content}], **params).text

    def select(self, item: Item) -> tuple[str, bool]:
        return parse_type(self._ask("select", item, types="\n".join(f"- {t}" for t in QUESTION_TYPES)))

    def decompose(self, item: Item) -> list[tuple[str, bool]]:
        return parse_subquestions(self._ask("decompose", item))

    def generate(self, item: Item, subqs: list[tuple[str, bool]], n: int) -> list[str]:
        listed = _listed(subqs)
        return [
            clean_candidate(self._ask("generate", item, self.cfg.temperature, seed=i, subquestions=listed))
            for i in range(n)
        ]

    def refine(self, item: Item, subqs: list[tuple[str, bool]], candidates: list[str]) -> int:
        listed = "\n\n".join(f"Candidate {i + 1}:\n{c}" for i, c in enumerate(candidates))
        return parse_best(self._ask("refine", item, subquestions=_listed(subqs), candidates=listed), len(candidates))

    def assign(self, item: Item, response: str) -> list[tuple[str, str]]:
        return parse_queries(self._ask("assign", item, response=response), response.count(MARK))


def _listed(subqs: list[tuple[str, bool]]) -> str:
    return "\n".join(f"{i + 1}) {q} [retrieval: {'yes' if r else 'no'}]" for i, (q, r) in enumerate(subqs))


_SYNTH_TYPES = {
    "identification": "Fine-grained Entity Identification",
    "factoid": "Factoid / KB Questions",
    "multi_hop": "Multi-hop External Knowledge Reasoning",
    "no_search": "Visual Reasoning - Attribute",  # "What colour is ...?"; "How many ...?" is Counting (select)
    "unanswerable": "Factoid / KB Questions",
}
_BLOCK = re.compile(r"<search>(.*?)</search>(?:<information>.*?</information>)?", re.S)


class RuleBackend:
    """Deterministic stand-in for the LLM on SynthCRAG (reads the world's gold trajectory; not a model)."""

    label = "rule-based (no LLM): SynthCRAG gold trajectories"

    @staticmethod
    def _gold(item: Item) -> str:
        gold = item.metadata.get("gold_response")
        if item.source != "synthcrag" or not isinstance(gold, str):
            raise Malformed(
                f"the rule-based backend only handles SynthCRAG items with a gold response, not "
                f"{item.source!r}: configure llm.kind=openai with an endpoint"
            )
        return gold

    def select(self, item: Item) -> tuple[str, bool]:
        qtype = str(item.metadata.get("question_type"))
        if qtype == "no_search" and item.question.startswith("How many"):
            return "Visual Reasoning - Counting", False
        return _SYNTH_TYPES.get(qtype, "Visual Reasoning - Attribute"), qtype != "no_search"

    def decompose(self, item: Item) -> list[tuple[str, bool]]:
        payloads = _BLOCK.findall(self._gold(item))
        if not payloads:
            return [(item.question, False)]
        return [("What is the object asked about?" if p in ("<region>", "<image>") else p, True) for p in payloads]

    def generate(self, item: Item, subqs: list[tuple[str, bool]], n: int) -> list[str]:
        """Candidate 1 places each marker where the gold trajectory searches; the others are the kinds of mistakes
        refinement must reject (all markers at the end, no marker, a marker after the answer)."""
        good = _BLOCK.sub(MARK, self._gold(item))
        plain = good.replace(MARK, "")
        answer_at = plain.rfind("Answer:")
        bad = [plain[:answer_at] + MARK * good.count(MARK) + plain[answer_at:], plain, plain + MARK]
        return [good, *bad][:n] if n > 1 else [good]

    def refine(self, item: Item, subqs: list[tuple[str, bool]], candidates: list[str]) -> int:
        return best_placement(subqs, candidates)

    def assign(self, item: Item, response: str) -> list[tuple[str, str]]:
        kinds = list(item.metadata.get("query_types") or [])
        payloads = _BLOCK.findall(self._gold(item))
        span = str(item.metadata.get("entity_span") or "object")
        return [(k, span if k == "REGION" else "image" if k == "IMAGE" else p) for k, p in zip(kinds, payloads)]


def best_placement(subqs: list[tuple[str, bool]], candidates: list[str]) -> int:
    """The self-refinement rule the rule-based backend applies (and the check every backend's choice must pass):
    as many markers as sub-questions needing retrieval, none after the answer, none directly after another."""
    need = sum(r for _, r in subqs)
    for i, c in enumerate(candidates):
        answer_at = c.rfind("Answer:")
        if c.count(MARK) == need and (need == 0 or 0 <= c.rfind(MARK) < answer_at) and MARK * 2 not in c:
            return i
    raise Malformed(f"no candidate places {need} searches before the answer")

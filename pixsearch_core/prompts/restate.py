"""The question restated at the end of every information block (`restate_question`; not in the paper).

A small LM that reads a long `<information>` block loses the question behind it: the demo's byte-level model
answered "Who makes X?" with X's name and "How many objects …?" with a colour once evidence stood between the
question and the answer. With this option on, training (the collator) and decoding (the forced block) both end
each block with `\\nQuestion: <the question>` inside the block, so the answer follows the question again. Inside
the block the restated text is masked out of the LM loss like the evidence (Eq. 9), and a span before the first
block keeps its offsets. Training and evaluation must agree: set `data.restate_question` for the model and
`decode.restate_question` for its evaluation.
"""

from __future__ import annotations

from pixsearch_core.modeling.tokens import IMAGE_PLACEHOLDER, INFO_END
from pixsearch_core.prompts.sample import IMAGE

PREFIX = "\nQuestion: "


def restate_question(text: str, question: str | None) -> str:
    """`text` with `PREFIX + question` before every `</information>`; unchanged for an empty question."""
    q = " ".join((question or "").replace(IMAGE, " ").replace(IMAGE_PLACEHOLDER, " ").split())
    return text.replace(INFO_END, f"{PREFIX}{q}{INFO_END}") if q else text


def with_restated_question(conversation: list[dict[str, str]]) -> list[dict[str, str]]:
    """A conversation whose assistant turns restate the first user turn's text (the image tag left out)."""
    question = next((t["content"] for t in conversation if t.get("role") == "user"), "")
    return [
        {**t, "content": restate_question(t["content"], question)} if t.get("role") == "assistant" else t
        for t in conversation
    ]

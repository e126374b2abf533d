"""The chat templates, defined once: training renders conversations with them, evaluation, the demo and the decode
speed script build their prompts with them, so a model is asked in exactly the text it was trained on.

    t = get_template("vicuna_v1")
    text, targets, starts = render_conversation(conversation, t, eos="</s>")       # training (collate.py)
    prompt = generation_prompt(t, "Where was the owner born?", with_image=True)   # eval / demo / benchmarks

`vicuna_v1` is LLaVA's `conv_vicuna_v1` (the template LISA and PLUM train with, `conv_type=llava_v1`):

    "<system> USER: <image_features>\\n<question> ASSISTANT: <answer></s>USER: ..."

`plain` is the demo model's: "<image_features>\\n<question>\\n<answer></s>".

An assistant turn is `assistant` + `answer_prefix` + content + EOS. The generation prompt stops after `assistant`
(LLaVA's "ASSISTANT:"), and the space before the answer belongs to the answer: a SentencePiece / BPE tokenizer
merges it into the answer's first token ("▁Paris"), so the prompt's tokens are exactly the first tokens of the
training sequence (tests/pixsearch_core/test_templates.py checks this token for token). The image slot is the first user turn's
`<image>` (or is put first, followed by a newline); a prompt without an image has no slot.
"""

from __future__ import annotations

from dataclasses import dataclass

from pixsearch_core.modeling.tokens import IMAGE_PLACEHOLDER

#: where the image goes in a conversation's first user turn (replaced by IMAGE_PLACEHOLDER when rendered)
IMAGE = "<image>"


@dataclass(frozen=True)
class ChatTemplate:
    name: str
    system: str
    user: str  # "{content}" formats a user turn
    assistant: str  # what precedes an assistant turn; a generation prompt ends here
    answer_prefix: str  # between `assistant` and the content (part of the answer's tokens)


TEMPLATES: dict[str, ChatTemplate] = {
    t.name: t
    for t in (
        ChatTemplate(
            "vicuna_v1",
            "A chat between a curious human and an artificial intelligence assistant. The "
            "assistant gives helpful, detailed, and polite answers to the human's questions. ",
            "USER: {content} ",
            "ASSISTANT:",
            " ",
        ),
        ChatTemplate("plain", "", "{content}\n", "", ""),
    )
}


def get_template(name: str) -> ChatTemplate:
    if name not in TEMPLATES:
        raise ValueError(f"unknown chat template {name!r}; allowed: {', '.join(TEMPLATES)}")
    return TEMPLATES[name]


def _user_content(content: str, first: bool, with_image: bool) -> str:
    if not (first and with_image):
        return content
    return content.replace(IMAGE, IMAGE_PLACEHOLDER, 1) if IMAGE in content else IMAGE_PLACEHOLDER + "\n" + content


def render_conversation(
    conversation: list[dict[str, str]], template: ChatTemplate, eos: str, with_image: bool = True
) -> tuple[str, list[tuple[int, int]], dict[int, int]]:
    """-> (text, assistant target char ranges, {turn index: char offset of that assistant turn's content})."""
    text, targets, starts = template.system, [], {}
    first = True
    for i, turn in enumerate(conversation):
        if turn["role"] == "user":
            text += template.user.format(content=_user_content(turn["content"], first, with_image))
            first = False
        else:
            text += template.assistant
            begin = len(text)
            text += template.answer_prefix
            starts[i] = len(text)
            text += turn["content"] + eos
            targets.append((begin, len(text)))
    return text, targets, starts


def generation_prompt(template: ChatTemplate | str, question: str, with_image: bool = True) -> str:
    """The prompt the model continues to answer `question`: one user turn, then the assistant header."""
    t = get_template(template) if isinstance(template, str) else template
    text, _, _ = render_conversation([{"role": "user", "content": question}], t, eos="", with_image=with_image)
    return text + t.assistant

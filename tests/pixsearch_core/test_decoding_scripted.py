"""Exact trajectories with a scripted model: every mode, the budget, the modality ablations, batching."""

import numpy as np
import pytest
from decoding_fakes import N_IMAGE_SLOTS, MemorySearcher, ScriptedModel, make_tokenizer

from pixsearch_core.decoding import DecodeOptions, DecodeRequest, SearchInterleavedDecoder
from pixsearch_core.retrieval.types import ImageQuery, RegionQuery, TextQuery

IMG = np.zeros((8, 10, 3), np.uint8)
MASK = np.zeros((8, 10), bool)
MASK[2:4, 3:7] = True  # 8 pixels, box x 3..7, y 2..4


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer()


def info_block(tok, kind: str, k: int = 3) -> list[int]:
    """The information block written by hand for MemorySearcher's evidence (independent of the formatter)."""
    docs = "\n".join(f"Doc {i + 1} (wiki): about the {kind} doc {i}" for i in range(k)) if k else "no results"
    return tok.encode(f"<information>{docs}</information>", add_special_tokens=False)


def run(tok, scripts, opts=None, masks=None, images=None, searcher=None, **model_kw):
    model = ScriptedModel(tok, scripts, masks, **model_kw)
    searcher = searcher or MemorySearcher()
    images = images or {}
    reqs = [DecodeRequest(sid, "what is this", images.get(sid, IMG), question="who painted it") for sid in scripts]
    return SearchInterleavedDecoder(model, searcher, opts).decode(reqs), model, searcher


def enc(tok, text):
    return tok.encode(text, add_special_tokens=False)


def test_region_then_text_search_exact_trajectory(tok):
    [t], model, searcher = run(
        tok,
        {"a": "the dog <search> <region> </search> the husky <search> who painted it </search> leonardo"},
        masks={"a": MASK},
    )
    expected = (
        enc(tok, "the dog <search> <region> </search>")
        + info_block(tok, "region")
        + enc(tok, "the husky <search> who painted it </search>")
        + info_block(tok, "text")
        + enc(tok, "leonardo")
    )
    assert t.tokens == expected
    forced = (
        [False] * 5
        + [True] * len(info_block(tok, "region"))
        + [False] * 7
        + [True] * len(info_block(tok, "text"))
        + [False]
    )
    assert t.is_forced == forced
    assert [s.kind for s in t.segments] == ["text", "search", "information", "text", "search", "information", "text"]
    region, text = t.searches
    assert (region.modality, region.crop_box, region.mask_rle) == (
        "region",
        (3, 2, 7, 4),
        {"size": [8, 10], "counts": [26, 2, 6, 2, 6, 2, 6, 2, 28]},
    )
    assert region.evidence_ids == ["region:8#0", "region:8#1", "region:8#2"] and region.scores[0] == 1.0
    assert (text.modality, text.text, text.span) == ("text", "who painted it", (39, 44))
    assert t.answer == "leonardo" and t.finish_reason == "eos" and t.issues == []
    assert t.prompt_tokens == N_IMAGE_SLOTS + 3 and t.generated_tokens == 13
    # predict_mask saw the hidden states of every fed position: image slots + prompt + "the dog <search> <region>"
    sid, hidden_ids, cont = model.mask_calls[0]
    assert hidden_ids == [tok.convert_tokens_to_ids("<image_features>")] * N_IMAGE_SLOTS + enc(
        tok, "what is this the dog <search> <region>"
    )
    assert cont == enc(tok, "the dog <search> <region>")
    assert [type(q) for call in searcher.calls for q in call] == [RegionQuery, TextQuery]
    assert len(model.prefills) == 1  # the prefix was encoded once


def test_rows_closing_search_in_the_same_step_share_one_call(tok):
    scripts = {
        "a": "cat <search> tabby </search> yes",
        "b": "dog <search> husky </search> no",
        "c": "the the the <search> paris </search> ok",
    }
    ts, model, searcher = run(tok, scripts)
    assert [[q.text for q in call] for call in searcher.calls] == [["tabby", "husky"], ["paris"]]
    assert [t.searches[0].batch_size for t in ts] == [2, 2, 1]
    assert [t.answer for t in ts] == ["yes", "no", "ok"]
    # the hop step fed one (B, T) block: the 2 evidence rows right-aligned next to row c's single token
    assert model.extends[3] == (3, 1 + len(info_block(tok, "text")))


def test_batched_equals_one_by_one(tok):
    scripts = {
        "a": "the dog <search> <region> </search> husky",
        "b": "cat <search> <image> </search> tabby",
        "c": "who <search> da vinci </search> <search> louvre </search> paris museum",
        "d": "no",
    }
    batched, _, _ = run(tok, scripts, masks={"a": MASK})
    single = [run(tok, {k: v}, masks={"a": MASK})[0][0] for k, v in scripts.items()]
    strip = lambda t: {
        **t.to_dict(),
        "searches": [{**s, "latency_s": 0, "batch_size": 0} for s in t.to_dict()["searches"]],
    }
    assert [strip(t) for t in batched] == [strip(t) for t in single]


def test_reencode_mode_gives_the_same_trajectory_with_more_prefills(tok):
    script = {"a": "x <search> tabby </search> y <search> <image> </search> z", "b": "cat dog"}
    cached, m1, _ = run(tok, script)
    reenc, m2, _ = run(tok, script, DecodeOptions(kv_cache=False))
    assert [t.tokens for t in cached] == [t.tokens for t in reenc]
    assert len(m1.prefills) == 1 and len(m2.prefills) == 3  # once + once per hop


def test_no_search_masks_search(tok):
    [t], _, searcher = run(tok, {"a": "the dog <search> husky </search> yes"}, DecodeOptions(mode="no_search"))
    assert t.tokens == enc(tok, "the dog") and t.searches == [] and searcher.calls == []


def test_budget_masks_search_once_spent(tok):
    [t], _, searcher = run(
        tok, {"a": "a <search> dog </search> b <search> cat </search> c"}, DecodeOptions(max_searches=1)
    )
    assert [s.text for s in t.searches] == ["dog"] and len(searcher.calls) == 1
    assert t.tokens[-1] == enc(tok, "b")[0] and t.answer == "b"  # <search> masked -> EOS (the runner-up)


@pytest.mark.parametrize(
    "mode,query_type,kind", [("text_question", TextQuery, "text"), ("whole_image", ImageQuery, "image")]
)
def test_fixed_baselines_prepend_evidence(tok, mode, query_type, kind):
    ts, _, searcher = run(tok, {"a": "leonardo <search> x </search>", "b": "da vinci"}, DecodeOptions(mode=mode))
    assert len(searcher.calls) == 1 and [type(q) for q in searcher.calls[0]] == [query_type, query_type]
    if kind == "text":
        assert searcher.calls[0][0].text == "who painted it"
    for t, answer in zip(ts, ["leonardo", "da vinci"]):
        block = info_block(tok, kind)
        assert t.tokens[: len(block)] == block and t.is_forced[: len(block)] == [True] * len(block)
        assert t.answer == answer and len(t.searches) == 1  # the model's own <search> is masked (B = 0)


def test_whole_image_without_image_is_recorded(tok):
    [t], _, searcher = run(tok, {"a": "yes"}, DecodeOptions(mode="whole_image"), images={"a": None})
    assert [i.kind for i in t.issues] == ["no_image"] and searcher.calls == []
    assert t.tokens == info_block(tok, "", 0) + enc(tok, "yes")


def test_only_text_masks_region(tok):
    [t], _, _ = run(tok, {"a": "<search> <region> </search>"}, DecodeOptions(modalities="only_text"))
    assert t.tokens == enc(tok, "<search>") and [i.kind for i in t.issues] == ["unclosed_search"]


def test_no_text_forces_a_modality_token(tok):
    [t], _, searcher = run(tok, {"a": "<search> who </search> husky"}, DecodeOptions(modalities="no_text"))
    assert t.tokens[:3] == enc(tok, "<search> <image> </search>")  # "who" was masked; <image> is the best allowed
    assert t.searches[0].modality == "image" and isinstance(searcher.calls[0][0], ImageQuery)


def test_text_only_model_cannot_search_images(tok):
    [t], _, _ = run(tok, {"a": "<search> <image> </search>"}, supports_images=False)
    assert [i.kind for i in t.issues] == ["unclosed_search"] and t.searches == []


MALFORMED = [
    ("the </search> husky", ["search_end_without_start"], 0, "the husky"),  # kept as text; answer skips specials
    ("<search> dog <search> cat </search> tabby", ["nested_search"], 1, "tabby"),
    ("<search> dog", ["unclosed_search"], 0, ""),
    ("<search> </search> husky", ["empty_payload"], 1, "husky"),
    ("<search> <image> <region> </search> x", ["unknown_modality"], 1, "x"),
    ("<search> <region> dog </search> x", ["unknown_modality"], 1, "x"),
    ("<search> dog cat paris louvre </search>", ["token_limit_in_search"], 0, ""),
]


@pytest.mark.parametrize("script,issues,n_searches,answer", MALFORMED)
def test_malformed_output_is_recorded_not_raised(tok, script, issues, n_searches, answer):
    ts, _, _ = run(
        tok,
        {"bad": script, "good": "cat <search> tabby </search> yes"},
        DecodeOptions(max_new_tokens=4 if "louvre" in script else 64),
    )
    bad, good = ts
    assert [i.kind for i in bad.issues] == issues and len(bad.searches) == n_searches
    assert bad.answer == answer
    if "louvre" not in script:
        assert good.answer == "yes" and good.issues == []  # the batch-mate is unaffected


def test_refused_search_gets_a_no_results_block(tok):
    [t], _, searcher = run(tok, {"a": "<search> </search> husky"})
    assert t.tokens == enc(tok, "<search> </search>") + info_block(tok, "", 0) + enc(tok, "husky")
    assert searcher.calls == [] and t.searches[0].error == "empty_payload"


def test_nested_search_keeps_the_inner_query(tok):
    [t], _, searcher = run(tok, {"a": "<search> dog <search> cat </search> tabby"})
    assert searcher.calls[0][0].text == "cat" and t.searches[0].span == (2, 5)


@pytest.mark.parametrize(
    "mask,issue",
    [
        (None, "region_no_entity"),
        (np.zeros((8, 10), bool), "region_empty_mask"),
        (np.ones((3, 3), bool), "region_empty_mask"),
    ],
)
def test_region_fallback_to_whole_image(tok, mask, issue):
    [t], _, searcher = run(tok, {"a": "<search> <region> </search> x"}, masks={"a": mask})
    assert [i.kind for i in t.issues] == [issue]
    call = t.searches[0]
    assert (call.requested, call.modality, call.mask_rle) == ("region", "image", None)
    assert isinstance(searcher.calls[0][0], ImageQuery)


def test_token_limit_at_search_end_still_searches_then_stops(tok):
    [t], _, _ = run(tok, {"a": "<search> dog </search> x"}, DecodeOptions(max_new_tokens=3))
    assert (
        t.finish_reason == "length"
        and len(t.searches) == 1
        and t.tokens[-1] == tok.convert_tokens_to_ids("</information>")
    )


def test_failing_searcher_does_not_crash_the_batch(tok):
    ts, _, _ = run(
        tok, {"a": "<search> dog </search> x", "b": "<search> cat </search> y"}, searcher=MemorySearcher(fail=True)
    )
    assert [[i.kind for i in t.issues] for t in ts] == [["search_failed"]] * 2
    assert [t.answer for t in ts] == ["x", "y"]


def test_options_validate_names():
    assert DecodeOptions(modalities="no_region").modalities == ("image", "text")
    assert DecodeOptions(mode="text_question", max_searches=3).budget == 0
    with pytest.raises(ValueError, match="only_region"):
        DecodeOptions(modalities="only_regions")


def test_no_search_also_masks_the_other_search_tokens(tok):
    """With searching off, `</search>`, `<image>`, `<region>` outside a block are masked too (they could only
    start a malformed block), so the row ends instead of recording a format error."""
    [t], _, _ = run(tok, {"a": "the dog </search> <region> yes"}, DecodeOptions(mode="no_search"))
    assert t.tokens == enc(tok, "the dog") and t.issues == []
    [t], _, _ = run(tok, {"a": "the dog </search> yes"}, DecodeOptions())  # searching allowed: recorded
    assert [i.kind for i in t.issues] == ["search_end_without_start"]


def test_a_generated_turn_marker_ends_the_answer_like_eos(tok):
    """SmolLM2-Instruct fine-tuned on vicuna_v1 ended answers with its own `<|im_start|>` (here the tokenizer's
    BOS, `<s>`): the answer stops there; with the option off the made-up rest is part of the answer."""
    scripts = {"s": "answer : paris <s> who painted it"}
    [t], _, _ = run(tok, scripts)
    assert t.answer.split() == ["answer", ":", "paris"] and t.finish_reason == "eos"
    [t], _, _ = run(tok, scripts, DecodeOptions(stop_at_turn_markers=False))
    assert t.answer.split()[-3:] == ["who", "painted", "it"] and t.finish_reason == "eos"


def test_turn_markers_of_a_chatml_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from pixsearch_core.decoding.policy import turn_markers
    from pixsearch_core.modeling.tokens import add_special_tokens

    vocab = {t: i for i, t in enumerate(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "hello", "world"])}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    chatml = PreTrainedTokenizerFast(
        tokenizer_object=raw, bos_token="<|im_start|>", eos_token="<|im_end|>", unk_token="<|endoftext|>"
    )
    ids = add_special_tokens(chatml)
    # BOS = <|im_start|> stops; EOS is EOS already; the unknown token and the PixSearch tokens never stop
    assert turn_markers(chatml, ids) == {1}


def test_restate_question_ends_every_forced_block_with_the_question(tok):
    """decode.restate_question: each information block, model-driven or a baseline's, ends with the question."""
    restated = lambda kind: enc(  # noqa: E731
        tok,
        "<information>"
        + "\n".join(f"Doc {i + 1} (wiki): about the {kind} doc {i}" for i in range(3))
        + "\nQuestion: who painted it</information>",
    )
    [t], _, _ = run(
        tok,
        {"a": "the dog <search> <region> </search> the husky <search> who </search> leonardo"},
        DecodeOptions(restate_question=True),
        masks={"a": MASK},
    )
    expected = (
        enc(tok, "the dog <search> <region> </search>")
        + restated("region")
        + enc(tok, "the husky <search> who </search>")
        + restated("text")
        + enc(tok, "leonardo")
    )
    assert t.tokens == expected and t.answer == "leonardo"
    [b], _, _ = run(tok, {"b": "da vinci"}, DecodeOptions(mode="whole_image", restate_question=True))
    assert b.tokens[: len(restated("image"))] == restated("image") and b.answer == "da vinci"
    [plain], _, _ = run(tok, {"b": "da vinci"}, DecodeOptions(mode="whole_image"))  # off: the block as before
    assert plain.tokens[: len(info_block(tok, "image"))] == info_block(tok, "image")

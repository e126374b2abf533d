"""The tiny PixSearch model: forward/backward with every loss, gradient targets, LoRA placement, decoding API."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pixsearch_core.modeling import PixSearchModel
from pixsearch_core.modeling.tokens import IMAGE_PLACEHOLDER, SPECIAL_TOKENS
from pixsearch_core.modeling.trainable import special_row_ids, token_row_params
from pixsearch_core.registry import get
from pixsearch_core.training.losses import IGNORE, lm_labels, pixsearch_loss
from tests._pixsearch_batch import batch, images


@pytest.fixture(scope="module")
def model():
    return get("model", "tiny")()


def _loss(model, b):
    out = model(b["images"], b["input_ids"], b["attention_mask"], span_tags=b["tags"], with_teacher=True)
    return out, *pixsearch_loss(out, b["labels"], b["tags"], b["gt_masks"])


def test_registry_builds_the_model(model):
    assert isinstance(model, PixSearchModel)
    ids = model.token_ids
    vocab = model.tokenizer.get_vocab()
    assert [vocab[t] for t in SPECIAL_TOKENS] == [
        ids.search_start,
        ids.search_end,
        ids.image,
        ids.region,
        ids.info_start,
        ids.info_end,
    ]
    assert model.language_model.get_input_embeddings().weight.shape[0] >= len(model.tokenizer)


def test_forward_backward_every_loss(model):
    b = batch(model)
    model.zero_grad(set_to_none=True)
    out, total, terms = _loss(model, b)
    assert out.spans == [
        [tuple(torch.nonzero(b["tags"][r] >= 1).flatten()[[0, -1]].add(torch.tensor([0, 1])).tolist())]
        for r in range(2)
    ]
    assert [m.shape for m in out.mask_logits] == [(1, 40, 56), (1, 48, 32)]
    assert set(terms) == {"lm", "span", "seg", "bce", "kl"}
    for name in ("lm", "span", "seg", "bce"):
        assert terms[name] > 0 and torch.isfinite(torch.tensor(terms[name])), (name, terms)
    assert terms["kl"] == 0.0  # LoRA B starts at zero: the student equals the frozen teacher
    weighted = terms["lm"] + 2.0 * terms["span"] + 8.0 * terms["seg"] + 2.0 * terms["bce"] + 0.1 * terms["kl"]
    assert total.item() == pytest.approx(weighted, rel=1e-5)
    total.backward()
    assert torch.isfinite(total)


def _perturb_lora(model):
    with torch.no_grad():
        for n, p in model.language_model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)


def test_gradients_reach_exactly_the_trainable_parts(model):
    _perturb_lora(model)
    b = batch(model)
    model.zero_grad(set_to_none=True)
    out, total, terms = _loss(model, b)
    assert terms["kl"] > 0
    total.backward()
    rows = set(special_row_ids(model))
    row_params = {id(p) for p in token_row_params(model)}
    got = {}
    for name, p in model.named_parameters():
        nonzero = p.grad is not None and bool(p.grad.abs().sum() > 0)
        if id(p) in row_params:
            assert p.grad is not None
            hit = set(torch.nonzero(p.grad.abs().sum(1)).flatten().tolist())
            assert hit and hit <= rows, f"{name}: gradient on rows {sorted(hit - rows)} (only {sorted(rows)} train)"
            continue
        if nonzero:
            assert p.requires_grad, name
            part = "lora" if "lora_" in name else name.split(".")[0]
            got[part] = got.get(part, 0) + 1
        elif "lora_" not in name and not name.startswith(
            ("span_tagger", "mask_head", "mask_decoder", "prompt_encoder", "projector")
        ):
            assert p.grad is None, f"frozen {name} got a gradient"
    assert set(got) == {"lora", "span_tagger", "mask_head", "mask_decoder", "prompt_encoder", "projector"}, got
    frozen = [
        n
        for n, p in model.named_parameters()
        if n.startswith(("vision_tower", "sam_image_encoder"))
        or ("language_model" in n and "lora_" not in n and id(p) not in row_params)
    ]
    assert frozen and all(not dict(model.named_parameters())[n].requires_grad for n in frozen)


def test_lora_only_on_language_model_q_and_v(model):
    lora_modules = {n.rsplit(".lora_", 1)[0] for n, _ in model.named_parameters() if "lora_" in n}
    assert lora_modules and all(n.startswith("language_model.") for n in lora_modules)
    assert {n.rsplit(".", 1)[-1] for n in lora_modules} == {"q_proj", "v_proj"}
    assert not any("lora" in n for n, _ in model.vision_tower.named_parameters())
    assert any(n.endswith("self_attn.q_proj") for n, _ in model.vision_tower.named_modules())  # CLIP has them


def test_mask_feedback_trains_the_mask_prompt_path():
    m = get("model", "tiny")(overrides=["mask_feedback=true"])
    b = batch(m)
    b["tags"][0, -3] = 1  # a second span in row 0 ("Tom"), with its own gold mask
    b["gt_masks"][0] = torch.cat([b["gt_masks"][0], torch.zeros_like(b["gt_masks"][0])])
    out, total, _ = _loss(m, b)
    assert len(out.spans[0]) == 2
    total.backward()
    assert m.prompt_encoder.mask_downscaling[0].weight.grad.abs().sum() > 0


def _prompt(model, texts):
    tok = model.tokenizer
    tok.padding_side = "right"
    return tok([IMAGE_PLACEHOLDER + t for t in texts], return_tensors="pt", padding=True)


def test_cached_steps_match_a_full_pass(model):
    model.eval()
    ims = images()
    enc = _prompt(model, ["Q: where is it?", "Q: a b"])
    more = model.tokenizer(["<search><region></search>", "x"], return_tensors="pt", padding=True)
    state = model.start(ims, enc.input_ids, enc.attention_mask)
    state = model.append_tokens(state, more.input_ids, more.attention_mask)  # forced, rows of unequal length
    nxt = torch.tensor([[5], [6]])
    state = model.append_tokens(state, nxt)
    for b in range(2):  # reference: each row alone, everything in one pass
        ids = torch.cat(
            [enc.input_ids[b][enc.attention_mask[b].bool()], more.input_ids[b][more.attention_mask[b].bool()], nxt[b]]
        )[None]
        ref = model.start([ims[b]], ids)
        torch.testing.assert_close(state.logits[b, -1], ref.logits[0, -1], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(state.hidden_states[b, -1], ref.hidden_states[0, -1], atol=1e-5, rtol=1e-4)
    model.train()


def test_placeholder_count_is_checked(model):
    enc = model.tokenizer(["no image here", "x"], return_tensors="pt", padding=True)
    with pytest.raises(ValueError, match=r"rows \[0, 1\] have \[0, 0\] image placeholders"):
        model.start(images(), enc.input_ids, enc.attention_mask)


def test_image_features_are_spliced_at_the_placeholder(model):
    tok = model.tokenizer
    tok.padding_side = "right"
    enc = tok(["ab" + IMAGE_PLACEHOLDER + "cde", IMAGE_PLACEHOLDER + "x"], return_tensors="pt", padding=True)
    ims = images()
    with torch.no_grad():
        feats = model.image_features(model.prepare_images(ims))
        emb = model.language_model.get_input_embeddings()(enc.input_ids)
        for side in ("left", "right"):
            p = model.embed_inputs(ims, enc.input_ids, enc.attention_mask, padding_side=side)
            n = feats.shape[1]
            assert p.inputs_embeds.shape[1] == 5 + n and p.attention_mask.sum(1).tolist() == [5 + n, 1 + n]
            row0 = torch.cat([emb[0, :2], feats[0], emb[0, 3:6]])
            torch.testing.assert_close(p.inputs_embeds[0], row0)
            off = 4 if side == "left" else 0  # row 1 is 4 shorter
            torch.testing.assert_close(p.inputs_embeds[1, off : off + n + 1], torch.cat([feats[1], emb[1, 1:2]]))
            assert p.text_positions[0].tolist() == [0, 1, 1 + n, 2 + n, 3 + n, 4 + n]
            assert p.text_positions[1].tolist() == [off + n - 1, off + n, -1, -1, -1, -1]


def test_language_model_part_trains_the_whole_lm_without_lora():
    """The demo's small LM is trained from scratch: every LM weight, every embedding row, no LoRA, no row hooks."""
    m = get("model", "tiny")(
        overrides=[
            "lora.enabled=false",
            "trainable.parts=[span_tagger,mask_head,prompt_encoder,mask_decoder,projector,language_model]",
        ]
    )
    lm = dict(m.language_model.named_parameters())
    assert lm and all(p.requires_grad for p in lm.values()) and not any("lora_" in n for n in lm)
    assert not any(p.requires_grad for p in m.sam_image_encoder.parameters())
    b = batch(m)
    out, total, _ = _loss(m, b)
    total.backward()
    emb = m.language_model.get_input_embeddings().weight.grad
    hit = set(torch.nonzero(emb.abs().sum(1)).flatten().tolist())
    assert len(hit - set(special_row_ids(m))) > 10, "ordinary token rows must train too (no special-row hook)"
    assert all(p.grad is not None for n, p in lm.items() if ".layers." in n)


def test_choice_weight_adds_the_decision_cross_entropy(model):
    from pixsearch_core.training.losses import LossWeights, choice_loss

    b = batch(model)
    out = model(b["images"], b["input_ids"], b["attention_mask"], span_tags=b["tags"])
    decision = b["input_ids"] == model.token_ids.search_start
    base, _ = pixsearch_loss(out, b["labels"], b["tags"], b["gt_masks"])
    total, terms = pixsearch_loss(
        out, b["labels"], b["tags"], b["gt_masks"], LossWeights(choice=3.0), decision=decision
    )
    want = choice_loss(out.logits, b["labels"], decision)
    assert terms["choice"] == pytest.approx(want.item()) and want.item() > 0
    assert total.item() == pytest.approx(base.item() + 3.0 * want.item(), rel=1e-5)
    with pytest.raises(ValueError, match="decision"):
        pixsearch_loss(out, b["labels"], b["tags"], b["gt_masks"], LossWeights(choice=1.0))


def test_answer_weight_adds_the_answer_cross_entropy(model):
    from pixsearch_core.training.losses import LossWeights, answer_loss, answer_positions

    b = batch(model)
    out = model(b["images"], b["input_ids"], b["attention_mask"], span_tags=b["tags"])
    at = answer_positions(b["input_ids"], model.token_ids.info_end)
    assert at.any(), "the test batch should hold evidence"
    base, _ = pixsearch_loss(out, b["labels"], b["tags"], b["gt_masks"])
    total, terms = pixsearch_loss(out, b["labels"], b["tags"], b["gt_masks"], LossWeights(answer=2.0), answer_at=at)
    want = answer_loss(out.logits, b["labels"], at)
    assert terms["answer"] == pytest.approx(want.item()) and want.item() > 0
    assert total.item() == pytest.approx(base.item() + 2.0 * want.item(), rel=1e-5)
    with pytest.raises(ValueError, match="answer positions"):
        pixsearch_loss(out, b["labels"], b["tags"], b["gt_masks"], LossWeights(answer=1.0))


def test_tiny_sam_encoder_knobs_shape_the_embedding_grid():
    """sam.patch_size / encoder_dim / encoder_depth size the tiny SAM encoder; masks still come out per span at
    image resolution and train; an image size that is not a multiple of the patch is refused by name."""
    m = get("model", "tiny")(overrides=["sam.patch_size=8", "sam.encoder_dim=48", "sam.encoder_depth=2"])
    enc = m.sam_image_encoder
    assert len(enc.blocks) == 2 and enc.patch_embed.proj.out_channels == 48
    side = m.sam_image_size // 8
    assert m.prompt_encoder.image_embedding_size == (side, side)
    b = batch(m)
    out, total, _ = _loss(m, b)
    assert [x.shape for x in out.mask_logits] == [g.shape for g in b["gt_masks"]]
    total.backward()
    with pytest.raises(ValueError, match="patch_size"):
        get("model", "tiny")(overrides=["sam.image_size=72", "sam.patch_size=16"])


def test_the_choice_weight_ties_the_decision_to_the_picture():
    """Two pictures (flat grey / noise), one text: after `<search>` the gold token is `<region>` for the noise and
    `<image>` for the grey. Trained with the decision's weight (`loss.choice`, as the demo recipe), the tiny model's
    choice follows the picture: swapping the picture flips it. (The demo's finding: without the weight, with a
    decision of 1 byte in ~650, the trained LM's choice did not depend on the picture at all.)"""
    from pixsearch_core.training.losses import LossWeights

    torch.manual_seed(0)
    m = get("model", "tiny")()
    tok, ids = m.tokenizer, m.token_ids
    rng = np.random.default_rng(0)
    pics = [np.full((32, 32, 3), 128, dtype=np.uint8), rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)]
    texts = [f"{IMAGE_PLACEHOLDER}Q: what is the cup? A: the cup<search>{t}</search>" for t in ("<image>", "<region>")]
    enc = tok(texts, return_tensors="pt", padding=True)
    labels = lm_labels(enc.input_ids, enc.attention_mask, enc.attention_mask.bool(), (ids.image_placeholder,))
    decision = enc.input_ids == ids.search_start
    tags = torch.full_like(enc.input_ids, IGNORE)  # no spans: no masks to learn
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=3e-3)
    m.train()
    for _ in range(60):
        out = m(pics, enc.input_ids, enc.attention_mask, span_tags=tags)
        total, _ = pixsearch_loss(
            out, labels, tags, [torch.zeros(0, 32, 32)] * 2, LossWeights(choice=5.0), decision=decision
        )
        opt.zero_grad()
        total.backward()
        opt.step()
    m.eval()
    at = decision.float().argmax(1)  # the <search> position of each row predicts the choice

    def gap(pictures):  # logit(<region>) - logit(<image>) after <search>, per row
        with torch.no_grad():
            lg = m(pictures, enc.input_ids, enc.attention_mask).logits
        rows = lg[torch.arange(2), at]
        return (rows[:, ids.region] - rows[:, ids.image]).tolist()

    grey_row, noise_row = gap(pics)
    assert grey_row < 0 < noise_row  # <image> for the grey picture, <region> for the noise
    swapped = gap(pics[::-1])
    assert swapped[0] > 0 > swapped[1]  # the same texts with the pictures swapped: the choices swap

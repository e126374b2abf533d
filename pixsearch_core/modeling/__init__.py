"""PixSearch modeling: the segmenting LMM (paper §4.2) and the interface the search-interleaved decoder uses.

Building (registry kind "model"; builders in build.py, defaults also in conf/model/<size>.yaml):

    from pixsearch_core.registry import get
    model = get("model", "tiny")()                       # random, CPU, milliseconds (tests)
    model = get("model", "mini")()                       # SmolLM2-135M + LiteMedSAM, offline, CPU
    model = get("model", "13b")(overrides=["language_model.path=s3://b/llava-v1.5-13b-hf",
                                           "sam.checkpoint=s3://b/sam_vit_h_4b8939.pth"])
    model.eval()

Tokenizer and special tokens (tokens.py is the ONE place they are defined and added):

    tok = model.tokenizer                 # has <search> </search> <image> <region> <information> </information>
    ids = model.token_ids                 # SpecialTokenIds: .search_start .search_end .image .region
                                          #   .info_start .info_end .image_placeholder .eos .pad
    from pixsearch_core.modeling.tokens import IMAGE_PLACEHOLDER   # "<image_features>": where the image goes

Prompts carry exactly one IMAGE_PLACEHOLDER per row; it is replaced by the image tokens (a generated `<image>` is
only a search payload, never the image slot). Images are anything `to_uint8_hwc` takes (PIL, HxWx3 uint8 arrays,
tensors); `model.prepare_images(images)` converts once and computes the content keys.

Decoding with a live KV cache (batched, left padding handled through the attention mask):

    enc = tok([IMAGE_PLACEHOLDER + prompt for prompt in prompts], return_tensors="pt", padding=True)
    state = model.start(images, enc.input_ids, enc.attention_mask)   # encodes image(s) + prompt ONCE
    # state.logits (B, T, V), state.hidden_states (B, T, D) last layer, state.past_key_values (HF Cache),
    # state.attention_mask (B, L): the full mask so far
    nxt = state.logits[:, -1].argmax(-1, keepdim=True)
    state = model.append_tokens(state, nxt)                           # one generated token per row
    state = model.append_tokens(state, evidence_ids, evidence_mask)   # forced <information>...</information>
    # evidence_mask (B, k): 1 for real tokens; rows with fewer forced tokens pad with 0 (those slots stay
    # masked forever: positions come from the running sum of the mask). No prefix is ever re-encoded.
    # Lower level: model.embed_inputs(...) -> Prefix; model.step(attention_mask, input_ids|inputs_embeds, cache).

Segmenting (the `<region>` query):

    masks = model.predict_mask(images, hidden_states=H, attention_mask=M)   # list of B bool (H_i, W_i) masks
    # H (B, T, D): last-layer hidden states of the generated text so far (concatenate state.hidden_states of
    # the steps); the span tagger finds the B/I/O spans and the LAST one per row is segmented.
    masks = model.predict_mask(images, hidden_states=H, span_mask=S)    # S (B, T) bool: exactly these tokens
    masks = model.predict_mask(images, input_ids=ids)                   # run the LM on a full prompt first
    masks = model.predict_mask(images, boxes=xyxy)                      # SAM box prompt, (B, 4) pixels
    det = model.predict_mask(..., return_details=True)                  # MaskPrediction: masks, logits, iou,
                                                                         #   has_prompt (False: no span, empty)
Masks come back as a list because images in a batch differ in size (torch.stack them when sizes agree). The SAM
image embedding is cached per image content (LRU, `image_cache_size`), so several region searches on one image,
and `mini`'s visual tokens, pay for the SAM encoder once. A frozen encoder's embeddings can also be kept on disk
(`sam_embedding_cache=<folder>`, image_cache.DiskEmbeddingCache), shared by processes and runs.

Training: `model(images, input_ids, attention_mask, span_tags=..., with_teacher=True)` -> PixSearchOutput, and
pixsearch_core.training.losses.pixsearch_loss. Checkpoints: weights.save_trainable / load_trainable,
build.build_from_checkpoint.
"""

from pixsearch_core.modeling.outputs import MaskPrediction, PixSearchOutput, Prefix, PreparedImages, StepOutput
from pixsearch_core.modeling.pixsearch import PixSearchModel

__all__ = ["MaskPrediction", "PixSearchModel", "PixSearchOutput", "Prefix", "PreparedImages", "StepOutput"]
